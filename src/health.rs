//! The agent's health as systemd sees it, the restart after an update, and
//! the clock.

use std::time::{SystemTime, UNIX_EPOCH};

use backends::{CommandLine, Runner, System};

pub const AGENT_UNIT: &str = "teleport.service";

/// The source of "now". Production uses the system clock; tests inject one.
pub trait Clock {
    fn now(&self) -> i64;
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

/// Why systemd says the agent is unhealthy (`failed` or `inactive`), or
/// `None` when it is running, starting, or systemd is not in charge.
pub fn service_unhealthy(system: &System, runner: &Runner) -> Option<String> {
    if !systemd_running(system) {
        return None;
    }
    let cl = CommandLine::new("systemctl").args(["is-active", AGENT_UNIT]);
    match runner.run(&cl) {
        Ok(fin) => {
            let state = fin.stdout.trim().to_string();
            match state.as_str() {
                "failed" | "inactive" => Some(format!("{AGENT_UNIT} is {state}")),
                _ => None,
            }
        }
        Err(e) => {
            tracing::warn!("cannot ask systemd about {AGENT_UNIT}: {e}");
            None
        }
    }
}

/// The restart after an update: `systemctl try-restart` (restarts only a
/// running agent), skipped without systemd or under `--root`.
pub fn restart_command() -> CommandLine {
    CommandLine::new("systemctl").args(["try-restart", AGENT_UNIT])
}

pub fn restart_agent(system: &System, runner: &Runner) -> Result<bool, String> {
    if !systemd_running(system) {
        tracing::info!(
            "not restarting {AGENT_UNIT}: systemd is not running here (or --root is set)"
        );
        return Ok(false);
    }
    let cl = restart_command();
    tracing::info!(command = %cl, "restarting the agent");
    runner.run_ok(&cl).map(|_| true).map_err(|e| e.to_string())
}
