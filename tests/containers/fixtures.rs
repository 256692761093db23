//! What every row installs, built once per test process on the host:
//! a throwaway release key; the fake agent (`teleport-ent`, a real systemd
//! service, see `testkit::agent`) as .debs and signed .rpms; the updater's
//! own .deb and .rpm built by `scripts/build-packages` around the release
//! binary (glibc 2.17 floor) of this tree, twice: the version of this tree, and a higher one
//! (the same tree with its version bumped), for the upgrade scenario.
//! Per row: a signed repository holding all of them, served on loopback,
//! and a version server.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use testkit::aptrepo::AptRepo;
use testkit::deb::build_deb;
use testkit::gpg::Key;
use testkit::http::{Route, Server};
use testkit::rpm::{build_rpm, sign_rpm, RpmRepo};

use crate::nspawn::run;

pub const AGENT: &str = "teleport-ent";
pub const UPDATER: &str = "teleport-ent-updater";
/// Every agent version the repositories offer. 16.0.1 is never a target:
/// it is there so that a routine upgrade would move an agent that is not
/// held. [`BROKEN`] is among them.
pub const AGENT_VERSIONS: &[&str] = &["15.4.2", "15.4.3", "15.4.4", "15.4.5", "16.0.0", "16.0.1"];
/// The version whose postinst (%post) is slow: it touches
/// [`SLOW_STARTED`], sleeps 10 s, then touches [`SLOW_DONE`] (the updater
/// is stopped by systemd in the middle of it).
pub const SLOW: &str = "15.4.5";
pub const SLOW_STARTED: &str = "/run/slow-postinst-started";
pub const SLOW_DONE: &str = "/run/slow-postinst-done";
const SLOW_SCRIPT: &str =
    "touch /run/slow-postinst-started\nsleep 10\ntouch /run/slow-postinst-done\n";
/// The version whose agent crash-loops under systemd
/// (`testkit::agent::deb_spec_broken`): the health check must roll it back.
pub const BROKEN: &str = "15.4.4";
pub const CHANNEL: &str = "/v1/webapi/automaticupgrades/channel/default";

/// One build of the updater's packages.
pub struct UpdaterBuild {
    /// The package version (`0.1.0`), the same in the .deb and the .rpm
    /// (whose release is 1).
    pub version: String,
    pub deb: PathBuf,
    /// The .rpm exactly as `scripts/build-packages` built it, signed with
    /// the release key as release packages are.
    pub rpm: PathBuf,
}

