//! The agent's health as systemd sees it, the restart after an update, and
//! the clock.

use std::time::{SystemTime, UNIX_EPOCH};

use backends::{CommandLine, Runner, System};

pub const AGENT_UNIT: &str = "teleport.service";

/// The source of "now". Production uses the system clock; tests inject one.
pub trait Clock {
    fn now(&self) -> i64;

    /// Wait `d` (tests inject a clock that records instead).
    fn sleep(&self, d: std::time::Duration) {
        std::thread::sleep(d)
    }
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }
}

/// systemd is the running init of the host (and we act on the host).
pub fn systemd_running(system: &System) -> bool {
    system.is_host() && std::path::Path::new("/run/systemd/system").is_dir()
}

/// The agent's service as systemd reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceHealth {
    /// systemd is not the init here (or `--root` is set).
    NoSystemd,
    /// Running, starting, reloading or stopping: `systemctl is-active`.
    Ok(String),
    /// `failed` or `inactive`.
    Unhealthy(String),
    /// systemd is present but cannot be asked (`systemctl` missing, the
    /// bus unreachable, an answer it should not give): never "healthy",
    /// blocks nothing.
    Unknown(String),
}

impl ServiceHealth {
    /// Why the service is unhealthy, when systemd says so.
    pub fn unhealthy(&self) -> Option<String> {
        match self {
            ServiceHealth::Unhealthy(s) => Some(format!("{AGENT_UNIT} is {s}")),
            _ => None,
        }
    }

    /// A word for `status`: no-systemd, active (...), failed, unknown.
    pub fn word(&self) -> String {
        match self {
            ServiceHealth::NoSystemd => "no-systemd".into(),
            ServiceHealth::Ok(s) | ServiceHealth::Unhealthy(s) => s.clone(),
            ServiceHealth::Unknown(_) => "unknown".into(),
        }
    }
}

impl std::fmt::Display for ServiceHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceHealth::NoSystemd => f.write_str("not asked (no systemd)"),
            ServiceHealth::Ok(s) => write!(f, "{AGENT_UNIT} is {s}"),
            ServiceHealth::Unhealthy(s) => write!(f, "{AGENT_UNIT} is {s}"),
            ServiceHealth::Unknown(why) => write!(f, "unknown ({why})"),
        }
    }
}

/// Ask systemd about the agent's service.
pub fn service_health(system: &System, runner: &Runner) -> ServiceHealth {
    if !systemd_running(system) {
        return ServiceHealth::NoSystemd;
    }
    let cl = CommandLine::new("systemctl").args(["is-active", AGENT_UNIT]);
    let h = match runner.run(&cl) {
        Ok(fin) => {
            let state = fin.stdout.trim().to_string();
            match state.as_str() {
                "failed" | "inactive" => ServiceHealth::Unhealthy(state),
                "active" | "activating" | "reloading" | "deactivating" | "refreshing" => {
                    ServiceHealth::Ok(state)
                }
                _ => ServiceHealth::Unknown(format!(
                    "`{cl}` answered {state:?} ({}: {})",
                    fin.status_text(),
                    fin.tail(2)
                )),
            }
        }
        Err(e) => ServiceHealth::Unknown(format!("cannot run `{cl}`: {e}")),
    };
    if let ServiceHealth::Unknown(why) = &h {
        tracing::warn!("the agent's health is unknown: {why}");
    }
    h
}

/// Why systemd says the agent is unhealthy (`failed` or `inactive`), or
/// `None` when it is running, starting, unknown, or systemd is not in
/// charge.
pub fn service_unhealthy(system: &System, runner: &Runner) -> Option<String> {
    service_health(system, runner).unhealthy()
}

