//! The rpm world, the counterpart of [`super::apt::AptWorld`]: an alternate root set up for dnf
//! or zypper exactly as `backends/tests/rpm_backends.rs` sets it up (repo
//! file in the package manager's own directory, key in
//! `/etc/pki/rpm-gpg`, `gpgkey=file://` naming it inside the root, key
//! imported into the root's rpm database), `teleport-ent` 15.4.2 or 15.4.3
//! installed, and its own version server on loopback.
//!
//! One fixture per test process: a release key and a foreign key (both
//! dropped, so their gpg-agents end, once the fixture is built), the agent
//! rpms signed with the release key, and repositories on disk that each
//! world serves on loopback with its own server: `good` (repomd.xml signed
//! by the release key), `badmeta` (same packages, repomd.xml signed by the
//! foreign key), `nometa` (unsigned metadata), `unsignedrpm` (good metadata,
//! unsigned packages), `foreignrpm` (good metadata, packages signed by the
//! foreign key) and `tampered` (good metadata, 15.4.3 damaged after
//! indexing).
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::{Run, CHANNEL, PKG, UNPUBLISHED, VERSIONS};
use crate::gpg::Key;
use crate::http::Server;
use crate::rpm::{build_rpm, sign_rpm, RpmRepo, RpmRoot, RpmSpec};

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
    pub release_fingerprint: String,
    /// The foreign key, armored.
    pub foreign_key: PathBuf,
    pub foreign_fingerprint: String,
    pub rpms: Vec<(String, PathBuf)>,
    /// The repositories (one directory each).
    pub repos: PathBuf,
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
}

/// The fake agent's rpm spec for `version` (see [`super::BROKEN`]).
pub fn rpm_spec(version: &str) -> RpmSpec {
    let mut spec = RpmSpec::agent(PKG, version);
    spec.files.extend(super::extra_files(version));
    spec
}

pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = super::scratch_dir("e2e-rpm-fixture");
        let keys = dir.join("k");
        let release = Key::generate(&keys, "Teleport test release <release@example.com>");
        let foreign = Key::generate(&keys, "Someone else <mallory@example.com>");
        let release_key = dir.join("RPM-GPG-KEY-teleport");
        release.export_armored(&release_key);
        let mut rpms = Vec::new();
        for v in VERSIONS.iter().chain([&UNPUBLISHED]) {
            let p = build_rpm(&rpm_spec(v), &dir.join("build"));
            sign_rpm(&release, &p);
            rpms.push((v.to_string(), p));
        }
        // Published: VERSIONS (UNPUBLISHED, last, is only installed directly).
        let all: Vec<PathBuf> = rpms[..VERSIONS.len()]
            .iter()
            .map(|(_, p)| p.clone())
            .collect();
        let repos = dir.join("repos");
        RpmRepo::build(&repos.join("good"), &all, Some(&release));
        RpmRepo::build(&repos.join("badmeta"), &all, Some(&foreign));
        RpmRepo::build(&repos.join("nometa"), &all, None);
        let tampered = RpmRepo::build(&repos.join("tampered"), &all, Some(&release));
        tampered.tamper(
            all[1]
                .file_name()
                .and_then(|n| n.to_str())
                .expect("file name"),
        );
        let unsigned: Vec<PathBuf> = VERSIONS
            .iter()
            .map(|v| build_rpm(&rpm_spec(v), &dir.join("build-unsigned")))
            .collect();
        RpmRepo::build(&repos.join("unsignedrpm"), &unsigned, Some(&release));
        let foreign_signed: Vec<PathBuf> = VERSIONS
            .iter()
            .map(|v| {
                let p = build_rpm(&rpm_spec(v), &dir.join("build-foreign"));
                sign_rpm(&foreign, &p);
                p
            })
            .collect();
        RpmRepo::build(&repos.join("foreignrpm"), &foreign_signed, Some(&release));
        let foreign_key = dir.join("RPM-GPG-KEY-foreign");
        foreign.export_armored(&foreign_key);
        let release_fingerprint = release.fingerprint();
        let foreign_fingerprint = foreign.fingerprint();
        // Dropping the keys ends their gpg-agents.
        drop(release);
        drop(foreign);
        Fixture {
            release_key,
            release_fingerprint,
            foreign_key,
            foreign_fingerprint,
            rpms,
            repos,
        }
    })
}

