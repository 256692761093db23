//! The migration rows (`migrate-apt`, `migrate-dnf`, `migrate-zypper`):
//! a host that runs Teleport's own shell updater gets ours.
//!
//! Teleport's package is the stand-in of `v1_updater.rs` (same name,
//! 15.4.3, architecture all, bash `/usr/sbin/teleport-upgrade`, its units,
//! timer `WantedBy=teleport.service`, `Depends: teleport-ent`), published
//! in the row's signed repository beside ours. The row installs it through
//! the package manager, then ours over it the way an operator would
//! (`apt-get install` / `dnf install` / `zypper install` of the name), and
//! checks what the issue asks: /etc/teleport-upgrade.d and its values kept,
//! the timer (same name) taken over and running our service, the agent not
//! restarted; a newer Teleport updater (15.4.4) published in the repository
//! is not installed by a routine upgrade; removing ours leaves the agent
//! and its configuration.

use super::*;
use crate::v1_updater;

const WANTS_AGENT: &str = "/etc/systemd/system/teleport.service.wants/teleport-upgrade.timer";
const WANTS_TIMERS: &str = "/etc/systemd/system/timers.target.wants/teleport-upgrade.timer";

/// Publish Teleport's shell updater `version` (built here) in `repo`.
fn publish_v1(repo: &mut Repo, fx: &Fixtures, version: &str, dir: &Path) -> Result<(), String> {
    match repo {
        Repo::Apt { repo, .. } => {
            let deb = v1_updater::build_deb(version, Some(AGENT), dir);
            repo.add_debs(APT_COMPONENT, std::slice::from_ref(&deb), Some(&fx.key));
        }
        Repo::Rpm { repo, .. } => {
            let rpm = v1_updater::build_rpm(version, Some(AGENT), dir);
            testkit::rpm::sign_rpm(&fx.key, &rpm);
            let dest = repo.dir().join(rpm.file_name().unwrap());
            std::fs::copy(&rpm, dest).map_err(|e| e.to_string())?;
            repo.reindex(Some(&fx.key));
        }
    }
    Ok(())
}

fn install_v1(pm: Pm, c: &Container) -> Result<(), String> {
    match pm {
        Pm::Apt => Pm::run_all(
            c,
            &[
                &["apt-get", "update", "-q"],
                &[
                    "apt-get",
                    "install",
                    "-y",
                    "-q",
                    &format!("{UPDATER}=15.4.3"),
                ],
            ],
        ),
        Pm::Dnf => Pm::run_all(
            c,
            &[&[
                "dnf",
                "-y",
                "--refresh",
                "install",
                &format!("{UPDATER}-15.4.3"),
            ]],
        ),
        Pm::Zypper => Pm::run_all(
            c,
            &[
                &["zypper", "-n", "refresh"],
                &["zypper", "-n", "install", &format!("{UPDATER}=15.4.3")],
            ],
        ),
    }
}

fn is_link(c: &Container, path: &str) -> Result<bool, String> {
    Ok(c.exec(&["test", "-L", path])?.ok())
}

/// Is /usr/sbin/teleport-upgrade the bash stand-in?
fn binary_is_bash(c: &Container) -> Result<bool, String> {
    let o = c.exec(&["head", "-c", "12", "/usr/sbin/teleport-upgrade"])?;
    Ok(o.stdout.starts_with("#!/bin/bash"))
}

