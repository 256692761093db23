//! Part of `tests/rows.rs` (see there).

use super::*;

pub(crate) fn systemd_row(
    rec: &mut Recorder,
    row: Row,
    c: &Container,
    fx: &Fixtures,
    repo: &mut Repo,
    vs: &VersionServer,
) -> Result<(), String> {
    let pm = row.pm();
    let mut sut = Sut {
        c,
        pm,
        vs,
        expected_starts: Vec::new(),
        updates: 0,
    };
    let sut = &mut sut;
    install_phase(rec, sut, fx, repo)?;
    first_update(rec, sut, row, fx)?;
    update_scenarios(rec, sut)?;
    broken_scenarios(rec, sut, row)?;
    stopped_and_failed(rec, sut)?;
    if row == Row::DebianApt {
        unhealthy_recovered(rec, sut)?;
    }
    if row == Row::DebianApt {
        rec.step(Scenario::HealthUnknown, || health_unknown(sut))?;
    }
    if row == Row::DebianApt {
        reload_fails_and_needrestart(rec, sut)?;
    }
    restart_once(rec, sut)?;
    stop_during_install(rec, sut)?;
    upgrade_phase(rec, sut, row, fx, repo)?;
    removal_phase(rec, sut)?;
    Ok(())
}

/// The agent up, the updater package resolved (rpm rows) and installed, the
/// operator's configuration written.
fn install_phase(
    rec: &mut Recorder,
    sut: &mut Sut,
    fx: &Fixtures,
    repo: &mut Repo,
) -> Result<(), String> {
    let (c, pm, vs) = (sut.c, sut.pm, sut.vs);
    let url = repo.url();
    rec.step(Scenario::AgentUp, || setup_agent(sut, fx, &url, true))?;

    if pm != Pm::Apt {
        rec.step(Scenario::RpmAsBuilt, || {
            // Resolution only: nothing is installed.
            let inside = "/var/tmp/teleport-ent-updater-as-built.rpm";
            let bytes = std::fs::read(&fx.updater.rpm).map_err(|e| e.to_string())?;
            c.write(inside, bytes)?;
            let argv: &[&str] = match pm {
                Pm::Dnf => &[
                    "dnf",
                    "-y",
                    "--disablerepo=*",
                    "--setopt=tsflags=test",
                    "install",
                    inside,
                ],
                _ => &["zypper", "-n", "install", "--dry-run", inside],
            };
            let o = c.exec(argv)?;
            c.remove(inside)?;
            if !o.ok() {
                return Err(format!(
                    "{} refuses {} (exit {:?}):\n{}",
                    argv[0],
                    fx.updater.rpm.file_name().unwrap().to_string_lossy(),
                    o.code,
                    o.tail(6)
                ));
            }
            Ok(format!("{} resolves and test-installs it", argv[0]))
        })?;
    }

    rec.step(Scenario::UpdaterInstalled, || {
        let agent_pid = sut.show(AGENT_UNIT, "MainPID")?;
        pm.install_updater(c)?;
        let v = pm.installed(c, UPDATER)?;
        if v.as_deref() != Some(fx.updater.version.as_str()) {
            return Err(format!(
                "{UPDATER} is {v:?}, expected {}",
                fx.updater.version
            ));
        }
        let (enabled, active) = sut.timer_state()?;
        if enabled != "enabled" || active != "active" {
            return Err(format!(
                "{TIMER} is {enabled}/{active} after the install, expected enabled/active"
            ));
        }
        if sut.show(SERVICE, "ExecMainStartTimestampMonotonic")? != "0" {
            return Err(format!("{SERVICE} already ran at install time"));
        }
        if sut.show(AGENT_UNIT, "MainPID")? != agent_pid {
            return Err("installing the updater restarted the agent".into());
        }
        let starts = sut.check_starts()?;
        Ok(format!(
            "{UPDATER} {} installed; {TIMER} {enabled}, {active}; {starts}",
            fx.updater.version
        ))
    })?;

    // The operator's configuration (the agent writes the schedule). The
    // post-update health check watches the real teleport.service through
    // systemd; a healthy update's wait is 3 s of stability whatever the
    // timeout, which bounds only the waits of the broken versions: 15 s
    // leaves room for a graceful reload's takeover on a loaded machine (at
    // 9 s, with load 25 on 2 cores, a new process once took longer).
    sut.config("endpoint", &vs.endpoint())?;
    sut.config("insecure", "yes")?;
    sut.config("health-timeout", "15")?;
    if let Some(installer) = pm.installer() {
        sut.config("installer", installer)?;
    }
    Ok(())
}