pub fn settings() -> Vec<(&'static str, &'static str)> {
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
    /// Serves the fixture's repositories for this world only, so a test
    /// can change what one URL answers.
    pub repo_server: Server,
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
        let vs = super::apt::version_server(dir.path(), target);
        let repo_server = Server::start(&f.repos);
        let w = RpmWorld {
            pm,
            root,
            vs,
            repo_server,
            dir,
        };
        w.point_at("good");
        w.config("endpoint", &format!("127.0.0.1:{}{CHANNEL}", w.vs.port()));
        w.config("insecure", "yes");
        w.config("installer", pm.installer());
        w
    }

    /// Point the root's Teleport repository at one of the fixture's
    /// repositories.
    pub fn point_at(&self, repo: &str) {
        self.write_repo_file(repo, &settings());
    }

    /// The Teleport repository definition with `settings` (in order) after
    /// `[teleport]`, name, baseurl and enabled.
    pub fn write_repo_file(&self, repo: &str, settings: &[(&str, &str)]) {
        self.root.write(
            self.pm.repo_file(),
            RpmRepo::repo_file("teleport", &self.repo_url(repo), settings),
        );
    }

    pub fn repo_url(&self, repo: &str) -> String {
        format!("{}/{repo}/", self.repo_server.url())
    }

    /// From now on `good` answers with metadata signed by the foreign key
    /// (at the same URL: cached metadata must not hide it).
    pub fn resign_good_with_foreign_key(&self) {
        let bad = fixture().repos.join("badmeta/repodata/repomd.xml.asc");
        self.repo_server.set_route(
            "/good/repodata/repomd.xml.asc",
            crate::http::Route::ok(std::fs::read(bad).unwrap()),
        );
    }

    /// The packages installed in the root, with install times: what a
    /// refused run must leave alone.
    pub fn package_db(&self) -> String {
        let out = self.root.rpm(&[
            "-qa",
            "--qf",
            "%{NAME} %{VERSION}-%{RELEASE} %{INSTALLTIME}\n",
        ]);
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        lines.sort();
        let locks = std::fs::read_to_string(self.root.file("/etc/zypp/locks")).unwrap_or_default();
        format!(
            "{}
locks:
{locks}",
            lines.join(
                "
"
            )
        )
    }

    /// Serve metadata signed by the foreign key (the `badmeta` copy of the
    /// repository: same packages, repomd.xml signed by a key the root does
    /// not trust).
    pub fn resign_with_unknown_key(&self) {
        self.point_at("badmeta");
    }

    pub fn config(&self, name: &str, value: &str) {
        super::write_config(self.root.path(), name, value);
    }

    pub fn set_target(&self, body: &str) {
        super::set_target(&self.vs, body);
    }

    pub fn set_critical(&self, body: &str) {
        super::set_critical(&self.vs, body);
    }

    pub fn schedule_in_window(&self) {
        self.config("schedule", &super::schedule_in_window());
    }

    pub fn schedule_outside_window(&self) {
        self.config("schedule", &super::schedule_outside_window());
    }

    /// The upstream version (release stripped): `15.4.2-1` -> `15.4.2`.
    pub fn installed(&self) -> Option<String> {
        self.root
            .installed_version(PKG)
            .map(|v| v.rsplit_once('-').map(|(u, _)| u.to_string()).unwrap_or(v))
    }

    pub fn state_file(&self) -> PathBuf {
        self.root.file(super::STATE_FILE)
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run(super::command(self.root.path(), args).output().unwrap())
    }

    /// The plain package manager in this root, as an operator would run
    /// it (none of the updater's options): dnf with the root's
    /// `dnf.conf` and `yum.repos.d`, zypper with the root's `zypp.conf`;
    /// `args` follow. Its exit status and output.
    pub fn plain(&self, args: &[&str]) -> (i32, String) {
        let root = self.root.path().display().to_string();
        let mut c = self.root.command(self.pm.installer());
        match self.pm {
            Pm::Dnf => {
                c.args([
                    "-y".to_string(),
                    format!("--installroot={root}"),
                    format!("--config={}", self.root.file("/etc/dnf/dnf.conf").display()),
                    format!(
                        "--setopt=reposdir={}",
                        self.root.file("/etc/yum.repos.d").display()
                    ),
                ]);
            }
            Pm::Zypper => {
                c.env("ZYPP_CONF", self.root.file("/etc/zypp/zypp.conf"));
                c.args(["--non-interactive", "--root", &root]);
            }
        }
        c.args(args).stdin(std::process::Stdio::null());
        let out = c.output().unwrap();
        self.root.end_gpg_agents();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }

    /// Whether the installed agent is signed by the fixture's foreign key.
    pub fn installed_is_foreign_signed(&self) -> bool {
        let out = self.root.rpm(&["-q", "--qf", "%{RSAHEADER:pgpsig}\n", PKG]);
        let sig = String::from_utf8_lossy(&out.stdout).to_string();
        let key_id = sig.trim().rsplit(' ').next().unwrap_or("").to_string();
        !key_id.is_empty()
            && fixture()
                .foreign_fingerprint
                .to_ascii_lowercase()
                .ends_with(&key_id.to_ascii_lowercase())
    }

    /// Put the fixture's foreign key in the root at `path` and return a
    /// `gpgkey=` value naming it and the release key by their host paths
    /// (dnf reads gpgkey paths on the host even with `--installroot`).
    pub fn foreign_and_release_keys(&self, path: &str) -> String {
        self.root
            .write(path, std::fs::read(&fixture().foreign_key).unwrap());
        format!(
            "file://{} file://{}",
            self.root.file(KEY_IN_ROOT).display(),
            self.root.file(path).display()
        )
    }
}
