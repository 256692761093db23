//! An apt/dpkg alternate root without chroot: the host's `apt-get` and `dpkg`
//! binaries and methods, with every state, cache, list, log and config path
//! inside `<root>`.
//!
//! The `APT_CONFIG` file lives outside the root, in a sibling temporary
//! directory the [`AptRoot`] owns and removes on drop (the root itself belongs
//! to the caller). What it sets, and why:
//!
//! - `Dir "<root>/"`: every *relative* apt path (etc/apt, var/lib/apt,
//!   var/cache/apt, var/log/apt) resolves inside the root, while the absolute
//!   defaults (`Dir::Bin::dpkg` = /usr/bin/dpkg, `Dir::Bin::Methods` =
//!   /usr/lib/apt/methods) keep using the host's binaries. `RootDir` would
//!   re-root those too (chroot-like) and is not what we want.
//!   Because apt reads `APT_CONFIG` *before* `Dir::Etc::Parts`, the host's
//!   /etc/apt/apt.conf.d (docker-clean hooks, proxies, packagekit...) is never
//!   read: the root's own, empty, apt.conf.d is.
//! - `Dir::State::status "<root>/var/lib/dpkg/status"`: its default is an
//!   absolute path (the host's dpkg database).
//! - `Dir::Log "<root>/var/log/apt"`: apt-get install aborts at the very end
//!   with "Directory '<root>/var/log/apt/' missing" (after writing
//!   eipp.log.xz) unless that directory exists; it is created and named
//!   explicitly.
//! - `DPkg::Options {"--root=<root>"; "--admindir=<root>/var/lib/dpkg";
//!   "--force-not-root";}`: apt runs the host's dpkg, which must unpack into
//!   the root and keep its database there. `--force-not-root` is harmless as
//!   root and lets the same setup run unprivileged. Note that `dpkg --root`
//!   chroots into the root to run maintainer scripts, which therefore need a
//!   shell inside the root (the fake agent package has none).
//! - `APT::Sandbox::User "root"`: apt runs its download methods as `_apt`
//!   (measured: `/usr/lib/apt/methods/http` as user `_apt`). That works as
//!   long as every ancestor of the root is world-searchable (tempfile's
//!   directories are 0755 under umask 022), but below any 0700 directory
//!   (`mktemp -d`, a GNUPGHOME, a stricter umask) apt falls back to root
//!   *and* prints "W: Download is performed unsandboxed as root as file ...
//!   couldn't be accessed by user '_apt'" on every fetch, which would pollute
//!   any test that checks apt's output for warnings. Signature checking is
//!   unaffected by this setting.
//! - `Acquire::http::Proxy::127.0.0.1 "DIRECT"`: a developer's `http_proxy`
//!   must not capture the loopback test server.
//! - `Acquire::Languages "none"`: no Translation-* files are looked for.
//!
//! Every command gets `LC_ALL=C` (tests match apt's English messages) and
//! `DEBIAN_FRONTEND=noninteractive`.

