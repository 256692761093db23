//! The migration rows (`migrate-apt`, `migrate-dnf`, `migrate-zypper`):
//! a host that runs Teleport's own shell updater gets ours, and the way
//! back.
//!
//! Teleport's package is built by `v1_updater.rs` with its real file list
//! and locations (the drop-in and `package` under /etc, conffiles on deb
//! and plain files on rpm as fpm makes them, fpm's script templates),
//! 15.4.3, published in the row's signed repository beside ours. The row
//! installs it through the package manager (its drop-in in effect: the
//! control), then ours over it the way an operator would, and checks what
//! issue 25 asks: no v1 drop-in, hook or timer link in effect (`systemctl
//! show teleport -p Environment -p ExecStopPost -p DropInPaths`,
//! `systemctl list-timers`), /etc/teleport-upgrade.d kept byte for byte
//! (an edited `package`, which Teleport's package owns, included), the
//! timer taken over, the agent not restarted; a newer Teleport updater
//! (15.4.4) in the repository is not installed by a routine upgrade. Then
//! the way back: Teleport's 15.4.4 installed over ours (a downgrade of the
//! name): nothing of ours in effect (no timers.target link, no drop-in,
//! unit or cron file of ours), Teleport's drop-in and timer in effect, and
//! its timer runs its updater.

use super::*;
use crate::v1_updater;

const WANTS_AGENT: &str = "/etc/systemd/system/teleport.service.wants/teleport-upgrade.timer";
const WANTS_TIMERS: &str = "/etc/systemd/system/timers.target.wants/teleport-upgrade.timer";
/// Our drop-in for the agent's unit.
const OUR_DROPIN: &str = "/usr/lib/systemd/system/teleport.service.d/teleport-upgrader-env.conf";
/// The operator's `package`: edited (a comment line), so not the bytes
/// Teleport's package ships.
const EDITED_PACKAGE: &str = "# pinned by the operator\nteleport-ent\n";

/// What systemd applies to the agent's unit now.
struct AgentUnit {
    environment: String,
    exec_stop_post: String,
    dropins: String,
}

fn agent_unit(c: &Container) -> Result<AgentUnit, String> {
    let o = c.ok(&[
        "systemctl",
        "show",
        AGENT_UNIT,
        "-p",
        "Environment",
        "-p",
        "ExecStopPost",
        "-p",
        "DropInPaths",
    ])?;
    let get = |k: &str| {
        o.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or("")
            .to_string()
    };
    Ok(AgentUnit {
        environment: get("Environment"),
        exec_stop_post: get("ExecStopPost"),
        dropins: get("DropInPaths"),
    })
}

impl AgentUnit {
    fn shown(&self) -> String {
        format!(
            "Environment={} ExecStopPost={} DropInPaths={}",
            self.environment, self.exec_stop_post, self.dropins
        )
    }
}

