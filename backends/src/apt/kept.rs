//! The installed version's .deb kept for a rollback without the network.
//!
//! What is verified, and by whom:
//! - the download: `apt-get install --download-only --reinstall` of the
//!   exact installed version from the Teleport source only, after the
//!   refresh verified the source's `InRelease` against its `signed-by` key
//!   (`--error-on=any`); apt checks the file against the SHA256 its
//!   `Packages` index gives ("Hash Sum mismatch" otherwise);
//! - that SHA256 is read from the same index (`apt-cache show
//!   <pkg>=<version>`) and returned: the caller checks the file against it
//!   when keeping it and again right before installing it.
//!
//! A local `dpkg -i` checks no signature (a .deb carries none that apt
//! or dpkg verify; `debsig-verify` is not used by apt), so the digest
//! recorded from the signed index is what vouches for the kept file.

use std::path::{Path, PathBuf};

use super::exec::check_verified_output;
use super::Apt;
use crate::types::{PkgName, PkgVersion, Source};
use crate::{Error, KeptFile, Result};

impl Apt {
    pub(super) fn keep(
        &self,
        source: &Source,
        pkg: &PkgName,
        version: &PkgVersion,
        dir: &Path,
    ) -> Result<KeptFile> {
        let exact = version.as_str();
        let show = self
            .apt_cache(Some(source))?
            .args(["show".to_string(), format!("{pkg}={exact}")]);
        let fin = self.run_classified(&show, Some((pkg, exact, source)))?;
        let sha256 = index_sha256(&fin.stdout, exact).ok_or_else(|| Error::Parse {
            what: format!("`{show}`"),
            detail: format!("no SHA256 for {pkg} {exact}"),
        })?;
        let vouched_by = format!(
            "the SHA256 of {pkg} {exact} in the Packages index of {}, verified with its signed InRelease",
            source.description
        );
        // apt's own copy from when this version was installed, when its
        // archive cache still has it: linked (or copied), not downloaded
        // again; the caller checks it against the index's SHA256 all the
        // same.
        if let Some(path) = self.kept_from_archives(&fin.stdout, exact, dir) {
            return Ok(KeptFile {
                path,
                sha256,
                vouched_by,
                hash_now: false,
            });
        }
        let partial = dir.join("partial");
        std::fs::create_dir_all(&partial)
            .map_err(|e| Error::io(format!("create {}", partial.display()), e))?;
        let dl = self.apt_get(source)?.args([
            "-o".to_string(),
            format!("Dir::Cache::Archives={}/", dir.display()),
            "install".into(),
            "-y".into(),
            "--download-only".into(),
            "--reinstall".into(),
            "--allow-downgrades".into(),
            "--allow-change-held-packages".into(),
            "--no-install-recommends".into(),
            format!("{pkg}={exact}"),
        ]);
        let fin = self.run_classified(&dl, Some((pkg, exact, source)))?;
        check_verified_output(&dl, &fin)?;
        let _ = std::fs::remove_dir_all(&partial);
        let _ = std::fs::remove_file(dir.join("lock"));
        let path = only_deb(dir)?;
        Ok(KeptFile {
            path,
            sha256,
            vouched_by,
            hash_now: true,
        })
    }