use std::path::{Component, Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::gpg::{run, set_mode};

pub struct AptRoot {
    root: PathBuf,
    /// Holds the APT_CONFIG file and the sources lists of
    /// [`AptRoot::apt_get_with_sources`]; removed on drop.
    conf_dir: tempfile::TempDir,
    config: PathBuf,
    sources_counter: AtomicUsize,
}

impl AptRoot {
    /// Creates (or completes) an alternate root at `dir`.
    pub fn new(dir: &Path) -> AptRoot {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let root = dir.canonicalize().expect("canonicalize root");
        let text = root.to_str().expect("root path must be UTF-8");
        assert!(
            !text.contains(['"', ';', '{', '}', '\n']),
            "the root path cannot be written in apt.conf syntax: {text:?}"
        );

        for d in [
            "etc/apt/sources.list.d",
            "etc/apt/apt.conf.d",
            "etc/apt/preferences.d",
            "etc/apt/trusted.gpg.d",
            "var/lib/dpkg/info",
            "var/lib/dpkg/updates",
            "var/lib/dpkg/triggers",
            "var/lib/apt/lists/partial",
            "var/cache/apt/archives/partial",
            "var/log/apt",
            "usr/share/keyrings",
            "tmp",
        ] {
            std::fs::create_dir_all(root.join(d)).expect("create root dir");
        }
        set_mode(&root.join("tmp"), 0o1777);
        for f in ["var/lib/dpkg/status", "var/lib/dpkg/available"] {
            let p = root.join(f);
            if !p.exists() {
                std::fs::write(&p, b"").expect("create dpkg db file");
            }
        }
        // /etc/os-release is a symlink on Debian: copy follows it.
        if let Err(e) = std::fs::copy("/etc/os-release", root.join("etc/os-release")) {
            panic!("copy /etc/os-release: {e}");
        }

        let parent = root.parent().unwrap_or(Path::new("/tmp"));
        let conf_dir = tempfile::Builder::new()
            .prefix("aptconf-")
            .tempdir_in(parent)
            .or_else(|_| tempfile::tempdir())
            .expect("config tempdir");
        let config = conf_dir.path().join("apt.conf");
        let conf = format!(
            "Dir \"{r}/\";\n\
             Dir::State::status \"{r}/var/lib/dpkg/status\";\n\
             Dir::Log \"{r}/var/log/apt\";\n\
             DPkg::Options {{\"--root={r}\";\"--admindir={r}/var/lib/dpkg\";\"--force-not-root\";}};\n\
             APT::Sandbox::User \"root\";\n\
             Acquire::http::Proxy::127.0.0.1 \"DIRECT\";\n\
             Acquire::Languages \"none\";\n",
            r = text
        );
        std::fs::write(&config, conf).expect("write APT_CONFIG");
        AptRoot {
            root,
            conf_dir,
            config,
            sources_counter: AtomicUsize::new(0),
        }
    }

    /// The root directory (absolute).
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The `APT_CONFIG` file (outside the root).
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// `<root>/var/lib/dpkg`.
    pub fn admindir(&self) -> PathBuf {
        self.root.join("var/lib/dpkg")
    }

    /// The host path of `abs_in_root` (e.g. `/usr/bin/teleport`).
    pub fn file(&self, abs_in_root: &str) -> PathBuf {
        let mut p = self.root.clone();
        for c in Path::new(abs_in_root).components() {
            match c {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(s) => p.push(s),
                _ => panic!("bad path in root: {abs_in_root:?}"),
            }
        }
        p
    }

    /// Writes `contents` to `abs_in_root`, creating parent directories.
    pub fn write(&self, abs_in_root: &str, contents: &[u8]) {
        let p = self.file(abs_in_root);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("create parents");
        }
        std::fs::write(&p, contents).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    }

    /// A command for `program` (apt-get, apt-cache, apt-mark, apt-config...)
    /// with `APT_CONFIG`, `DEBIAN_FRONTEND=noninteractive` and `LC_ALL=C` set.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("APT_CONFIG", &self.config)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("LC_ALL", "C");
        cmd
    }

    /// `dpkg --root=<root> --admindir=<root>/var/lib/dpkg --force-not-root`,
    /// arguments still to add.
    pub fn dpkg_command(&self) -> Command {
        let mut cmd = Command::new("dpkg");
        cmd.env("LC_ALL", "C")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .arg(format!("--root={}", self.root.display()))
            .arg(format!("--admindir={}", self.admindir().display()))
            .arg("--force-not-root");
        cmd
    }

    /// `dpkg --root=... --admindir=... --force-not-root ARGS`.
    pub fn dpkg(&self, args: &[&str]) -> Output {
        self.dpkg_command().args(args).output().expect("run dpkg")
    }

    /// Installs a .deb directly with dpkg (to put the "currently installed"
    /// version in place). Panics on failure.
    pub fn dpkg_install(&self, deb: &Path) {
        let mut cmd = self.dpkg_command();
        cmd.arg("-i").arg(deb);
        run(cmd, "dpkg -i");
    }

    /// `dpkg-query -W -f '${db:Status-Abbrev}'` (e.g. `ii `, `hi `), None when
    /// dpkg does not know the package.
    pub fn status_abbrev(&self, pkg: &str) -> Option<String> {
        self.query(pkg, "${db:Status-Abbrev}")
    }

    /// The installed version: Some only when the status is `ii` or `hi`
    /// (installed, wanted installed or held).
    pub fn installed_version(&self, pkg: &str) -> Option<String> {
        let out = self.query(pkg, "${db:Status-Abbrev}|${Version}")?;
        let (abbrev, version) = out.split_once('|')?;
        let abbrev = abbrev.as_bytes();
        if abbrev.len() >= 2 && matches!(abbrev[0], b'i' | b'h') && abbrev[1] == b'i' {
            Some(version.to_string())
        } else {
            None
        }
    }

    /// Whether the package's selection state is `hold`.
    pub fn is_held(&self, pkg: &str) -> bool {
        self.query(pkg, "${db:Status-Want}").as_deref() == Some("hold")
    }

    /// Sets or clears a hold directly in dpkg's database
    /// (`dpkg --set-selections`), as `apt-mark hold` does.
    pub fn set_hold(&self, pkg: &str, hold: bool) {
        let mut child = self
            .dpkg_command()
            .arg("--set-selections")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("run dpkg --set-selections");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            writeln!(stdin, "{pkg} {}", if hold { "hold" } else { "install" }).unwrap();
        }
        let status = child.wait().expect("wait dpkg");
        assert!(status.success(), "dpkg --set-selections failed");
    }

    /// `apt-get ARGS` in this root.
    pub fn apt_get(&self, args: &[&str]) -> Output {
        self.command("apt-get")
            .args(args)
            .output()
            .expect("run apt-get")
    }

    /// `apt-get -o Dir::Etc::SourceList=<file with sources_list_text>
    /// -o Dir::Etc::SourceParts=- ARGS`: only these sources are used, even if
    /// the root has others in etc/apt/sources.list(.d).
    pub fn apt_get_with_sources(&self, sources_list_text: &str, args: &[&str]) -> Output {
        let n = self.sources_counter.fetch_add(1, Ordering::Relaxed);
        let list = self.conf_dir.path().join(format!("sources-{n}.list"));
        let mut text = sources_list_text.to_string();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        std::fs::write(&list, text).expect("write sources list");
        self.command("apt-get")
            .arg("-o")
            .arg(format!("Dir::Etc::SourceList={}", list.display()))
            .arg("-o")
            .arg("Dir::Etc::SourceParts=-")
            .args(args)
            .output()
            .expect("run apt-get")
    }

    fn query(&self, pkg: &str, format: &str) -> Option<String> {
        let out = Command::new("dpkg-query")
            .env("LC_ALL", "C")
            .arg(format!("--admindir={}", self.admindir().display()))
            .arg("-W")
            .arg("-f")
            .arg(format)
            .arg(pkg)
            .output()
            .expect("run dpkg-query");
        // Exit 1 and "no packages found matching" for unknown packages.
        if !out.status.success() {
            return None;
        }
        Some(String::from_utf8_lossy(&out.stdout).to_string())
    }
}

impl std::fmt::Debug for AptRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AptRoot")
            .field("root", &self.root)
            .field("config", &self.config)
            .finish()
    }
}

/// Copy the host's `programs` (`(host path, path in the root)`) and the
/// libraries they load into `root`, with a `/var/tmp`: `dpkg --root` runs
/// maintainer scripts chrooted into the root, so they need a shell (and
/// whatever else they call) inside it.
pub fn give_root_programs(root: &Path, programs: &[(&str, &str)]) {
    for (from, to) in programs {
        let to = root.join(to);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, &to).unwrap();
        let out = std::process::Command::new("ldd")
            .arg(from)
            .output()
            .unwrap();
        for lib in String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter(|w| w.starts_with('/'))
        {
            let dest = root.join(lib.trim_start_matches('/'));
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            if !dest.exists() {
                std::fs::copy(lib, &dest).unwrap();
            }
        }
    }
    std::fs::create_dir_all(root.join("var/tmp")).unwrap();
}
