//! Real `.deb` packages built with `dpkg-deb`.
//!
//! Traps avoided here:
//! - `dpkg-deb` refuses a control directory whose mode is not between 0755 and
//!   0775, and temporary directories are created 0700: every directory of the
//!   staging tree is set to 0755 explicitly (the staging root too, as it
//!   becomes the `./` entry of the data archive).
//! - `--root-owner-group` makes every file root:root whoever builds.
//! - Debian file names leave the epoch out (`2:1.0` gives `name_1.0_arch.deb`),
//!   as `dpkg-name` does; a `:` in a file name would also upset URLs.

use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::gpg::{run, set_mode};

/// What goes into a package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DebSpec {
    pub name: String,
    pub version: String,
    pub arch: String,
    /// (absolute path inside the package, contents, mode)
    pub files: Vec<(String, Vec<u8>, u32)>,
    /// Body of `DEBIAN/postinst`. A `#!/bin/sh\nset -e\n` header is added when
    /// it does not start with `#!`. Note: `dpkg --root` runs maintainer
    /// scripts chrooted into the root, so they need a shell inside it.
    pub postinst: Option<String>,
    /// Paths of `files` listed in `DEBIAN/conffiles` (dpkg then keeps an
    /// administrator's changes to them, and `dpkg --verify` marks them `c`).
    pub conffiles: Vec<String>,
}

impl DebSpec {
    /// A fake Teleport agent: host architecture, `/usr/bin/teleport` (a
    /// `#!/bin/sh` script printing `Teleport v<version> git: go1.22`) and
    /// `/usr/share/doc/<name>/VERSION` (the version plus a newline); no
    /// maintainer scripts.
    pub fn agent(name: &str, version: &str) -> DebSpec {
        assert!(
            !version.contains('\''),
            "a Debian version cannot contain a quote: {version:?}"
        );
        let script = format!("#!/bin/sh\necho 'Teleport v{version} git: go1.22'\n");
        DebSpec {
            name: name.to_string(),
            version: version.to_string(),
            arch: host_arch().to_string(),
            files: vec![
                ("/usr/bin/teleport".to_string(), script.into_bytes(), 0o755),
                (
                    format!("/usr/share/doc/{name}/VERSION"),
                    format!("{version}\n").into_bytes(),
                    0o644,
                ),
            ],
            postinst: None,
            conffiles: Vec::new(),
        }
    }

    /// Adds `path` (mode 0644) with `contents` and lists it as a conffile.
    pub fn with_conffile(mut self, path: &str, contents: &[u8]) -> DebSpec {
        self.files
            .push((path.to_string(), contents.to_vec(), 0o644));
        self.conffiles.push(path.to_string());
        self
    }

    /// The file name `build_deb` gives this package:
    /// `<name>_<version without epoch>_<arch>.deb`.
    pub fn file_name(&self) -> String {
        let version = match self.version.split_once(':') {
            Some((_epoch, rest)) => rest,
            None => &self.version,
        };
        format!("{}_{}_{}.deb", self.name, version, self.arch)
    }
}

/// The host's dpkg architecture (`dpkg --print-architecture`), cached.
pub fn host_arch() -> &'static str {
    static ARCH: OnceLock<String> = OnceLock::new();
    ARCH.get_or_init(|| {
        let mut cmd = Command::new("dpkg");
        cmd.arg("--print-architecture");
        let out = run(cmd, "dpkg --print-architecture");
        String::from_utf8(out.stdout)
            .expect("utf-8 arch")
            .trim()
            .to_string()
    })
}

/// Builds `spec` into `out_dir/<name>_<version>_<arch>.deb` with
/// `dpkg-deb --root-owner-group --build` and returns that path.
pub fn build_deb(spec: &DebSpec, out_dir: &Path) -> PathBuf {
    std::fs::create_dir_all(out_dir)
        .unwrap_or_else(|e| panic!("create {}: {e}", out_dir.display()));
    let staging = tempfile::Builder::new()
        .prefix("deb-staging-")
        .tempdir()
        .expect("staging tempdir");
    let root = staging.path();

    let mut installed_size: u64 = 0;
    for (path, contents, mode) in &spec.files {
        let dest = root.join(relative_in_package(path));
        std::fs::create_dir_all(dest.parent().unwrap()).expect("create package dir");
        std::fs::write(&dest, contents).unwrap_or_else(|e| panic!("write {}: {e}", dest.display()));
        set_mode(&dest, *mode);
        installed_size += (contents.len() as u64).div_ceil(1024);
    }

    let debian = root.join("DEBIAN");
    std::fs::create_dir_all(&debian).expect("create DEBIAN");
    let control = format!(
        "Package: {}\nVersion: {}\nArchitecture: {}\nMaintainer: testkit <testkit@example.invalid>\n\
         Installed-Size: {}\nSection: admin\nPriority: optional\n\
         Description: test package built by testkit\n fake {} {} for tests\n",
        spec.name, spec.version, spec.arch, installed_size.max(1), spec.name, spec.version
    );
    std::fs::write(debian.join("control"), control).expect("write control");
    set_mode(&debian.join("control"), 0o644);
    if !spec.conffiles.is_empty() {
        let list: String = spec.conffiles.iter().map(|c| format!("{c}\n")).collect();
        std::fs::write(debian.join("conffiles"), list).expect("write conffiles");
        set_mode(&debian.join("conffiles"), 0o644);
    }
    if let Some(body) = &spec.postinst {
        let script = if body.starts_with("#!") {
            body.clone()
        } else {
            format!("#!/bin/sh\nset -e\n{body}")
        };
        std::fs::write(debian.join("postinst"), script).expect("write postinst");
        set_mode(&debian.join("postinst"), 0o755);
    }
    set_dir_modes(root);

    let out = out_dir.join(spec.file_name());
    let mut cmd = Command::new("dpkg-deb");
    cmd.env("LC_ALL", "C")
        .args(["--root-owner-group", "-Zgzip", "--build"])
        .arg(root)
        .arg(&out);
    run(cmd, "dpkg-deb --build");
    out
}

/// `/usr/bin/x` -> `usr/bin/x`, refusing relative paths and `..`.
fn relative_in_package(path: &str) -> PathBuf {
    let p = Path::new(path);
    assert!(p.is_absolute(), "package paths must be absolute: {path:?}");
    let mut rel = PathBuf::new();
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(s) => rel.push(s),
            _ => panic!("bad package path {path:?}"),
        }
    }
    assert!(!rel.as_os_str().is_empty(), "empty package path {path:?}");
    assert!(
        !rel.starts_with("DEBIAN"),
        "{path:?} collides with the control directory"
    );
    rel
}

fn set_dir_modes(dir: &Path) {
    set_mode(dir, 0o755);
    for entry in std::fs::read_dir(dir).expect("read staging dir") {
        let entry = entry.expect("staging entry");
        if entry.file_type().expect("file type").is_dir() {
            set_dir_modes(&entry.path());
        }
    }
}
