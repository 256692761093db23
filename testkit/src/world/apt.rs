//! The apt world: a throwaway GPG key, fake `teleport-ent` .debs, a signed
//! apt repository and a version server on loopback, and an alternate root
//! with the agent installed by dpkg. The real `teleport-upgrade` binary is
//! run with `--root`, and the real dpkg database is checked.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use super::{Run, CHANNEL, KEYRING, PKG, UNPUBLISHED, VERSIONS};
use crate::aptrepo::AptRepo;
use crate::aptroot::AptRoot;
use crate::deb::{build_deb, DebSpec};
use crate::gpg::Key;
use crate::http::{Route, Server};

/// The fake agent's .deb spec for `version`.
pub fn deb_spec(version: &str) -> DebSpec {
    let mut spec = DebSpec::agent(PKG, version);
    spec.files.extend(super::extra_files(version));
    spec
}

/// The fake agent packages (VERSIONS, then UNPUBLISHED), built once per
/// test process.
fn all_debs() -> &'static Vec<PathBuf> {
    static DEBS: OnceLock<Vec<PathBuf>> = OnceLock::new();
    DEBS.get_or_init(|| {
        let dir = super::scratch_dir("debs");
        VERSIONS
            .iter()
            .chain([&UNPUBLISHED])
            .map(|v| build_deb(&deb_spec(v), &dir))
            .collect()
    })
}

/// The packages the repositories publish (VERSIONS).
pub fn debs() -> &'static [PathBuf] {
    &all_debs()[..VERSIONS.len()]
}

pub fn deb(version: &str) -> PathBuf {
    let i = VERSIONS
        .iter()
        .chain([&UNPUBLISHED])
        .position(|v| *v == version)
        .expect("known version");
    all_debs()[i].clone()
}

/// A throwaway key (under `dir/keys`) and the repository of [`debs()`]
/// (`bookworm`, `stable/v15`, under `dir/repo`) signed by it, served on
/// loopback.
pub fn signed_repo(dir: &Path) -> (Key, AptRepo, Server) {
    let key = Key::generate(&dir.join("keys"), "Teleport Test <test@example.com>");
    let repo = AptRepo::build(
        &dir.join("repo"),
        "bookworm",
        "stable/v15",
        debs(),
        Some(&key),
    );
    let server = Server::start(repo.dir());
    (key, repo, server)
}

/// A version server on loopback (its files under `dir/vs`) advertising
/// `target`, not critical.
pub fn version_server(dir: &Path, target: &str) -> Server {
    let vs_root = dir.join("vs");
    std::fs::create_dir_all(&vs_root).unwrap();
    let vs = Server::start(&vs_root);
    super::set_target(&vs, target);
    super::set_critical(&vs, "no");
    vs
}

/// Set an apt root up as a host the updater runs on: `installed` installed
/// by dpkg, `key` trusted for the Teleport source at `repo_url`
/// (`signed-by`), and the updater configured for apt against the version
/// server on `vs_port`. No schedule.
pub fn install_agent(root: &AptRoot, installed: &str, key: &Key, repo_url: &str, vs_port: u16) {
    root.dpkg_install(&deb(installed));
    key.export_armored(&root.file(KEYRING));
    root.write(
        "/etc/apt/sources.list.d/teleport.list",
        format!("deb [signed-by={KEYRING}] {repo_url}/ bookworm stable/v15\n").as_bytes(),
    );
    let config = |name: &str, value: &str| super::write_config(root.path(), name, value);
    config("endpoint", &format!("127.0.0.1:{vs_port}{CHANNEL}"));
    config("insecure", "yes");
    config("installer", "apt");
}

pub struct AptWorld {
    pub dir: tempfile::TempDir,
    pub key: Key,
    pub repo: AptRepo,
    pub repo_server: Server,
    pub vs: Server,
    pub root: AptRoot,
}

impl AptWorld {
    /// A root with `installed` in place, a repository signed by the key the
    /// root trusts, serving every version, and a version server advertising
    /// `target` (not critical). No schedule yet.
    pub fn new(installed: &str, target: &str) -> AptWorld {
        let dir = tempfile::tempdir().unwrap();
        let (key, repo, repo_server) = signed_repo(dir.path());
        let vs = version_server(dir.path(), target);
        let root = AptRoot::new(&dir.path().join("root"));
        install_agent(&root, installed, &key, &repo_server.url(), vs.port());
        AptWorld {
            dir,
            key,
            repo,
            repo_server,
            vs,
            root,
        }
    }