/// The timers `systemctl list-timers --all` lists for teleport-upgrade.
fn listed_timers(c: &Container) -> Result<Vec<String>, String> {
    let o = c.ok(&["systemctl", "list-timers", "--all", "--no-legend"])?;
    Ok(o.lines()
        .filter(|l| l.contains("teleport-upgrade"))
        .map(|l| {
            l.split_whitespace()
                .rev()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect())
}

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
        v1_installed(&sut, fx, repo, dir)
    })?;

    // The operator's configuration, as the shell updater used it (and the
    // agent's schedule), plus what our tests need.
    sut.config("endpoint", &vs.endpoint())?;
    sut.config("insecure", "yes")?;
    sut.config("health-timeout", "9")?;
    if let Some(installer) = pm.installer() {
        sut.config("installer", installer)?;
    }
    sut.config("package", EDITED_PACKAGE)?;
    let kept = ["endpoint", "insecure", "health-timeout", "package"];
    let before: Vec<Option<String>> = kept
        .iter()
        .map(|f| c.read(&format!("{CONFIG_DIR}/{f}")))
        .collect();

    rec.step(Scenario::MigOursOver, || {
        ours_over(&sut, fx, &kept, &before)
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

    rec.step(Scenario::MigBackToV1, || {
        back_to_v1(&mut sut, &kept, &before)
    })?;
    rec.step(Scenario::MigRemovedThenV1, || removed_then_v1(&mut sut, fx))?;
    Ok(())
}

/// Teleport's 15.4.4 installed over ours: a downgrade of the name, as an
/// operator going back would run it.
fn install_v1_over_ours(pm: Pm, c: &Container) -> Result<&'static str, String> {
    let v = "15.4.4";
    match pm {
        Pm::Apt => Pm::run_all(
            c,
            &[&[
                "apt-get",
                "install",
                "-y",
                "-q",
                "--allow-downgrades",
                &format!("{UPDATER}={v}"),
            ]],
        )
        .map(|_| "apt-get install --allow-downgrades"),
        Pm::Dnf => {
            // Measured: `dnf downgrade` keeps ours ("of lowest version
            // already installed": it looks only at our arch, Teleport's is
            // noarch). Then `dnf install` of the noarch NEVRA.
            let mut how = "dnf downgrade";
            let mut out = c
                .exec(&["dnf", "-y", "downgrade", &format!("{UPDATER}-{v}")])?
                .tail(6);
            if pm.installed(c, UPDATER)?.as_deref() != Some(v) {
                let nevra = format!("{UPDATER}-{v}-1.noarch");
                out.push_str(&c.exec(&["dnf", "-y", "install", &nevra])?.tail(12));
                how = "dnf downgrade kept ours; dnf install of the noarch NEVRA";
            }
            if pm.installed(c, UPDATER)?.as_deref() != Some(v) {
                return Err(format!("dnf did not go back:\n{out}"));
            }
            Ok(how)
        }
        Pm::Zypper => Pm::run_all(
            c,
            &[&[
                "zypper",
                "-n",
                "install",
                "--oldpackage",
                &format!("{UPDATER}={v}"),
            ]],
        )
        .map(|_| "zypper install --oldpackage"),
    }
}

fn exists(c: &Container, path: &str) -> Result<bool, String> {
    Ok(c.exec(&["test", "-e", path])?.ok())
}

/// The way back: Teleport's 15.4.4 installed over ours.
fn back_to_v1(sut: &mut Sut, kept: &[&str], before: &[Option<String>]) -> Result<String, String> {
    let (c, pm) = (sut.c, sut.pm);
    let agent_pid = sut.show(AGENT_UNIT, "MainPID")?;
    let how = install_v1_over_ours(pm, c)?;
    // On rpm Teleport's package writes its own `package` over the
    // operator's (it is not %config there): its doing, not ours.
    for (f, b) in kept.iter().zip(before) {
        if (pm == Pm::Apt || *f != "package") && c.read(&format!("{CONFIG_DIR}/{f}")) != *b {
            return Err(format!("{CONFIG_DIR}/{f} changed when going back"));
        }
    }
    let d = v1_in_effect(sut, &agent_pid)?;
    Ok(format!("{how}: {d}"))
}

/// The other way back: ours again (over Teleport's 15.4.4), then purged
/// (dpkg) or erased (rpm), then Teleport's 15.4.4 installed afresh.
fn removed_then_v1(sut: &mut Sut, fx: &Fixtures) -> Result<String, String> {
    let (c, pm) = (sut.c, sut.pm);
    let agent_pid = sut.show(AGENT_UNIT, "MainPID")?;
    pm.install_updater(c)?;
    if pm == Pm::Dnf && pm.installed(c, UPDATER)?.as_deref() == Some("15.4.4") {
        c.ok(&["dnf", "-y", "upgrade", UPDATER])?;
    }
    let v = pm.installed(c, UPDATER)?;
    if v.as_deref() != Some(fx.updater.version.as_str()) {
        return Err(format!("{UPDATER} is {v:?}, expected ours again"));
    }
    let package = c.read(v1_updater::PACKAGE_FILE);
    let (how, remove): (&str, &[&str]) = match pm {
        Pm::Apt => ("apt-get purge", &["apt-get", "purge", "-y", "-q", UPDATER]),
        Pm::Dnf => ("dnf remove", &["dnf", "-y", "remove", UPDATER]),
        Pm::Zypper => ("zypper remove", &["zypper", "-n", "remove", UPDATER]),
    };
    c.ok(remove)?;
    if c.read(v1_updater::PACKAGE_FILE) != package {
        return Err(format!(
            "{how} of ours did not keep {}",
            v1_updater::PACKAGE_FILE
        ));
    }
    if is_link(c, WANTS_TIMERS)? || exists(c, CRON_FILE)? || exists(c, OUR_DROPIN)? {
        return Err(format!("{how} left our timer link, cron file or drop-in"));
    }
    let install = format!("{UPDATER}=15.4.4");
    match pm {
        // /etc/teleport-upgrade.d/package is on disk, not the bytes it
        // ships: dpkg would ask; the operator keeps theirs.
        Pm::Apt => c.ok(&[
            "apt-get",
            "install",
            "-y",
            "-q",
            "-o",
            "Dpkg::Options::=--force-confdef",
            "-o",
            "Dpkg::Options::=--force-confold",
            &install,
        ])?,
        Pm::Dnf => c.ok(&["dnf", "-y", "install", &format!("{UPDATER}-15.4.4")])?,
        Pm::Zypper => c.ok(&["zypper", "-n", "install", &install])?,
    };
    if pm == Pm::Apt && c.read(v1_updater::PACKAGE_FILE) != package {
        return Err(format!(
            "installing Teleport's package after {how} replaced the operator's package"
        ));
    }
    let d = v1_in_effect(sut, &agent_pid)?;
    let kept = if pm == Pm::Apt {
        "kept by the purge and by Teleport's install"
    } else {
        "kept by the erase (Teleport's install then writes its own)"
    };
    Ok(format!(
        "ours again, {how}, then Teleport's installed: {} {kept}; {d}",
        v1_updater::PACKAGE_FILE
    ))
}

