//! The answer of the versionlock probe (`dnf versionlock list`: is the
//! plugin there and enabled?), kept between runs beside the updater's
//! hold record while nothing it depends on changed: dnf's and the
//! plugin's configuration, the `dnf` program, and the rpm database (a
//! plugin installed or removed changes it). The probe is a Python dnf
//! start, about 0.3 s of CPU on every run otherwise; and a probe that
//! fails for another reason than a missing plugin (a full `/var/cache/dnf`,
//! a broken repository file) no longer turns the versionlock hold into
//! the exclude method: the last answer stands.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::HoldMethod;
use crate::System;

/// What the probe depends on, as `stat` sees it: one line per path.
pub(super) fn key(system: &System, program: &str) -> String {
    let mut paths: Vec<PathBuf> = [
        "/etc/dnf/dnf.conf",
        "/etc/yum.conf",
        "/etc/dnf/plugins/versionlock.conf",
        "/etc/dnf/plugins/versionlock.list",
    ]
    .iter()
    .map(|p| system.path(p))
    .collect();
    for dir in ["/var/lib/rpm", "/usr/lib/sysimage/rpm"] {
        for f in [
            "rpmdb.sqlite",
            "rpmdb.sqlite-wal",
            "Packages.db",
            "Packages",
        ] {
            paths.push(system.path(dir).join(f));
        }
    }
    if let Ok(p) = which::which(program) {
        paths.push(p);
    }
    let mut out = String::new();
    for p in paths {
        // the program through its symlinks (dnf -> dnf-3)
        let m = std::fs::metadata(&p);
        out.push_str(&match m {
            Ok(m) => format!(
                "{} {} {} {} {}\n",
                p.display(),
                m.ino(),
                m.size(),
                m.mtime(),
                m.mtime_nsec()
            ),
            Err(_) => format!("{} -\n", p.display()),
        });
    }
    out
}

const MAGIC: &str = "teleport-upgrade dnf-hold-probe 1";

/// The kept answer, when its key is `key`.
pub(super) fn cached(file: &Path, key: &str) -> Option<HoldMethod> {
    let text = crate::fsread::read_to_string(file).ok()?;
    let rest = text.strip_prefix(MAGIC)?.strip_prefix('\n')?;
    let (method, k) = rest.split_once('\n')?;
    (k == key).then_some(())?;
    match method {
        "versionlock" => Some(HoldMethod::Versionlock),
        "exclude" => Some(HoldMethod::Exclude),
        _ => None,
    }
}

/// The answer given last, whatever the key (for a probe that failed for
/// another reason than a missing plugin).
pub(super) fn last(file: &Path) -> Option<HoldMethod> {
    let text = crate::fsread::read_to_string(file).ok()?;
    let rest = text.strip_prefix(MAGIC)?.strip_prefix('\n')?;
    match rest.lines().next()? {
        "versionlock" => Some(HoldMethod::Versionlock),
        "exclude" => Some(HoldMethod::Exclude),
        _ => None,
    }
}

/// Keep `m` for `key` (a cache: written without fsync; lost, the next run
/// probes again).
pub(super) fn keep(file: &Path, key: &str, m: HoldMethod) {
    let word = match m {
        HoldMethod::Versionlock => "versionlock",
        HoldMethod::Exclude => "exclude",
    };
    let _ = crate::dpkg_status::write_unsynced(file, format!("{MAGIC}\n{word}\n{key}").as_bytes());
}

/// What dnf says when the plugin is not there (dnf 4: "No such command:
/// versionlock."; yum: "No such command").
pub(super) fn says_no_plugin(output: &str) -> bool {
    output.contains("No such command")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_while_the_key_holds() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("probe");
        assert_eq!(cached(&f, "k1"), None);
        keep(&f, "k1\nk2\n", HoldMethod::Versionlock);
        assert_eq!(cached(&f, "k1\nk2\n"), Some(HoldMethod::Versionlock));
        assert_eq!(cached(&f, "k1\nk3\n"), None);
        assert_eq!(last(&f), Some(HoldMethod::Versionlock));
        std::fs::write(&f, "garbage").unwrap();
        assert_eq!(cached(&f, "k1\nk2\n"), None);
        assert_eq!(last(&f), None);
    }

    #[test]
    fn a_missing_plugin_is_told_apart() {
        assert!(says_no_plugin(
            "No such command: versionlock. Please use /usr/bin/dnf --help"
        ));
        assert!(!says_no_plugin("Error: [Errno 28] No space left on device"));
    }
}
