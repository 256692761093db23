//! Real `.rpm` packages built with `rpmbuild`, signed with `rpmsign`, rpm-md
//! repositories built with `createrepo_c` and signed with a [`Key`], and
//! alternate roots with their own rpm database.
//!
//! Traps avoided here:
//! - The spec says `AutoReqProv: no`: otherwise rpmbuild adds a `/bin/sh`
//!   requirement for the script that no empty install root can meet.
//! - rpmbuild's debuginfo and `brp-*` post-processing are switched off
//!   (`debug_package`, `__os_install_post`): they need tools and files a
//!   shell-script package does not have.
//! - Debian's `rpmsign` calls `gpg2`, which does not exist: `__gpg` names
//!   `/usr/bin/gpg`, `_gpg_path` the key's GNUPGHOME and `_gpg_name` its
//!   fingerprint.
//! - Debian's rpm keeps its database under `~/.rpmdb`, inside a root
//!   `<root>/root/.rpmdb`: [`RpmRoot`] always goes through `rpm --root`, so
//!   it finds the same database as dnf and zypper on this host.
//! - dnf with `repo_gpgcheck=1` leaves a `gpg-agent` running per
//!   repository, with its home inside the root's cache; dropping an
//!   [`RpmRoot`] ends every gpg-agent whose home lies inside it (by pid).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use crate::gpg::{run, set_mode, Key};

/// What goes into a package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpmSpec {
    pub name: String,
    /// `[E:]V`: an epoch prefix becomes the `Epoch:` tag.
    pub version: String,
    pub release: String,
    /// `x86_64`, `noarch`, ...
    pub arch: String,
    /// (absolute path inside the package, contents, mode)
    pub files: Vec<(String, Vec<u8>, u32)>,
    /// Body of a `%post` scriptlet (run by rpm chrooted into the target,
    /// so it fails in a root without a shell: handy to provoke a %post
    /// failure).
    pub post: Option<String>,
    /// Paths of `files` marked `%config(noreplace)` (rpm then keeps an
    /// administrator's changes to them, and `rpm -V` marks them `c`).
    pub config_files: Vec<String>,
}

impl RpmSpec {
    /// A fake Teleport agent: host architecture, release `1`,
    /// `/usr/bin/teleport` (a `#!/bin/sh` script printing `Teleport
    /// v<version> git: go1.22`) and `/usr/share/doc/<name>/VERSION`.
    pub fn agent(name: &str, version: &str) -> RpmSpec {
        assert!(
            !version.contains('\'') && !version.contains('-'),
            "an rpm version cannot contain a dash or quote: {version:?}"
        );
        let upstream = version.split_once(':').map(|x| x.1).unwrap_or(version);
        let script = format!("#!/bin/sh\necho 'Teleport v{upstream} git: go1.22'\n");
        RpmSpec {
            name: name.to_string(),
            version: version.to_string(),
            release: "1".to_string(),
            arch: host_rpm_arch().to_string(),
            files: vec![
                ("/usr/bin/teleport".to_string(), script.into_bytes(), 0o755),
                (
                    format!("/usr/share/doc/{name}/VERSION"),
                    format!("{upstream}\n").into_bytes(),
                    0o644,
                ),
            ],
            post: None,
            config_files: Vec::new(),
        }
    }

    /// Adds `path` (mode 0644) with `contents`, marked `%config(noreplace)`.
    pub fn with_config_file(mut self, path: &str, contents: &[u8]) -> RpmSpec {
        self.files
            .push((path.to_string(), contents.to_vec(), 0o644));
        self.config_files.push(path.to_string());
        self
    }

    fn epoch_and_version(&self) -> (Option<&str>, &str) {
        match self.version.split_once(':') {
            Some((e, v)) => (Some(e), v),
            None => (None, &self.version),
        }
    }

    /// `<name>-<version>-<release>.<arch>.rpm` (no epoch, as rpmbuild names it).
    pub fn file_name(&self) -> String {
        let (_, v) = self.epoch_and_version();
        format!("{}-{}-{}.{}.rpm", self.name, v, self.release, self.arch)
    }