pub struct Fixtures {
    pub dir: tempfile::TempDir,
    pub key: Key,
    /// The release key, armored.
    pub key_asc: PathBuf,
    pub agent_debs: Vec<PathBuf>,
    pub agent_rpms: Vec<PathBuf>,
    /// The agent program unpatched: copied into a container as the
    /// connection probe (`probe <out> <go-file>`).
    pub agent_program: PathBuf,
    pub updater: UpdaterBuild,
    pub updater_next: UpdaterBuild,
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

impl Fixtures {
    pub fn build(parent: &Path) -> Result<Fixtures, String> {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        let dir = tempfile::Builder::new()
            .prefix("fixtures-")
            .tempdir_in(parent)
            .map_err(|e| e.to_string())?;
        // A short GNUPGHOME (gpg-agent's socket path is limited).
        let key = Key::generate(
            Path::new("/tmp"),
            "Teleport matrix test <matrix@example.com>",
        );
        // For reap_stale_work: a killed test process leaves the key's
        // gpg-agent running.
        std::fs::write(
            parent.join("gnupghome"),
            key.gnupghome().to_string_lossy().as_bytes(),
        )
        .map_err(|e| e.to_string())?;
        let key_asc = dir.path().join("RPM-GPG-KEY-teleport");
        key.export_armored(&key_asc);

        // The agent program (graceful restarts like Teleport's), built once;
        // each package carries a copy patched with its version.
        let agent_program = testkit::agent::build_program(dir.path())?;
        let program = std::fs::read(&agent_program).map_err(|e| e.to_string())?;
        let debs = dir.path().join("debs");
        let rpms = dir.path().join("rpms");
        let agent_debs = AGENT_VERSIONS
            .iter()
            .map(|&v| {
                let mut spec = if v == BROKEN {
                    testkit::agent::deb_spec_broken(&program, AGENT, v)
                } else {
                    testkit::agent::deb_spec(&program, AGENT, v)
                };
                if v == SLOW {
                    spec.postinst = Some(SLOW_SCRIPT.into());
                }
                build_deb(&spec, &debs)
            })
            .collect();
        let agent_rpms = AGENT_VERSIONS
            .iter()
            .map(|&v| {
                let mut spec = if v == BROKEN {
                    testkit::agent::rpm_spec_broken(&program, AGENT, v)
                } else {
                    testkit::agent::rpm_spec(&program, AGENT, v)
                };
                if v == SLOW {
                    spec.post = Some(SLOW_SCRIPT.into());
                }
                let p = build_rpm(&spec, &rpms);
                sign_rpm(&key, &p);
                p
            })
            .collect();

        let current = env!("CARGO_PKG_VERSION");
        let binary = release_binary(dir.path())?;
        let updater = build_updater(
            &repo_root(),
            current,
            &dir.path().join("updater"),
            &key,
            &binary,
        )?;
        let next_version = bumped(current)?;
        let next_tree = bumped_tree(&dir.path().join("tree-next"), &next_version)?;
        let updater_next = build_updater(
            &next_tree,
            &next_version,
            &dir.path().join("updater-next"),
            &key,
            &binary,
        )?;
        Ok(Fixtures {
            dir,
            key,
            key_asc,
            agent_debs,
            agent_rpms,
            agent_program,
            updater,
            updater_next,
        })
    }
}

/// The release binary of this tree for the host's architecture, as
/// `scripts/build-packages` builds it (glibc 2.17 floor, in
/// target/release-build: incremental after the first build), so that the
/// rows of older distributions (Debian 11: glibc 2.31) get a binary that
/// runs there, as users do.
fn release_binary(work: &Path) -> Result<PathBuf, String> {
    let arch = std::env::consts::ARCH;
    let mut cmd = Command::new("bash");
    cmd.arg(repo_root().join("scripts/build-packages"))
        .arg("--arch")
        .arg(arch)
        .arg("--no-deb")
        .arg("--no-rpm")
        .arg("--out")
        .arg(work.join("release-binary"))
        // Always target/release-build: never the directory cargo test holds.
        .env_remove("CARGO_TARGET_DIR");
    let o = run(&mut cmd, None, Duration::from_secs(3600))?;
    if !o.ok() {
        return Err(format!(
            "the release build (scripts/build-packages --arch {arch}) failed; scripts/deps installs its toolchain\n{}",
            o.tail(30)
        ));
    }
    let bin = repo_root().join(format!(
        "target/release-build/{arch}-unknown-linux-gnu/release/teleport-upgrade"
    ));
    if !bin.is_file() {
        return Err(format!("no release binary at {}", bin.display()));
    }
    Ok(bin)
}

/// `scripts/build-packages --out OUT --binary BINARY --fast` of `tree`,
/// the .rpm signed.
fn build_updater(
    tree: &Path,
    version: &str,
    out: &Path,
    key: &Key,
    binary: &Path,
) -> Result<UpdaterBuild, String> {
    let (deb, rpm) = build_packages(tree, out, binary)?;
    let deb = deb.ok_or("build-packages built no .deb")?;
    let rpm = rpm.ok_or("build-packages built no .rpm")?;
    let pkg_version = version.replacen('-', "~", 1);
    if !deb.to_string_lossy().contains(&format!("_{pkg_version}_")) {
        return Err(format!("{} is not version {pkg_version}", deb.display()));
    }
    sign_rpm(key, &rpm);
    Ok(UpdaterBuild {
        version: pkg_version,
        deb,
        rpm,
    })
}

/// `scripts/build-packages --out OUT --binary BINARY --fast` of `tree`:
/// the .deb and .rpm it printed.
fn build_packages(
    tree: &Path,
    out: &Path,
    binary: &Path,
) -> Result<(Option<PathBuf>, Option<PathBuf>), String> {
    let mut cmd = Command::new("bash");
    cmd.arg(tree.join("scripts/build-packages"))
        .arg("--out")
        .arg(out)
        .arg("--binary")
        .arg(binary)
        .arg("--fast")
        // The crates in the binary are this repository's (a bumped tree
        // differs only in its version): their licences are read here.
        .arg("--licenses-of")
        .arg(repo_root());
    let o = run(&mut cmd, None, Duration::from_secs(300))?;
    if !o.ok() {
        return Err(format!(
            "scripts/build-packages failed in {}\n{}",
            tree.display(),
            o.tail(30)
        ));
    }
    let paths: Vec<PathBuf> = o.stdout.lines().map(PathBuf::from).collect();
    let find = |ext: &str| {
        paths
            .iter()
            .find(|p| p.extension().is_some_and(|e| e == ext))
            .cloned()
    };
    Ok((find("deb"), find("rpm")))
}

/// The next patch version: `0.1.0` -> `0.1.1`.
fn bumped(v: &str) -> Result<String, String> {
    let mut s = semver::Version::parse(v).map_err(|e| format!("{v}: {e}"))?;
    s.patch += 1;
    s.pre = semver::Prerelease::EMPTY;
    Ok(s.to_string())
}

/// A copy of what `scripts/build-packages` reads (the script, Cargo.toml,
/// debian/, rpm/, systemd/, packaging/, docs/; the crates' licences come
/// from this repository, `--licenses-of`) with the workspace version set to
/// `version` and a matching debian/changelog entry. Nothing else differs.
fn bumped_tree(dest: &Path, version: &str) -> Result<PathBuf, String> {
    let src = repo_root();
    copy_tree(&src, dest)?;
    let cargo = std::fs::read_to_string(src.join("Cargo.toml")).map_err(|e| e.to_string())?;
    let current = env!("CARGO_PKG_VERSION");
    let mut in_ws = false;
    let mut replaced = 0;
    let mut new_cargo = String::new();
    for line in cargo.lines() {
        if line.starts_with('[') {
            in_ws = line.trim() == "[workspace.package]";
        }
        if in_ws && line.trim() == format!("version = \"{current}\"") {
            new_cargo.push_str(&format!("version = \"{version}\"\n"));
            replaced += 1;
        } else {
            new_cargo.push_str(line);
            new_cargo.push('\n');
        }
    }
    if replaced != 1 {
        return Err(format!(
            "no `version = \"{current}\"` in [workspace.package] of Cargo.toml"
        ));
    }
    std::fs::write(dest.join("Cargo.toml"), new_cargo).map_err(|e| e.to_string())?;

    let changelog_path = dest.join("debian/changelog");
    let old = std::fs::read_to_string(&changelog_path).map_err(|e| e.to_string())?;
    let trailer = old
        .lines()
        .find(|l| l.starts_with(" -- "))
        .ok_or("debian/changelog has no trailer line")?;
    let entry = format!(
        "teleport-ent-updater (1:{}) unstable; urgency=medium\n\n  * Test build for the container matrix (version bump only).\n\n{trailer}\n\n",
        version.replacen('-', "~", 1)
    );
    std::fs::write(&changelog_path, entry + &old).map_err(|e| e.to_string())?;
    Ok(dest.to_path_buf())
}

/// Copy what `scripts/build-packages` reads from `src` to `dest` (replaced).
fn copy_tree(src: &Path, dest: &Path) -> Result<PathBuf, String> {
    let _ = std::fs::remove_dir_all(dest);
    std::fs::create_dir_all(dest.join("scripts")).map_err(|e| e.to_string())?;
    let copy = |rel: &str| {
        std::fs::copy(src.join(rel), dest.join(rel)).map_err(|e| format!("copy {rel}: {e}"))
    };
    copy("scripts/build-packages")?;
    copy("Cargo.toml")?;
    for d in ["debian", "rpm", "systemd", "packaging", "docs"] {
        let mut cp = Command::new("cp");
        cp.arg("-a").arg(src.join(d)).arg(dest.join(d));
        let o = run(&mut cp, None, Duration::from_secs(60))?;
        if !o.ok() {
            return Err(format!("copying {d}/ failed\n{}", o.tail(5)));
        }
    }
    Ok(dest.to_path_buf())
}

/// A signed repository of one row, served on loopback.
pub enum Repo {
    Apt { repo: AptRepo, server: Server },
    Rpm { repo: RpmRepo, server: Server },
}

pub const APT_SUITE: &str = "bookworm";
pub const APT_COMPONENT: &str = "stable/v15";

impl Repo {
    /// Every agent version and the current updater, signed by the release
    /// key.
    pub fn apt(fx: &Fixtures, dir: &Path) -> Repo {
        let mut debs = fx.agent_debs.clone();
        debs.push(fx.updater.deb.clone());
        let repo = AptRepo::build(dir, APT_SUITE, APT_COMPONENT, &debs, Some(&fx.key));
        let server = Server::start(repo.dir());
        Repo::Apt { repo, server }
    }

