//! A fake Teleport agent that runs as a real systemd service, for tests that
//! boot a system (the container matrix).
//!
//! The package ships `/usr/bin/teleport` (a `#!/bin/sh` script) and
//! `teleport.service` (`Type=exec`, `ExecStart=/usr/bin/teleport start`).
//! Each time the service starts, the script appends one line to
//! [`START_LOG`] and then `exec`s `sleep infinity`, so the service stays up
//! and its main pid is the pid the line names:
//!
//! ```text
//! start version=15.4.3 upgrader=unit pid=123
//! ```
//!
//! `upgrader` is the value of `TELEPORT_EXT_UPGRADER` the service was started
//! with (`none` when unset): the updater package's drop-in sets it to `unit`,
//! so the line also shows whether that drop-in was in effect. Counting the
//! lines counts the agent's (re)starts.
//!
//! Without an argument the script prints `Teleport v<version> git: go1.22`,
//! like [`crate::deb::DebSpec::agent`]'s.
//!
//! A *broken* version ([`deb_spec_broken`], [`rpm_spec_broken`]) records its
//! start the same way, then exits 1 after a second: under the unit's
//! `Restart=on-failure` it crash-loops, as an agent that cannot start does.

use crate::deb::DebSpec;
use crate::rpm::RpmSpec;

/// Where every start of the agent is recorded.
pub const START_LOG: &str = "/var/lib/teleport/agent-starts.log";

/// The agent's unit.
pub const UNIT: &str = "teleport.service";

/// The agent script of `version`.
pub fn script(version: &str) -> String {
    script_of(version, false)
}

/// The agent script of `version`; a `broken` one exits 1 a second after
/// each start.
pub fn script_of(version: &str, broken: bool) -> String {
    assert!(
        version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".:~+".contains(c)),
        "unexpected characters in version {version:?}"
    );
    let upstream = version.split_once(':').map(|x| x.1).unwrap_or(version);
    format!(
        r#"#!/bin/sh
# Fake Teleport agent {upstream} (testkit::agent): records each start, then
# {what}.
case "${{1:-}}" in
start)
    mkdir -p {dir}
    echo "start version={upstream} upgrader=${{TELEPORT_EXT_UPGRADER:-none}} pid=$$" >>{log}
    {run}
    ;;
*)
    echo 'Teleport v{upstream} git: go1.22'
    ;;
esac
"#,
        dir = START_LOG.rsplit_once('/').unwrap().0,
        log = START_LOG,
        what = if broken {
            "exits 1 (a broken build)"
        } else {
            "stays up"
        },
        run = if broken {
            "sleep 1\n    echo 'fake agent: broken build, exiting' >&2\n    exit 1"
        } else {
            "exec sleep infinity"
        },
    )
}

/// The agent's systemd unit (the same in every version).
pub fn unit() -> String {
    "[Unit]\n\
     Description=Fake Teleport agent (testkit)\n\
     \n\
     [Service]\n\
     Type=exec\n\
     ExecStart=/usr/bin/teleport start\n\
     # Like Teleport's own unit. A healthy agent never exits by itself, so\n\
     # only a broken version is restarted by systemd (a crash loop).\n\
     Restart=on-failure\n\
     RestartSec=1\n\
     \n\
     [Install]\n\
     WantedBy=multi-user.target\n"
        .to_string()
}

fn files(name: &str, version: &str, unit_dir: &str, broken: bool) -> Vec<(String, Vec<u8>, u32)> {
    let upstream = version.split_once(':').map(|x| x.1).unwrap_or(version);
    vec![
        (
            "/usr/bin/teleport".to_string(),
            script_of(version, broken).into_bytes(),
            0o755,
        ),
        (format!("{unit_dir}/{UNIT}"), unit().into_bytes(), 0o644),
        (
            format!("/usr/share/doc/{name}/VERSION"),
            format!("{upstream}\n").into_bytes(),
            0o644,
        ),
    ]
}

