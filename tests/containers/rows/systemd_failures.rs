//! Part of `tests/rows.rs` (see there): the systemd row's failure scenarios
//! (a stopped or failed agent, an unhealthy one re-checked, systemd
//! unreachable, a failing reload, a stop during the install) and its
//! restart count.

use super::*;
use crate::nspawn::Out;

/// A stopped agent left stopped; a failed agent, a broken version rolled
/// back, then a critical update started.
pub(crate) fn stopped_and_failed(rec: &mut Recorder, sut: &mut Sut) -> Result<(), String> {
    let (c, pm, vs) = (sut.c, sut.pm, sut.vs);

    rec.step(Scenario::StoppedLeftStopped, || {
        c.ok(&["systemctl", "stop", AGENT_UNIT])?;
        // A lower target: installed on the second check that sees it.
        sut.sight_lower("15.4.2")?;
        sut.schedule_in_window()?;
        vs.set("15.4.2", false);
        sut.start_service()?;
        sut.done_sighting()?;
        sut.expect_agent("15.4.2")?;
        if !pm.held(c)? {
            return Err(format!("{AGENT} is not held after the update"));
        }
        sut.updates += 1;
        let state = sut.show(AGENT_UNIT, "ActiveState")?;
        if state != "inactive" {
            return Err(format!(
                "{AGENT_UNIT} is {state}: the update started a stopped agent"
            ));
        }
        let starts = sut.check_starts()?;
        let journal = sut.journal();
        if !journal
            .contains("not restarting teleport.service: it was not running before the update")
        {
            return Err(format!(
                "the journal does not say why the agent was not restarted:\n{journal}"
            ));
        }
        if journal
            .lines()
            .rev()
            .take(10)
            .any(|l| l.contains("waiting for the agent to be healthy"))
        {
            return Err(format!(
                "the run waited for a stopped agent to be healthy:\n{journal}"
            ));
        }
        Ok(format!(
            "15.4.2 installed and held; {AGENT_UNIT} stays inactive; {starts}"
        ))
    })?;

    rec.step(Scenario::FailedBrokenRolledBack, || {
        sut.fail_agent()?;
        vs.set(BROKEN, true);
        let seen = sut.starts()?.len();
        let (result, status) = sut.run_service()?;
        sut.expect_rolled_back(&result, &status, seen, "15.4.2", 2, 2, "restart loop")
    })?;

    rec.step(Scenario::FailedStarted, || {
        sut.fail_agent()?;
        vs.set("16.0.0", true);
        sut.start_service()?;
        let d = sut.expect_update("16.0.0", "critical")?;
        if sut.show(AGENT_UNIT, "ActiveState")? != "active" {
            return Err(format!(
                "{AGENT_UNIT} is not active after the update{}",
                sut.diagnostics()
            ));
        }
        let journal = sut.journal();
        if !journal.contains("systemctl reset-failed teleport.service") {
            return Err(format!(
                "the journal shows no reset-failed before the start:\n{journal}"
            ));
        }
        if !journal.contains("the agent is healthy") {
            return Err(format!("the journal shows no health verdict:\n{journal}"));
        }
        Ok(format!("reset-failed + restart; {d}"))
    })?;
    Ok(())
}

