//! The fixtures: keys, agent packages, the signed repository, the version server, apt roots.

use super::*;

// ---------------------------------------------------------------- fixtures

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// What every measurement shares: the keys, the agent packages, the signed
/// Teleport repository and the version server, all on loopback.
/// The size of the agent package the fixtures build.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Size {
    /// A few KiB: the package manager's fixed costs only.
    Tiny,
    /// A real agent's size: a ~200 MB executable beside `teleport` (a real
    /// `teleport-ent` installs 200-500 MB of executables), and a dpkg
    /// database of a typical server (~1,500 installed packages).
    Real,
}

impl Size {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Size::Tiny => "tiny package",
            Size::Real => "real-size package (200 MB executable, 1,500-package dpkg database of ~800-byte stanzas)",
        }
    }
}

/// Bytes of the real-size executable.
pub(crate) const REAL_EXEC_BYTES: usize = 200 * 1024 * 1024;
/// Synthetic packages in the real-size dpkg database.
pub(crate) const REAL_DB_PACKAGES: usize = 1500;

/// `n` bytes that look like a program to a compressor: pseudo-random
/// blocks (xorshift) between runs of repeated text, so gzip neither
/// collapses them nor spends its worst case on them.
pub(crate) fn executable_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(n);
    let mut x = seed | 1;
    while v.len() < n {
        for _ in 0..(48 * 1024 / 8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.extend_from_slice(&x.to_le_bytes());
        }
        for _ in 0..512 {
            v.extend_from_slice(b"teleport.");
        }
    }
    v.truncate(n);
    v
}

pub(crate) struct Fixture {
    pub(crate) size: Size,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) key: Key,
    pub(crate) debs: Vec<PathBuf>,
    pub(crate) _repo: AptRepo,
    pub(crate) repo_server: Server,
    pub(crate) vs: Server,
    pub(crate) updater: PathBuf,
    pub(crate) baseline_script: PathBuf,
}

impl Fixture {
    pub(crate) fn new(updater: PathBuf, baseline_script: PathBuf, size: Size) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = Key::generate(
            &dir.path().join("keys"),
            "Teleport Bench Release <bench@example.com>",
        );
        let debs: Vec<PathBuf> = ["15.4.2", "15.4.3"]
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let mut spec = DebSpec::agent(PKG, v);
                if size == Size::Real {
                    spec.files.push((
                        "/usr/bin/tctl".into(),
                        executable_bytes(REAL_EXEC_BYTES, 0x9e37_79b9_7f4a_7c15 + i as u64),
                        0o755,
                    ));
                }
                build_deb(&spec, &dir.path().join("debs"))
            })
            .collect();
        let repo = AptRepo::build(
            &dir.path().join("repo"),
            "bookworm",
            "stable/v15",
            &debs,
            Some(&key),
        );
        let repo_server = Server::start(repo.dir());
        let vs_root = dir.path().join("vs");
        std::fs::create_dir_all(&vs_root).unwrap();
        let vs = Server::start(&vs_root);
        vs.set_route(&format!("{CHANNEL}/version"), Route::ok("v15.4.3\n"));
        vs.set_route(&format!("{CHANNEL}/critical"), Route::ok("no\n"));
        Fixture {
            size,
            dir,
            key,
            debs,
            _repo: repo,
            repo_server,
            vs,
            updater,
            baseline_script,
        }
    }

    pub(crate) fn deb(&self, version: &str) -> &Path {
        self.debs
            .iter()
            .find(|d| {
                d.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .contains(&format!("_{version}_"))
            })
            .expect("known version")
    }

    /// A root with `installed` in place, the Teleport source (signed-by its
    /// keyring), the updater's configuration (version server on loopback,
    /// apt, the package named) and a schedule with a window open now.
    pub(crate) fn root(&self, dir: &Path, installed: &str) -> AptRoot {
        let root = AptRoot::new(dir);
        if self.size == Size::Real {
            real::pad_dpkg_database(&root, REAL_DB_PACKAGES);
        }
        self.finish_root(root, installed)
    }

    /// The rest of [`Fixture::root`], on a root whose dpkg database is made.
    pub(crate) fn finish_root(&self, root: AptRoot, installed: &str) -> AptRoot {
        root.dpkg_install(self.deb(installed));
        self.key.export_armored(&root.file(KEYRING));
        root.write(
            "/etc/apt/sources.list.d/teleport.list",
            format!(
                "deb [signed-by={KEYRING}] {}/ bookworm stable/v15\n",
                self.repo_server.url()
            )
            .as_bytes(),
        );
        self.set_window(&root, true);
        for (name, value) in [
            ("endpoint", format!("127.0.0.1:{}{CHANNEL}", self.vs.port())),
            ("insecure", "yes".into()),
            ("installer", "apt".into()),
            ("package", PKG.into()),
        ] {
            root.write(
                &format!("/etc/teleport-upgrade.d/{name}"),
                format!("{value}\n").as_bytes(),
            );
        }
        root
    }

    /// A schedule with a window open now (`open`), or only tomorrow.
    pub(crate) fn set_window(&self, root: &AptRoot, open: bool) {
        let n = now();
        let now_window = if open {
            format!("{} {}\n", n - 600, n + 6 * 3600)
        } else {
            String::new()
        };
        root.write(
            "/etc/teleport-upgrade.d/schedule",
            format!(
                "# generated by teleport\n{now_window}{} {}\n",
                n + 86400,
                n + 90000
            )
            .as_bytes(),
        );
    }

    pub(crate) fn updater_cmd(&self, root: &AptRoot, args: &[&str]) -> Command {
        let mut c = clean_command(&self.updater);
        c.arg("--root").arg(root.path()).args(args);
        c
    }

    pub(crate) fn baseline_cmd(&self, root: &AptRoot) -> Command {
        let mut c = clean_command("/bin/bash");
        c.arg(&self.baseline_script)
            .arg("--config-dir")
            .arg(root.file("/etc/teleport-upgrade.d"))
            .arg("--admindir")
            .arg(root.admindir());
        c
    }

    /// The shipped v1 script's no-op as reconstructed in
    /// `scripts/bench-v1-shipped.sh` (beside the lean baseline): its hold
    /// on every run (`apt-mark`, pointed at the root by its APT_CONFIG),
    /// its 30-minute cache of the version server's answers in `state`.
    pub(crate) fn shipped_cmd(&self, root: &AptRoot, state: &Path) -> Command {
        let mut c = clean_command("/bin/bash");
        c.arg(self.baseline_script.with_file_name("bench-v1-shipped.sh"))
            .arg("--config-dir")
            .arg(root.file("/etc/teleport-upgrade.d"))
            .arg("--state-dir")
            .arg(state)
            .arg("--root")
            .arg(root.path())
            .env("APT_CONFIG", root.config_path());
        c
    }
}
