//! What a zypper install needs on disk, from zypper's own view of the
//! repository's metadata: `zypper --xmlout install --dry-run` of exactly
//! the version, whose `<install-summary download-size=… space-usage-diff=…>`
//! gives the download in bytes and libzypp's estimate of the change on
//! disk. Our own hold (a zypper lock) would stop the dry run, so it runs
//! with a private zypp.conf whose `locksfile.path` names no file: nothing
//! is locked, and a dry run changes nothing (the lock is never lifted).

use super::*;

impl Zypper {
    /// The sizes of `pkg`=`version` from `source` (`None` when zypper does
    /// not say them, e.g. the version is not offered).
    pub(super) fn sizes(
        &self,
        source: &Source,
        pkg: &PkgName,
        version: &PkgVersion,
    ) -> Result<Option<crate::PackageSizes>> {
        self.prepare_repo(source)?;
        let base = crate::fsread::read_to_string(self.private_conf())
            .map_err(|e| Error::io(format!("reading {}", self.private_conf().display()), e))?;
        let no_locks = self.private.path().join("no-locks");
        let no_locks = no_locks.display().to_string();
        let conf = self.private.path().join("zypp-sizes.conf");
        let text = config::force_main(&base, &[("locksfile.path", &no_locks)]);
        crate::write_private(&conf, text.as_bytes())
            .map_err(|e| Error::io(format!("writing {}", conf.display()), e))?;
        let cl = self
            .zypper_for(source)
            .env("ZYPP_CONF", conf.display().to_string())
            .args([
                "--xmlout".to_string(),
                "--no-refresh".into(),
                "install".into(),
                "--dry-run".into(),
                "--oldpackage".into(),
                "--no-recommends".into(),
                format!("--repo={}", source.id),
                format!("{pkg}={version}"),
            ]);
        let fin = self.runner.run(&cl)?;
        Ok(parse_install_summary(&fin.stdout))
    }

    /// Where zypper downloads packages: zypp.conf's `packagesdir`, else
    /// `cachedir`/packages, else `/var/cache/zypp/packages` (in the root).
    pub(super) fn packages_dir(&self) -> PathBuf {
        let main = rpmdb::read_ini(&self.zypp_conf())
            .ok()
            .and_then(|v| v.into_iter().rev().find(|s| s.id == "main"));
        let get = |k: &str| {
            main.as_ref()
                .and_then(|m| m.value(k).map(|v| v.trim().to_string()))
                .filter(|v| v.starts_with('/'))
        };
        let dir = get("packagesdir")
            .or_else(|| get("cachedir").map(|c| format!("{c}/packages")))
            .unwrap_or_else(|| "/var/cache/zypp/packages".into());
        self.system.path(&dir)
    }
}

/// The one `<install-summary …>` of a dry run that changes one package:
/// `download-size` (bytes) and `space-usage-diff` (bytes, negative when
/// the new version is smaller: then 0). `None` unless exactly one summary
/// with both as plain numbers, changing exactly one package.
pub fn parse_install_summary(out: &str) -> Option<crate::PackageSizes> {
    let mut tags = out
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("<install-summary "));
    let tag = tags.next()?;
    if tags.next().is_some() {
        return None;
    }
    let num = |a: &str| -> Option<i64> {
        let v = exec::xml_attr(tag, a)?;
        let digits = v.strip_prefix('-').unwrap_or(&v);
        (!digits.is_empty() && digits.len() <= 18 && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| v.parse().ok())
            .flatten()
    };
    if num("packages-to-change")? != 1 {
        return None;
    }
    Some(crate::PackageSizes {
        download: u64::try_from(num("download-size")?).ok()?,
        installed: u64::try_from(num("space-usage-diff")?.max(0)).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_summaries_are_read_strictly() {
        let s = |d: &str, u: &str, n: &str| {
            format!("<stream>\n<install-summary download-size=\"{d}\" space-usage-diff=\"{u}\" packages-to-change=\"{n}\">\n</install-summary>\n")
        };
        assert_eq!(
            parse_install_summary(&s("6419", "2048", "1")),
            Some(crate::PackageSizes {
                download: 6419,
                installed: 2048
            })
        );
        assert_eq!(
            parse_install_summary(&s("6419", "-4096", "1")).map(|z| z.installed),
            Some(0),
            "a smaller new version needs no more room"
        );
        assert_eq!(
            parse_install_summary(&s("6419", "0", "2")),
            None,
            "two packages"
        );
        assert_eq!(parse_install_summary(&s("1e9", "0", "1")), None);
        assert_eq!(parse_install_summary(&s("", "0", "1")), None);
        assert_eq!(
            parse_install_summary("<stream></stream>"),
            None,
            "nothing to do"
        );
        let two = format!("{}{}", s("1", "1", "1"), s("1", "1", "1"));
        assert_eq!(parse_install_summary(&two), None);
    }
}
