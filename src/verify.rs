//! After an update: wait for the agent to be healthy, within a deadline.
//!
//! Signals, each used when available:
//! - systemd (on a host where it runs, not with `--root`): `teleport.service`
//!   active, and not restarting (`NRestarts` unchanged while it is watched);
//! - the agent's diagnostic endpoint answering `GET /readyz` with 200, when
//!   its address is known (`diag-addr`, else `diag_addr` in
//!   `/etc/teleport.yaml`).
//!
//! Healthy means every available signal stays good for the stable period.
//! With no signal at all, nothing can be verified and the caller is told
//! so (it logs it; the update stands).

use std::time::{Duration, Instant};

use backends::{CommandLine, Runner, System};

use crate::health::AGENT_UNIT;

/// How the check is made.
#[derive(Debug, Clone)]
pub struct Check {
    pub deadline: Duration,
    /// Every signal must stay good this long.
    pub stable: Duration,
    /// Between samples.
    pub interval: Duration,
    pub systemd: bool,
    /// `http://host:port/readyz`.
    pub readyz: Option<String>,
    /// Set after a graceful reload: the unit's processes before it. The
    /// agent is healthy only once a new process (the new binary) has taken
    /// over (see [`handed_over`]); `NRestarts` does not move on a reload.
    pub reloaded: Option<crate::health::Processes>,
}