    fn spec_text(&self, stage: &Path) -> String {
        let (epoch, version) = self.epoch_and_version();
        let mut s = String::new();
        s.push_str(&format!(
            "Name: {}\nVersion: {version}\nRelease: {}\n",
            self.name, self.release
        ));
        if let Some(e) = epoch {
            s.push_str(&format!("Epoch: {e}\n"));
        }
        s.push_str(&format!(
            "Summary: test package {name}\nLicense: Apache-2.0\nBuildArch: {arch}\nAutoReqProv: no\n\n\
             %description\nA package built by the testkit.\n\n\
             %install\nmkdir -p %{{buildroot}}\ncp -a '{stage}/.' %{{buildroot}}/\n\n",
            name = self.name,
            arch = self.arch,
            stage = stage.display(),
        ));
        if let Some(post) = &self.post {
            s.push_str(&format!("%post\n{post}\n\n"));
        }
        s.push_str("%files\n");
        for (path, _, mode) in &self.files {
            if self.config_files.contains(path) {
                s.push_str("%config(noreplace) ");
            }
            s.push_str(&format!("%attr({mode:04o},root,root) {path}\n"));
        }
        s
    }
}

/// rpm's architecture of this host (`rpm --eval %{_arch}`), cached.
pub fn host_rpm_arch() -> &'static str {
    static ARCH: OnceLock<String> = OnceLock::new();
    ARCH.get_or_init(|| {
        let mut cmd = Command::new("rpm");
        cmd.args(["--eval", "%{_arch}"]);
        let out = run(cmd, "rpm --eval %{_arch}");
        String::from_utf8(out.stdout)
            .expect("utf-8 arch")
            .trim()
            .to_string()
    })
}

/// Build `spec` with `rpmbuild -bb` into `out_dir`; returns the package path.
pub fn build_rpm(spec: &RpmSpec, out_dir: &Path) -> PathBuf {
    std::fs::create_dir_all(out_dir)
        .unwrap_or_else(|e| panic!("create {}: {e}", out_dir.display()));
    let work = tempfile::Builder::new()
        .prefix("rpmbuild-")
        .tempdir_in(out_dir)
        .expect("rpmbuild work directory");
    let stage = work.path().join("stage");
    for (path, contents, mode) in &spec.files {
        assert!(
            path.starts_with('/') && !path.contains(".."),
            "bad path in package: {path}"
        );
        let dest = stage.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().unwrap()).expect("stage directory");
        std::fs::write(&dest, contents).unwrap_or_else(|e| panic!("write {}: {e}", dest.display()));
        set_mode(&dest, *mode);
    }
    std::fs::create_dir_all(&stage).expect("stage directory");
    let spec_file = work.path().join(format!("{}.spec", spec.name));
    std::fs::write(&spec_file, spec.spec_text(&stage)).expect("write spec");
    let top = work.path().join("top");
    let mut cmd = Command::new("rpmbuild");
    cmd.env("LC_ALL", "C")
        .arg("-bb")
        .arg("--quiet")
        .arg("--define")
        .arg(format!("_topdir {}", top.display()))
        .arg("--define")
        .arg(format!("_tmppath {}", work.path().join("tmp").display()))
        .args(["--define", "debug_package %{nil}"])
        .args(["--define", "__os_install_post %{nil}"])
        .args(["--define", "_build_id_links none"])
        .arg(&spec_file);
    std::fs::create_dir_all(work.path().join("tmp")).expect("rpmbuild tmp");
    run(cmd, "rpmbuild -bb");
    let built = top.join("RPMS").join(&spec.arch).join(spec.file_name());
    let dest = out_dir.join(spec.file_name());
    std::fs::rename(&built, &dest)
        .unwrap_or_else(|e| panic!("move {} to {}: {e}", built.display(), dest.display()));
    dest
}

/// Sign `rpm` in place with `key` (`rpmsign --addsign`).
pub fn sign_rpm(key: &Key, rpm: &Path) {
    let mut cmd = Command::new("rpmsign");
    cmd.env("LC_ALL", "C")
        .env("GNUPGHOME", key.gnupghome())
        .args(["--define", "__gpg /usr/bin/gpg"])
        .arg("--define")
        .arg(format!("_gpg_name {}", key.fingerprint()))
        .arg("--define")
        .arg(format!("_gpg_path {}", key.gnupghome().display()))
        .arg("--addsign")
        .arg(rpm);
    run(cmd, "rpmsign --addsign");
}