/// An agent that fails outside the window: marked, re-checked, updated
/// (debian-apt).
pub(crate) fn unhealthy_recovered(rec: &mut Recorder, sut: &mut Sut) -> Result<(), String> {
    let (c, vs) = (sut.c, sut.vs);
    rec.step(Scenario::UnhealthyRecovered, || {
        // The shortest re-check the configuration accepts (the defaults are
        // 300 s each).
        const DELAY: u64 = 60;
        sut.config("recheck-delay", &DELAY.to_string())?;
        sut.config("unhealthy-interval", "45")?;
        sut.schedule_outside_window()?;
        vs.set("15.4.3", false);
        let t0 = Instant::now();
        sut.fail_agent()?;
        // The next timer run (fired at once here): the first sighting.
        let (result, _) = sut.fire_timer()?;
        let first = t0.elapsed();
        let (decision, detail) = (sut.last_run("decision")?, sut.last_run("detail")?);
        if result != "success" || decision != "wait" || !detail.contains("unhealthy") {
            return Err(format!(
                "the first run: Result={result}, decided {decision:?} ({detail:?}); expected a wait marking the agent unhealthy{}",
                sut.diagnostics()
            ));
        }
        let timer = "teleport-upgrade-recheck.timer";
        if sut.show(timer, "ActiveState")? != "active" {
            return Err(format!("no re-check: {timer} is not active{}", sut.diagnostics()));
        }
        // The re-check: the second sighting, the update, the agent started.
        let deadline = Instant::now() + Duration::from_secs(DELAY + 180);
        let running = loop {
            let last = sut.starts()?.pop();
            if let Some(last) = last.filter(|s| s.version == "15.4.3") {
                if sut.show(AGENT_UNIT, "MainPID")? == last.pid.to_string() {
                    break t0.elapsed();
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "15.4.3 is not running {} s after the failure{}",
                    t0.elapsed().as_secs(),
                    sut.diagnostics()
                ));
            }
            std::thread::sleep(Duration::from_millis(250));
        };
        // Let the re-check's run finish before anything else.
        let deadline = Instant::now() + Duration::from_secs(120);
        while sut.show(SERVICE, "ActiveState")? != "inactive" {
            if Instant::now() > deadline {
                return Err(format!("the re-check's run does not end{}", sut.diagnostics()));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        c.remove(&format!("{CONFIG_DIR}/recheck-delay"))?;
        c.remove(&format!("{CONFIG_DIR}/unhealthy-interval"))?;
        let d = sut.expect_update("15.4.3", "unhealthy")?;
        if sut.show(SERVICE, "Result")? != "success" {
            return Err(format!("the re-check's run failed{}", sut.diagnostics()));
        }
        if sut.last_via()? != Via::Start {
            return Err("an unhealthy update reloaded instead of restarting".into());
        }
        let after_first = running.saturating_sub(first);
        if after_first > Duration::from_secs(DELAY + 60) {
            return Err(format!(
                "15.4.3 ran {:.1} s after the first run, re-check delay {DELAY} s",
                after_first.as_secs_f64()
            ));
        }
        Ok(format!(
            "measured: unit failed at 0 s; first run over at {:.1} s (marked, re-check in {DELAY} s); 15.4.3 running at {:.1} s ({:.1} s after the first run); {d}",
            first.as_secs_f64(),
            running.as_secs_f64(),
            after_first.as_secs_f64()
        ))
    })?;
    Ok(())
}

/// `argv` run where systemd keeps running (/run/systemd/system is there),
/// but in this mount namespace systemctl reaches neither its private
/// socket nor the system bus.
fn masked(c: &Container, argv: &[&str]) -> Result<Out, String> {
    let mut v = vec![
        "unshare",
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        "mount --bind /dev/null /run/systemd/private && mount --bind /dev/null /run/dbus/system_bus_socket && exec \"$@\"",
        "masked",
    ];
    v.extend_from_slice(argv);
    c.exec(&v)
}

/// HealthUnknown (debian-apt): systemd unreachable during a run.
pub(crate) fn health_unknown(sut: &mut Sut) -> Result<String, String> {
    let (plain_code, detail, counted, seen) = health_unknown_deferred(sut)?;
    let starts = health_unknown_finished(sut, counted, seen)?;
    Ok(format!(
        "`systemctl is-active` fails there (exit {:?}); status: unknown; run exit 0, 15.4.2 held, agent not restarted, restart+verify left in plan.json ({detail}); again without systemd: still left; with systemd: restarted, healthy, plan closed, counted once; {starts}",
        plain_code
    ))
}

/// The run without systemd: the update installed and held, the restart
/// and its check left in the plan. Returns the exit of `systemctl
/// is-active` there, last_run's detail, updates_total and the starts seen.
fn health_unknown_deferred(sut: &mut Sut) -> Result<(Option<i32>, String, u64, usize), String> {
    let (c, pm, vs) = (sut.c, sut.pm, sut.vs);
    let plain = masked(c, &["systemctl", "is-active", AGENT_UNIT])?;
    if plain.ok() || plain.stdout.trim() == "active" {
        return Err(format!(
            "masking the sockets did not stop systemctl: {}",
            plain.tail(3)
        ));
    }
    let st = masked(c, &["/usr/sbin/teleport-upgrade", "status", "--json"])?;
    let json: serde_json::Value = serde_json::from_str(&st.stdout)
        .map_err(|e| format!("status --json: {e}: {}", st.tail(5)))?;
    let state = json["health"]["service_state"].as_str().unwrap_or("");
    if state != "unknown" {
        return Err(format!(
            "status says the agent's service is {state:?}, expected unknown"
        ));
    }
    // A lower target: installed on the second check that sees it
    // (the first one made with systemd reachable).
    sut.sight_lower("15.4.2")?;
    sut.schedule_in_window()?;
    vs.set("15.4.2", false);
    let pid = sut.show(AGENT_UNIT, "MainPID")?;
    let seen = sut.starts()?.len();
    let run = masked(c, &["/usr/sbin/teleport-upgrade", "run"])?;
    sut.done_sighting()?;
    if !run.ok() {
        return Err(format!("the run exited {:?}:\n{}", run.code, run.tail(10)));
    }
    sut.expect_agent("15.4.2")?;
    if !pm.held(c)? {
        return Err(format!("{AGENT} is not held after the update"));
    }
    let detail = sut.last_run("detail")?;
    if !detail.contains("could not be verified") {
        return Err(format!(
            "last_run.detail {detail:?} does not say the update is unverified"
        ));
    }
    if sut.show(AGENT_UNIT, "MainPID")? != pid || sut.starts()?.len() != seen {
        return Err("the agent was restarted although its state was unknown".into());
    }
    sut.updates += 1;
    let counted = sut.state()?["updates_total"].as_u64().unwrap_or(0);
    Ok((plain.code, detail, counted, seen))
}

/// The plan kept by a second run without systemd, finished by the next one
/// with systemd, counted once. Returns the starts check.
fn health_unknown_finished(sut: &mut Sut, counted: u64, seen: usize) -> Result<String, String> {
    let c = sut.c;
    // The restart and the health check wait in the plan.
    if !c.exists(PLAN_FILE) {
        return Err(format!("no {PLAN_FILE}: the deferred restart is lost"));
    }
    let st = c.exec(&["/usr/sbin/teleport-upgrade", "status", "--json"])?;
    let json: serde_json::Value = serde_json::from_str(&st.stdout)
        .map_err(|e| format!("status --json: {e}: {}", st.tail(5)))?;
    if json["unfinished_plan"].is_null() {
        return Err("status does not show the unfinished plan".into());
    }
    // Still no systemd: deferred again, not counted again.
    let again = masked(c, &["/usr/sbin/teleport-upgrade", "run"])?;
    if !again.ok() || !c.exists(PLAN_FILE) || sut.starts()?.len() != seen {
        return Err(format!(
            "a second run without systemd: exit {:?}, plan left: {}:\n{}",
            again.code,
            c.exists(PLAN_FILE),
            again.tail(8)
        ));
    }
    // systemd answers again: the next run restarts and checks it.
    sut.start_service()?;
    if c.exists(PLAN_FILE) {
        return Err(format!("{PLAN_FILE} is left{}", sut.diagnostics()));
    }
    let journal = sut.journal();
    if !journal.contains("an earlier run left a plan unfinished")
        || !journal.contains("the agent is healthy")
    {
        return Err(format!(
            "the next run did not finish the restart and check:\n{journal}"
        ));
    }
    sut.expected_starts.push("15.4.2".into());
    let starts = sut.check_starts()?;
    let total = sut.state()?["updates_total"].as_u64().unwrap_or(0);
    if total != counted {
        return Err(format!(
            "updates_total {counted} after the update, {total} after finishing its plan: counted twice"
        ));
    }
    Ok(starts)
}

/// A failing reload falls back to a restart; needrestart (debian-apt).
pub(crate) fn reload_fails_and_needrestart(
    rec: &mut Recorder,
    sut: &mut Sut,
) -> Result<(), String> {
    rec.step(Scenario::ReloadFails, || {
        // The unit can reload (CanReload=yes), but its reload command
        // fails: `systemctl reload` exits non-zero.
        sut.update_with_reload_fallback(
            "reload-fails",
            "[Service]\nExecReload=\nExecReload=/bin/false\n",
            "`systemctl reload teleport.service` failed",
        )
    })?;
    rec.step(Scenario::Needrestart, || {
        needrestart::needrestart_scenario(sut)
    })?;
    Ok(())
}

/// Each update restarted the agent once; state.json counts them.
pub(crate) fn restart_once(rec: &mut Recorder, sut: &mut Sut) -> Result<(), String> {
    let c = sut.c;

    rec.step(Scenario::RestartOnce, || {
        let starts = sut.check_starts()?;
        let updates = sut.updates;
        let total = sut.state()?["updates_total"].as_u64().unwrap_or(0);
        if total != updates as u64 {
            return Err(format!(
                "state.json counts {total} updates, the test made {updates}"
            ));
        }
        // Not a pass criterion: what the updater warned about, for the reader.
        let journal = c
            .exec(&["journalctl", "-u", SERVICE, "--no-pager", "-o", "cat"])?
            .stdout;
        let warnings: Vec<&str> = journal
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains("ERROR"))
            .collect();
        Ok(format!(
            "{updates} updates, {starts}; the updater's journal has {} warning/error line(s){}",
            warnings.len(),
            warnings
                .first()
                .map(|w| format!(", first: {}", w.trim()))
                .unwrap_or_default()
        ))
    })?;
    Ok(())
}