/// Teleport's 15.4.4 is what runs: its binary, units, timer link, drop-in;
/// nothing of ours in effect; the agent not restarted; its timer runs its
/// updater.
fn v1_in_effect(sut: &mut Sut, agent_pid: &str) -> Result<String, String> {
    let (c, pm) = (sut.c, sut.pm);
    let v = pm.installed(c, UPDATER)?;
    if v.as_deref() != Some("15.4.4") || !binary_is_bash(c)? {
        return Err(format!(
            "{UPDATER} is {v:?} (or not the shell updater) after going back"
        ));
    }
    if is_link(c, WANTS_TIMERS)? || !is_link(c, WANTS_AGENT)? {
        return Err(format!(
            "the timer is not enabled Teleport's way: {WANTS_TIMERS} still there or {WANTS_AGENT} missing"
        ));
    }
    let (enabled, active) = sut.timer_state()?;
    if enabled != "enabled" || active != "active" {
        return Err(format!("{TIMER} is {enabled}/{active} after going back"));
    }
    let timer = c.ok(&["systemctl", "cat", TIMER])?;
    let service = c.ok(&["systemctl", "cat", SERVICE])?;
    if !timer.contains("OnUnitActiveSec=5m") || !service.contains("Teleport auto-update service") {
        return Err(format!("the units are not Teleport's:\n{timer}\n{service}"));
    }
    let unit = agent_unit(c)?;
    if !unit
        .environment
        .contains("TELEPORT_EXT_UPGRADER_VERSION=15.4.4")
        || !unit.exec_stop_post.contains(v1_updater::LAST_RESTART)
        || unit.dropins.contains(OUR_DROPIN)
    {
        return Err(format!(
            "the agent's unit is not Teleport's way: {}",
            unit.shown()
        ));
    }
    let aside = format!("{}.disabled-by-teleport-ent-updater", v1_updater::DROPIN);
    for left in [CRON_FILE, OUR_DROPIN, aside.as_str()] {
        if exists(c, left)? {
            return Err(format!("{left} is left after going back"));
        }
    }
    let timers = listed_timers(c)?;
    let recheck = c.exec(&["systemctl", "is-active", "teleport-upgrade-recheck.timer"])?;
    if timers.len() != 1 || recheck.ok() {
        return Err(format!(
            "timers after going back: {timers:?}, re-check active: {}",
            recheck.ok()
        ));
    }
    if sut.show(AGENT_UNIT, "MainPID")? != agent_pid {
        return Err("going back restarted the agent".into());
    }
    let runs = c.read(v1_updater::RUNS_LOG).unwrap_or_default();
    let (result, _) = sut.fire_timer()?;
    let after = c.read(v1_updater::RUNS_LOG).unwrap_or_default();
    if result != "success" || !after[runs.len().min(after.len())..].contains("v1 15.4.4 run") {
        return Err(format!(
            "Teleport's timer did not run its updater (Result={result}):\n{after}"
        ));
    }
    Ok(format!(
        "{UPDATER} 15.4.4: {TIMER} {enabled}/{active} wanted by {AGENT_UNIT}; agent unit: {}; no cron file, drop-in or unit of ours; timers {timers:?}; agent not restarted; the timer ran Teleport's updater",
        unit.shown()
    ))
}

