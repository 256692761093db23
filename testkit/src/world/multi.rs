//! One world over the three backends: [`AptWorld`] (real apt-get/dpkg) or
//! [`RpmWorld`] (real dnf or zypper with rpm), so a scenario is written
//! once and run on each ([`each_backend!`](crate::each_backend)).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::apt::AptWorld;
use super::rpm::{self, Pm, RpmWorld, KEY_IN_ROOT};
use super::{Run, BROKEN_MARKER, KEYRING, PKG};
use crate::http::{Route, Server};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Apt,
    Dnf,
    Zypper,
}

#[allow(clippy::large_enum_variant)]
pub enum World {
    Apt(AptWorld),
    Rpm(RpmWorld),
}

impl World {
    /// A root of `kind` with `installed` in place, its repository serving
    /// 15.4.2, 15.4.3 and 16.0.0 signed by the key the root trusts, and a
    /// version server advertising `target` (not critical). No schedule yet.
    pub fn new(kind: Kind, installed: &str, target: &str) -> World {
        match kind {
            Kind::Apt => World::Apt(AptWorld::new(installed, target)),
            Kind::Dnf => World::Rpm(RpmWorld::new(Pm::Dnf, installed, target)),
            Kind::Zypper => World::Rpm(RpmWorld::new(Pm::Zypper, installed, target)),
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            World::Apt(_) => Kind::Apt,
            World::Rpm(w) if w.pm == Pm::Dnf => Kind::Dnf,
            World::Rpm(_) => Kind::Zypper,
        }
    }

    /// The installed agent's upstream version ("15.4.3").
    pub fn installed(&self) -> Option<String> {
        match self {
            World::Apt(w) => w.installed(),
            World::Rpm(w) => w.installed(),
        }
    }

    /// Everything a refused run must leave alone: every package's version
    /// and state (apt: status and selection, so a hold shows; rpm: version,
    /// install time, and zypper's locks).
    pub fn package_db(&self) -> String {
        match self {
            World::Apt(w) => w.package_db(),
            World::Rpm(w) => w.package_db(),
        }
    }

    pub fn config(&self, name: &str, value: &str) {
        super::write_config(self.root_path(), name, value);
    }

    pub fn set_target(&self, body: &str) {
        super::set_target(self.vs(), body);
    }

    /// Answer `path` on the version server's host (e.g. `/webapi/find`).
    pub fn set_vs_route(&self, path: &str, route: Route) {
        self.vs().set_route(path, route);
    }

    /// The version server's port.
    pub fn vs_port(&self) -> u16 {
        self.vs().port()
    }

    /// Requests the version server's host answered for `path`.
    pub fn vs_hits(&self, path: &str) -> usize {
        self.vs().hits(path)
    }

    pub fn set_critical(&self, body: &str) {
        super::set_critical(self.vs(), body);
    }

    pub fn schedule_in_window(&self) {
        self.config("schedule", &super::schedule_in_window());
    }

    pub fn schedule_outside_window(&self) {
        self.config("schedule", &super::schedule_outside_window());
    }

    /// Repository metadata signed by a key the root does not trust.
    pub fn resign_with_unknown_key(&self) {
        match self {
            World::Apt(w) => {
                // Dropped right after signing: its gpg-agent ends.
                let other = crate::gpg::Key::generate(
                    &w.dir.path().join("other"),
                    "Mallory <m@example.com>",
                );
                w.repo.sign_with(Some(&other));
            }
            World::Rpm(w) => w.resign_with_unknown_key(),
        }
    }

    /// The same repository URL answers with metadata signed by a key the
    /// root does not trust (the "stale lists" trap: yesterday's metadata is
    /// cached).
    pub fn resign_in_place_with_unknown_key(&self) {
        match self {
            World::Apt(_) => self.resign_with_unknown_key(),
            World::Rpm(w) => w.resign_good_with_foreign_key(),
        }
    }

