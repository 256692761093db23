//! The updater's private zypp.conf and repos.d: copies of the system's with
//! the signature checks forced on, handed to every zypper call.

use super::*;

impl Zypper {
    /// The private zypp.conf every zypper call reads (`ZYPP_CONF`).
    pub(super) fn private_conf(&self) -> PathBuf {
        self.private.path().join("zypp.conf")
    }

    /// The private repos.d holding the copy of the Teleport repository.
    pub(super) fn private_reposd(&self) -> PathBuf {
        self.private.path().join("repos.d")
    }

    /// Write the private zypp.conf: the system's own (as libzypp would
    /// read it) with the signature settings of `[main]` forced on. A
    /// caller's `ZYPP_CONF` never reaches zypper: this file replaces it.
    pub(super) fn prepare_conf(&self) -> Result<()> {
        let text = match crate::fsread::read_to_string(self.zypp_conf()) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                return Err(Error::io(
                    format!("reading {}", self.zypp_conf().display()),
                    e,
                ))
            }
        };
        let out = force_main(&text, FORCED);
        crate::write_private(&self.private_conf(), out.as_bytes())
            .map_err(|e| Error::io(format!("writing {}", self.private_conf().display()), e))
    }

    /// Write the private copy of `source`'s definition, alone in the
    /// private repos.d, with the signature settings forced on.
    pub(super) fn prepare_repo(&self, source: &Source) -> Result<()> {
        self.prepare_conf()?;
        let sec = self.section(source)?;
        let dir = self.private_reposd();
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.filter_map(|e| e.ok()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let file = dir.join(format!("{}.repo", sanitize_alias(&source.id)));
        crate::write_private(&file, repo_copy(&sec, FORCED).as_bytes())
            .map_err(|e| Error::io(format!("writing {}", file.display()), e))
    }
}

/// `text` (a zypp.conf) with `forced` settings in its `[main]` section and
/// every other setting of those keys there dropped; `[main]` is added when
/// missing.
pub fn force_main(text: &str, forced: &[(&str, &str)]) -> String {
    let forced_block: String = forced.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
    let mut out = String::new();
    let mut in_main = false;
    let mut saw_main = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            in_main = t.trim_start_matches('[').split(']').next().map(str::trim) == Some("main");
            out.push_str(line);
            out.push('\n');
            if in_main && !saw_main {
                saw_main = true;
                out.push_str(&forced_block);
            }
            continue;
        }
        if in_main {
            if let Some((k, _)) = t.split_once('=') {
                let k = k.trim().to_ascii_lowercase();
                if forced.iter().any(|(f, _)| *f == k) {
                    continue;
                }
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    if !saw_main {
        out.push_str("[main]\n");
        out.push_str(&forced_block);
    }
    out
}

/// The definition `sec` alone, with `forced` settings replacing its own.
pub fn repo_copy(sec: &IniSection, forced: &[(&str, &str)]) -> String {
    let mut out = format!("[{}]\n", sec.id);
    for e in &sec.entries {
        if forced.iter().any(|(f, _)| *f == e.key) {
            continue;
        }
        out.push_str(&format!("{}={}\n", e.key, e.value.replace('\n', "\n ")));
    }
    for (k, v) in forced {
        out.push_str(&format!("{k}={v}\n"));
    }
    out
}

/// An alias as a file name (libzypp names repository files after them).
pub(super) fn sanitize_alias(alias: &str) -> String {
    alias
        .chars()
        .map(|c| if c == '/' || c == '\0' { '_' } else { c })
        .collect()
}