/// What systemd says of the agent just before an update. It decides how
/// the agent is restarted afterwards and whether the new version can be
/// judged (and rolled back) by its health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentBefore {
    /// `active`, `reloading` or `activating` (which includes a restart
    /// loop's wait): restarted with `try-restart`, then checked; a new
    /// version that does not become healthy is rolled back.
    Running,
    /// `failed`: the agent had crashed (or hit its start limit). It is
    /// started after the update (bringing it back is the point of an
    /// update for an unhealthy agent), checked, and rolled back like a
    /// running one: its earlier failure may have passed.
    Failed,
    /// `inactive` (stopped by the operator, or never started) or unknown:
    /// the update does not start it, so there is nothing to check.
    Stopped,
    /// systemd is not the init here (or `--root` is set): no restart; the
    /// readiness endpoint, when known, is the only health signal.
    NoSystemd,
    /// systemd runs but cannot be asked (`systemctl` missing or failing):
    /// the agent is neither restarted nor checked, and an update is
    /// recorded as not verified (never as healthy).
    Unknown,
}

impl AgentBefore {
    /// From `systemctl show --property=ActiveState --value`.
    pub fn from_active_state(state: &str) -> AgentBefore {
        match state.trim() {
            "active" | "reloading" | "activating" => AgentBefore::Running,
            "failed" => AgentBefore::Failed,
            _ => AgentBefore::Stopped,
        }
    }

    /// How the agent is restarted after a change to its package.
    pub fn restart(self) -> Option<Restart> {
        match self {
            AgentBefore::Running => Some(Restart::IfRunning),
            AgentBefore::Failed => Some(Restart::Start),
            AgentBefore::Stopped | AgentBefore::NoSystemd | AgentBefore::Unknown => None,
        }
    }
}

/// Ask systemd about the agent before an update.
pub fn agent_before(system: &System, runner: &Runner) -> AgentBefore {
    if !systemd_running(system) {
        return AgentBefore::NoSystemd;
    }
    let cl = CommandLine::new("systemctl").args([
        "show",
        "--property=ActiveState",
        "--value",
        AGENT_UNIT,
    ]);
    match runner.run(&cl) {
        Ok(fin) if fin.success() => AgentBefore::from_active_state(&fin.stdout),
        Ok(fin) => {
            tracing::warn!(
                "`{cl}` failed ({}: {}): the agent's state is unknown; it is not restarted, and an update is not verified",
                fin.status_text(),
                fin.tail(2)
            );
            AgentBefore::Unknown
        }
        Err(e) => {
            tracing::warn!("cannot ask systemd about {AGENT_UNIT} ({e}): the agent's state is unknown; it is not restarted, and an update is not verified");
            AgentBefore::Unknown
        }
    }
}

/// Whether a change to the agent's package may reload the agent
/// (`systemctl reload`: Teleport's graceful restart on SIGHUP, open
/// sessions kept) rather than restart it: `restart-mode` is `reload`, the
/// agent was running, and the update is a routine one. `Err` says why it
/// restarts hard: critical and unhealthy updates, a crashed agent, and
/// `restart-mode` = `restart`. (Rollbacks and repairs always restart.)
pub fn may_reload(
    mode: crate::config::RestartMode,
    before: AgentBefore,
    reason: &crate::decision::UpdateReason,
) -> Result<(), &'static str> {
    use crate::decision::UpdateReason as R;
    if mode == crate::config::RestartMode::Restart {
        return Err("restart-mode is restart");
    }
    match before {
        AgentBefore::Running => {}
        AgentBefore::Failed => return Err("the agent had failed"),
        AgentBefore::Stopped => return Err("the agent is not running"),
        AgentBefore::NoSystemd => return Err("systemd is not running here"),
        AgentBefore::Unknown => return Err("systemd does not say whether the agent runs"),
    }
    match reason {
        R::Critical => Err("the update is critical"),
        R::RollBack { .. } => Err("a rollback restarts the agent"),
        R::Finish => Err("finishing an earlier run's update restarts the agent"),
        R::Unhealthy { .. } => Err("the agent is unhealthy"),
        R::Forced | R::InWindow { .. } | R::ClusterGroup { .. } => Ok(()),
    }
}

