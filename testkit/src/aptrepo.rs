//! Normal (non-flat) Debian repositories built with `apt-ftparchive`, signed
//! with a [`Key`].
//!
//! Layout for codename `bookworm` and component `stable/v15`:
//!
//! ```text
//! pool/stable/v15/<name>_<version>_<arch>.deb
//! dists/bookworm/stable/v15/binary-<arch>/Packages{,.gz}
//! dists/bookworm/Release           (+ InRelease, Release.gpg when signed)
//! ```
//!
//! Traps avoided here:
//! - `apt-ftparchive release DIR` hashes every file under DIR, including a
//!   `Release`/`InRelease`/`Release.gpg` already there: the old ones are
//!   removed first and the new Release is captured from stdout, never written
//!   into the directory while it is being hashed.
//! - `apt-ftparchive packages` scans a directory recursively, so each
//!   component gets its own pool directory and no component may be a path
//!   prefix of another (`stable` and `stable/v15` would index each other).
//! - `--arch` keeps `*_<arch>.deb` and `*_all.deb` only, so packages keep
//!   their Debian file names.
//! - No `Valid-Until`: apt would start refusing old fixtures.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::deb::host_arch;
use crate::gpg::{run, Key};

/// A repository on disk. It only holds paths: it can be rebuilt, re-signed
/// or damaged at will, and serving it is [`crate::http::Server`]'s job.
#[derive(Clone, Debug)]
pub struct AptRepo {
    dir: PathBuf,
    codename: String,
    components: Vec<String>,
    architectures: Vec<String>,
}

impl AptRepo {
    /// A repository with a single component.
    pub fn build(
        dir: &Path,
        codename: &str,
        component: &str,
        debs: &[PathBuf],
        signer: Option<&Key>,
    ) -> AptRepo {
        AptRepo::build_multi(dir, codename, &[(component, debs)], signer)
    }

    /// A repository with several components, e.g.
    /// `&[("stable/v15", &v15_debs), ("stable/v16", &v16_debs)]`.
    pub fn build_multi<C: AsRef<str>, D: AsRef<[PathBuf]>>(
        dir: &Path,
        codename: &str,
        components: &[(C, D)],
        signer: Option<&Key>,
    ) -> AptRepo {
        assert!(
            !components.is_empty(),
            "a repository needs at least one component"
        );
        assert!(valid_word(codename), "bad codename {codename:?}");
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let mut repo = AptRepo {
            dir: dir.to_path_buf(),
            codename: codename.to_string(),
            components: Vec::new(),
            architectures: Vec::new(),
        };
        for (component, debs) in components {
            repo.add_to_pool(component.as_ref(), debs.as_ref());
        }
        repo.reindex(signer);
        repo
    }

    /// Adds packages (to a new or an existing component), then regenerates
    /// the indexes and the Release and signs it with `signer` (None: unsigned).
    /// This is how a test "publishes" a new version while apt watches.
    pub fn add_debs(&mut self, component: &str, debs: &[PathBuf], signer: Option<&Key>) {
        self.add_to_pool(component, debs);
        self.reindex(signer);
    }

    /// Re-signs the current Release (`InRelease` clearsigned, `Release.gpg`
    /// detached and armored), or removes both signatures when `key` is None.
    pub fn sign_with(&self, key: Option<&Key>) {
        let dists = self.dists();
        for f in ["InRelease", "Release.gpg"] {
            remove_if_exists(&dists.join(f));
        }
        if let Some(key) = key {
            let release = dists.join("Release");
            key.clearsign(&release, &dists.join("InRelease"));
            key.detach_sign(&release, &dists.join("Release.gpg"), true);
        }
    }

    /// Flips one byte in the middle of every `pool/**/<deb_file_name>`,
    /// keeping its size, so apt fails with a hash sum mismatch after the
    /// download. Panics when no such file exists.
    pub fn tamper(&self, deb_file_name: &str) {
        let mut found = Vec::new();
        find_files(&self.dir.join("pool"), deb_file_name, &mut found);
        assert!(
            !found.is_empty(),
            "{deb_file_name} is not in {}/pool",
            self.dir.display()
        );
        for path in found {
            let mut bytes = std::fs::read(&path).expect("read deb");
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0xff;
            std::fs::write(&path, bytes).expect("write deb");
        }
    }

    /// `deb [signed-by=<path>] <base_url> <codename> <component...>`, listing
    /// every component of the repository.
    pub fn sources_line(&self, base_url: &str, signed_by: &Path) -> String {
        format!(
            "deb [signed-by={}] {} {} {}",
            signed_by.display(),
            base_url,
            self.codename,
            self.components.join(" ")
        )
    }

    /// Like [`AptRepo::sources_line`] but for one component only (e.g. to
    /// move a machine from `stable/v15` to `stable/v16`).
    pub fn sources_line_for(&self, base_url: &str, signed_by: &Path, component: &str) -> String {
        assert!(
            self.components.iter().any(|c| c == component),
            "no component {component:?} in {:?}",
            self.components
        );
        format!(
            "deb [signed-by={}] {} {} {}",
            signed_by.display(),
            base_url,
            self.codename,
            component
        )
    }

    /// The same source in deb822 form (a `.sources` file), all components.
    pub fn sources_deb822(&self, base_url: &str, signed_by: &Path) -> String {
        format!(
            "Types: deb\nURIs: {}\nSuites: {}\nComponents: {}\nSigned-By: {}\n",
            base_url,
            self.codename,
            self.components.join(" "),
            signed_by.display()
        )
    }