/// After a reload, whether the new binary took over: the main PID changed,
/// or a process that was not there before the reload runs the agent's
/// program in the unit (Teleport's new process, while the old one drains
/// its sessions; a helper such as `ExecReload=`'s `kill` does not count,
/// see [`crate::health::unit_processes`]).
/// A new version that fails after the reload leaves only the old
/// processes: not healthy, so it is rolled back.
pub fn handed_over(
    before: &crate::health::Processes,
    now: &crate::health::Processes,
) -> Result<(), String> {
    if now.main_pid != 0 && !before.pids.contains(&now.main_pid) {
        return Ok(());
    }
    if now.pids.iter().any(|p| !before.pids.contains(p)) {
        return Ok(());
    }
    Err(format!(
        "after the reload no new process took over in {AGENT_UNIT} (MainPID {} is the process from before the reload): the new version did not start",
        now.main_pid
    ))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Healthy(String),
    Unhealthy(String),
    /// No signal is available on this host.
    Unverifiable,
    /// A stop signal (SIGTERM, SIGINT, SIGHUP) arrived while waiting: the
    /// check is left for the next run.
    Interrupted(&'static str),
}

impl Check {
    /// The check for `deadline`: stable for a third of it, at most 30 s.
    pub fn new(deadline: Duration, systemd: bool, readyz: Option<String>) -> Check {
        let stable = (deadline / 3).min(Duration::from_secs(30));
        Check {
            deadline,
            stable,
            interval: (stable / 5).clamp(Duration::from_millis(100), Duration::from_secs(2)),
            systemd,
            readyz,
            reloaded: None,
        }
    }

    pub fn describe(&self) -> String {
        let mut s = Vec::new();
        if self.systemd {
            s.push(format!("{AGENT_UNIT} active and not restarting"));
        }
        if self.systemd && self.reloaded.is_some() {
            s.push("the new process taken over from the reload".to_string());
        }
        if let Some(u) = &self.readyz {
            s.push(format!("{u} answering 200"));
        }
        format!(
            "{} for {} s, within {} s",
            s.join(" and "),
            self.stable.as_secs_f32(),
            self.deadline.as_secs()
        )
    }

    /// Sample until healthy, a fatal sign (the unit failed), or the
    /// deadline.
    pub fn wait(&self, runner: &Runner) -> Verdict {
        if !self.systemd && self.readyz.is_none() {
            return Verdict::Unverifiable;
        }
        let probe = match Probe::new() {
            Ok(p) => p,
            Err(e) => return Verdict::Unhealthy(e),
        };
        let start = Instant::now();
        let mut good_since: Option<Instant> = None;
        let mut baseline_restarts: Option<u64> = None;
        let mut restarts_seen = 0;
        let mut last_bad = String::from("no sample yet");
        // Whether the diagnostic address ever accepted a connection: one
        // that never did is told apart from an answer of 503 (a connection
        // failure is waited for like any bad sample, up to the deadline).
        let mut answered = false;
        loop {
            let mut bad: Option<String> = None;
            if self.systemd {
                match unit_state(runner) {
                    Ok((state, restarts)) => {
                        let base = *baseline_restarts.get_or_insert(restarts);
                        if state == "failed" {
                            return Verdict::Unhealthy(format!("{AGENT_UNIT} failed"));
                        }
                        if state != "active" {
                            bad = Some(format!("{AGENT_UNIT} is {state}"));
                        } else if restarts > base {
                            restarts_seen += restarts - base;
                            bad = Some(format!(
                                "{AGENT_UNIT} restarted {} time(s) while watched",
                                restarts - base
                            ));
                            baseline_restarts = Some(restarts);
                        }
                    }
                    Err(e) => bad = Some(e),
                }
                if let (None, Some(before)) = (&bad, &self.reloaded) {
                    let now = crate::health::unit_processes(runner).unwrap_or_default();
                    if let Err(e) = handed_over(before, &now) {
                        bad = Some(e);
                    }
                }
            }
            if bad.is_none() {
                if let Some(url) = &self.readyz {
                    let (got, reached) = probe.readyz(url);
                    answered |= reached;
                    bad = got.err();
                }
            }
            let now = Instant::now();
            match bad {
                None => {
                    let since = *good_since.get_or_insert(now);
                    if now.duration_since(since) >= self.stable {
                        return Verdict::Healthy(self.describe());
                    }
                }
                Some(b) => {
                    good_since = None;
                    last_bad = b;
                }
            }
            if now.duration_since(start) >= self.deadline {
                return Verdict::Unhealthy(if restarts_seen > 0 {
                    format!(
                        "systemd restarted {AGENT_UNIT} {restarts_seen} time(s) in {} s: a restart loop",
                        self.deadline.as_secs()
                    )
                } else if good_since.is_some() {
                    format!("healthy only briefly before the deadline; before that: {last_bad}")
                } else if let (false, Some(url)) = (answered, &self.readyz) {
                    unreached(url, self.deadline, self.systemd, &last_bad)
                } else {
                    last_bad
                });
            }
            if let Some(sig) = crate::update::signals::received() {
                return Verdict::Interrupted(sig);
            }
            std::thread::sleep(self.interval);
        }
    }
}

/// `ActiveState` and `NRestarts` of the agent's unit.
fn unit_state(runner: &Runner) -> Result<(String, u64), String> {
    let cl = CommandLine::new("systemctl").args([
        "show",
        "--property=ActiveState,NRestarts",
        AGENT_UNIT,
    ]);
    let fin = runner.run(&cl).map_err(|e| e.to_string())?;
    let mut state = String::new();
    let mut restarts = 0;
    for l in fin.stdout.lines() {
        if let Some(v) = l.strip_prefix("ActiveState=") {
            state = v.trim().to_string();
        } else if let Some(v) = l.strip_prefix("NRestarts=") {
            restarts = v.trim().parse().unwrap_or(0);
        }
    }
    if state.is_empty() {
        return Err(format!("`{cl}` said nothing about {AGENT_UNIT}"));
    }
    Ok((state, restarts))
}

/// GET of the readiness endpoint: plain http on the agent's own address,
/// 2 s per request, no redirects.
struct Probe {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Probe {
    fn new() -> Result<Probe, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))?;
        let http = {
            let _in_runtime = rt.enter();
            reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .redirect(reqwest::redirect::Policy::none())
                // The agent's own diagnostic address: never through a proxy.
                .no_proxy()
                .build()
                .map_err(|e| format!("cannot set up the HTTP client: {e}"))?
        };
        Ok(Probe { rt, http })
    }

    /// `GET url`: Ok on a 2xx answer, else why; and whether a connection
    /// was made at all.
    fn readyz(&self, url: &str) -> (Result<(), String>, bool) {
        match self.rt.block_on(async { self.http.get(url).send().await }) {
            Ok(r) if r.status().is_success() => (Ok(()), true),
            Ok(r) => (
                Err(format!("{url} answered HTTP {}", r.status().as_u16())),
                true,
            ),
            Err(e) => {
                let mut why = format!("{url}: {e}");
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    why = format!("{why}: {s}");
                    src = s.source();
                }
                (Err(why), !(e.is_connect() || e.is_timeout()))
            }
        }
    }
}