/// Damage a package after it was indexed: its last bytes (payload) are
/// overwritten, so its checksum no longer matches the metadata and its
/// payload digest no longer matches its header.
pub fn tamper_rpm(rpm: &Path) {
    let mut bytes = std::fs::read(rpm).unwrap_or_else(|e| panic!("read {}: {e}", rpm.display()));
    let n = bytes.len();
    assert!(n > 64, "{} is too small to be a package", rpm.display());
    for b in &mut bytes[n - 16..] {
        *b ^= 0x5a;
    }
    std::fs::write(rpm, bytes).unwrap_or_else(|e| panic!("write {}: {e}", rpm.display()));
}

/// An rpm-md repository on disk: packages at the top, `repodata/` beside
/// them. It only holds paths; serving it is [`crate::http::Server`]'s job.
#[derive(Clone, Debug)]
pub struct RpmRepo {
    dir: PathBuf,
}

impl RpmRepo {
    /// Copy `rpms` into `dir`, index them with `createrepo_c`, and sign the
    /// metadata with `signer` (none: unsigned metadata).
    pub fn build(dir: &Path, rpms: &[PathBuf], signer: Option<&Key>) -> RpmRepo {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        for r in rpms {
            let dest = dir.join(r.file_name().expect("package file name"));
            std::fs::copy(r, &dest)
                .unwrap_or_else(|e| panic!("copy {} to {}: {e}", r.display(), dest.display()));
        }
        let repo = RpmRepo {
            dir: dir.to_path_buf(),
        };
        repo.reindex(signer);
        repo
    }

    /// Run `createrepo_c` again (after adding or removing packages) and
    /// re-sign.
    pub fn reindex(&self, signer: Option<&Key>) {
        let _ = std::fs::remove_dir_all(self.dir.join("repodata"));
        let mut cmd = Command::new("createrepo_c");
        cmd.env("LC_ALL", "C")
            .args(["--quiet", "--no-database"])
            .arg(&self.dir);
        run(cmd, "createrepo_c");
        self.sign_with(signer);
    }

    /// `repodata/repomd.xml.asc` (detached, armored) and
    /// `repodata/repomd.xml.key` (the signer's armored public key, as
    /// repositories publish it); `None` removes both.
    pub fn sign_with(&self, key: Option<&Key>) {
        let asc = self.repomd().with_extension("xml.asc");
        let pubkey = self.repomd().with_extension("xml.key");
        let _ = std::fs::remove_file(&asc);
        let _ = std::fs::remove_file(&pubkey);
        if let Some(k) = key {
            k.detach_sign(&self.repomd(), &asc, true);
            k.export_armored(&pubkey);
        }
    }

    /// Damage one package of the repository after indexing.
    pub fn tamper(&self, rpm_file_name: &str) {
        tamper_rpm(&self.dir.join(rpm_file_name));
    }

