use std::fmt;
use std::path::{Component, Path, PathBuf};

use crate::{Error, Result};

/// A package name checked against the rules Debian and RPM share:
/// lowercase letters, digits, and `+ - .`, starting with a letter or digit.
/// Such a name can never be mistaken for an option on a command line.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PkgName(String);

impl PkgName {
    pub fn parse(s: &str) -> Result<Self> {
        let ok = !s.is_empty()
            && s.len() <= 128
            && s.chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
        if ok {
            Ok(PkgName(s.to_string()))
        } else {
            Err(Error::Parse {
                what: "a package name".into(),
                detail: format!("{s:?} is not a valid package name"),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PkgName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A package version as a package manager writes it: starts with a digit,
/// then letters, digits and `. + ~ : -` only (Debian `[epoch:]upstream[-rev]`,
/// RPM `[E:]V[-R]`). At most 64 characters. It cannot start with `-`, hold a
/// space, a shell metacharacter or a path separator.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PkgVersion(String);

impl PkgVersion {
    pub fn parse(s: &str) -> Result<Self> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.chars().next().is_some_and(|c| c.is_ascii_digit())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".+~:-".contains(c));
        if ok {
            Ok(PkgVersion(s.to_string()))
        } else {
            Err(Error::Parse {
                what: "a package version".into(),
                detail: format!("{s:?} is not a valid package version"),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The upstream part: without an `epoch:` prefix and without a
    /// `-revision` / `-release` suffix.
    pub fn upstream(&self) -> &str {
        let s = match self.0.split_once(':') {
            Some((epoch, rest)) if epoch.chars().all(|c| c.is_ascii_digit()) => rest,
            _ => &self.0,
        };
        match s.rsplit_once('-') {
            Some((up, _rev)) => up,
            None => s,
        }
    }

    /// Whether two versions name the same upstream release, ignoring epoch
    /// and packaging revision (`15.4.3` matches `15.4.3-1`).
    pub fn same_upstream(&self, other: &PkgVersion) -> bool {
        self.upstream() == other.upstream()
    }
}

impl fmt::Display for PkgVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An installed package as the package database reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub name: PkgName,
    pub version: PkgVersion,
}

/// The system a backend acts on: the running host, or an image rooted at a
/// directory (as if chrooted there).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct System {
    root: Option<PathBuf>,
}

impl System {
    pub fn host() -> Self {
        System { root: None }
    }

    /// An alternate root. The directory must exist; it is made absolute.
    pub fn rooted(dir: &Path) -> Result<Self> {
        let abs = std::fs::canonicalize(dir)
            .map_err(|e| Error::io(format!("alternate root {}", dir.display()), e))?;
        if abs == Path::new("/") {
            return Ok(System::host());
        }
        Ok(System { root: Some(abs) })
    }

    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    pub fn is_host(&self) -> bool {
        self.root.is_none()
    }

    /// Resolve an absolute path of the target system to a path on this
    /// machine. `..` components are dropped so that a path can never leave
    /// the root.
    pub fn path(&self, abs: impl AsRef<Path>) -> PathBuf {
        let mut out = self.root.clone().unwrap_or_else(|| PathBuf::from("/"));
        for c in abs.as_ref().components() {
            if let Component::Normal(p) = c {
                out.push(p);
            }
        }
        out
    }

    /// The inverse of [`System::path`] for display: the path as the target
    /// system sees it.
    pub fn display_path(&self, host_path: &Path) -> String {
        match &self.root {
            Some(r) => match host_path.strip_prefix(r) {
                Ok(rel) => format!("/{}", rel.display()),
                Err(_) => host_path.display().to_string(),
            },
            None => host_path.display().to_string(),
        }
    }
}

/// A repository definition that serves the package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The file that defines it (host path).
    pub file: PathBuf,
    /// For display: the URI(s), suite and components, or repo id and baseurl.
    pub description: String,
    /// Backend-specific identifier: a dnf/zypper repo id, or, for apt, the
    /// generated single-source list used to refresh and install.
    pub id: String,
    /// Keyrings the definition restricts the repository to (host paths).
    pub keyrings: Vec<PathBuf>,
    /// The repository URIs.
    pub uris: Vec<String>,
}

impl Source {
    /// No repository: for the operations that do not need one (see
    /// `Backend::hold_needs_source`).
    pub fn unlocated() -> Source {
        Source {
            file: PathBuf::new(),
            description: String::new(),
            id: String::new(),
            keyrings: Vec::new(),
            uris: Vec::new(),
        }
    }
}

/// One observation of the trust audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustFinding {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub setting: String,
    pub message: String,
}

impl fmt::Display for TrustFinding {
    /// Credentials in URLs are masked ([`crate::redact`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self.line {
            Some(l) => format!(
                "{}:{}: {}: {}",
                self.file.display(),
                l,
                self.setting,
                self.message
            ),
            None => format!(
                "{}: {}: {}",
                self.file.display(),
                self.setting,
                self.message
            ),
        };
        f.write_str(&crate::redact::redact(&s))
    }
}

/// The result of a trust audit that did not refuse: what was checked and
/// any warnings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustReport {
    pub checked: Vec<String>,
    pub warnings: Vec<TrustFinding>,
    /// The local keyrings (host paths) the package manager resolves the
    /// repository's key to, when its own view says (dnf: `gpgkey` with
    /// its variables substituted); they replace [`Source::keyrings`], read
    /// from the file's text, for the key pin.
    pub keyrings: Option<Vec<PathBuf>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names() {
        for ok in [
            "teleport",
            "teleport-ent",
            "teleport-ent-fips",
            "libc6",
            "g++",
        ] {
            assert!(PkgName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-teleport",
            "Teleport",
            "tele port",
            "a;b",
            "a/b",
            "a=1",
            "--help",
        ] {
            assert!(PkgName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn versions() {
        for ok in ["15.4.3", "1:15.4.3-1", "16.0.0~beta.1", "15.4.3-1.el9"] {
            assert!(PkgVersion::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-1",
            "v15",
            "15.4.3; rm -rf /",
            "15 4",
            "15/4",
            "$(id)",
            "15.4.3\n",
        ] {
            assert!(PkgVersion::parse(bad).is_err(), "{bad:?}");
        }
        let v = |s| PkgVersion::parse(s).unwrap();
        assert_eq!(v("1:15.4.3-1").upstream(), "15.4.3");
        assert_eq!(v("15.4.3").upstream(), "15.4.3");
        assert!(v("15.4.3-1").same_upstream(&v("15.4.3")));
        assert!(!v("15.4.30").same_upstream(&v("15.4.3")));
    }

    #[test]
    fn system_paths_stay_inside_the_root() {
        let s = System {
            root: Some(PathBuf::from("/r")),
        };
        assert_eq!(s.path("/etc/apt"), PathBuf::from("/r/etc/apt"));
        assert_eq!(s.path("/../../etc/shadow"), PathBuf::from("/r/etc/shadow"));
        assert_eq!(s.display_path(Path::new("/r/etc/x")), "/etc/x");
        assert_eq!(System::host().path("/etc/apt"), PathBuf::from("/etc/apt"));
    }
}
