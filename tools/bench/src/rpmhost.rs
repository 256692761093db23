//! The rpm hosts' fixtures (issue 26): dnf and zypper roots with an rpm
//! database of many real-size package headers, the agent installed from a
//! signed rpm repository, and the updater's configuration.
//!
//! Building thousands of rpms one `rpmbuild` each would take most of an
//! hour here; instead the synthetic packages are the subpackages of a few
//! specs (500 per `rpmbuild`), their files `%ghost` (listed in the header
//! with their paths, modes and owners, absent from the payload, so
//! rpmbuild does not classify thousands of files), and a root's database
//! is filled with `rpm --root R --justdb` (headers only, in one
//! transaction), once per size and copied into the dnf and zypper roots.

use super::*;
use testkit::rpm::{build_rpm, sign_rpm, RpmRepo, RpmRoot, RpmSpec};

pub(crate) const KEY_IN_ROOT: &str = "/etc/pki/rpm-gpg/RPM-GPG-KEY-teleport";
/// Synthetic packages per `rpmbuild` (subpackages of one spec).
const CHUNK: usize = 500;
/// Files each synthetic package's header lists.
const FILES_PER_PKG: usize = 26;

/// The package manager of an rpm root.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Pm {
    Dnf,
    Zypper,
}

impl Pm {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Pm::Dnf => "dnf",
            Pm::Zypper => "zypper",
        }
    }

    fn repo_file(self) -> &'static str {
        match self {
            Pm::Dnf => "/etc/yum.repos.d/teleport.repo",
            Pm::Zypper => "/etc/zypp/repos.d/teleport.repo",
        }
    }
}

/// The spec of synthetic packages `from..to`: subpackages
/// `synthetic-pkg-NNNN` of a main package that has no `%files` (so
/// rpmbuild makes no rpm of it), each with a summary, a description, a
/// version, requirements and provides, the spec's 20-entry changelog and
/// [`FILES_PER_PKG`] `%ghost` files.
fn synthetic_spec(chunk: usize, from: usize, to: usize) -> String {
    let mut s = format!(
        "Name: synthetic-base-{chunk}\nVersion: 1.0\nRelease: 1\nSummary: synthetic\n\
         License: MIT\nBuildArch: {}\nAutoReqProv: no\n\n%description\nsynthetic\n\n",
        testkit::rpm::host_rpm_arch()
    );
    for i in from..to {
        let name = format!("synthetic-pkg-{i:04}");
        let _ = write!(
            s,
            "%package -n {name}\n\
             Summary: synthetic package {i} of an rpm database the size of a real one\n\
             Version: 1.{}.{}\nRelease: {}.el9\nURL: https://synthetic.example.org/packages/{name}\n\
             Requires: synthetic-pkg-{:04} >= 1.0, synthetic-pkg-{:04}, libc.so.6()(64bit), /bin/sh\n\
             Provides: lib{name}.so.1()(64bit), {name}-data = 1.{}\n\n\
             %description -n {name}\n\
             One of many packages the bench installs into a throwaway root with\n\
             rpm --justdb so that the rpm database is as large as on a real server.\n\
             It installs nothing; its header names a few dozen files.\n\n\
             %files -n {name}\n",
            i % 13,
            i % 7,
            1 + i % 5,
            i / 2,
            i / 3,
            i % 13,
        );
        for f in 0..FILES_PER_PKG - 1 {
            let _ = writeln!(s, "%ghost /usr/share/synthetic/{name}/file-{f}.dat");
        }
        let _ = writeln!(s, "%ghost /usr/lib64/lib{name}.so.1\n");
    }
    s.push_str("%install\nmkdir -p %{buildroot}\n\n%changelog\n");
    for c in 1..=20 {
        let _ = write!(
            s,
            "* Mon Jan 01 2024 Synthetic Maintainer <maint@example.org> - 1.{c}-1\n\
             - Rebuilt for a synthetic mass rebuild number {c} with a line long enough to look real\n\
             - Fix CVE-2024-{c:04}: a synthetic entry describing a security fix in a few words\n\n"
        );
    }
    s
}

/// `count` synthetic packages (see [`synthetic_spec`]), built into `dir`,
/// in name order.
fn build_synthetic(dir: &Path, count: usize) -> Vec<PathBuf> {
    let arch = testkit::rpm::host_rpm_arch();
    for (chunk, from) in (0..count).step_by(CHUNK).enumerate() {
        let to = (from + CHUNK).min(count);
        let work = dir.join(format!("chunk-{chunk}"));
        std::fs::create_dir_all(&work).unwrap();
        let spec = work.join("synthetic.spec");
        std::fs::write(&spec, synthetic_spec(chunk, from, to)).unwrap();
        let st = Command::new("rpmbuild")
            .env("LC_ALL", "C")
            .args(["-bb", "--quiet", "--define"])
            .arg(format!("_topdir {}", work.join("top").display()))
            .args(["--define", "debug_package %{nil}"])
            .args(["--define", "__os_install_post %{nil}"])
            .args(["--define", "_build_id_links none"])
            .arg(&spec)
            .stdout(Stdio::null())
            .status()
            .expect("rpmbuild (Debian package rpm)");
        assert!(st.success(), "rpmbuild of {}", spec.display());
    }
    let mut v: Vec<PathBuf> = (0..count.div_ceil(CHUNK))
        .flat_map(|c| {
            std::fs::read_dir(dir.join(format!("chunk-{c}/top/RPMS/{arch}")))
                .unwrap()
                .map(|e| e.unwrap().path())
        })
        .collect();
    v.sort();
    assert_eq!(v.len(), count, "synthetic packages built");
    v
}

