//! zypper's answer to "is the agent held?" (`zypper locks --solvables`, a
//! zypper process that loads libzypp, the rpm database and gpg: about
//! 50 ms of CPU) recorded across runs, keyed by what it depends on: the
//! `stat` of zypp.conf, of the locks file it names, of zypper itself and
//! of the rpm database (which installed solvables a lock matches). A later
//! run whose key matches takes the recorded answer and starts no zypper;
//! any change of those asks zypper again. A key younger than
//! [`crate::dpkg_status::RACY_SECS`] is not recorded (see `dpkg_status`).

use std::path::Path;
use std::sync::Mutex;

use super::*;
use crate::dpkg_status::{Stamp, RACY_SECS};

/// The record, as the target system sees it.
pub const RECORD: &str = "/var/lib/teleport-upgrade/zypper-held.txt";

const MAGIC: &str = "teleport-upgrade zypper-held 1";

/// The answer this process got from zypper: (key, newest time in it, held).
static ASKED: Mutex<Option<(String, i64, bool)>> = Mutex::new(None);

fn stamp_line(what: &str, p: &Path) -> String {
    let s = Stamp::of(p).map_or("-".to_string(), |s| s.words());
    format!("{what} {} {s}\n", p.display())
}

impl Zypper {
    /// The locks file zypper reads: `locksfile.path` of zypp.conf's
    /// `[main]`, else `/etc/zypp/locks`, as the target sees it.
    fn locks_file(&self) -> PathBuf {
        let configured = rpmdb::read_ini(&self.zypp_conf())
            .ok()
            .and_then(|v| v.into_iter().rev().find(|s| s.id == "main"))
            .and_then(|m| m.value("locksfile.path").map(|v| v.trim().to_string()))
            .filter(|v| v.starts_with('/'));
        self.system
            .path(configured.as_deref().unwrap_or("/etc/zypp/locks"))
    }

    /// What the answer for `pkg` depends on, as text, and the newest time
    /// in it; `None` when the rpm database cannot be `stat`ed.
    pub(super) fn held_key(&self, pkg: &PkgName) -> Option<(String, i64)> {
        let (db, newest) = rpmdb::known::db_state_text(&self.system, &self.runner)?;
        let files = [
            ("conf", self.zypp_conf()),
            ("locks", self.locks_file()),
            ("zypper", PathBuf::from("/usr/bin/zypper")),
        ];
        let mut key = format!("package {pkg}\n{db}");
        let mut newest = newest;
        for (what, p) in &files {
            key.push_str(&stamp_line(what, p));
            if let Ok(s) = Stamp::of(p) {
                newest = newest.max(s.mtime).max(s.ctime);
            }
        }
        Some((key, newest))
    }
}

/// The recorded answer under `key`, when there is one.
pub(super) fn recorded(system: &System, key: &str) -> Option<bool> {
    let text = crate::fsread::read_to_string(system.path(RECORD)).ok()?;
    let rest = text.strip_prefix(MAGIC)?.strip_prefix('\n')?;
    let body = rest.strip_suffix("held yes\n").map(|b| (b, true));
    let (body, held) = body.or_else(|| rest.strip_suffix("held no\n").map(|b| (b, false)))?;
    (body == key).then_some(held)
}

/// Keep zypper's answer under `key` (newest time `newest`) for [`persist`].
pub(super) fn remember(key: String, newest: i64, held: bool) {
    *ASKED.lock().unwrap_or_else(|e| e.into_inner()) = Some((key, newest, held));
}

/// Record zypper's answer of this process for the next run (not in a dry
/// run: the caller decides): not when its key is younger than
/// [`RACY_SECS`] at `now`, nor when the record already says the same.
pub fn persist(system: &System, now: i64) {
    let Some((key, newest, held)) = ASKED.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
        return;
    };
    if newest > now - RACY_SECS {
        tracing::debug!("zypper's locks or the rpm database changed just now: not recorded");
        return;
    }
    let text = format!("{MAGIC}\n{key}held {}\n", if held { "yes" } else { "no" });
    let path = system.path(RECORD);
    if crate::fsread::read_to_string(&path).is_ok_and(|t| t == text) {
        return;
    }
    if let Err(e) = crate::dpkg_status::write_unsynced(&path, text.as_bytes()) {
        tracing::debug!(file = %path.display(), "cannot record zypper's hold: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_is_taken_only_under_the_same_key() {
        let d = tempfile::tempdir().unwrap();
        let system = System::rooted(d.path()).unwrap();
        let key = "package teleport-ent\nlocks /etc/zypp/locks 1 2 3 4 5 6\n";
        assert_eq!(recorded(&system, key), None);
        remember(key.to_string(), 0, true);
        persist(&system, 100);
        assert_eq!(recorded(&system, key), Some(true));
        assert_eq!(recorded(&system, &key.replace(" 6\n", " 7\n")), None);
        // a key younger than the racy window is not recorded
        remember(key.to_string(), 99, false);
        persist(&system, 100);
        assert_eq!(recorded(&system, key), Some(true));
        remember(key.to_string(), 0, false);
        persist(&system, 100);
        assert_eq!(recorded(&system, key), Some(false));
    }
}