pub(super) fn migration_row(
    rec: &mut Recorder,
    row: Row,
    c: &Container,
    fx: &Fixtures,
    repo: &mut Repo,
    vs: &VersionServer,
    dir: &Path,
) -> Result<(), String> {
    let pm = row.pm();
    let mut sut = Sut {
        c,
        pm,
        vs,
        expected_starts: Vec::new(),
        updates: 0,
    };
    let url = repo.url();
    rec.step(Scenario::AgentUp, || setup_agent(&mut sut, fx, &url, true))?;

    rec.step(Scenario::MigV1Installed, || {
        publish_v1(repo, fx, "15.4.3", dir)?;
        install_v1(pm, c)?;
        let v = pm.installed(c, UPDATER)?;
        if v.as_deref() != Some("15.4.3") {
            return Err(format!("{UPDATER} is {v:?}, expected Teleport's 15.4.3"));
        }
        if !binary_is_bash(c)? {
            return Err("/usr/sbin/teleport-upgrade is not the shell updater".into());
        }
        if !is_link(c, WANTS_AGENT)? {
            return Err(format!("the shell updater's timer is not enabled ({WANTS_AGENT} missing)"));
        }
        let (enabled, active) = sut.timer_state()?;
        Ok(format!("Teleport's {UPDATER} 15.4.3 installed; {TIMER} {enabled}/{active}, wanted by {AGENT_UNIT}"))
    })?;

    // The operator's configuration, as the shell updater used it (and the
    // agent's schedule), plus what our tests need.
    sut.config("endpoint", &vs.endpoint())?;
    sut.config("insecure", "yes")?;
    sut.config("health-timeout", "9")?;
    if let Some(installer) = pm.installer() {
        sut.config("installer", installer)?;
    }
    let kept = ["endpoint", "insecure", "health-timeout"];
    let before: Vec<Option<String>> = kept
        .iter()
        .map(|f| c.read(&format!("{CONFIG_DIR}/{f}")))
        .collect();

    rec.step(Scenario::MigOursOver, || {
        let agent_pid = sut.show(AGENT_UNIT, "MainPID")?;
        pm.install_updater(c)?;
        let mut how = format!("{pm:?} install");
        if pm == Pm::Dnf && pm.installed(c, UPDATER)?.as_deref() == Some("15.4.3") {
            // Measured: `dnf install <name>` over Teleport's noarch
            // package keeps it (exit 0, "already installed"); `dnf
            // upgrade <name>` installs ours. The README says so.
            c.ok(&["dnf", "-y", "upgrade", UPDATER])?;
            how = "dnf install kept 15.4.3; dnf upgrade".into();
        }
        let v = pm.installed(c, UPDATER)?;
        if v.as_deref() != Some(fx.updater.version.as_str()) {
            // Why (dnf skips an upgrade it cannot resolve, exit 0): ask
            // for the best candidate, which names the problem.
            let why = match pm {
                Pm::Dnf => c.exec(&["dnf", "-y", "upgrade", "--best", UPDATER])?.tail(12),
                _ => String::new(),
            };
            return Err(format!("{UPDATER} is {v:?} after installing ours, expected {}\n{why}", fx.updater.version));
        }
        if binary_is_bash(c)? {
            return Err("/usr/sbin/teleport-upgrade is still the shell updater".into());
        }
        for (f, b) in kept.iter().zip(&before) {
            if c.read(&format!("{CONFIG_DIR}/{f}")) != *b {
                return Err(format!("{CONFIG_DIR}/{f} changed when ours was installed"));
            }
        }
        if is_link(c, WANTS_AGENT)? || !is_link(c, WANTS_TIMERS)? {
            return Err(format!("the timer was not taken over: {WANTS_AGENT} still there or {WANTS_TIMERS} missing"));
        }
        let (enabled, active) = sut.timer_state()?;
        if enabled != "enabled" || active != "active" {
            return Err(format!("{TIMER} is {enabled}/{active} after the takeover"));
        }
        let timer = c.ok(&["systemctl", "cat", TIMER])?;
        if !timer.contains("OnUnitActiveSec=30min") {
            return Err(format!("{TIMER} is not ours:\n{timer}"));
        }
        let dropin = c.ok(&["systemctl", "cat", AGENT_UNIT])?;
        if dropin.contains("TELEPORT_EXT_UPGRADER_VERSION") {
            return Err(format!("the shell updater's drop-in is still in effect:\n{dropin}"));
        }
        if sut.show(AGENT_UNIT, "MainPID")? != agent_pid {
            return Err("installing ours over the shell updater restarted the agent".into());
        }
        let starts = sut.check_starts()?;
        Ok(format!("{how}: {UPDATER} {} over 15.4.3; configuration kept; {TIMER} {enabled}/{active} through timers.target; agent not restarted; {starts}", fx.updater.version))
    })?;

    rec.step(Scenario::MigTimerRunsOurs, || {
        let v1_runs = c.read(v1_updater::RUNS_LOG).unwrap_or_default();
        sut.schedule_in_window()?;
        vs.set("15.4.3", false);
        let (result, _) = sut.fire_timer()?;
        if result != "success" {
            return Err(format!(
                "{SERVICE} ran but ended with Result={result}{}",
                sut.diagnostics()
            ));
        }
        if c.read(v1_updater::RUNS_LOG).unwrap_or_default() != v1_runs {
            return Err("the timer ran the shell updater".into());
        }
        let d = sut.expect_update("15.4.3", "inside the maintenance window")?;
        Ok(format!("the timer ran ours: {d}"))
    })?;

    rec.step(Scenario::MigNewerV1Ignored, || {
        publish_v1(repo, fx, "15.4.4", dir)?;
        let agent_pid = sut.show(AGENT_UNIT, "MainPID")?;
        pm.routine_upgrade(c)?;
        let v = pm.installed(c, UPDATER)?;
        if v.as_deref() != Some(fx.updater.version.as_str()) || binary_is_bash(c)? {
            return Err(format!(
                "a routine upgrade replaced ours: {UPDATER} is {v:?}"
            ));
        }
        // The control: the repository really offers 15.4.4 of the name.
        let offered = match pm {
            Pm::Apt => c.ok(&["apt-cache", "madison", UPDATER])?,
            Pm::Dnf => c.ok(&[
                "dnf",
                "-q",
                "list",
                "--showduplicates",
                "--available",
                UPDATER,
            ])?,
            Pm::Zypper => c.ok(&["zypper", "-n", "search", "-s", UPDATER])?,
        };
        if !offered.contains("15.4.4") {
            return Err(format!(
                "the repository does not offer Teleport's 15.4.4:\n{offered}"
            ));
        }
        if sut.show(AGENT_UNIT, "MainPID")? != agent_pid {
            return Err("the routine upgrade restarted the agent".into());
        }
        Ok(format!("15.4.4 offered, {} kept", fx.updater.version))
    })?;

    rec.step(Scenario::MigRemoved, || {
        let agent_pid = sut.show(AGENT_UNIT, "MainPID")?;
        pm.remove_updater(c)?;
        if pm.installed(c, UPDATER)?.is_some() {
            return Err(format!("{UPDATER} still installed"));
        }
        sut.expect_agent("15.4.3")?;
        if sut.show(AGENT_UNIT, "MainPID")? != agent_pid
            || sut.show(AGENT_UNIT, "ActiveState")? != "active"
        {
            return Err("removing ours stopped or restarted the agent".into());
        }
        for (f, b) in kept.iter().zip(&before) {
            if c.read(&format!("{CONFIG_DIR}/{f}")) != *b {
                return Err(format!("{CONFIG_DIR}/{f} changed when ours was removed"));
            }
        }
        Ok("agent 15.4.3 running (same pid), /etc/teleport-upgrade.d kept".into())
    })?;
    Ok(())
}