    /// The repository's root directory (what the server should serve, or a
    /// subdirectory of it).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn codename(&self) -> &str {
        &self.codename
    }

    pub fn components(&self) -> &[String] {
        &self.components
    }

    pub fn architectures(&self) -> &[String] {
        &self.architectures
    }

    /// `dists/<codename>/Release`.
    pub fn release_path(&self) -> PathBuf {
        self.dists().join("Release")
    }

    fn dists(&self) -> PathBuf {
        self.dir.join("dists").join(&self.codename)
    }

    fn add_to_pool(&mut self, component: &str, debs: &[PathBuf]) {
        assert!(
            !component.is_empty()
                && component
                    .split('/')
                    .all(|part| valid_word(part) && part != "." && part != ".."),
            "bad component {component:?}"
        );
        if !self.components.iter().any(|c| c == component) {
            for other in &self.components {
                assert!(
                    !Path::new(other).starts_with(component)
                        && !Path::new(component).starts_with(other),
                    "components {other:?} and {component:?} would share pool directories"
                );
            }
            self.components.push(component.to_string());
        }
        let pool = self.dir.join("pool").join(component);
        std::fs::create_dir_all(&pool).expect("create pool");
        for deb in debs {
            let name = deb
                .file_name()
                .unwrap_or_else(|| panic!("not a file: {}", deb.display()));
            let dest = pool.join(name);
            if dest.exists() {
                let (old, new) = (std::fs::read(&dest).unwrap(), std::fs::read(deb).unwrap());
                assert!(
                    old == new,
                    "{} already in the pool with other contents",
                    dest.display()
                );
                continue;
            }
            std::fs::copy(deb, &dest)
                .unwrap_or_else(|e| panic!("copy {} to pool: {e}", deb.display()));
        }
    }

    /// Regenerates every Packages file, the Release and its signatures.
    fn reindex(&mut self, signer: Option<&Key>) {
        // Architectures: those of the packages, `all` excepted; the host's
        // when there is none (an empty repository is still a valid one).
        let mut archs = BTreeSet::new();
        for component in &self.components {
            for entry in
                std::fs::read_dir(self.dir.join("pool").join(component)).expect("read pool")
            {
                let path = entry.expect("pool entry").path();
                if path.extension().is_some_and(|e| e == "deb") {
                    let mut cmd = Command::new("dpkg-deb");
                    cmd.arg("--field").arg(&path).arg("Architecture");
                    let out = run(cmd, "dpkg-deb --field");
                    let arch = String::from_utf8_lossy(&out.stdout).trim().to_string();
                    if arch != "all" {
                        archs.insert(arch);
                    }
                }
            }
        }
        if archs.is_empty() {
            archs.insert(host_arch().to_string());
        }
        self.architectures = archs.into_iter().collect();

        let dists = self.dists();
        if dists.exists() {
            std::fs::remove_dir_all(&dists).expect("remove old dists");
        }
        for component in &self.components {
            for arch in &self.architectures {
                let bin = dists.join(component).join(format!("binary-{arch}"));
                std::fs::create_dir_all(&bin).expect("create binary dir");
                let packages = bin.join("Packages");
                let mut cmd = Command::new("apt-ftparchive");
                cmd.current_dir(&self.dir)
                    .env("LC_ALL", "C")
                    .args(["--arch", arch, "packages"])
                    .arg(Path::new("pool").join(component));
                let out = run(cmd, "apt-ftparchive packages");
                std::fs::write(&packages, &out.stdout).expect("write Packages");
                gzip(&packages, &bin.join("Packages.gz"));
            }
        }

        let opt = |field: &str, value: &str| format!("APT::FTPArchive::Release::{field}={value}");
        let mut cmd = Command::new("apt-ftparchive");
        cmd.current_dir(&self.dir).env("LC_ALL", "C");
        for (field, value) in [
            ("Origin", "testkit".to_string()),
            ("Label", "testkit".to_string()),
            ("Suite", self.codename.clone()),
            ("Codename", self.codename.clone()),
            ("Architectures", self.architectures.join(" ")),
            ("Components", self.components.join(" ")),
            ("Description", "testkit repository".to_string()),
        ] {
            cmd.arg("-o").arg(opt(field, &value));
        }
        cmd.arg("release")
            .arg(Path::new("dists").join(&self.codename));
        // Captured, then written: never created inside the tree being hashed.
        let out = run(cmd, "apt-ftparchive release");
        std::fs::write(dists.join("Release"), &out.stdout).expect("write Release");
        self.sign_with(signer);
    }
}

/// `gzip -9n` (no name, no timestamp: reproducible) of `src` into `dst`.
fn gzip(src: &Path, dst: &Path) {
    let out = File::create(dst).expect("create .gz");
    let mut cmd = Command::new("gzip");
    cmd.args(["-9", "-n", "-c"])
        .arg(src)
        .stdout(Stdio::from(out));
    let status = cmd.status().expect("run gzip");
    assert!(status.success(), "gzip {} failed", src.display());
}

fn valid_word(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+' | '~'))
}

fn remove_if_exists(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("remove {}: {e}", path.display()),
    }
}

fn find_files(dir: &Path, name: &str, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            find_files(&path, name, found);
        } else if path.file_name().is_some_and(|n| n == name) {
            found.push(path);
        }
    }
}