    /// A `.repo` section for this repository served at `base_url`:
    /// `[id]`, `name`, `baseurl`, `enabled=1`, then `settings` in order
    /// (e.g. `("gpgcheck", "1")`).
    pub fn repo_file(id: &str, base_url: &str, settings: &[(&str, &str)]) -> String {
        let mut s =
            format!("[{id}]\nname=Teleport test repository\nbaseurl={base_url}\nenabled=1\n");
        for (k, v) in settings {
            s.push_str(&format!("{k}={v}\n"));
        }
        s
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn repomd(&self) -> PathBuf {
        self.dir.join("repodata").join("repomd.xml")
    }
}

/// An alternate root for rpm, dnf and zypper (a temporary directory; its
/// rpm database is created by the first `rpm --root` that needs it).
pub struct RpmRoot {
    dir: tempfile::TempDir,
}

impl RpmRoot {
    /// A fresh root below `parent`, with `/etc/yum.repos.d`,
    /// `/etc/zypp/repos.d`, `/etc/pki/rpm-gpg` and `/tmp`.
    pub fn new(parent: &Path) -> RpmRoot {
        std::fs::create_dir_all(parent)
            .unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
        let dir = tempfile::Builder::new()
            .prefix("rpmroot-")
            .tempdir_in(parent)
            .expect("root directory");
        let root = RpmRoot { dir };
        for d in [
            "/etc/yum.repos.d",
            "/etc/zypp/repos.d",
            "/etc/pki/rpm-gpg",
            "/tmp",
        ] {
            std::fs::create_dir_all(root.file(d)).expect("root skeleton");
        }
        set_mode(&root.file("/tmp"), 0o1777);
        root
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The host path of `abs_in_root`.
    pub fn file(&self, abs_in_root: &str) -> PathBuf {
        self.dir.path().join(abs_in_root.trim_start_matches('/'))
    }

    /// Write a file inside the root (parents created).
    pub fn write(&self, abs_in_root: &str, contents: impl AsRef<[u8]>) {
        let p = self.file(abs_in_root);
        std::fs::create_dir_all(p.parent().unwrap()).expect("parent directory");
        std::fs::write(&p, contents).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    }

    pub fn read(&self, abs_in_root: &str) -> String {
        let p = self.file(abs_in_root);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
    }

    /// `rpm --root <root> ARGS` (not checked).
    pub fn rpm(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("rpm");
        cmd.env("LC_ALL", "C")
            .arg("--root")
            .arg(self.path())
            .args(args);
        cmd.output().expect("run rpm")
    }

    /// `rpm --root <root> --import <armored key>`.
    pub fn import_key(&self, armored: &Path) {
        let mut cmd = Command::new("rpm");
        cmd.env("LC_ALL", "C")
            .arg("--root")
            .arg(self.path())
            .arg("--import")
            .arg(armored);
        run(cmd, "rpm --import");
    }

    /// `rpm --root <root> -i <package>` (the key must be imported first, or
    /// rpm only warns NOKEY).
    pub fn install(&self, rpm: &Path) {
        let mut cmd = Command::new("rpm");
        cmd.env("LC_ALL", "C")
            .arg("--root")
            .arg(self.path())
            .arg("-i")
            .arg(rpm);
        run(cmd, "rpm -i");
    }

    /// `V-R` of the installed `pkg` (with `E:` when it has an epoch).
    pub fn installed_version(&self, pkg: &str) -> Option<String> {
        let out = self.rpm(&[
            "-q",
            "--qf",
            "%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\n",
            pkg,
        ]);
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .map(|l| l.trim().to_string())
    }

    /// What the installed `/usr/bin/teleport` prints (run with the host's
    /// `sh`, as the root has no shell).
    pub fn teleport_output(&self) -> Option<String> {
        let bin = self.file("/usr/bin/teleport");
        if !bin.is_file() {
            return None;
        }
        let out = Command::new("sh").arg(&bin).output().ok()?;
        Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// A command for a tool, with `LC_ALL=C` (the caller adds `--root` /
    /// `--installroot`).
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("LC_ALL", "C");
        cmd
    }

    /// Pids of the gpg-agents running for homes inside this root.
    pub fn gpg_agents(&self) -> Vec<u32> {
        gpg_agents_under(self.path())
    }

    /// End the gpg-agents started for homes inside this root.
    pub fn end_gpg_agents(&self) -> usize {
        end_gpg_agents_under(self.path())
    }
}

impl Drop for RpmRoot {
    fn drop(&mut self) {
        end_gpg_agents_under(self.dir.path());
    }
}

/// Pids of the live `gpg-agent`s whose `--homedir` lies below `dir`.
pub fn gpg_agents_under(dir: &Path) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let dir = dir.to_string_lossy().into_owned();
    let mut pids = Vec::new();
    for e in rd.filter_map(|e| e.ok()) {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        // A zombie has an empty cmdline and is skipped.
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let is_agent = args
            .first()
            .is_some_and(|a| a.rsplit('/').next() == Some("gpg-agent"));
        let home_inside = args
            .windows(2)
            .any(|w| w[0] == "--homedir" && w[1].starts_with(&dir));
        if is_agent && home_inside {
            pids.push(pid);
        }
    }
    pids
}

/// End (SIGTERM, by pid) every `gpg-agent` whose `--homedir` lies below
/// `dir`. Returns how many were signalled.
pub fn end_gpg_agents_under(dir: &Path) -> usize {
    let pids = gpg_agents_under(dir);
    for pid in &pids {
        let _ = Command::new("kill").arg(pid.to_string()).output();
    }
    pids.len()
}