/// The verdict when the diagnostic address never accepted a connection up
/// to the deadline: the agent may be up (systemd says active) while
/// nothing listens there; not an answer of "not ready".
fn unreached(url: &str, deadline: Duration, systemd: bool, last: &str) -> String {
    let up = if systemd {
        format!(" while {AGENT_UNIT} is active")
    } else {
        String::new()
    };
    let last = last
        .strip_prefix(url)
        .unwrap_or(last)
        .trim_start_matches(": ");
    format!(
        "the agent's diagnostic address {url} could not be reached in {} s{up} (no connection, or no answer in time, never an HTTP answer; the last: {last}); is the new version listening on diag_addr?",
        deadline.as_secs()
    )
}

/// The agent's diagnostic address from its configuration file: the value
/// of `diag_addr:` (quotes removed), when it is `host:port`.
pub fn diag_addr_from_teleport_yaml(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let v = l.trim().strip_prefix("diag_addr:")?;
        let v = v
            .split('#')
            .next()?
            .trim()
            .trim_matches(|c| c == '"' || c == '\'');
        valid_addr(v).then(|| v.to_string())
    })
}

/// `host:port` with a plain host name or IP (no scheme, path or spaces).
pub fn valid_addr(v: &str) -> bool {
    let Some((host, port)) = v.rsplit_once(':') else {
        return false;
    };
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-[]:".contains(c))
        && port.parse::<u16>().is_ok_and(|p| p > 0)
}

/// Where the readiness endpoint is for `system`: the setting, else the
/// agent's configuration.
pub fn readyz_url(setting: Option<&str>, system: &System) -> Option<String> {
    let addr = match setting {
        Some(a) => Some(a.to_string()),
        None => {
            crate::fsread::read_text(&system.path("/etc/teleport.yaml"), crate::fsread::STATE_CAP)
                .ok()
                .flatten()
                .and_then(|t| diag_addr_from_teleport_yaml(&t))
        }
    }?;
    Some(format!("http://{addr}/readyz"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diag_addr_is_read_from_teleport_yaml() {
        let y = "teleport:\n  nodename: x\n  diag_addr: \"127.0.0.1:3000\" # metrics\n";
        assert_eq!(
            diag_addr_from_teleport_yaml(y).as_deref(),
            Some("127.0.0.1:3000")
        );
        assert_eq!(
            diag_addr_from_teleport_yaml("teleport:\n  diag_addr: \"\"\n"),
            None
        );
        assert_eq!(
            diag_addr_from_teleport_yaml("diag_addr: http://x/y\n"),
            None
        );
        assert!(valid_addr("[::1]:3000"));
        assert!(!valid_addr("host:0"));
        assert!(!valid_addr("host"));
    }

    #[test]
    fn a_reload_is_healthy_only_once_the_new_process_took_over() {
        use crate::health::Processes;
        let p = |main: u32, pids: &[u32]| Processes {
            main_pid: main,
            pids: pids.iter().copied().collect(),
        };
        let before = p(100, &[100, 120]);
        for (now, ok, what) in [
            (
                p(100, &[100, 120]),
                false,
                "nothing new: the new binary failed",
            ),
            (p(100, &[100]), false, "a session child ended, nothing new"),
            (p(100, &[100, 120, 300]), true, "forked, the old one drains"),
            (p(300, &[300]), true, "the old one exited, MainPID moved"),
            (
                p(300, &[300, 100]),
                true,
                "MainPID moved, old still draining",
            ),
            (p(0, &[]), false, "nothing at all"),
        ] {
            assert_eq!(handed_over(&before, &now).is_ok(), ok, "{what}");
        }
    }

    #[test]
    fn no_signal_is_unverifiable() {
        let c = Check::new(Duration::from_secs(3), false, None);
        assert_eq!(c.wait(&Runner::default()), Verdict::Unverifiable);
    }

    #[test]
    fn stable_period_scales_with_the_deadline() {
        assert_eq!(
            Check::new(Duration::from_secs(300), true, None).stable,
            Duration::from_secs(30)
        );
        assert_eq!(
            Check::new(Duration::from_secs(3), true, None).stable,
            Duration::from_secs(1)
        );
    }
}
