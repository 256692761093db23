//! Shared by the channel-file and package-integrity tests: one release site with
//! channels `stable/v15` and `stable/v16` (testkit's [`ChannelSite`]), and
//! one alternate root per test for apt, dnf or zypper, with the Teleport
//! repository defined on `stable/v15` and an agent installed from it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use backends::apt::Apt;
use backends::dnf::Dnf;
use backends::zypper::Zypper;
use backends::{Backend, Options, PkgName, PkgVersion, System};
use testkit::aptroot::AptRoot;
use testkit::channels::{ChannelSite, AGENT};
use testkit::rpm::{RpmRepo, RpmRoot};

pub const KEYRING: &str = "/usr/share/keyrings/teleport-archive-keyring.asc";
pub const RPM_KEY: &str = "/etc/pki/rpm-gpg/RPM-GPG-KEY-teleport";

/// The site, built once per test binary.
pub fn site() -> &'static ChannelSite {
    static S: OnceLock<ChannelSite> = OnceLock::new();
    S.get_or_init(|| {
        let t = Instant::now();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "backend-site-{}",
            std::env::current_exe()
                .ok()
                .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                .unwrap_or_default()
        ));
        let s = ChannelSite::build(&dir);
        eprintln!("channel site built in {:?}", t.elapsed());
        s
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pm {
    Apt,
    Dnf,
    Zypper,
}

enum Root {
    Apt(tempfile::TempDir, AptRoot),
    Rpm(RpmRoot),
}

/// One alternate root.
pub struct Env {
    pub pm: Pm,
    root: Root,
    /// The repository definition, as the root sees it.
    pub repo_file: String,
}

pub fn pkg() -> PkgName {
    PkgName::parse(AGENT).unwrap()
}

pub fn v(s: &str) -> PkgVersion {
    PkgVersion::parse(s).unwrap()
}

/// The installed version string each package manager reports for `v`.
pub fn reported(pm: Pm, v: &str) -> String {
    match pm {
        Pm::Apt => v.to_string(),
        _ => format!("{v}-1"),
    }
}

fn rpm_settings() -> Vec<(&'static str, &'static str)> {
    vec![
        ("autorefresh", "0"),
        ("gpgcheck", "1"),
        ("repo_gpgcheck", "1"),
        ("pkg_gpgcheck", "1"),
        ("gpgkey", "file:///etc/pki/rpm-gpg/RPM-GPG-KEY-teleport"),
    ]
}

impl Env {
    /// A root with `installed` in place (from its package file) and the
    /// Teleport repository defined on `stable/v15`: for apt in
    /// `sources.list.d/teleport.list` (or `teleport.sources` when
    /// `deb822`), for rpm in `teleport.repo`, section `[teleport]`.
    pub fn new(pm: Pm, installed: &str, deb822: bool) -> Env {
        let s = site();
        match pm {
            Pm::Apt => {
                let dir = tempfile::tempdir().unwrap();
                let root = AptRoot::new(&dir.path().join("root"));
                root.write(KEYRING, &std::fs::read(&s.release_key).unwrap());
                root.dpkg_install(s.deb(installed));
                let (repo_file, text) = if deb822 {
                    (
                        "/etc/apt/sources.list.d/teleport.sources",
                        format!(
                            "Types: deb\nURIs: {}\nSuites: bookworm\nComponents: stable/v15\nSigned-By: {KEYRING}\n",
                            s.apt_url()
                        ),
                    )
                } else {
                    (
                        "/etc/apt/sources.list.d/teleport.list",
                        format!(
                            "deb [signed-by={KEYRING}] {} bookworm stable/v15\n",
                            s.apt_url()
                        ),
                    )
                };
                root.write(repo_file, text.as_bytes());
                Env {
                    pm,
                    root: Root::Apt(dir, root),
                    repo_file: repo_file.to_string(),
                }
            }
            Pm::Dnf | Pm::Zypper => {
                let root = RpmRoot::new(&std::env::temp_dir());
                root.write(RPM_KEY, std::fs::read(&s.release_key).unwrap());
                let repo_file = if pm == Pm::Dnf {
                    "/etc/yum.repos.d/teleport.repo"
                } else {
                    "/etc/zypp/repos.d/teleport.repo"
                };
                root.write(
                    repo_file,
                    RpmRepo::repo_file("teleport", &s.rpm_url("stable/v15"), &rpm_settings()),
                );
                if pm == Pm::Dnf {
                    root.write(
                        "/etc/dnf/dnf.conf",
                        "[main]\ngpgcheck=1\ninstallonly_limit=3\n",
                    );
                } else {
                    root.write("/etc/zypp/zypp.conf", "[main]\n");
                }
                root.import_key(&s.release_key);
                root.install(s.rpm(installed));
                Env {
                    pm,
                    root: Root::Rpm(root),
                    repo_file: repo_file.to_string(),
                }
            }
        }
    }

    pub fn root_path(&self) -> &Path {
        match &self.root {
            Root::Apt(_, r) => r.path(),
            Root::Rpm(r) => r.path(),
        }
    }

    /// The host path of `abs` inside the root.
    pub fn file(&self, abs: &str) -> PathBuf {
        self.root_path().join(abs.trim_start_matches('/'))
    }

    pub fn read(&self, abs: &str) -> String {
        std::fs::read_to_string(self.file(abs)).unwrap()
    }

    pub fn write(&self, abs: &str, text: &str) {
        std::fs::write(self.file(abs), text).unwrap()
    }

    pub fn options(&self) -> Options {
        Options {
            lock_wait: Duration::from_secs(5),
            command_timeout: Duration::from_secs(120),
            source_file: None,
            hold_record: None,
            // What the updater passes in (src/run.rs::repo_hints).
            hints: backends::RepoHints {
                release_hosts: vec!["releases.teleport.dev".into()],
                words: vec!["teleport".into()],
            },
        }
    }

    pub fn backend(&self) -> Box<dyn Backend> {
        let sys = System::rooted(self.root_path()).unwrap();
        let o = self.options();
        match self.pm {
            Pm::Apt => Box::new(Apt::new(sys, o).unwrap()),
            Pm::Dnf => Box::new(Dnf::new(sys, o).unwrap()),
            Pm::Zypper => Box::new(Zypper::new(sys, o).unwrap()),
        }
    }

    /// The installed version, read with the package database's own tool.
    pub fn version(&self) -> Option<String> {
        match &self.root {
            Root::Apt(_, r) => r.installed_version(AGENT),
            Root::Rpm(r) => r.installed_version(AGENT),
        }
    }

    /// What the installed `/usr/bin/teleport` prints (the host's `sh`).
    pub fn teleport_output(&self) -> Option<String> {
        let bin = self.file("/usr/bin/teleport");
        if !bin.is_file() {
            return None;
        }
        let out = Command::new("sh").arg(&bin).output().ok()?;
        Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    pub fn end_gpg_agents(&self) {
        if let Root::Rpm(r) = &self.root {
            r.end_gpg_agents();
        }
    }
}

/// Run `body` for the three backends, as tests `apt`, `dnf` and `zypper` in
/// module `$name`.
#[macro_export]
macro_rules! all_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[test]
            fn apt() {
                ($body)(Pm::Apt)
            }
            #[test]
            fn dnf() {
                ($body)(Pm::Dnf)
            }
            #[test]
            fn zypper() {
                ($body)(Pm::Zypper)
            }
        }
    };
}
