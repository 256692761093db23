//! Which package manager serves a system: from `/etc/os-release` (`ID`,
//! `ID_LIKE`) and the tools that are actually present.

use std::fmt;
use std::str::FromStr;

use crate::{Error, Result, Runner, System};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendKind {
    Apt,
    /// dnf, also when configured as `yum` on a host where yum is dnf.
    Dnf,
    /// A real yum (RHEL 7 and older), driven like dnf.
    Yum,
    Zypper,
}

impl BackendKind {
    /// The program that must be present for this backend.
    pub fn program(self) -> &'static str {
        match self {
            BackendKind::Apt => "apt-get",
            BackendKind::Dnf => "dnf",
            BackendKind::Yum => "yum",
            BackendKind::Zypper => "zypper",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Apt => "apt",
            BackendKind::Dnf => "dnf",
            BackendKind::Yum => "yum",
            BackendKind::Zypper => "zypper",
        })
    }
}

impl FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "apt" | "apt-get" => Ok(BackendKind::Apt),
            "dnf" => Ok(BackendKind::Dnf),
            "yum" => Ok(BackendKind::Yum),
            "zypper" => Ok(BackendKind::Zypper),
            other => Err(format!(
                "unknown installer {other:?}: expected apt, yum, dnf, zypper or nop"
            )),
        }
    }
}

/// The fields of os-release(5) that matter here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OsRelease {
    pub id: String,
    pub id_like: Vec<String>,
    pub pretty_name: String,
}

impl OsRelease {
    pub fn parse(text: &str) -> Self {
        let mut os = OsRelease::default();
        for line in text.lines() {
            let line = line.trim();
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let v = v.trim().trim_matches('"').trim_matches('\'').to_string();
            match k.trim() {
                "ID" => os.id = v.to_ascii_lowercase(),
                "ID_LIKE" => {
                    os.id_like = v
                        .split_whitespace()
                        .map(|s| s.to_ascii_lowercase())
                        .collect()
                }
                "PRETTY_NAME" => os.pretty_name = v,
                _ => {}
            }
        }
        os
    }

    /// Read `/etc/os-release` (or `/usr/lib/os-release`) of `system`.
    pub fn read(system: &System) -> Option<Self> {
        ["/etc/os-release", "/usr/lib/os-release"]
            .iter()
            .find_map(|p| crate::fsread::read_to_string(system.path(p)).ok())
            .map(|t| OsRelease::parse(&t))
    }

    /// The package-manager family the distribution belongs to.
    pub fn family(&self) -> Option<BackendKind> {
        let ids = std::iter::once(self.id.as_str()).chain(self.id_like.iter().map(|s| s.as_str()));
        for id in ids {
            match id {
                "debian" | "ubuntu" | "raspbian" | "linuxmint" | "pop" => {
                    return Some(BackendKind::Apt)
                }
                "rhel" | "fedora" | "centos" | "rocky" | "almalinux" | "amzn" | "ol" => {
                    return Some(BackendKind::Dnf)
                }
                id if id.contains("suse") || id == "sles" || id == "sled" => {
                    return Some(BackendKind::Zypper)
                }
                _ => {}
            }
        }
        None
    }
}

/// Choose the backend for `system` when no `installer` is configured:
/// the os-release family if its tool is present, else the first tool found.
/// For the dnf family, `dnf` is preferred and a real `yum` is the fallback.
pub fn detect(system: &System, runner: &Runner) -> Result<BackendKind> {
    let os = OsRelease::read(system);
    let present = |k: BackendKind| runner.find(k.program()).is_some();
    if let Some(family) = os.as_ref().and_then(|o| o.family()) {
        let candidates: &[BackendKind] = match family {
            BackendKind::Dnf | BackendKind::Yum => &[BackendKind::Dnf, BackendKind::Yum],
            BackendKind::Apt => &[BackendKind::Apt],
            BackendKind::Zypper => &[BackendKind::Zypper],
        };
        if let Some(k) = candidates.iter().copied().find(|k| present(*k)) {
            return Ok(k);
        }
        return Err(Error::ToolMissing {
            tool: family.program().into(),
            detail: format!(
                "{} is a {} system but {} is not on PATH; set the `installer` file",
                os.map(|o| o.pretty_name).unwrap_or_default(),
                family,
                family.program()
            ),
        });
    }
    for k in [
        BackendKind::Apt,
        BackendKind::Dnf,
        BackendKind::Yum,
        BackendKind::Zypper,
    ] {
        if present(k) {
            return Ok(k);
        }
    }
    Err(Error::ToolMissing {
        tool: "apt-get, dnf, yum or zypper".into(),
        detail: "no supported package manager found and /etc/os-release names no known family; set the `installer` file".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families() {
        let f = |t: &str| OsRelease::parse(t).family();
        assert_eq!(f("ID=debian\n"), Some(BackendKind::Apt));
        assert_eq!(f("ID=ubuntu\nID_LIKE=debian\n"), Some(BackendKind::Apt));
        assert_eq!(
            f("ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n"),
            Some(BackendKind::Dnf)
        );
        assert_eq!(
            f("ID=amzn\nID_LIKE=\"centos rhel fedora\"\n"),
            Some(BackendKind::Dnf)
        );
        assert_eq!(
            f("ID=\"opensuse-leap\"\nID_LIKE=\"suse opensuse\"\n"),
            Some(BackendKind::Zypper)
        );
        assert_eq!(f("ID=sles\n"), Some(BackendKind::Zypper));
        assert_eq!(f("ID=arch\n"), None);
        assert_eq!(f(""), None);
    }

    #[test]
    fn installer_names() {
        assert_eq!("apt".parse::<BackendKind>(), Ok(BackendKind::Apt));
        assert_eq!("yum".parse::<BackendKind>(), Ok(BackendKind::Yum));
        assert!("pacman".parse::<BackendKind>().is_err());
    }
}
