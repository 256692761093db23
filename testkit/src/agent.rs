//! A fake Teleport agent that runs as a real systemd service, for tests that
//! boot a system (the container matrix).
//!
//! The package ships `/usr/bin/teleport`, a small static program
//! (`testkit/agent/fake_teleport.rs`, built here with plain `rustc` and its
//! version patched in per package), and `teleport.service`, shaped like
//! Teleport's own unit: `Type=simple`, `ExecStart=/usr/bin/teleport start`,
//! `ExecReload=` sending SIGHUP to the main process, `PIDFile=` and
//! `Restart=on-failure`.
//!
//! The agent listens on 127.0.0.1:[`PORT`] (or the port in [`PORT_FILE`])
//! and answers `version` with its
//! version. Each time it starts it appends one line to [`START_LOG`]:
//!
//! ```text
//! start version=15.4.3 upgrader=unit pid=123 via=start
//! ```
//!
//! `upgrader` is the value of `TELEPORT_EXT_UPGRADER` it was started with
//! (`none` when unset): the updater package's drop-in sets it to `unit`.
//! `via` is `start` for a start by systemd, `reload` for a process started
//! by a graceful restart: on SIGHUP the running agent starts the binary now
//! on disk with its listening socket, and once that process is ready it
//! stops accepting, serves its open connections until they close, and
//! exits, as Teleport does; systemd then takes the new main PID from the
//! PID file. Counting the lines counts the agent's (re)starts.
//!
//! A *broken* version ([`deb_spec_broken`], [`rpm_spec_broken`]) records its
//! start the same way, then exits 1 after a second: under the unit's
//! `Restart=on-failure` it crash-loops, as an agent that cannot start does;
//! started by a graceful restart it never takes over, and the old process
//! keeps serving.
//!
//! `/usr/bin/teleport probe <out> <go-file>` is a client for the tests: it
//! holds one connection open across an update (see the program's docs).

use std::path::{Path, PathBuf};

use crate::deb::DebSpec;
use crate::rpm::RpmSpec;

/// Where every start of the agent is recorded.
pub const START_LOG: &str = "/var/lib/teleport/agent-starts.log";

/// The agent's unit.
pub const UNIT: &str = "teleport.service";

/// Where the agent listens (loopback) unless [`PORT_FILE`] names a port.
pub const PORT: u16 = 3025;

/// A file holding the port the agent (and the probe) use instead of
/// [`PORT`]: containers that share the host's loopback each get their own.
pub const PORT_FILE: &str = "/etc/fake-teleport/port";

/// The program's source.
pub const PROGRAM_SOURCE: &str = include_str!("../agent/fake_teleport.rs");

const IDENT_PREFIX: &[u8] = b"FAKE-TELEPORT-IDENT:";
const IDENT_LEN: usize = 64;

/// Build the program in `dir` (plain `rustc`, std only, statically linked
/// so that it runs on every image whatever its glibc). Returns its path.
pub fn build_program(dir: &Path) -> Result<PathBuf, String> {
    let src = dir.join("fake_teleport.rs");
    let out = dir.join("fake-teleport");
    std::fs::write(&src, PROGRAM_SOURCE).map_err(|e| format!("{}: {e}", src.display()))?;
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let o = std::process::Command::new(rustc)
        .args([
            "--edition",
            "2021",
            "-O",
            "-C",
            "target-feature=+crt-static",
            "-o",
        ])
        .arg(&out)
        .arg(&src)
        .output()
        .map_err(|e| format!("rustc: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "rustc {} failed:\n{}",
            src.display(),
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    Ok(out)
}

/// The program as the agent of `version` (a `broken` one exits 1 a second
/// after each start): its identity bytes patched.
pub fn binary(program: &[u8], version: &str, broken: bool) -> Vec<u8> {
    assert!(
        version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".:~+-".contains(c)),
        "unexpected characters in version {version:?}"
    );
    let upstream = version.split_once(':').map(|x| x.1).unwrap_or(version);
    let at: Vec<usize> = program
        .windows(IDENT_PREFIX.len())
        .enumerate()
        .filter(|(_, w)| *w == IDENT_PREFIX)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        at.len(),
        1,
        "the program must hold its identity exactly once"
    );
    let mut ident = format!(
        "{}{upstream};broken={}",
        String::from_utf8_lossy(IDENT_PREFIX),
        u8::from(broken)
    )
    .into_bytes();
    assert!(ident.len() <= IDENT_LEN, "version {version:?} too long");
    ident.resize(IDENT_LEN, b' ');
    let mut out = program.to_vec();
    out[at[0]..at[0] + IDENT_LEN].copy_from_slice(&ident);
    out
}

/// The agent's systemd unit (the same in every version).
pub fn unit() -> String {
    "[Unit]\n\
     Description=Fake Teleport agent (testkit)\n\
     \n\
     [Service]\n\
     # Like Teleport's own unit.\n\
     Type=simple\n\
     ExecStart=/usr/bin/teleport start\n\
     # Teleport's is `/bin/kill -HUP $MAINPID`; the images have no procps,\n\
     # so the shell's kill sends the same signal.\n\
     ExecReload=/bin/sh -c 'kill -HUP $$MAINPID'\n\
     PIDFile=/run/teleport.pid\n\
     # A healthy agent never exits by itself, so only a broken version is\n\
     # restarted by systemd (a crash loop).\n\
     Restart=on-failure\n\
     RestartSec=1\n\
     \n\
     [Install]\n\
     WantedBy=multi-user.target\n"
        .to_string()
}