    /// Metadata without any signature.
    pub fn unsign_metadata(&self) {
        match self {
            World::Apt(w) => w.repo.sign_with(None),
            World::Rpm(w) => w.point_at("nometa"),
        }
    }

    /// Good metadata, and 15.4.3's package damaged after indexing.
    pub fn tamper_target_package(&self) {
        match self {
            World::Apt(w) => w
                .repo
                .tamper(&format!("{PKG}_15.4.3_{}.deb", crate::deb::host_arch())),
            World::Rpm(w) => w.point_at("tampered"),
        }
    }

    /// The keyring (apt `signed-by`, rpm `gpgkey=` file) the Teleport
    /// repository is restricted to, as a host path.
    pub fn keyring(&self) -> PathBuf {
        match self {
            World::Apt(w) => w.root.file(KEYRING),
            World::Rpm(w) => w.root.file(KEY_IN_ROOT),
        }
    }

    /// A path inside the root, as a host path.
    pub fn file(&self, abs_in_root: &str) -> PathBuf {
        match self {
            World::Apt(w) => w.root.file(abs_in_root),
            World::Rpm(w) => w.root.file(abs_in_root),
        }
    }

    /// Write a file inside the root (parents created).
    pub fn write(&self, abs_in_root: &str, contents: impl AsRef<[u8]>) {
        let p = self.file(abs_in_root);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, contents).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }

    /// The fingerprint of the key that signs the repository.
    pub fn release_fingerprint(&self) -> String {
        match self {
            World::Apt(w) => w.key.fingerprint(),
            World::Rpm(_) => rpm::fixture().release_fingerprint.clone(),
        }
    }

    /// Requests the repository server has answered.
    pub fn repo_requests(&self) -> usize {
        match self {
            World::Apt(w) => w.repo_server.requests().len(),
            World::Rpm(w) => w.repo_server.requests().len(),
        }
    }

    pub fn state(&self) -> serde_json::Value {
        super::read_state(self.root_path())
    }

    /// A first check of a target below the installed version: the run
    /// waits (no flapping) and records it; the record is then moved 10
    /// minutes into the past, so that the next run's check confirms it.
    pub fn sight_lower_target(&self) {
        self.run(&["run"])
            .expect(0)
            .logs_contain("below the installed version");
        super::backdate_lower_target(self.root_path(), 600);
    }

    /// `status --json` (asserted to exit 0), parsed.
    pub fn status_json(&self) -> serde_json::Value {
        let r = self.run(&["status", "--json"]);
        r.expect(0);
        serde_json::from_str(&r.stdout())
            .unwrap_or_else(|e| panic!("status --json: {e}\n{}", r.stdout()))
    }

    /// Point the updater at a static, self-hosted version server (`/static`
    /// on the version server's host, not a proxy's channel path)
    /// advertising `target`, not critical.
    pub fn use_static_version_server(&self, target: &str) {
        self.set_vs_route("/static/version", Route::ok(target.as_bytes().to_vec()));
        self.set_vs_route("/static/critical", Route::ok("no"));
        self.config("endpoint", &format!("127.0.0.1:{}/static", self.vs_port()));
    }

    pub fn state_file(&self) -> PathBuf {
        self.file(super::STATE_FILE)
    }

    pub fn state_exists(&self) -> bool {
        self.state_file().exists()
    }

    /// Run the real binary with `--root`.
    pub fn run(&self, args: &[&str]) -> Run {
        Run(self.cmd(args).output().unwrap())
    }

    /// The command [`run`](Self::run) runs, to add to (environment,
    /// pipes) or spawn.
    pub fn cmd(&self, args: &[&str]) -> Command {
        super::command(self.root_path(), args)
    }

    /// The root, as a host path.
    pub fn root_path(&self) -> &Path {
        match self {
            World::Apt(w) => w.root.path(),
            World::Rpm(w) => w.root.path(),
        }
    }

    /// The version server (its host also answers the proxy's paths and
    /// stand-ins such as `/readyz`).
    pub fn vs(&self) -> &Server {
        match self {
            World::Apt(w) => &w.vs,
            World::Rpm(w) => &w.vs,
        }
    }
}