/// The service stopped while the package manager installs.
pub(crate) fn stop_during_install(rec: &mut Recorder, sut: &mut Sut) -> Result<(), String> {
    let (c, pm, vs) = (sut.c, sut.pm, sut.vs);

    rec.step(Scenario::StopDuringInstall, || {
        // Rows whose agent is at 16.0.0 by now: 15.4.5 is a lower target,
        // installed on the second check that sees it.
        if sut.agent_version()?.as_deref().is_some_and(|v| below(SLOW, v)) {
            sut.sight_lower(SLOW)?;
        }
        sut.schedule_in_window()?;
        vs.set(SLOW, false);
        c.ok(&["systemctl", "start", "--no-block", SERVICE])?;
        let deadline = Instant::now() + Duration::from_secs(180);
        while !c.exists(SLOW_STARTED) {
            if Instant::now() > deadline {
                return Err(format!("the slow postinst never started{}", sut.diagnostics()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // What systemd does on stop, shutdown or a start timeout: SIGTERM
        // to the updater only (KillMode=mixed).
        let o = c.exec_timeout(&["systemctl", "stop", SERVICE], Duration::from_secs(180))?;
        if !o.ok() {
            return Err(format!("systemctl stop {SERVICE}: {}", o.tail(5)));
        }
        if !c.exists(SLOW_DONE) {
            return Err(format!(
                "the package manager was cut short: the postinst did not finish{}",
                sut.diagnostics()
            ));
        }
        let status = sut.show(SERVICE, "ExecMainStatus")?;
        if status != "8" {
            return Err(format!(
                "the stopped run exited {status}, expected 8{}",
                sut.diagnostics()
            ));
        }
        sut.expect_agent(SLOW)?;
        sut.done_sighting()?;
        if !pm.held(c)? {
            return Err(format!("{AGENT} is not held after the stopped run"));
        }
        if sut.last_run("result")? != "interrupted" {
            return Err(format!("last_run.result is not interrupted{}", sut.diagnostics()));
        }
        if !c.exists(PLAN_FILE) {
            return Err(format!("no {PLAN_FILE}: the rest of the plan is lost"));
        }
        sut.schedule_outside_window()?;
        let (result, status) = sut.fire_timer()?;
        if result != "success" {
            return Err(format!(
                "the next timer run ended with Result={result}, status {status}{}",
                sut.diagnostics()
            ));
        }
        if c.exists(PLAN_FILE) {
            return Err(format!("{PLAN_FILE} is left after the next run{}", sut.diagnostics()));
        }
        if !sut.journal().contains("an earlier run left a plan unfinished") {
            return Err(format!("the next run did not resume the plan{}", sut.diagnostics()));
        }
        sut.expect_agent(SLOW)?;
        if !pm.held(c)? {
            return Err(format!("{AGENT} is not held after the next run"));
        }
        // The resumed plan restarted the agent once (the stopped run did not).
        sut.expected_starts.push(SLOW.to_string());
        sut.updates += 1;
        let starts = sut.check_starts()?;
        Ok(format!(
            "postinst ran to its end; exit 8, held, plan left; the timer's run finished it; {starts}"
        ))
    })?;
    Ok(())
}