/// The agent as a .deb (unit in `/lib/systemd/system`). Like Teleport's own
/// packages it starts nothing when installed.
pub fn deb_spec(name: &str, version: &str) -> DebSpec {
    let mut spec = DebSpec::agent(name, version);
    spec.files = files(name, version, "/lib/systemd/system", false);
    spec
}

/// The agent as an .rpm (unit in `/usr/lib/systemd/system`), release `1`.
pub fn rpm_spec(name: &str, version: &str) -> RpmSpec {
    let mut spec = RpmSpec::agent(name, version);
    spec.files = files(name, version, "/usr/lib/systemd/system", false);
    spec
}

/// [`deb_spec`] of a version whose agent crash-loops.
pub fn deb_spec_broken(name: &str, version: &str) -> DebSpec {
    let mut spec = DebSpec::agent(name, version);
    spec.files = files(name, version, "/lib/systemd/system", true);
    spec
}

/// [`rpm_spec`] of a version whose agent crash-loops.
pub fn rpm_spec_broken(name: &str, version: &str) -> RpmSpec {
    let mut spec = RpmSpec::agent(name, version);
    spec.files = files(name, version, "/usr/lib/systemd/system", true);
    spec
}

/// One line of [`START_LOG`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Start {
    pub version: String,
    /// `TELEPORT_EXT_UPGRADER` at that start, `none` when unset.
    pub upgrader: String,
    pub pid: u32,
}

/// The starts recorded in a [`START_LOG`] text; lines that do not parse are
/// an error (the log is written by the script above only).
pub fn parse_starts(text: &str) -> Result<Vec<Start>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut version = None;
            let mut upgrader = None;
            let mut pid = None;
            let mut words = l.split_whitespace();
            if words.next() != Some("start") {
                return Err(format!("not a start line: {l:?}"));
            }
            for w in words {
                match w.split_once('=') {
                    Some(("version", v)) => version = Some(v.to_string()),
                    Some(("upgrader", v)) => upgrader = Some(v.to_string()),
                    Some(("pid", v)) => pid = v.parse().ok(),
                    _ => return Err(format!("unexpected word {w:?} in {l:?}")),
                }
            }
            match (version, upgrader, pid) {
                (Some(version), Some(upgrader), Some(pid)) => Ok(Start {
                    version,
                    upgrader,
                    pid,
                }),
                _ => Err(format!("incomplete start line: {l:?}")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_lines_parse() {
        let s = parse_starts(
            "start version=15.4.2 upgrader=none pid=7\nstart version=15.4.3 upgrader=unit pid=9\n",
        )
        .unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].version, "15.4.3");
        assert_eq!(s[1].upgrader, "unit");
        assert_eq!(s[1].pid, 9);
        assert!(parse_starts("stop\n").is_err());
        assert!(parse_starts("start version=1\n").is_err());
        assert_eq!(parse_starts("").unwrap(), vec![]);
    }

    #[test]
    fn the_script_runs_as_the_agent() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("teleport");
        std::fs::write(&p, script("2:16.0.0")).unwrap();
        let out = std::process::Command::new("sh").arg(&p).output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "Teleport v16.0.0 git: go1.22"
        );
        // (Not run with `start` here: that writes START_LOG on this host.)
        let broken = script_of("15.4.4", true);
        assert!(broken.contains("exit 1") && !broken.contains("sleep infinity"));
        assert!(script("15.4.4").contains("exec sleep infinity"));
        let spec = rpm_spec("teleport-ent", "15.4.2");
        assert!(spec
            .files
            .iter()
            .any(|(p, _, _)| p == "/usr/lib/systemd/system/teleport.service"));
        let spec = deb_spec("teleport-ent", "15.4.2");
        assert!(spec
            .files
            .iter()
            .any(|(p, _, _)| p == "/lib/systemd/system/teleport.service"));
    }
}