/// The directory of the rpm database inside `root` (Debian's rpm keeps
/// it in `/root/.rpmdb`; others in `/var/lib/rpm` or
/// `/usr/lib/sysimage/rpm`).
pub(crate) fn db_dir(root: &Path) -> &'static str {
    ["/root/.rpmdb", "/var/lib/rpm", "/usr/lib/sysimage/rpm"]
        .into_iter()
        .find(|d| root.join(&d[1..]).join("rpmdb.sqlite").is_file())
        .expect("an rpm database (sqlite) in the root")
}

/// dnf's versionlock plugin (dnf-plugins-core's, as shipped), unpacked
/// into `dir`: the .deb from the container rows' cache
/// (`$CONTAINER_TESTS_CACHE` or `/var/cache/teleport-ent-updater-tests`,
/// `debs/dnf-versionlock`), else fetched with `apt-get download` (which
/// installs nothing). Returns the unpacked tree, as tests/versionlock_own.rs
/// loads it.
fn versionlock_plugin(dir: &Path) -> PathBuf {
    let cache = std::env::var_os("CONTAINER_TESTS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/teleport-ent-updater-tests"))
        .join("debs/dnf-versionlock");
    let find = |d: &Path| {
        std::fs::read_dir(d).ok().and_then(|rd| {
            rd.filter_map(|e| e.ok()).map(|e| e.path()).find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("dnf-plugins-core_"))
            })
        })
    };
    let dl = dir.join("download");
    std::fs::create_dir_all(&dl).unwrap();
    let deb = find(&cache).unwrap_or_else(|| {
        let st = Command::new("apt-get")
            .args([
                "-q",
                "-o",
                "APT::Sandbox::User=root",
                "download",
                "dnf-plugins-core",
            ])
            .current_dir(&dl)
            .status()
            .expect("apt-get download");
        assert!(st.success(), "apt-get download dnf-plugins-core");
        find(&dl).expect("the downloaded .deb")
    });
    let tree = dir.join("tree");
    let st = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&tree)
        .status()
        .expect("dpkg-deb");
    assert!(st.success(), "dpkg-deb -x {}", deb.display());
    tree
}

/// The root's dnf loads the versionlock plugin of `tree` (a two-line shim
/// puts its helper module on Python's path), its lock list inside the
/// root: nothing of the host's dnf changes.
fn load_versionlock(root: &RpmRoot, tree: &Path) {
    let py = tree.join("usr/lib/python3/dist-packages");
    let (shim, plugins, conf) = (
        root.file("/opt/dnf-shim"),
        root.file("/opt/dnf-plugins"),
        root.file("/etc/dnf/plugins"),
    );
    for d in [&shim, &plugins, &conf] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::copy(
        py.join("dnf-plugins/versionlock.py"),
        plugins.join("versionlock.py"),
    )
    .unwrap();
    std::fs::write(
        shim.join("shim.py"),
        format!(
            "import sys\nsys.path.insert(0, {:?})\n",
            py.display().to_string()
        ),
    )
    .unwrap();
    root.write(
        "/etc/dnf/plugins/versionlock.conf",
        format!(
            "[main]\nenabled = 1\nlocklist = {}\n",
            root.file(VERSIONLOCK_LIST).display()
        ),
    );
    root.write(VERSIONLOCK_LIST, "");
    root.write(
        "/etc/dnf/dnf.conf",
        format!(
            "[main]\ngpgcheck=1\ninstallonly_limit=3\npluginpath={},{}\npluginconfpath={}\n",
            shim.display(),
            plugins.display(),
            conf.display()
        ),
    );
}

pub(crate) const VERSIONLOCK_LIST: &str = "/etc/dnf/plugins/versionlock.list";

/// What the rpm rows share: the key, the agent rpm (15.4.3) in a signed
/// repository, the version server, the synthetic packages and a database
/// template per size.
pub(crate) struct RpmFixture {
    pub(crate) dir: tempfile::TempDir,
    key_file: PathBuf,
    agent: PathBuf,
    _repo: RpmRepo,
    repo_server: Server,
    pub(crate) vs: Server,
    /// (packages, a root holding only the database of that many)
    templates: Vec<(usize, RpmRoot)>,
    pub(crate) agent_mb: usize,
    versionlock: PathBuf,
}

