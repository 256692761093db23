//! dnf5 (Fedora 41 and later, where `dnf` is dnf5) is not driven: it
//! rejects `--disableexcludes`, does not implement `exit_on_lock`, and
//! keeps its versionlock elsewhere, so the commands of this backend would
//! fail half-way or not hold the agent. It is recognised before anything
//! runs and refused with a message naming it.
//!
//! Recognised without starting a process when the program resolves to a
//! file named `dnf5…` (Fedora's `/usr/bin/dnf -> dnf5`); dnf 4's `dnf` is
//! a Python script, so a `dnf` that is not one is asked `--version`
//! (dnf5 answers `dnf5 version 5.…`).

use std::io::Read;
use std::path::Path;

use crate::cmd::{CommandLine, Runner};
use crate::{Error, Result};

/// What an operator is told.
pub const REFUSAL: &str = "dnf5 is not supported: it rejects --disableexcludes, has no exit_on_lock and keeps versionlocks its own way, so this updater cannot hold or update the agent with it; nothing was changed. On Fedora 41 and later use Managed Updates v2 (teleport-update), or make `dnf` dnf 4 (Fedora's dnf4 package)";

/// `Err(Unsupported)` when `program`, as `runner` finds it, is dnf5.
pub fn refuse_dnf5(runner: &Runner, program: &str) -> Result<()> {
    let Some(path) = runner.find(program) else {
        return Ok(());
    };
    let real = std::fs::canonicalize(&path).unwrap_or(path.clone());
    let named = real
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("dnf5"));
    if named || (!is_python_script(&real) && says_dnf5(runner, program)) {
        return Err(Error::Unsupported {
            reason: format!("{} is dnf5. {REFUSAL}", path.display()),
        });
    }
    Ok(())
}

/// Whether `p` starts with a `#!` line naming python (dnf 4, yum 4).
fn is_python_script(p: &Path) -> bool {
    let mut head = [0u8; 128];
    let n = std::fs::File::open(p)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    let head = &head[..n];
    head.starts_with(b"#!")
        && head
            .split(|b| *b == b'\n')
            .next()
            .is_some_and(|l| l.windows(6).any(|w| w == b"python"))
}

fn says_dnf5(runner: &Runner, program: &str) -> bool {
    let cl = CommandLine::new(program).args(["--version"]);
    runner.run(&cl).is_ok_and(|f| {
        f.stdout
            .lines()
            .next()
            .is_some_and(|l| l.trim_start().starts_with("dnf5"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// Stand-ins only report a version: no real dnf5 is available on the
    /// test hosts (Debian has no dnf5 package).
    fn script(dir: &Path, name: &str, body: &str) {
        let p = dir.join(name);
        std::fs::write(&p, format!("{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn runner(dir: &Path) -> Runner {
        Runner {
            timeout: std::time::Duration::from_secs(10),
            path: Some(dir.as_os_str().to_owned()),
        }
    }

    #[test]
    fn dnf_linked_to_dnf5_is_refused_without_running_it() {
        let d = tempfile::tempdir().unwrap();
        let ran = d.path().join("ran");
        script(
            d.path(),
            "dnf5",
            &format!(
                "#!/bin/sh\ntouch {}\necho 'dnf5 version 5.2.6.2'",
                ran.display()
            ),
        );
        std::os::unix::fs::symlink("dnf5", d.path().join("dnf")).unwrap();
        let e = refuse_dnf5(&runner(d.path()), "dnf").unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("is dnf5") && m.contains("dnf5 is not supported"),
            "{m}"
        );
        assert!(m.contains("--disableexcludes"), "{m}");
        assert!(!ran.exists(), "recognised by its name, not run");
    }

    #[test]
    fn a_dnf_that_says_dnf5_is_refused() {
        let d = tempfile::tempdir().unwrap();
        script(
            d.path(),
            "dnf",
            "#!/bin/sh\n[ \"$1\" = --version ] && echo 'dnf5 version 5.2.6.2' && echo 'libdnf5 version 5.2.6.2'",
        );
        let e = refuse_dnf5(&runner(d.path()), "dnf").unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    }

    #[test]
    fn dnf4_is_driven() {
        let d = tempfile::tempdir().unwrap();
        let ran = d.path().join("ran");
        script(
            d.path(),
            "dnf",
            &format!(
                "#!/usr/bin/python3 -s\nimport sys\nopen({:?}, 'w')",
                ran.display()
            ),
        );
        refuse_dnf5(&runner(d.path()), "dnf").unwrap();
        assert!(!ran.exists(), "dnf 4 (a Python script) is not run");
        // A dnf 4 that is not a script (as yum on some hosts): asked.
        let d = tempfile::tempdir().unwrap();
        script(d.path(), "dnf", "#!/bin/sh\necho 4.14.0");
        refuse_dnf5(&runner(d.path()), "dnf").unwrap();
        // The host's real dnf, when there is one, is dnf 4.
        if Runner::default().find("dnf").is_some() {
            refuse_dnf5(&Runner::default(), "dnf").unwrap();
        }
        refuse_dnf5(&runner(d.path()), "missing").unwrap();
    }
}
