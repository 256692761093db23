//! The rpm counterpart of `common::World`: an alternate root set up for dnf
//! or zypper exactly as `backends/tests/rpm_backends.rs` sets it up (repo
//! file in the package manager's own directory, key in
//! `/etc/pki/rpm-gpg`, `gpgkey=file://` naming it inside the root, key
//! imported into the root's rpm database), `teleport-ent` 15.4.2 or 15.4.3
//! installed, and its own version server on loopback.
//!
//! One fixture per test process: a release key and a foreign key (both
//! dropped, so their gpg-agents end, once the fixture is built), the agent
//! rpms signed with the release key, and two repositories served on
//! loopback: `good` (repomd.xml signed by the release key) and `badmeta`
//! (same packages, repomd.xml signed by the foreign key).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use testkit::gpg::Key;
use testkit::http::{Route, Server};
use testkit::rpm::{build_rpm, sign_rpm, RpmRepo, RpmRoot, RpmSpec};

use crate::common::{Run, BIN, CHANNEL, PKG, VERSIONS};

pub const KEY_IN_ROOT: &str = "/etc/pki/rpm-gpg/RPM-GPG-KEY-teleport";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pm {
    Dnf,
    Zypper,
}

impl Pm {
    pub fn installer(self) -> &'static str {
        match self {
            Pm::Dnf => "dnf",
            Pm::Zypper => "zypper",
        }
    }
    pub fn repo_file(self) -> &'static str {
        match self {
            Pm::Dnf => "/etc/yum.repos.d/teleport.repo",
            Pm::Zypper => "/etc/zypp/repos.d/teleport.repo",
        }
    }
}

pub struct Fixture {
    pub release_key: PathBuf,
    pub rpms: Vec<(String, PathBuf)>,
    pub server: Server,
}

impl Fixture {
    pub fn rpm(&self, version: &str) -> &Path {
        &self
            .rpms
            .iter()
            .find(|(v, _)| v == version)
            .expect("fixture version")
            .1
    }
    pub fn url(&self, repo: &str) -> String {
        format!("{}/{repo}/", self.server.url())
    }
}

pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("e2e-rpm-fixture-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let keys = dir.join("k");
        let release = Key::generate(&keys, "Teleport test release <release@example.com>");
        let foreign = Key::generate(&keys, "Someone else <mallory@example.com>");
        let release_key = dir.join("RPM-GPG-KEY-teleport");
        release.export_armored(&release_key);
        let mut rpms = Vec::new();
        for v in VERSIONS {
            let p = build_rpm(&RpmSpec::agent(PKG, v), &dir.join("build"));
            sign_rpm(&release, &p);
            rpms.push((v.to_string(), p));
        }
        let all: Vec<PathBuf> = rpms.iter().map(|(_, p)| p.clone()).collect();
        let repos = dir.join("repos");
        RpmRepo::build(&repos.join("good"), &all, Some(&release));
        RpmRepo::build(&repos.join("badmeta"), &all, Some(&foreign));
        // Dropping the keys ends their gpg-agents.
        drop(release);
        drop(foreign);
        let server = Server::start(&repos);
        Fixture {
            release_key,
            rpms,
            server,
        }
    })
}

fn settings() -> Vec<(&'static str, &'static str)> {
    vec![
        ("autorefresh", "0"),
        ("gpgcheck", "1"),
        ("repo_gpgcheck", "1"),
        ("pkg_gpgcheck", "1"),
        ("gpgkey", "file:///etc/pki/rpm-gpg/RPM-GPG-KEY-teleport"),
    ]
}

pub struct RpmWorld {
    pub pm: Pm,
    // Field order: the root (whose Drop ends its gpg-agents) goes before
    // the directory holding the version server's files.
    pub root: RpmRoot,
    pub vs: Server,
    pub dir: tempfile::TempDir,
}

impl RpmWorld {
    pub fn new(pm: Pm, installed: &str, target: &str) -> RpmWorld {
        let f = fixture();
        let dir = tempfile::tempdir().unwrap();
        let root = RpmRoot::new(&dir.path().join("r"));
        root.write(KEY_IN_ROOT, std::fs::read(&f.release_key).unwrap());
        match pm {
            Pm::Dnf => root.write(
                "/etc/dnf/dnf.conf",
                "[main]\ngpgcheck=1\ninstallonly_limit=3\n",
            ),
            Pm::Zypper => root.write("/etc/zypp/zypp.conf", "[main]\n"),
        }
        root.import_key(&f.release_key);
        root.install(f.rpm(installed));
        let vs_root = dir.path().join("vs");
        std::fs::create_dir_all(&vs_root).unwrap();
        let vs = Server::start(&vs_root);
        let w = RpmWorld { pm, root, vs, dir };
        w.point_at("good");
        w.config("endpoint", &format!("127.0.0.1:{}{CHANNEL}", w.vs.port()));
        w.config("insecure", "yes");
        w.config("installer", pm.installer());
        w.set_target(target);
        w.set_critical("no");
        w
    }

    fn point_at(&self, repo: &str) {
        self.root.write(
            self.pm.repo_file(),
            RpmRepo::repo_file("teleport", &fixture().url(repo), &settings()),
        );
    }

    /// Serve metadata signed by the foreign key (the `badmeta` copy of the
    /// repository: same packages, repomd.xml signed by a key the root does
    /// not trust).
    pub fn resign_with_unknown_key(&self) {
        self.point_at("badmeta");
    }

    pub fn config(&self, name: &str, value: &str) {
        self.root.write(
            &format!("/etc/teleport-upgrade.d/{name}"),
            format!("{value}\n"),
        );
    }

    pub fn set_target(&self, body: &str) {
        self.vs.set_route(
            &format!("{CHANNEL}/version"),
            Route::ok(body.as_bytes().to_vec()),
        );
    }

    pub fn set_critical(&self, body: &str) {
        self.vs.set_route(
            &format!("{CHANNEL}/critical"),
            Route::ok(body.as_bytes().to_vec()),
        );
    }

    pub fn schedule_in_window(&self) {
        self.config("schedule", &crate::common::schedule_in_window());
    }

    pub fn schedule_outside_window(&self) {
        self.config("schedule", &crate::common::schedule_outside_window());
    }

    /// The upstream version (release stripped): `15.4.2-1` -> `15.4.2`.
    pub fn installed(&self) -> Option<String> {
        self.root
            .installed_version(PKG)
            .map(|v| v.rsplit_once('-').map(|(u, _)| u.to_string()).unwrap_or(v))
    }

    pub fn state_file(&self) -> PathBuf {
        self.root.file("/var/lib/teleport-upgrade/state.json")
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let mut c = std::process::Command::new(BIN);
        c.arg("--root").arg(self.root.path()).args(args);
        c.env_remove("TELEPORT_UPGRADE_CONFIG");
        c.env("LC_ALL", "C");
        c.stdin(std::process::Stdio::null());
        Run(c.output().unwrap())
    }
}