    /// The .deb of `version` in apt's archive cache (named as apt names
    /// it: the pool file's name, an epoch's `:` as `%3a`), hard-linked into
    /// `dir` (copied across filesystems); `None` when it is not there.
    /// apt never writes an archive file in place (it downloads into
    /// `partial/` and renames), so the link's bytes stay the ones checked.
    fn kept_from_archives(&self, show: &str, version: &str, dir: &Path) -> Option<PathBuf> {
        let name = pool_file_name(show, version)?;
        let archives = self.system.path("/var/cache/apt/archives");
        let found = [name.clone(), name.replacen(':', "%3a", 1)]
            .into_iter()
            .map(|n| archives.join(n))
            .find(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_file()))?;
        let to = dir.join(found.file_name()?);
        let _ = std::fs::remove_file(&to);
        std::fs::hard_link(&found, &to)
            .or_else(|_| std::fs::copy(&found, &to).map(|_| ()))
            .ok()?;
        tracing::debug!(file = %found.display(), "the package to keep is in apt's archive cache");
        Some(to)
    }

    /// The .deb of `version` of `pkg` in apt's archive cache
    /// (`<pkg>_<version>_<arch>.deb`, an epoch's `:` as `%3a`): what
    /// [`Apt::keep`] links instead of downloading.
    pub(super) fn in_archives(&self, pkg: &PkgName, version: &PkgVersion) -> Option<PathBuf> {
        let v = version.as_str();
        let prefixes = [
            format!("{pkg}_{v}_"),
            format!("{pkg}_{}_", v.replacen(':', "%3a", 1)),
        ];
        let rd = std::fs::read_dir(self.system.path("/var/cache/apt/archives")).ok()?;
        rd.filter_map(|e| e.ok())
            .find(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.ends_with(".deb")
                    && prefixes.iter().any(|p| n.starts_with(p.as_str()))
                    && e.file_type().is_ok_and(|t| t.is_file())
            })
            .map(|e| e.path())
    }

    /// `dpkg -i` of a kept .deb (over whatever version is installed).
    pub(super) fn install_deb_file(&self, file: &Path) -> Result<()> {
        let cl = self.dpkg().env("DEBIAN_FRONTEND", "noninteractive").args([
            "--force-confdef".to_string(),
            "--force-confold".into(),
            "-i".into(),
            file.display().to_string(),
        ]);
        self.run_classified(&cl, None).map(|_| ())
    }
}

/// The one .deb in `dir`.
fn only_deb(dir: &Path) -> Result<PathBuf> {
    let debs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(format!("read {}", dir.display()), e))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb") && p.is_file())
        .collect();
    match &debs[..] {
        [one] => Ok(one.clone()),
        _ => Err(Error::Parse {
            what: dir.display().to_string(),
            detail: format!("expected one downloaded .deb, found {}", debs.len()),
        }),
    }
}

/// The `SHA256` of the paragraph of `apt-cache show` whose `Version` is
/// `version`.
pub(crate) fn index_sha256(show: &str, version: &str) -> Option<String> {
    show.split("\n\n").find_map(|para| {
        let field = |name: &str| {
            para.lines()
                .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
        };
        let sha = field("SHA256:")?;
        (field("Version:")? == version
            && sha.len() == 64
            && sha.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| sha.to_ascii_lowercase())
    })
}

/// The file name (last part of `Filename:`) of the paragraph of
/// `apt-cache show` whose `Version` is `version`; only a plain `.deb` name.
pub(crate) fn pool_file_name(show: &str, version: &str) -> Option<String> {
    show.split("\n\n").find_map(|para| {
        let field = |k: &str| {
            para.lines()
                .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
        };
        (field("Version:")? == version).then_some(())?;
        let f = field("Filename:")?;
        let name = f.rsplit('/').next()?.to_string();
        (name.ends_with(".deb") && !name.starts_with('.') && !name.contains('\\')).then_some(name)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_sha256_of_the_version_asked() {
        let a = "a".repeat(64);
        let b = "B".repeat(64);
        let show = format!(
            "Package: teleport-ent\nVersion: 15.4.3\nSHA256: {a}\n\nPackage: teleport-ent\nVersion: 15.4.2\nSHA256: {b}\n"
        );
        assert_eq!(super::index_sha256(&show, "15.4.2"), Some("b".repeat(64)));
        assert_eq!(super::index_sha256(&show, "15.4.3"), Some(a));
        assert_eq!(super::index_sha256(&show, "15.4.4"), None);
        assert_eq!(super::index_sha256("Version: 1\nSHA256: xyz\n", "1"), None);
    }

    #[test]
    fn the_pool_file_name_of_the_version_asked() {
        let show = "Package: teleport-ent\nVersion: 15.4.3\nFilename: pool/main/t/teleport-ent/teleport-ent_15.4.3_amd64.deb\n\nPackage: teleport-ent\nVersion: 1:15.4.2\nFilename: pool/teleport-ent_1:15.4.2_amd64.deb\n";
        assert_eq!(
            super::pool_file_name(show, "15.4.3").as_deref(),
            Some("teleport-ent_15.4.3_amd64.deb")
        );
        assert_eq!(
            super::pool_file_name(show, "1:15.4.2").as_deref(),
            Some("teleport-ent_1:15.4.2_amd64.deb")
        );
        assert_eq!(super::pool_file_name(show, "15.4.4"), None);
        assert_eq!(
            super::pool_file_name("Version: 1\nFilename: pool/../x.txt\n", "1"),
            None
        );
    }
}