/// The processes of the agent's unit (its cgroup) that run the agent's
/// program, and its main PID, which a reload hands over to the new binary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Processes {
    pub main_pid: u32,
    /// The main PID and the unit's processes whose executable is the
    /// program of the unit's `ExecStart=` (a helper the agent or its
    /// `ExecReload=` runs, such as `kill`, is not the agent). When that
    /// program is not known, every process of the unit.
    pub pids: std::collections::BTreeSet<u32>,
}

/// The program of a unit's `ExecStart=` as `systemctl show` prints it:
/// `{ path=/usr/local/bin/teleport ; argv[]=... ; ... }`.
pub fn exec_start_program(show: &str) -> Option<std::path::PathBuf> {
    let rest = show.split("path=").nth(1)?;
    let path = rest.split([' ', ';']).next()?.trim();
    path.starts_with('/')
        .then(|| std::path::PathBuf::from(path))
}

/// Whether `/proc/<pid>/exe`'s target `link` is `program` (the kernel
/// appends " (deleted)" once the package replaced the file: the old
/// process still runs the agent's program).
pub fn runs_program(link: &std::path::Path, program: &std::path::Path) -> bool {
    let link = link.to_string_lossy();
    let link = link.strip_suffix(" (deleted)").unwrap_or(&link);
    std::path::Path::new(link) == program
}