fn files(
    program: &[u8],
    name: &str,
    version: &str,
    unit_dir: &str,
    broken: bool,
) -> Vec<(String, Vec<u8>, u32)> {
    let upstream = version.split_once(':').map(|x| x.1).unwrap_or(version);
    vec![
        (
            "/usr/bin/teleport".to_string(),
            binary(program, version, broken),
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
pub fn deb_spec(program: &[u8], name: &str, version: &str) -> DebSpec {
    let mut spec = DebSpec::agent(name, version);
    spec.files = files(program, name, version, "/lib/systemd/system", false);
    spec
}

/// The agent as an .rpm (unit in `/usr/lib/systemd/system`), release `1`.
pub fn rpm_spec(program: &[u8], name: &str, version: &str) -> RpmSpec {
    let mut spec = RpmSpec::agent(name, version);
    spec.files = files(program, name, version, "/usr/lib/systemd/system", false);
    spec
}

/// [`deb_spec`] of a version whose agent crash-loops.
pub fn deb_spec_broken(program: &[u8], name: &str, version: &str) -> DebSpec {
    let mut spec = DebSpec::agent(name, version);
    spec.files = files(program, name, version, "/lib/systemd/system", true);
    spec
}

/// [`rpm_spec`] of a version whose agent crash-loops.
pub fn rpm_spec_broken(program: &[u8], name: &str, version: &str) -> RpmSpec {
    let mut spec = RpmSpec::agent(name, version);
    spec.files = files(program, name, version, "/usr/lib/systemd/system", true);
    spec
}

/// How a process of the agent came to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// Started by systemd (`ExecStart=`).
    Start,
    /// Started by a running agent's graceful restart (SIGHUP).
    Reload,
}

/// One line of [`START_LOG`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Start {
    pub version: String,
    /// `TELEPORT_EXT_UPGRADER` at that start, `none` when unset.
    pub upgrader: String,
    pub pid: u32,
    pub via: Via,
}

/// The starts recorded in a [`START_LOG`] text; lines that do not parse are
/// an error (the log is written by the agent program only).
pub fn parse_starts(text: &str) -> Result<Vec<Start>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut version = None;
            let mut upgrader = None;
            let mut pid = None;
            let mut via = None;
            let mut words = l.split_whitespace();
            if words.next() != Some("start") {
                return Err(format!("not a start line: {l:?}"));
            }
            for w in words {
                match w.split_once('=') {
                    Some(("version", v)) => version = Some(v.to_string()),
                    Some(("upgrader", v)) => upgrader = Some(v.to_string()),
                    Some(("pid", v)) => pid = v.parse().ok(),
                    Some(("via", "start")) => via = Some(Via::Start),
                    Some(("via", "reload")) => via = Some(Via::Reload),
                    _ => return Err(format!("unexpected word {w:?} in {l:?}")),
                }
            }
            match (version, upgrader, pid, via) {
                (Some(version), Some(upgrader), Some(pid), Some(via)) => Ok(Start {
                    version,
                    upgrader,
                    pid,
                    via,
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
            "start version=15.4.2 upgrader=none pid=7 via=start\nstart version=15.4.3 upgrader=unit pid=9 via=reload\n",
        )
        .unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].version, "15.4.3");
        assert_eq!(s[1].upgrader, "unit");
        assert_eq!(s[1].pid, 9);
        assert_eq!((s[0].via, s[1].via), (Via::Start, Via::Reload));
        assert!(parse_starts("stop\n").is_err());
        assert!(parse_starts("start version=1\n").is_err());
        assert!(parse_starts("start version=1 upgrader=none pid=3\n").is_err());
        assert!(parse_starts("start version=1 upgrader=none pid=3 via=magic\n").is_err());
        assert_eq!(parse_starts("").unwrap(), vec![]);
    }

    /// The program builds, each patched copy is the version it says, and
    /// the broken flag is carried (`start` is not run here: it writes
    /// START_LOG and listens on this host).
    #[test]
    fn the_program_runs_as_the_agent_of_its_version() {
        let d = tempfile::tempdir().unwrap();
        let program = std::fs::read(build_program(d.path()).unwrap()).unwrap();
        for (version, broken, want) in [
            ("2:16.0.0", false, "Teleport v16.0.0 git: go1.22"),
            ("15.4.4", true, "Teleport v15.4.4 git: go1.22"),
        ] {
            let p = d.path().join(format!("teleport-{version}"));
            std::fs::write(&p, binary(&program, version, broken)).unwrap();
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
            let out = std::process::Command::new(&p).output().unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want);
            let bytes = std::fs::read(&p).unwrap();
            let needle = format!("broken={}", u8::from(broken));
            assert!(bytes.windows(needle.len()).any(|w| w == needle.as_bytes()));
        }
        let spec = rpm_spec(&program, "teleport-ent", "15.4.2");
        assert!(spec
            .files
            .iter()
            .any(|(p, _, _)| p == "/usr/lib/systemd/system/teleport.service"));
        let spec = deb_spec(&program, "teleport-ent", "15.4.2");
        assert!(spec
            .files
            .iter()
            .any(|(p, _, _)| p == "/lib/systemd/system/teleport.service"));
        assert!(unit().contains("ExecReload=") && unit().contains("PIDFile=/run/teleport.pid"));
    }
}