/// The first update: libgpgme's absence shown (debian11-apt), then the real
/// timer firing the real service inside the window.
fn first_update(rec: &mut Recorder, sut: &mut Sut, row: Row, fx: &Fixtures) -> Result<(), String> {
    let (c, vs) = (sut.c, sut.vs);

    if row == Row::Debian11Apt {
        rec.step(Scenario::PinWithoutLibgpgme, || {
            let o = c.exec(&["dpkg-query", "-W", "-f=${db:Status-Abbrev}", "libgpgme11"])?;
            if o.stdout.starts_with("ii") {
                return Err("libgpgme11 is installed in this image: nothing is shown".into());
            }
            // Inside a window: dry-run decides an update and audits trust
            // (changing nothing).
            sut.schedule_in_window()?;
            vs.set("15.4.3", false);
            let plain = c.exec(&["/usr/sbin/teleport-upgrade", "dry-run"])?;
            if !plain.ok() {
                return Err(format!("dry-run without libgpgme failed (exit {:?}):\n{}", plain.code, plain.tail(8)));
            }
            sut.config("trusted-keys", "# the release key\nA1B2C3D4E5F60718293A4B5C6D7E8F9012345678")?;
            let pinned = c.exec(&["/usr/sbin/teleport-upgrade", "dry-run"])?;
            c.remove(&format!("{CONFIG_DIR}/trusted-keys"))?;
            if pinned.code != Some(3)
                || !pinned.stderr.contains("libgpgme.so.11 or libgpgme.so.45")
            {
                return Err(format!(
                    "with trusted-keys and no libgpgme: exit {:?}, expected 3 naming both sonames:\n{}",
                    pinned.code,
                    pinned.tail(8)
                ));
            }
            sut.expect_agent("15.4.2")?;
            let line = pinned.stderr.lines().find(|l| l.contains("libgpgme.so.11")).unwrap_or("").trim().to_string();
            Ok(format!("dry-run exit 0 without libgpgme; with trusted-keys: exit 3: {line}"))
        })?;
    }

    rec.step(Scenario::TimerFires, || {
        sut.schedule_in_window()?;
        vs.set("15.4.3", false);
        let before = sut.start_probe(fx)?;
        if before != "15.4.2" {
            return Err(format!("the probe's first answer is {before:?}, expected 15.4.2"));
        }
        let restarts = sut.show(AGENT_UNIT, "NRestarts")?;
        let (result, _) = sut.fire_timer()?;
        if result != "success" {
            return Err(format!(
                "{SERVICE} ran but ended with Result={result}{}",
                sut.diagnostics()
            ));
        }
        // The run is over: the new version took over while the connection
        // stayed open to the old process.
        let answers = sut.finish_probe()?;
        let (after, new) = (
            answers.get("after").cloned().unwrap_or_default(),
            answers.get("new").cloned().unwrap_or_default(),
        );
        if after != "15.4.2" || new != "15.4.3" {
            return Err(format!(
                "the probe got {answers:?}: expected the open connection served by 15.4.2 (after=15.4.2) and a new one by 15.4.3 (new=15.4.3){}",
                sut.diagnostics()
            ));
        }
        let d = sut.expect_update("15.4.3", "inside the maintenance window")?;
        if sut.last_via()? != Via::Reload {
            return Err(format!("15.4.3 was not started by a reload{}", sut.diagnostics()));
        }
        if sut.show(AGENT_UNIT, "NRestarts")? != restarts {
            return Err("systemd counted a restart".into());
        }
        if !sut.journal().contains("reloading the agent (graceful restart") {
            return Err(format!("the journal shows no reload{}", sut.diagnostics()));
        }
        Ok(format!(
            "timer triggered the service; systemctl reload; the open connection answered 15.4.2 after the update, a new one 15.4.3; NRestarts {restarts}; {d}"
        ))
    })?;
    Ok(())
}