/// Ours installed over Teleport's package, the way an operator would.
fn ours_over(
    sut: &Sut,
    fx: &Fixtures,
    kept: &[&str],
    before: &[Option<String>],
) -> Result<String, String> {
    let (c, pm) = (sut.c, sut.pm);
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
            Pm::Dnf => c
                .exec(&["dnf", "-y", "upgrade", "--best", UPDATER])?
                .tail(12),
            _ => String::new(),
        };
        return Err(format!(
            "{UPDATER} is {v:?} after installing ours, expected {}\n{why}",
            fx.updater.version
        ));
    }
    if binary_is_bash(c)? {
        return Err("/usr/sbin/teleport-upgrade is still the shell updater".into());
    }
    for (f, b) in kept.iter().zip(before) {
        if c.read(&format!("{CONFIG_DIR}/{f}")) != *b {
            return Err(format!("{CONFIG_DIR}/{f} changed when ours was installed"));
        }
    }
    if is_link(c, WANTS_AGENT)? || !is_link(c, WANTS_TIMERS)? {
        return Err(format!(
            "the timer was not taken over: {WANTS_AGENT} still there or {WANTS_TIMERS} missing"
        ));
    }
    let (enabled, active) = sut.timer_state()?;
    if enabled != "enabled" || active != "active" {
        return Err(format!("{TIMER} is {enabled}/{active} after the takeover"));
    }
    let timer = c.ok(&["systemctl", "cat", TIMER])?;
    if !timer.contains("OnUnitActiveSec=30min") {
        return Err(format!("{TIMER} is not ours:\n{timer}"));
    }
    let unit = agent_unit(c)?;
    if unit.environment.contains("TELEPORT_EXT_UPGRADER_VERSION")
        || !unit.exec_stop_post.is_empty()
        || unit.dropins.contains(v1_updater::DROPIN)
        || !unit.dropins.contains(OUR_DROPIN)
        || !unit.environment.contains("TELEPORT_EXT_UPGRADER=unit")
    {
        return Err(format!(
            "the shell updater's drop-in is still in effect, or ours is not: {}",
            unit.shown()
        ));
    }
    let timers = listed_timers(c)?;
    if timers.len() != 1 {
        return Err(format!("systemctl list-timers: {timers:?}"));
    }
    if sut.show(AGENT_UNIT, "MainPID")? != agent_pid {
        return Err("installing ours over the shell updater restarted the agent".into());
    }
    let starts = sut.check_starts()?;
    Ok(format!("{how}: {UPDATER} {} over 15.4.3; configuration (an edited package included) kept; {TIMER} {enabled}/{active} through timers.target; agent unit: {}; timers {timers:?}; agent not restarted; {starts}", fx.updater.version, unit.shown()))
}

/// Teleport's 15.4.3 published and installed: its binary, its timer
/// wanted by the agent's unit, and (the control) its drop-in in effect.
fn v1_installed(sut: &Sut, fx: &Fixtures, repo: &mut Repo, dir: &Path) -> Result<String, String> {
    let (c, pm) = (sut.c, sut.pm);
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
        return Err(format!(
            "the shell updater's timer is not enabled ({WANTS_AGENT} missing)"
        ));
    }
    let (enabled, active) = sut.timer_state()?;
    // The control: Teleport's drop-in is what the agent's unit gets.
    let unit = agent_unit(c)?;
    if !unit
        .environment
        .contains("TELEPORT_EXT_UPGRADER_VERSION=15.4.3")
        || !unit.exec_stop_post.contains(v1_updater::LAST_RESTART)
        || !unit.dropins.contains(v1_updater::DROPIN)
    {
        return Err(format!(
            "Teleport's drop-in is not in effect: {}",
            unit.shown()
        ));
    }
    Ok(format!("Teleport's {UPDATER} 15.4.3 installed; {TIMER} {enabled}/{active}, wanted by {AGENT_UNIT}; its drop-in in effect (TELEPORT_EXT_UPGRADER_VERSION=15.4.3, ExecStopPost)"))
}