    pub fn rpm(fx: &Fixtures, dir: &Path) -> Repo {
        let mut rpms = fx.agent_rpms.clone();
        rpms.push(fx.updater.rpm.clone());
        let repo = RpmRepo::build(dir, &rpms, Some(&fx.key));
        let server = Server::start(repo.dir());
        Repo::Rpm { repo, server }
    }

    pub fn url(&self) -> String {
        match self {
            Repo::Apt { server, .. } | Repo::Rpm { server, .. } => format!("{}/", server.url()),
        }
    }

    /// Publish the higher updater version.
    pub fn publish_next_updater(&mut self, fx: &Fixtures) -> Result<(), String> {
        match self {
            Repo::Apt { repo, .. } => {
                repo.add_debs(
                    APT_COMPONENT,
                    std::slice::from_ref(&fx.updater_next.deb),
                    Some(&fx.key),
                );
            }
            Repo::Rpm { repo, .. } => {
                let dest = repo.dir().join(fx.updater_next.rpm.file_name().unwrap());
                std::fs::copy(&fx.updater_next.rpm, dest).map_err(|e| e.to_string())?;
                repo.reindex(Some(&fx.key));
            }
        }
        Ok(())
    }
}

/// The version server of one row.
pub struct VersionServer {
    _dir: tempfile::TempDir,
    pub server: Server,
}

impl VersionServer {
    pub fn start(parent: &Path) -> VersionServer {
        let dir = tempfile::Builder::new()
            .prefix("vs-")
            .tempdir_in(parent)
            .unwrap();
        let server = Server::start(dir.path());
        let vs = VersionServer { _dir: dir, server };
        vs.set("none", false);
        vs
    }