/// Outside the window, a critical update, a fleet rollback.
fn update_scenarios(rec: &mut Recorder, sut: &mut Sut) -> Result<(), String> {
    let vs = sut.vs;

    rec.step(Scenario::OutsideWindow, || {
        sut.schedule_outside_window()?;
        vs.set("16.0.0", false);
        sut.start_service()?;
        sut.expect_agent("15.4.3")?;
        let decision = sut.last_run("decision")?;
        if decision != "wait" {
            return Err(format!(
                "decided {decision:?}, expected wait{}",
                sut.diagnostics()
            ));
        }
        let starts = sut.check_starts()?;
        Ok(format!("decision wait; still 15.4.3; {starts}"))
    })?;

    rec.step(Scenario::Critical, || {
        vs.set("16.0.0", true);
        sut.start_service()?;
        let d = sut.expect_update("16.0.0", "critical")?;
        if sut.last_via()? != Via::Start {
            return Err(format!(
                "a critical update reloaded the agent{}",
                sut.diagnostics()
            ));
        }
        Ok(format!("restarted by systemd (not a reload); {d}"))
    })?;

    rec.step(Scenario::Rollback, || {
        // The lower target is seen by a first check (no change), then
        // installed by the second. An agent unit without ExecReload= (an
        // operator's drop-in clears it): CanReload=no.
        let first = sut.sight_lower("15.4.3")?;
        let d = sut.update_with_reload_fallback(
            "no-reload",
            "[Service]\nExecReload=\n",
            "CanReload=no",
        );
        sut.done_sighting()?;
        Ok(format!("{first}; second check: {}", d?))
    })?;
    Ok(())
}

/// A broken version rolled back and not retried; yum (rpm-dnf).
fn broken_scenarios(rec: &mut Recorder, sut: &mut Sut, row: Row) -> Result<(), String> {
    let (c, vs) = (sut.c, sut.vs);

    rec.step(Scenario::BrokenRolledBack, || {
        sut.schedule_in_window()?;
        vs.set(BROKEN, false);
        let seen = sut.starts()?.len();
        let (result, status) = sut.fire_timer()?;
        let d = sut.expect_rolled_back(
            &result,
            &status,
            seen,
            "15.4.3",
            1,
            1,
            "no new process took over",
        )?;
        let reloaded = sut
            .starts()?
            .iter()
            .skip(seen)
            .any(|s| s.version == BROKEN && s.via == Via::Reload);
        if !reloaded {
            return Err(format!(
                "{BROKEN} was not started by a reload{}",
                sut.diagnostics()
            ));
        }
        Ok(d)
    })?;

    rec.step(Scenario::BrokenNotRetried, || {
        let agent_pid = sut.show(AGENT_UNIT, "MainPID")?;
        let (result, status) = sut.fire_timer()?;
        if result != "success" {
            return Err(format!(
                "{SERVICE} ended with Result={result}, status {status}{}",
                sut.diagnostics()
            ));
        }
        let (decision, detail) = (sut.last_run("decision")?, sut.last_run("detail")?);
        if decision != "wait" || !detail.contains("rolled back") {
            return Err(format!(
                "decided {decision:?} ({detail:?}), expected a wait for the failed target{}",
                sut.diagnostics()
            ));
        }
        sut.expect_agent("15.4.3")?;
        if sut.show(AGENT_UNIT, "MainPID")? != agent_pid {
            return Err("the agent was restarted".into());
        }
        let starts = sut.check_starts()?;
        Ok(format!("{detail}; {starts}"))
    })?;

    if row == Row::RpmDnf {
        rec.step(Scenario::Yum, || {
            if c.exists("/usr/bin/yum") {
                return Err("the image already has /usr/bin/yum".into());
            }
            c.ok(&["ln", "-s", "dnf", "/usr/bin/yum"])?;
            sut.config("installer", "yum")?;
            vs.set("16.0.0", false);
            sut.start_service()?;
            let installer = sut.last_run("installer")?;
            if installer != "yum" {
                return Err(format!(
                    "the run used installer {installer:?}, expected yum"
                ));
            }
            let journal = sut.journal();
            if !journal
                .lines()
                .any(|l| l.contains("yum -y") && l.contains("install"))
            {
                return Err(format!(
                    "the journal shows no `yum ... install` command:\n{journal}"
                ));
            }
            let d = sut.expect_update("16.0.0", "inside the maintenance window")?;
            sut.config("installer", "dnf")?;
            Ok(format!("ran yum (-> dnf); {d}"))
        })?;
    }
    Ok(())
}