impl RpmFixture {
    /// `agent_bytes`: the size of the agent's extra executable
    /// (`/usr/bin/tctl`); `sizes`: the database sizes to make templates of.
    pub(crate) fn new(agent_bytes: usize, sizes: &[usize]) -> RpmFixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = Key::generate(
            &dir.path().join("keys"),
            "Teleport Bench Release <bench@example.com>",
        );
        let key_file = dir.path().join("RPM-GPG-KEY-teleport");
        key.export_armored(&key_file);
        let mut spec = RpmSpec::agent(PKG, "15.4.3");
        if agent_bytes > 0 {
            spec.files.push((
                "/usr/bin/tctl".into(),
                executable_bytes(agent_bytes, 0x9e37_79b9_7f4a_7c16),
                0o755,
            ));
        }
        let built = Instant::now();
        let agent = build_rpm(&spec, &dir.path().join("agent"));
        sign_rpm(&key, &agent);
        let repo = RpmRepo::build(
            &dir.path().join("repo"),
            std::slice::from_ref(&agent),
            Some(&key),
        );
        eprintln!(
            "agent rpm ({} MB) and its signed repository built in {:.0} s",
            agent_bytes / (1024 * 1024),
            built.elapsed().as_secs_f64()
        );
        drop(key);
        let repo_server = Server::start(repo.dir());
        let vs_root = dir.path().join("vs");
        std::fs::create_dir_all(&vs_root).unwrap();
        let vs = Server::start(&vs_root);
        vs.set_route(&format!("{CHANNEL}/version"), Route::ok("v15.4.3\n"));
        vs.set_route(&format!("{CHANNEL}/critical"), Route::ok("no\n"));
        let built = Instant::now();
        let max = sizes.iter().copied().max().unwrap_or(0);
        let synthetic = build_synthetic(&dir.path().join("synthetic"), max);
        eprintln!(
            "{max} synthetic rpms built in {:.0} s",
            built.elapsed().as_secs_f64()
        );
        let templates = sizes
            .iter()
            .map(|&k| {
                let t = RpmRoot::new(&dir.path().join(format!("template-{k}")));
                let out = Command::new("rpm")
                    .env("LC_ALL", "C")
                    .arg("--root")
                    .arg(t.path())
                    .args(["--justdb", "--nodeps", "--noscripts", "--nosignature"])
                    .args(["--nodigest", "--ignoresize", "-i"])
                    .args(&synthetic[..k])
                    .output()
                    .expect("rpm");
                assert!(
                    out.status.success(),
                    "rpm --justdb -i: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                (k, t)
            })
            .collect();
        let versionlock = versionlock_plugin(&dir.path().join("versionlock"));
        RpmFixture {
            versionlock,
            dir,
            key_file,
            agent,
            _repo: repo,
            repo_server,
            vs,
            templates,
            agent_mb: agent_bytes / (1024 * 1024),
        }
    }

    /// A `pm` root with the `k`-package database, dnf's versionlock plugin
    /// (dnf), the release key
    /// imported, the agent installed (`rpm -i` of the signed package the
    /// repository serves), the Teleport repository (`gpgcheck`,
    /// `repo_gpgcheck`, the key by a `file://` path in the root), the
    /// updater's configuration and a schedule with a window open now.
    pub(crate) fn root(&self, pm: Pm, k: usize) -> RpmRoot {
        let root = RpmRoot::new(&self.dir.path().join(format!("{}-{k}", pm.name())));
        let (_, t) = self
            .templates
            .iter()
            .find(|(n, _)| *n == k)
            .expect("a template of this size");
        let db = db_dir(t.path());
        let to = root.file(db);
        std::fs::create_dir_all(&to).unwrap();
        for e in std::fs::read_dir(t.file(db)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
        root.write(KEY_IN_ROOT, std::fs::read(&self.key_file).unwrap());
        match pm {
            Pm::Dnf => load_versionlock(&root, &self.versionlock),
            Pm::Zypper => root.write("/etc/zypp/zypp.conf", "[main]\n"),
        }
        root.import_key(&self.key_file);
        root.install(&self.agent);
        root.write(
            pm.repo_file(),
            RpmRepo::repo_file(
                "teleport",
                &format!("{}/", self.repo_server.url()),
                &[
                    ("autorefresh", "0"),
                    ("gpgcheck", "1"),
                    ("repo_gpgcheck", "1"),
                    ("pkg_gpgcheck", "1"),
                    ("gpgkey", &format!("file://{KEY_IN_ROOT}")),
                ],
            ),
        );
        for (name, value) in [
            ("endpoint", format!("127.0.0.1:{}{CHANNEL}", self.vs.port())),
            ("insecure", "yes".into()),
            ("installer", pm.name().into()),
            ("package", PKG.into()),
        ] {
            root.write(
                &format!("/etc/teleport-upgrade.d/{name}"),
                format!("{value}\n"),
            );
        }
        let n = now();
        root.write(
            "/etc/teleport-upgrade.d/schedule",
            format!(
                "# generated by teleport\n{} {}\n{} {}\n",
                n - 600,
                n + 6 * 3600,
                n + 86400,
                n + 90000
            ),
        );
        root
    }
}