impl World {
    /// Point the Teleport repository at `site` (channels `stable/v15` and
    /// `stable/v16`, signed by the site's key, which the root now trusts),
    /// on channel `stable/v15`.
    pub fn point_at_channel_site(&self, site: &crate::channels::ChannelSite) {
        let key = std::fs::read(&site.release_key).unwrap();
        std::fs::write(self.keyring(), &key).unwrap();
        match self {
            World::Apt(w) => w.root.write(
                "/etc/apt/sources.list.d/teleport.list",
                format!(
                    "# Teleport\ndeb [signed-by={KEYRING}] {} bookworm stable/v15\n",
                    site.apt_url()
                )
                .as_bytes(),
            ),
            World::Rpm(w) => {
                w.root.import_key(&site.release_key);
                w.root.write(
                    w.pm.repo_file(),
                    crate::rpm::RpmRepo::repo_file(
                        "teleport",
                        &site.rpm_url("stable/v15"),
                        &rpm::settings(),
                    ),
                );
            }
        }
    }

    /// The agent's readiness endpoint: `/readyz` on the version server's
    /// host answers `route`, `diag-addr` names it, and `health-timeout` is
    /// `timeout` (seconds).
    pub fn set_readiness(&self, route: Route, timeout: &str) {
        self.set_vs_route("/readyz", route);
        self.config("diag-addr", &format!("127.0.0.1:{}", self.vs_port()));
        self.config("health-timeout", timeout);
    }

    /// Readiness that follows what the real package manager installed: 503
    /// while the installed package ships [`BROKEN_MARKER`] (only
    /// [`BROKEN`](super::BROKEN) does), 200 otherwise.
    pub fn broken_gate(&self) -> Route {
        Route::gate(
            &self.file(BROKEN_MARKER),
            Route::status(503, "not ready"),
            Route::ok("ok"),
        )
    }

    /// The Teleport repository definition file, as a host path.
    pub fn repo_definition_path(&self) -> PathBuf {
        match self {
            World::Apt(w) => w.root.file("/etc/apt/sources.list.d/teleport.list"),
            World::Rpm(w) => w.root.file(w.pm.repo_file()),
        }
    }

    /// The Teleport repository definition, as text.
    pub fn repo_definition(&self) -> String {
        std::fs::read_to_string(self.repo_definition_path()).unwrap()
    }

    /// What a run killed in the middle of a channel move leaves: the
    /// definition moved to `stable/v<to_major>` and its backup beside it,
    /// written by the backends library's own `ChannelMove` (what the
    /// updater writes). Returns the backup's host path.
    pub fn interrupt_channel_move(
        &self,
        site: &crate::channels::ChannelSite,
        to_major: u64,
    ) -> PathBuf {
        use backends::channel::{ChannelMove, Format};
        let real = self.repo_definition_path();
        let sys = backends::System::rooted(&self.file("/")).unwrap();
        let uris = vec![site.apt_url()];
        let format = match self {
            World::Apt(_) => Format::apt(&real, &uris),
            World::Rpm(_) => Format::Repo { id: "teleport" },
        };
        let m = ChannelMove::plan(&sys, &real, format, to_major)
            .unwrap()
            .expect("a channel to move");
        m.apply().unwrap();
        m.backup
    }

    /// Damage the agent's binary in place (same size, other bytes), as a
    /// disk fault or a bad copy would.
    pub fn damage_agent_binary(&self) {
        let p = self.file("/usr/bin/teleport");
        let mut b = std::fs::read(&p).unwrap();
        for x in b.iter_mut().skip(12) {
            *x = b'#';
        }
        std::fs::write(&p, b).unwrap();
    }
}