    pub fn config_dir(&self) -> PathBuf {
        self.root.file("/etc/teleport-upgrade.d")
    }

    pub fn config(&self, name: &str, value: &str) {
        super::write_config(self.root.path(), name, value);
    }

    pub fn remove_config(&self, name: &str) {
        let _ = std::fs::remove_file(self.config_dir().join(name));
    }

    pub fn set_target(&self, body: &str) {
        super::set_target(&self.vs, body);
    }

    pub fn set_version_route(&self, r: Route) {
        self.vs.set_route(&format!("{CHANNEL}/version"), r);
    }

    pub fn set_critical(&self, body: &str) {
        super::set_critical(&self.vs, body);
    }

    pub fn version_hits(&self) -> usize {
        self.vs.hits(&format!("{CHANNEL}/version"))
    }

    /// The agent's schedule with one window around now.
    pub fn schedule_in_window(&self) {
        self.config("schedule", &super::schedule_in_window());
    }

    /// The agent's schedule with windows only in the future.
    pub fn schedule_outside_window(&self) {
        self.config("schedule", &super::schedule_outside_window());
    }

    pub fn marker(&self) -> bool {
        self.config_dir().join("mark-unhealthy").exists()
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        super::command(self.root.path(), args)
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let out = self.cmd(args).output().unwrap();
        Run(out)
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    pub fn installed(&self) -> Option<String> {
        self.root.installed_version(PKG)
    }

    /// dpkg's view of every package (version, selection, status): what a
    /// refused run must leave alone.
    pub fn package_db(&self) -> String {
        let out = Command::new("dpkg-query")
            .arg(format!("--admindir={}", self.root.admindir().display()))
            .args(["-W", "-f", "${Package} ${Version} ${Status}\\n"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Serve `debs` instead (a repository under `<world>/<name>`, signed by
    /// the world's key) and point the Teleport source at it. The returned
    /// server must live as long as the runs that use it.
    pub fn publish_only(&self, name: &str, debs: &[PathBuf]) -> Server {
        let repo = AptRepo::build(
            &self.dir.path().join(name),
            "bookworm",
            "stable/v15",
            debs,
            Some(&self.key),
        );
        let server = Server::start(repo.dir());
        self.root.write(
            "/etc/apt/sources.list.d/teleport.list",
            format!(
                "deb [signed-by={KEYRING}] {}/ bookworm stable/v15\n",
                server.url()
            )
            .as_bytes(),
        );
        server
    }

    /// When the unhealthy marker says the agent was first seen unhealthy.
    pub fn marker_time(&self) -> i64 {
        let p = self.config_dir().join("mark-unhealthy");
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        text.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{}: {e}: {text:?}", p.display()))
    }

    /// Move the marker's first sighting `secs` into the past (as a run that
    /// late would find it).
    pub fn backdate_marker(&self, secs: i64) {
        let first = self.marker_time();
        self.config("mark-unhealthy", &(first - secs).to_string());
    }

    pub fn held(&self) -> bool {
        self.root.is_held(PKG)
    }

    pub fn state(&self) -> serde_json::Value {
        super::read_state(self.root.path())
    }

    /// A first check of a target below the installed version: the run
    /// waits (no flapping) and records it; the record is then moved 10
    /// minutes into the past, so that the next run's check confirms it.
    pub fn sight_lower_target(&self) {
        self.run(&["run"])
            .expect(0)
            .logs_contain("below the installed version");
        super::backdate_lower_target(self.root.path(), 600);
    }

    /// `status --json`, parsed.
    pub fn status_json(&self) -> serde_json::Value {
        super::status_json(self.root.path())
    }

    /// A host-path sources line for running apt directly in the root.
    pub fn host_sources_line(&self) -> String {
        format!(
            "deb [signed-by={}] {}/ bookworm stable/v15\n",
            self.root.file(KEYRING).display(),
            self.repo_server.url()
        )
    }
}
