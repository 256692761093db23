//! Running zypper: exit codes and messages classified, and what zypper's
//! cache says offers the package.

use super::*;

impl Zypper {
    /// Map a finished zypper run to success or the right error.
    pub(super) fn check(
        &self,
        cl: &CommandLine,
        fin: &Finished,
        pkg: Option<(&PkgName, &str, &Source)>,
    ) -> Result<()> {
        match fin.code {
            Some(0) | Some(100) | Some(101) => return Ok(()),
            Some(102) => {
                tracing::warn!(command = %cl, "zypper: a reboot is needed to finish this update (exit 102)");
                return Ok(());
            }
            Some(103) => {
                tracing::warn!(command = %cl, "zypper: zypper itself was updated and must be run again (exit 103)");
                return Ok(());
            }
            _ => {}
        }
        if let Some(e) = crate::classify::access_failure(cl, fin) {
            return Err(e);
        }
        let text = fin.combined();
        if let Some(line) = rpmdb::trust_failure_line(&text) {
            return Err(Error::Untrusted {
                reason: format!(
                    "zypper reported a signature, key or checksum failure ({}): {line}",
                    fin.status_text()
                ),
            });
        }
        let failed = |what: &str| Error::CommandFailed {
            command: cl.to_string(),
            status: format!("{}: {what}", fin.status_text()),
            tail: fin.tail(6),
        };
        if text.contains("remove lock to allow") {
            return Err(failed("a lock keeps the package from changing (see `zypper locks`; a pattern lock such as `teleport*` is not ours to remove)"));
        }
        match fin.code {
            Some(7) => Err(Error::Locked {
                detail: rpmdb::line_with(&text, &["is locked"], fin.tail(2)),
            }),
            Some(104) => match pkg {
                Some((pkg, version, source)) => Err(Error::VersionNotFound {
                    package: pkg.to_string(),
                    version: version.to_string(),
                    source_desc: source.description.clone(),
                    detail: rpmdb::line_with(&text, &["No provider", "not found"], fin.tail(2)),
                }),
                None => Err(failed("capability not found")),
            },
            Some(106) => Err(failed("some repositories were skipped because of an error")),
            Some(107) => Err(failed(
                "the package was installed but one of its rpm scripts (%post) failed",
            )),
            Some(8) => Err(failed("the installation failed (commit error)")),
            Some(6) => Err(failed("no repositories are defined")),
            Some(4) => Err(failed("zypper reported an error")),
            _ => Err(failed("zypper failed")),
        }
    }

    pub(super) fn run_checked(
        &self,
        cl: &CommandLine,
        pkg: Option<(&PkgName, &str, &Source)>,
    ) -> Result<Finished> {
        tracing::info!(command = %cl, "running");
        self.prepare_conf()?;
        let fin = self.runner.run(cl)?;
        self.check(cl, &fin, pkg)?;
        Ok(fin)
    }

    /// Repository names or aliases zypper's cache lists for `pkg`.
    /// The repositories that offer `pkg` according to zypper's cache. Only
    /// repositories already cached are asked: `zypper --no-refresh search`
    /// would otherwise download (and cache) the metadata of an uncached
    /// repository before its definition has been audited.
    pub(super) fn cached_offers(&self, pkg: &PkgName, secs: &[IniSection]) -> Vec<String> {
        let raw = self.system.path("/var/cache/zypp/raw");
        let cached: Vec<&str> = secs
            .iter()
            .map(|s| s.id.as_str())
            // A name that is not a plain value is never put on a command
            // line (the chosen repository is refused for it).
            .filter(|id| crate::names::problem(id, true).is_none())
            .filter(|id| raw.join(id).is_dir())
            .collect();
        if cached.is_empty() {
            return Vec::new();
        }
        let mut cl = self.zypper().args(["--no-refresh", "--xmlout", "search"]);
        for id in cached {
            cl = cl.arg(format!("--repo={id}"));
        }
        let cl = cl.args(["-s", "--match-exact", pkg.as_str()]);
        if self.prepare_conf().is_err() {
            return Vec::new();
        }
        let Ok(fin) = self.runner.run(&cl) else {
            return Vec::new();
        };
        let mut out: Vec<String> = Vec::new();
        for line in fin.stdout.lines() {
            let l = line.trim();
            if !l.starts_with("<solvable ") || xml_attr(l, "name").as_deref() != Some(pkg.as_str())
            {
                continue;
            }
            if let Some(r) = xml_attr(l, "repository") {
                if !r.is_empty() && r != "(System Packages)" && !out.contains(&r) {
                    out.push(r);
                }
            }
        }
        out
    }
}

/// The value of `attr="..."` in one XML tag (zypper's `--xmlout`).
pub(super) fn xml_attr(tag: &str, attr: &str) -> Option<String> {
    let needle = format!(" {attr}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = tag[start..].find('"')? + start;
    Some(
        tag[start..end]
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}