    /// `host:port/path` for the `endpoint` file.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}{CHANNEL}", self.server.port())
    }

    /// Advertise `target`, critical or not.
    pub fn set(&self, target: &str, critical: bool) {
        let body = if target == "none" {
            "none\n".to_string()
        } else {
            format!("v{target}\n")
        };
        self.server
            .set_route(&format!("{CHANNEL}/version"), Route::ok(body.into_bytes()));
        self.server.set_route(
            &format!("{CHANNEL}/critical"),
            Route::ok(if critical { "yes\n" } else { "no\n" }.as_bytes().to_vec()),
        );
    }

    /// Requests for `/version` so far.
    pub fn version_hits(&self) -> usize {
        self.server.hits(&format!("{CHANNEL}/version"))
    }
}

/// Remove the work directories (`containers-<pid>` below `tmp`) of test
/// processes that are gone, ending the gpg-agent of their key.
pub fn reap_stale_work(tmp: &Path) {
    let Ok(rd) = std::fs::read_dir(tmp) else {
        return;
    };
    for e in rd.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("containers-")
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if let Ok(home) = std::fs::read_to_string(e.path().join("gnupghome")) {
            let home = PathBuf::from(home.trim());
            if home.starts_with("/tmp/") {
                testkit::rpm::end_gpg_agents_under(&home);
                let _ = std::fs::remove_dir_all(&home);
            }
        }
        let _ = std::fs::remove_dir_all(e.path());
    }
}