/// Read `MainPID`, `ExecStart` and the unit's cgroup members
/// (`cgroup.procs`, cgroup v2 or v1's `systemd` hierarchy). `None` when
/// systemd does not say.
pub fn unit_processes(runner: &Runner) -> Option<Processes> {
    let cl = CommandLine::new("systemctl").args([
        "show",
        "--property=MainPID,ControlGroup,ExecStart",
        AGENT_UNIT,
    ]);
    let fin = runner.run(&cl).ok()?;
    let mut p = Processes::default();
    let mut cgroup = String::new();
    let mut program = None;
    for l in fin.stdout.lines() {
        if let Some(v) = l.strip_prefix("MainPID=") {
            p.main_pid = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = l.strip_prefix("ControlGroup=") {
            cgroup = v.trim().to_string();
        } else if let Some(v) = l.strip_prefix("ExecStart=") {
            // The program as the kernel names it (links resolved).
            program = exec_start_program(v).map(|p| std::fs::canonicalize(&p).unwrap_or(p));
        }
    }
    if !cgroup.is_empty() && !cgroup.contains("..") {
        for base in ["/sys/fs/cgroup", "/sys/fs/cgroup/systemd"] {
            if let Ok(t) = std::fs::read_to_string(format!("{base}{cgroup}/cgroup.procs")) {
                p.pids = t
                    .lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .filter(|pid: &u32| match &program {
                        Some(prog) => std::fs::read_link(format!("/proc/{pid}/exe"))
                            .is_ok_and(|l| runs_program(&l, prog)),
                        None => true,
                    })
                    .collect();
                break;
            }
        }
    }
    if p.main_pid != 0 {
        p.pids.insert(p.main_pid);
    }
    Some(p)
}

/// Reload the agent gracefully: `systemctl reload` when the unit can
/// reload (`CanReload=yes`, Teleport's `ExecReload=`), else, or when the
/// reload fails, `systemctl try-restart` (the reason logged). Returns the
/// processes from before the reload when it reloaded (the health check
/// then waits for the new binary to take over), `None` when it restarted
/// instead or did nothing (no systemd, `--root`).
pub fn reload_agent(system: &System, runner: &Runner) -> Result<Option<Processes>, String> {
    if !systemd_running(system) {
        tracing::info!(
            "not reloading {AGENT_UNIT}: systemd is not running here (or --root is set)"
        );
        return Ok(None);
    }
    reload_via(runner)
}

/// [`reload_agent`]'s commands, through `runner`'s `systemctl`.
fn reload_via(runner: &Runner) -> Result<Option<Processes>, String> {
    let show = |prop: &str| {
        let cl = CommandLine::new("systemctl").args([
            "show",
            &format!("--property={prop}"),
            "--value",
            AGENT_UNIT,
        ]);
        runner
            .run(&cl)
            .map(|f| f.stdout.trim().to_string())
            .unwrap_or_default()
    };
    if show("NeedDaemonReload") == "yes" {
        let cl = CommandLine::new("systemctl").arg("daemon-reload");
        tracing::info!(command = %cl, "the package changed the agent's unit");
        runner.run_ok(&cl).map_err(|e| e.to_string())?;
    }
    let fallback = |why: String| -> Result<Option<Processes>, String> {
        tracing::warn!("cannot reload {AGENT_UNIT} ({why}): restarting it with try-restart instead (open sessions are cut)");
        for cl in restart_commands(Restart::IfRunning, false) {
            runner.run_ok(&cl).map_err(|e| e.to_string())?;
        }
        Ok(None)
    };
    let can = show("CanReload");
    if can != "yes" {
        return fallback(format!(
            "the unit has no ExecReload= (CanReload={})",
            if can.is_empty() { "?" } else { &can }
        ));
    }
    let before = unit_processes(runner).unwrap_or_default();
    let cl = CommandLine::new("systemctl").args(["reload", AGENT_UNIT]);
    tracing::info!(command = %cl, main_pid = before.main_pid, "reloading the agent (graceful restart: open sessions are kept)");
    match runner.run_ok(&cl) {
        Ok(_) => Ok(Some(before)),
        Err(e) => fallback(format!("`{cl}` failed: {e}")),
    }
}

/// The transient timer of the re-check after a first unhealthy sighting.
pub const RECHECK_UNIT: &str = "teleport-upgrade-recheck";

/// The command that arranges the re-check `delay` from now: a transient
/// timer (gone once it elapsed) whose service starts the updater's own
/// unit (with its limits and sandboxing; a run already in progress makes
/// it a no-op).
pub fn recheck_command(delay: std::time::Duration) -> CommandLine {
    CommandLine::new("systemd-run").args([
        format!("--on-active={}s", delay.as_secs()),
        format!("--unit={RECHECK_UNIT}"),
        "--description=teleport-upgrade: re-check an unhealthy agent".to_string(),
        "--timer-property=AccuracySec=1s".to_string(),
        "--timer-property=RemainAfterElapse=no".to_string(),
        "--collect".to_string(),
        "--quiet".to_string(),
        "systemctl".to_string(),
        "start".to_string(),
        "--no-block".to_string(),
        "teleport-upgrade.service".to_string(),
    ])
}

/// After a first unhealthy sighting (or a target the mirror does not offer
/// yet): arrange the next look `delay` from now instead of at the next
/// timer run (only on a systemd host, never under `--root`); `then` says
/// what it does. Best-effort: a failure is logged.
pub fn arrange_recheck(system: &System, runner: &Runner, delay: std::time::Duration, then: &str) {
    let cl = recheck_command(delay);
    if delay.is_zero() {
        return;
    }
    if !systemd_running(system) {
        tracing::info!(command = %cl, "not arranging a re-check in {} s: systemd is not running here (or --root is set); the next timer run looks again", delay.as_secs());
        return;
    }
    match runner.run(&cl) {
        Ok(f) if f.success() => tracing::info!(
            command = %cl,
            "arranged a re-check in {} s ({RECHECK_UNIT}.timer): {then}",
            delay.as_secs()
        ),
        Ok(f) if f.tail(3).contains("already") => {
            tracing::info!("a re-check is already arranged ({RECHECK_UNIT}.timer)")
        }
        Ok(f) => tracing::warn!(
            "cannot arrange a re-check (`{cl}`: {}: {}); the next timer run looks again",
            f.status_text(),
            f.tail(2)
        ),
        Err(e) => tracing::warn!(
            "cannot arrange a re-check (`{cl}`: {e}); the next timer run looks again"
        ),
    }
}

/// How the agent is restarted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    /// `systemctl try-restart`: restarts a running agent, starts nothing.
    IfRunning,
    /// `systemctl reset-failed` then `systemctl restart`: (re)starts it even
    /// when it failed or hit its start limit (a crash loop ends there).
    Start,
}