/// The versionlock scenarios (rpm-dnf), the cron line under systemd
/// (debian-apt), the updater package upgraded.
fn upgrade_phase(
    rec: &mut Recorder,
    sut: &mut Sut,
    row: Row,
    fx: &Fixtures,
    repo: &mut Repo,
) -> Result<(), String> {
    let (c, pm, vs) = (sut.c, sut.pm, sut.vs);

    if row == Row::RpmDnf {
        versionlock::versionlock_scenarios(rec, sut, vs)?;
    }
    if row == Row::Dnf5 {
        dnf5::dnf5_scenarios(rec, sut, fx, repo)?;
    }
    if row == Row::SuseZypper {
        zypper::zypper_scenarios(rec, sut, fx)?;
    }

    if row == Row::DebianApt {
        rec.step(Scenario::CronNoopUnderSystemd, || {
            sut.pin_cron_jitter()?;
            let before = c.read(STATE_FILE);
            let hits = vs.version_hits();
            let o = sut.run_cron_line()?;
            if !o.ok() {
                return Err(format!(
                    "the cron line failed (exit {:?})\n{}",
                    o.code,
                    o.tail(10)
                ));
            }
            if c.read(STATE_FILE) != before || vs.version_hits() != hits {
                return Err("the cron line ran the updater although systemd runs".into());
            }
            c.remove("/usr/local/bin/shuf")?;
            Ok("exit 0, no run (state.json and version server untouched)".into())
        })?;
    }

    if Scenario::BusyNeighbour.applies(row) {
        rec.step(Scenario::BusyNeighbour, || {
            neighbour::busy_neighbour(sut, fx)
        })?;
    }

    rec.step(Scenario::UpdaterUpgraded, || {
        let agent_before = sut.agent_version()?.unwrap_or_default();
        let agent_pid = sut.show(AGENT_UNIT, "MainPID")?;
        let timer_since = sut.show(TIMER, "ActiveEnterTimestampMonotonic")?;
        repo.publish_next_updater(fx)?;
        pm.routine_upgrade(c)?;
        let v = pm.installed(c, UPDATER)?;
        if v.as_deref() != Some(fx.updater_next.version.as_str()) {
            return Err(format!(
                "{UPDATER} is {v:?} after the upgrade, expected {}",
                fx.updater_next.version
            ));
        }
        // 16.0.1 is in the repository: only the hold keeps the agent.
        sut.expect_agent(&agent_before)?;
        if sut.show(AGENT_UNIT, "MainPID")? != agent_pid {
            return Err("upgrading the updater restarted the agent".into());
        }
        let starts = sut.check_starts()?;
        let (enabled, active) = sut.timer_state()?;
        if enabled != "enabled" || active != "active" {
            return Err(format!("{TIMER} is {enabled}/{active} after the upgrade"));
        }
        let restarted = sut.show(TIMER, "ActiveEnterTimestampMonotonic")? != timer_since;
        Ok(format!(
            "{UPDATER} {} -> {}; {AGENT} stays {agent_before} (16.0.1 offered); timer {}; {starts}",
            fx.updater.version,
            fx.updater_next.version,
            if restarted {
                "restarted"
            } else {
                "kept running"
            }
        ))
    })?;
    Ok(())
}

/// The updater package removed: the agent runs on.
fn removal_phase(rec: &mut Recorder, sut: &mut Sut) -> Result<(), String> {
    let (c, pm) = (sut.c, sut.pm);

    rec.step(Scenario::UpdaterRemoved, || {
        let agent_before = sut.agent_version()?.unwrap_or_default();
        let agent_pid = sut.show(AGENT_UNIT, "MainPID")?;
        pm.remove_updater(c)?;
        if let Some(v) = pm.installed(c, UPDATER)? {
            return Err(format!("{UPDATER} {v} is still installed"));
        }
        sut.expect_agent(&agent_before)?;
        if sut.show(AGENT_UNIT, "ActiveState")? != "active"
            || sut.show(AGENT_UNIT, "MainPID")? != agent_pid
        {
            return Err("removing the updater stopped or restarted the agent".into());
        }
        let starts = sut.check_starts()?;
        for f in ["endpoint", "insecure", "schedule"] {
            if !c.exists(&format!("{CONFIG_DIR}/{f}")) {
                return Err(format!("{CONFIG_DIR}/{f} is gone"));
            }
        }
        if c.exists("/usr/sbin/teleport-upgrade") {
            return Err("/usr/sbin/teleport-upgrade is still there".into());
        }
        let timer_load = sut.show(TIMER, "LoadState")?;
        let timer_active = sut.show(TIMER, "ActiveState")?;
        if timer_load != "not-found" || timer_active != "inactive" {
            return Err(format!(
                "{TIMER} is {timer_load}/{timer_active} after the removal"
            ));
        }
        Ok(format!(
            "{AGENT} {agent_before} running on (same pid); {CONFIG_DIR} kept; timer gone; {starts}"
        ))
    })?;
    Ok(())
}
