//! Running apt: failures classified, output that says something was not
//! verified, and the private work files.

use super::*;

impl Apt {
    pub(super) fn classify(
        &self,
        cl: &CommandLine,
        fin: &Finished,
        pkg: Option<(&PkgName, &str, &Source)>,
    ) -> Error {
        let untrusted = |_: &Finished, text: &str| {
            TRUST_FAILURES.iter().find(|m| text.contains(*m)).map(|m| {
                let line = text.lines().find(|l| l.contains(m)).unwrap_or(m).trim();
                format!("apt reported a signature or integrity failure: {line}")
            })
        };
        let locked = |fin: &Finished, text: &str| {
            (text.contains("Could not get lock")
                || text.contains("Unable to acquire the dpkg frontend lock"))
            .then(|| fin.tail(2))
        };
        let not_offered = |fin: &Finished, text: &str| {
            (text.contains("was not found")
                || text.contains("has no installation candidate")
                || text.contains("Unable to locate package"))
            .then(|| fin.tail(2))
        };
        let signs = crate::classify::Signs {
            untrusted: &untrusted,
            locked: &locked,
            not_offered: &not_offered,
        };
        crate::classify::classify(&signs, cl, fin, pkg, &|_| {
            crate::classify::command_failed(cl, fin)
        })
    }

    pub(super) fn run_classified(
        &self,
        cl: &CommandLine,
        pkg: Option<(&PkgName, &str, &Source)>,
    ) -> Result<Finished> {
        tracing::info!(command = %cl, "running");
        let fin = self.runner.run(cl)?;
        if fin.success() {
            Ok(fin)
        } else {
            Err(self.classify(cl, &fin, pkg))
        }
    }
}

/// `Err(Untrusted)` when a successful apt command's output says apt let
/// something unverified through (it never should, with the enforcement).
pub(super) fn check_verified_output(cl: &CommandLine, fin: &Finished) -> Result<()> {
    let text = fin.combined();
    if let Some(line) = text.lines().find(|l| {
        // Words of apt's own messages, not of the URLs and names they
        // quote: a mirror path `/insecure/` is not a finding.
        let l = without_urls(l).to_ascii_lowercase();
        apt_trust::UNVERIFIED_OUTPUT
            .iter()
            .any(|m| l.contains(&m.to_ascii_lowercase()))
    }) {
        return Err(Error::Untrusted {
            reason: redact(&format!(
                "`{cl}` reported something unverified: {}",
                line.trim()
            )),
        });
    }
    Ok(())
}

/// `line` with every URL (`scheme://...` up to the next space or quote)
/// left out.
pub(super) fn without_urls(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for word in line.split_inclusive([' ', '\'', '"', '\t']) {
        let w = word.trim_start_matches(['[', '(', '<']);
        if w.contains("://") {
            // Keep the separator that ended the URL.
            if let Some(c) = word.chars().last().filter(|c| " '\"\t".contains(*c)) {
                out.push(c);
            }
            continue;
        }
        out.push_str(word);
    }
    out
}

/// Write a file of the backend's private work directory (the generated
/// `APT_CONFIG`, source list and inline keys): a fresh directory no other
/// process reads while this one writes, deleted at exit, so neither a
/// rename nor an fsync is needed (they cost milliseconds on every run).
/// The file is created 0600 (the single-source list may hold credentials).
pub(crate) fn write_work_file(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}