/// The commands of a restart, in order. `systemctl daemon-reload` comes
/// first when the package changed the agent's unit file
/// (`NeedDaemonReload=yes`): without it systemd would restart the agent
/// with the unit of the version before.
pub fn restart_commands(how: Restart, daemon_reload: bool) -> Vec<CommandLine> {
    let mut cmds = Vec::new();
    if daemon_reload {
        cmds.push(CommandLine::new("systemctl").arg("daemon-reload"));
    }
    match how {
        Restart::IfRunning => {
            cmds.push(CommandLine::new("systemctl").args(["try-restart", AGENT_UNIT]))
        }
        Restart::Start => {
            cmds.push(CommandLine::new("systemctl").args(["reset-failed", AGENT_UNIT]));
            cmds.push(CommandLine::new("systemctl").args(["restart", AGENT_UNIT]));
        }
    }
    cmds
}

/// Restart the agent `how`; skipped (`Ok(false)`) without systemd or under
/// `--root`.
pub fn restart_agent(system: &System, runner: &Runner, how: Restart) -> Result<bool, String> {
    if !systemd_running(system) {
        tracing::info!(
            "not restarting {AGENT_UNIT}: systemd is not running here (or --root is set)"
        );
        return Ok(false);
    }
    let show = CommandLine::new("systemctl").args([
        "show",
        "--property=NeedDaemonReload",
        "--value",
        AGENT_UNIT,
    ]);
    let reload = runner
        .run(&show)
        .map(|f| f.stdout.trim() == "yes")
        .unwrap_or(false);
    for cl in restart_commands(how, reload) {
        tracing::info!(command = %cl, "restarting the agent");
        runner.run_ok(&cl).map_err(|e| e.to_string())?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_before_decides_the_restart() {
        for (state, before, restart) in [
            ("active", AgentBefore::Running, Some(Restart::IfRunning)),
            ("reloading", AgentBefore::Running, Some(Restart::IfRunning)),
            ("activating", AgentBefore::Running, Some(Restart::IfRunning)),
            ("failed\n", AgentBefore::Failed, Some(Restart::Start)),
            ("inactive", AgentBefore::Stopped, None),
            ("deactivating", AgentBefore::Stopped, None),
            ("", AgentBefore::Stopped, None),
        ] {
            let b = AgentBefore::from_active_state(state);
            assert_eq!(b, before, "{state:?}");
            assert_eq!(b.restart(), restart, "{state:?}");
        }
        assert_eq!(AgentBefore::NoSystemd.restart(), None);
        assert_eq!(AgentBefore::Unknown.restart(), None);
    }

    #[test]
    fn reload_or_restart_table() {
        use crate::config::RestartMode::{Reload, Restart as Hard};
        use crate::decision::UpdateReason as R;
        let window = R::InWindow {
            window: crate::schedule::Window { start: 0, stop: 1 },
        };
        let sick = R::Unhealthy { why: "x".into() };
        for (mode, before, reason, want) in [
            (Reload, AgentBefore::Running, &window, Ok(())),
            (Reload, AgentBefore::Running, &R::Forced, Ok(())),
            (
                Reload,
                AgentBefore::Running,
                &R::Critical,
                Err("the update is critical"),
            ),
            (
                Reload,
                AgentBefore::Running,
                &sick,
                Err("the agent is unhealthy"),
            ),
            (
                Reload,
                AgentBefore::Failed,
                &window,
                Err("the agent had failed"),
            ),
            (
                Reload,
                AgentBefore::NoSystemd,
                &window,
                Err("systemd is not running here"),
            ),
            (
                Hard,
                AgentBefore::Running,
                &window,
                Err("restart-mode is restart"),
            ),
        ] {
            assert_eq!(
                may_reload(mode, before, reason),
                want,
                "{mode:?} {before:?} {reason:?}"
            );
        }
    }

    #[test]
    fn the_recheck_is_a_transient_timer_starting_the_updater_unit() {
        assert_eq!(
            recheck_command(std::time::Duration::from_secs(300)).to_string(),
            "systemd-run --on-active=300s --unit=teleport-upgrade-recheck '--description=teleport-upgrade: re-check an unhealthy agent' --timer-property=AccuracySec=1s --timer-property=RemainAfterElapse=no --collect --quiet systemctl start --no-block teleport-upgrade.service"
        );
    }

    /// The reload and its fallbacks, against a stand-in `systemctl` on
    /// PATH that answers `CanReload` and fails `reload` as told, and
    /// records every call.
    #[test]
    fn reload_falls_back_to_try_restart() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("calls");
        let script = format!(
            "#!/bin/sh\necho \"$*\" >>{log}\ncase \"$*\" in\n  *CanReload*) cat {dir}/can ;;\n  *NeedDaemonReload*) echo no ;;\n  *MainPID*) echo MainPID=42; echo ControlGroup= ;;\n  reload*) exit $(cat {dir}/reload_rc) ;;\nesac\nexit 0\n",
            log = log.display(),
            dir = d.path().display()
        );
        let bin = d.path().join("systemctl");
        std::fs::write(&bin, script).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        // The stand-in first; the script's own tools (cat) from the system.
        let mut path = d.path().as_os_str().to_owned();
        path.push(":/usr/bin:/bin");
        let runner = Runner {
            path: Some(path),
            ..Runner::default()
        };
        let calls = || {
            let c = std::fs::read_to_string(&log).unwrap_or_default();
            let _ = std::fs::remove_file(&log);
            c.lines()
                .filter(|l| !l.starts_with("show"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        for (can, rc, reloaded, want) in [
            ("yes", "0", true, vec!["reload teleport.service"]),
            (
                "yes",
                "1",
                false,
                vec!["reload teleport.service", "try-restart teleport.service"],
            ),
            ("no", "0", false, vec!["try-restart teleport.service"]),
        ] {
            std::fs::write(d.path().join("can"), format!("{can}\n")).unwrap();
            std::fs::write(d.path().join("reload_rc"), rc).unwrap();
            let r = reload_via(&runner).unwrap();
            assert_eq!(r.is_some(), reloaded, "CanReload={can} reload rc {rc}");
            if let Some(p) = r {
                assert_eq!(p.main_pid, 42);
            }
            assert_eq!(calls(), want, "CanReload={can} reload rc {rc}");
        }
    }

    #[test]
    fn only_the_agents_program_counts_as_the_agent() {
        use std::path::Path;
        assert_eq!(
            exec_start_program("{ path=/usr/local/bin/teleport ; argv[]=/usr/local/bin/teleport start --config /etc/teleport.yaml ; ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }"),
            Some("/usr/local/bin/teleport".into())
        );
        assert_eq!(exec_start_program(""), None);
        assert_eq!(exec_start_program("{ path=teleport ; }"), None);
        let prog = Path::new("/usr/bin/teleport");
        for (link, yes) in [
            ("/usr/bin/teleport", true),
            ("/usr/bin/teleport (deleted)", true),
            ("/usr/bin/kill", false),
            ("/usr/bin/dash", false),
            ("/usr/bin/teleport-old", false),
        ] {
            assert_eq!(runs_program(Path::new(link), prog), yes, "{link}");
        }
    }

    #[test]
    fn restart_commands_are_exact() {
        let show = |v: Vec<CommandLine>| v.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        assert_eq!(
            show(restart_commands(Restart::IfRunning, false)),
            ["systemctl try-restart teleport.service"]
        );
        assert_eq!(
            show(restart_commands(Restart::Start, true)),
            [
                "systemctl daemon-reload",
                "systemctl reset-failed teleport.service",
                "systemctl restart teleport.service"
            ]
        );
    }
}
