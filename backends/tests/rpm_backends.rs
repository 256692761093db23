//! The dnf and zypper backends driven for real against signed rpm-md
//! repositories served on loopback, each test in its own alternate root.
//!
//! One fixture (built once per run): a release key and a foreign key,
//! `teleport-ent` 15.4.2, 15.4.3 and 16.0.0 (release 1) signed with the
//! release key, and these repositories:
//!
//! | path          | packages                         | repomd.xml signed by |
//! |---------------|----------------------------------|----------------------|
//! | `good`        | all signed                       | release key          |
//! | `badmeta`     | all signed                       | foreign key          |
//! | `nometa`      | all signed                       | nobody               |
//! | `unsignedrpm` | 15.4.3 unsigned                  | release key          |
//! | `foreignrpm`  | 15.4.3 signed by the foreign key | release key          |
//! | `tampered`    | 15.4.3 damaged after indexing    | release key          |
//!
//! Scenarios are written once and run for both backends (`both!`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use backends::dnf::{Dnf, HoldMethod};
use backends::zypper::Zypper;
use backends::{Backend, BackendKind, Error, Options, PkgName, PkgVersion, Source, System};
use testkit::gpg::Key;
use testkit::http::Server;
use testkit::rpm::{build_rpm, sign_rpm, RpmRepo, RpmRoot, RpmSpec};

const PKG: &str = "teleport-ent";
const VERSIONS: [&str; 3] = ["15.4.2", "15.4.3", "16.0.0"];

struct Fixture {
    release_key: PathBuf,
    rpms: Vec<(String, PathBuf)>,
    server: Server,
}

impl Fixture {
    fn rpm(&self, version: &str) -> &Path {
        &self
            .rpms
            .iter()
            .find(|(v, _)| v == version)
            .expect("fixture version")
            .1
    }

    fn url(&self, repo: &str) -> String {
        format!("{}/{repo}/", self.server.url())
    }
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let t = Instant::now();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rpm-backends-fixture");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let keys = dir.join("k");
        // The keys live only while the fixture is built: dropping them ends
        // their gpg-agents.
        let release = Key::generate(&keys, "Teleport test release <release@example.com>");
        let foreign = Key::generate(&keys, "Someone else <mallory@example.com>");
        let release_key = dir.join("RPM-GPG-KEY-teleport");
        release.export_armored(&release_key);

        let build = dir.join("build");
        let mut rpms = Vec::new();
        for v in VERSIONS {
            let p = build_rpm(&RpmSpec::agent(PKG, v), &build.join("signed"));
            sign_rpm(&release, &p);
            rpms.push((v.to_string(), p));
        }
        let unsigned = build_rpm(&RpmSpec::agent(PKG, "15.4.3"), &build.join("unsigned"));
        let foreign_signed = build_rpm(&RpmSpec::agent(PKG, "15.4.3"), &build.join("foreign"));
        sign_rpm(&foreign, &foreign_signed);

        let repos = dir.join("repos");
        let all: Vec<PathBuf> = rpms.iter().map(|(_, p)| p.clone()).collect();
        let with_1543 =
            |p: &PathBuf| -> Vec<PathBuf> { vec![rpms[0].1.clone(), p.clone(), rpms[2].1.clone()] };
        RpmRepo::build(&repos.join("good"), &all, Some(&release));
        RpmRepo::build(&repos.join("badmeta"), &all, Some(&foreign));
        RpmRepo::build(&repos.join("nometa"), &all, None);
        RpmRepo::build(
            &repos.join("unsignedrpm"),
            &with_1543(&unsigned),
            Some(&release),
        );
        RpmRepo::build(
            &repos.join("foreignrpm"),
            &with_1543(&foreign_signed),
            Some(&release),
        );
        let tampered = RpmRepo::build(&repos.join("tampered"), &all, Some(&release));
        tampered.tamper(rpms[1].1.file_name().unwrap().to_str().unwrap());
        drop(release);
        drop(foreign);
        let server = Server::start(&repos);
        eprintln!("rpm fixture built in {:?}", t.elapsed());
        Fixture {
            release_key,
            rpms,
            server,
        }
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pm {
    Dnf,
    Zypper,
}

/// One alternate root with the Teleport repository defined and, usually,
/// 15.4.2 installed.
struct Env {
    pm: Pm,
    root: RpmRoot,
    repo_file: String,
}

const KEY_IN_ROOT: &str = "/etc/pki/rpm-gpg/RPM-GPG-KEY-teleport";

fn good_settings() -> Vec<(&'static str, &'static str)> {
    vec![
        ("autorefresh", "0"),
        ("gpgcheck", "1"),
        ("repo_gpgcheck", "1"),
        ("pkg_gpgcheck", "1"),
        ("gpgkey", "file:///etc/pki/rpm-gpg/RPM-GPG-KEY-teleport"),
    ]
}

impl Env {
    fn new(pm: Pm, repo: &str) -> Env {
        Env::with(pm, repo, &good_settings(), Some("15.4.2"))
    }

    fn with(pm: Pm, repo: &str, settings: &[(&str, &str)], installed: Option<&str>) -> Env {
        let f = fixture();
        let root = RpmRoot::new(&std::env::temp_dir());
        root.write(KEY_IN_ROOT, std::fs::read(&f.release_key).unwrap());
        let repo_file = match pm {
            Pm::Dnf => "/etc/yum.repos.d/teleport.repo",
            Pm::Zypper => "/etc/zypp/repos.d/teleport.repo",
        }
        .to_string();
        root.write(
            &repo_file,
            RpmRepo::repo_file("teleport", &f.url(repo), settings),
        );
        match pm {
            // The host's dnf.conf would apply otherwise (dnf looks in the
            // root first, then on the host).
            Pm::Dnf => root.write(
                "/etc/dnf/dnf.conf",
                "[main]\ngpgcheck=1\ninstallonly_limit=3\n",
            ),
            Pm::Zypper => {
                root.write("/etc/zypp/zypp.conf", "[main]\n");
                // zypper never imports keys itself: the administrator does.
                root.import_key(&f.release_key);
            }
        }
        if let Some(v) = installed {
            if pm == Pm::Dnf {
                // dnf imports the key from gpgkey= on its first install; rpm
                // -i here only warns NOKEY.
                root.import_key(&f.release_key);
            }
            root.install(f.rpm(v));
        }
        Env {
            pm,
            root,
            repo_file,
        }
    }

    fn options(&self) -> Options {
        Options {
            lock_wait: Duration::from_secs(2),
            command_timeout: Duration::from_secs(60),
            source_file: None,
            hold_record: None,
            hints: backends::RepoHints {
                release_hosts: vec!["releases.teleport.dev".into()],
                words: vec!["teleport".into()],
            },
        }
    }

    fn backend(&self) -> Box<dyn Backend> {
        self.backend_with(self.options())
    }

    fn backend_with(&self, opts: Options) -> Box<dyn Backend> {
        let sys = System::rooted(self.root.path()).unwrap();
        match self.pm {
            Pm::Dnf => Box::new(Dnf::new(sys, opts).unwrap()),
            Pm::Zypper => Box::new(Zypper::new(sys, opts).unwrap()),
        }
    }

    fn version(&self) -> Option<String> {
        self.root.installed_version(PKG)
    }

    /// What an administrator's routine full upgrade does (run directly,
    /// not through the backend).
    fn routine_upgrade(&self) -> Output {
        let r = self.root.path().display().to_string();
        let out = match self.pm {
            Pm::Dnf => self
                .root
                .command("dnf")
                .args([
                    "-y".to_string(),
                    format!("--installroot={r}"),
                    format!("--config={r}/etc/dnf/dnf.conf"),
                    format!("--setopt=reposdir={r}/etc/yum.repos.d"),
                    format!("--setopt=teleport.gpgkey=file://{r}{KEY_IN_ROOT}"),
                    "--setopt=skip_if_unavailable=False".into(),
                    "upgrade".into(),
                ])
                .output()
                .unwrap(),
            Pm::Zypper => self
                .root
                .command("zypper")
                .env("ZYPP_CONF", format!("{r}/etc/zypp/zypp.conf"))
                .args(["-n", "--root", &r, "update"])
                .output()
                .unwrap(),
        };
        self.root.end_gpg_agents();
        assert!(
            out.status.success(),
            "routine upgrade failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

fn v(s: &str) -> PkgVersion {
    PkgVersion::parse(s).unwrap()
}

fn pkg() -> PkgName {
    PkgName::parse(PKG).unwrap()
}

/// Run `body` for both backends as two tests in modules `dnf` and `zypper`.
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[test]
            fn dnf() {
                ($body)(Pm::Dnf)
            }
            #[test]
            fn zypper() {
                ($body)(Pm::Zypper)
            }
        }
    };
}

both!(upgrade_to_an_exact_version_and_hold, |pm| {
    let env = Env::new(pm, "good");
    let b = env.backend();
    assert_eq!(
        b.installed(&pkg()).unwrap().unwrap().version.as_str(),
        "15.4.2-1"
    );
    let src = b.locate_source(&pkg()).unwrap();
    assert_eq!(src.id, "teleport");
    assert_eq!(src.file, env.root.file(&env.repo_file));
    assert_eq!(src.keyrings, vec![env.root.file(KEY_IN_ROOT)]);
    assert_eq!(src.uris, vec![fixture().url("good")]);
    b.audit_trust(&src).unwrap();
    let now = b.update_to(&src, &pkg(), &v("15.4.3")).unwrap();
    assert_eq!(now.version.as_str(), "15.4.3-1");
    assert_eq!(env.version().as_deref(), Some("15.4.3-1"));
    assert_eq!(
        env.root.teleport_output().as_deref(),
        Some("Teleport v15.4.3 git: go1.22")
    );
    assert!(b.is_held(&src, &pkg()).unwrap());
    // dnf leaves a gpg-agent per repository checked; the backend ends them.
    let t = Instant::now();
    while !env.root.gpg_agents().is_empty() && t.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        env.root.gpg_agents(),
        Vec::<u32>::new(),
        "gpg-agents left running"
    );
    // Again: nothing to do, still fine.
    b.update_to(&src, &pkg(), &v("15.4.3")).unwrap();
    assert_eq!(env.version().as_deref(), Some("15.4.3-1"));
});

both!(downgrade_to_an_exact_version, |pm| {
    let env = Env::with(pm, "good", &good_settings(), Some("15.4.3"));
    let b = env.backend();
    let src = b.locate_source(&pkg()).unwrap();
    let now = b.update_to(&src, &pkg(), &v("15.4.2")).unwrap();
    assert_eq!(now.version.as_str(), "15.4.2-1");
    assert_eq!(
        env.root.teleport_output().as_deref(),
        Some("Teleport v15.4.2 git: go1.22")
    );
});

both!(a_missing_version_is_version_not_found, |pm| {
    let env = Env::new(pm, "good");
    let b = env.backend();
    let src = b.locate_source(&pkg()).unwrap();
    let err = b.update_to(&src, &pkg(), &v("99.0.0")).unwrap_err();
    assert!(matches!(err, Error::VersionNotFound { .. }), "{err:?}");
    eprintln!("{pm:?} 99.0.0: {err}");
    assert_eq!(env.version().as_deref(), Some("15.4.2-1"));
    // A failed install leaves the hold as it found it: none was added...
    assert!(!b.is_held(&src, &pkg()).unwrap());
    // ...and one in place stays in place.
    b.hold(&src, &pkg()).unwrap();
    let err = b.update_to(&src, &pkg(), &v("99.0.0")).unwrap_err();
    assert!(matches!(err, Error::VersionNotFound { .. }), "{err:?}");
    assert!(b.is_held(&src, &pkg()).unwrap());
});

both!(the_hold_survives_a_routine_upgrade, |pm| {
    let env = Env::new(pm, "good");
    let b = env.backend();
    let src = b.locate_source(&pkg()).unwrap();
    b.update_to(&src, &pkg(), &v("15.4.3")).unwrap();
    let before = std::fs::read_to_string(&src.file).unwrap();
    env.routine_upgrade();
    assert_eq!(
        env.version().as_deref(),
        Some("15.4.3-1"),
        "the routine upgrade moved a held package"
    );
    // Moving on while held works, and only our package's hold changed.
    b.update_to(&src, &pkg(), &v("16.0.0")).unwrap();
    assert_eq!(env.version().as_deref(), Some("16.0.0-1"));
    b.update_to(&src, &pkg(), &v("15.4.3")).unwrap();
    assert_eq!(
        std::fs::read_to_string(&src.file).unwrap(),
        before,
        "hold is idempotent"
    );
    // Without the hold, the same routine upgrade does move it: the hold
    // was what kept it.
    b.unhold(&src, &pkg()).unwrap();
    assert!(!b.is_held(&src, &pkg()).unwrap());
    env.routine_upgrade();
    assert_eq!(env.version().as_deref(), Some("16.0.0-1"));
});

/// Each refusal: the repository, what is wrong, and the words the error
/// must carry.
const REFUSALS: &[(&str, &str)] = &[
    ("badmeta", "metadata signed by an unknown key"),
    ("nometa", "unsigned metadata"),
    ("unsignedrpm", "unsigned package under good metadata"),
    ("foreignrpm", "package signed by a foreign key"),
    ("tampered", "package damaged after indexing"),
];

fn refuse(pm: Pm, repo: &str) {
    let what = REFUSALS.iter().find(|(r, _)| *r == repo).unwrap().1;
    let env = Env::new(pm, repo);
    let b = env.backend();
    let src = b.locate_source(&pkg()).unwrap();
    b.audit_trust(&src)
        .expect("the configuration itself is sound");
    let err = b.update_to(&src, &pkg(), &v("15.4.3")).unwrap_err();
    eprintln!("{pm:?} {what}: {err}");
    assert!(
        err.is_untrusted(),
        "{pm:?} {what}: expected a trust refusal, got {err:?}"
    );
    assert_eq!(
        env.version().as_deref(),
        Some("15.4.2-1"),
        "{pm:?} {what}: the installed version moved"
    );
    assert_eq!(
        env.root.teleport_output().as_deref(),
        Some("Teleport v15.4.2 git: go1.22")
    );
}

both!(refuses_metadata_signed_by_an_unknown_key, |pm| refuse(
    pm, "badmeta"
));
both!(refuses_unsigned_metadata, |pm| refuse(pm, "nometa"));
both!(refuses_an_unsigned_package, |pm| refuse(pm, "unsignedrpm"));
both!(refuses_a_package_signed_by_a_foreign_key, |pm| refuse(
    pm,
    "foreignrpm"
));
both!(refuses_a_tampered_package, |pm| refuse(pm, "tampered"));

/// Audit table: settings of the repository (and of the main configuration)
/// and what the refusal must name.
fn audit_refuses(
    pm: Pm,
    repo_settings: &[(&str, &str)],
    main_conf: Option<&str>,
    must_name: &[&str],
) {
    let env = Env::with(pm, "good", repo_settings, None);
    if let Some(text) = main_conf {
        match pm {
            Pm::Dnf => env.root.write("/etc/dnf/dnf.conf", text),
            Pm::Zypper => env.root.write("/etc/zypp/zypp.conf", text),
        }
    }
    let b = env.backend();
    let src = b.locate_source(&pkg()).unwrap();
    let err = b.audit_trust(&src).unwrap_err();
    eprintln!("{pm:?} audit: {err}");
    assert!(err.is_untrusted(), "{err:?}");
    let msg = err.to_string();
    for m in must_name {
        let m = m.replace("{repo}", &env.repo_file);
        assert!(msg.contains(&m), "{pm:?}: {msg:?} does not name {m:?}");
    }
}

fn replace(
    settings: &[(&'static str, &'static str)],
    key: &str,
    value: &'static str,
) -> Vec<(&'static str, &'static str)> {
    settings
        .iter()
        .map(|(k, v)| if *k == key { (*k, value) } else { (*k, *v) })
        .collect()
}

// Line numbers: [teleport] is line 1, then name, baseurl, enabled,
// autorefresh (5), gpgcheck (6), repo_gpgcheck (7), pkg_gpgcheck (8), gpgkey (9).
both!(audit_refuses_gpgcheck_0, |pm| {
    audit_refuses(
        pm,
        &replace(&good_settings(), "gpgcheck", "0"),
        None,
        &["{repo}:6", "gpgcheck=0", "set gpgcheck=1"],
    )
});

both!(audit_refuses_repo_gpgcheck_0, |pm| {
    audit_refuses(
        pm,
        &replace(&good_settings(), "repo_gpgcheck", "0"),
        None,
        &["{repo}:7", "repo_gpgcheck=0", "set repo_gpgcheck=1"],
    )
});

both!(audit_refuses_a_repository_without_gpgkey, |pm| {
    let s: Vec<_> = good_settings()
        .into_iter()
        .filter(|(k, _)| *k != "gpgkey")
        .collect();
    audit_refuses(
        pm,
        &s,
        None,
        &["{repo}:1", "gpgkey", "names no signing key"],
    )
});

both!(audit_refuses_a_global_override, |pm| {
    let s: Vec<_> = good_settings()
        .into_iter()
        .filter(|(k, _)| *k != "repo_gpgcheck")
        .collect();
    match pm {
        Pm::Dnf => audit_refuses(
            pm,
            &s,
            Some("[main]\ngpgcheck=1\nrepo_gpgcheck=0\n"),
            &["/etc/dnf/dnf.conf:3", "repo_gpgcheck=0"],
        ),
        Pm::Zypper => audit_refuses(
            pm,
            &s,
            Some("[main]\n# x\nrepo_gpgcheck = off\n"),
            &["/etc/zypp/zypp.conf:3", "repo_gpgcheck = off"],
        ),
    }
});

#[test]
fn dnf_audit_refuses_a_missing_repo_gpgcheck_and_an_http_key() {
    let s: Vec<_> = good_settings()
        .into_iter()
        .filter(|(k, _)| *k != "repo_gpgcheck" && *k != "gpgkey")
        .chain([("gpgkey", "http://keys.example.com/teleport.asc")])
        .collect();
    audit_refuses(
        Pm::Dnf,
        &s,
        None,
        &[
            "{repo}:1: repo_gpgcheck",
            "dnf's default is off",
            "gpgkey=http://keys.example.com/teleport.asc",
        ],
    );
}

#[test]
fn zypper_audit_accepts_defaults_but_warns_about_pkg_gpgcheck() {
    let s: Vec<_> = good_settings()
        .into_iter()
        .filter(|(k, _)| *k == "gpgkey" || *k == "autorefresh")
        .collect();
    let env = Env::with(Pm::Zypper, "good", &s, None);
    let b = env.backend();
    let src = b.locate_source(&pkg()).unwrap();
    let report = b.audit_trust(&src).unwrap();
    assert!(
        report.warnings.iter().any(|w| w.setting == "pkg_gpgcheck"),
        "{report:?}"
    );
}

both!(the_repository_is_found_by_definition_not_by_name, |pm| {
    let env = Env::with(pm, "good", &good_settings(), Some("15.4.2"));
    let dir = match pm {
        Pm::Dnf => "/etc/yum.repos.d",
        Pm::Zypper => "/etc/zypp/repos.d",
    };
    // Another repository first in order, and ours under a neutral name.
    env.root.write(
        &format!("{dir}/aaa-os.repo"),
        RpmRepo::repo_file(
            "os",
            "http://127.0.0.1:9/os/",
            &[("gpgcheck", "1"), ("enabled", "0")],
        ),
    );
    std::fs::remove_file(env.root.file(&env.repo_file)).unwrap();
    let neutral = format!("{dir}/vendor.repo");
    env.root.write(
        &neutral,
        RpmRepo::repo_file("vendor-main", &fixture().url("good"), &good_settings()),
    );
    let b = env.backend();
    // The choice reads configuration only: a repository under a neutral
    // name is not found, before and after the package manager's cache
    // knows it offers the package (the same answer either way).
    let err = b.locate_source(&pkg()).unwrap_err();
    assert!(matches!(err, Error::SourceNotFound { .. }), "{err:?}");
    // Named by configuration, it is used.
    let mut opts = env.options();
    opts.source_file = Some(PathBuf::from(&neutral));
    let named = env.backend_with(opts);
    let src = named.locate_source(&pkg()).unwrap();
    assert_eq!(
        (src.id.as_str(), src.file.clone()),
        ("vendor-main", env.root.file(&neutral))
    );
    named.refresh(&src).unwrap();
    let again = b.locate_source(&pkg()).unwrap_err();
    assert_eq!(again.to_string(), err.to_string());
    let now = named.update_to(&src, &pkg(), &v("15.4.3")).unwrap();
    assert_eq!(now.version.as_str(), "15.4.3-1");
});

both!(
    a_definition_outside_the_repository_directory_is_used_in_place,
    |pm| {
        let env = Env::new(pm, "good");
        // Only the configured file defines the repository.
        let text = env.root.read(&env.repo_file);
        std::fs::remove_file(env.root.file(&env.repo_file)).unwrap();
        env.root.write("/etc/teleport/teleport.repo", &text);
        let mut opts = env.options();
        opts.source_file = Some(PathBuf::from("/etc/teleport/teleport.repo"));
        let b = env.backend_with(opts);
        let src = b.locate_source(&pkg()).unwrap();
        assert_eq!(src.file, env.root.file("/etc/teleport/teleport.repo"));
        b.audit_trust(&src).unwrap();
        assert_eq!(
            b.update_to(&src, &pkg(), &v("15.4.3"))
                .unwrap()
                .version
                .as_str(),
            "15.4.3-1"
        );
        assert!(b.is_held(&src, &pkg()).unwrap());
    }
);

both!(
    another_process_holding_the_lock_is_locked_within_the_wait,
    |pm| {
        let env = Env::new(pm, "good");
        let b = env.backend();
        let src = b.locate_source(&pkg()).unwrap();
        let mut holder = Command::new("sleep").arg("60").spawn().unwrap();
        let pidfile = match pm {
            Pm::Dnf => "/var/cache/dnf/metadata_lock.pid",
            Pm::Zypper => "/run/zypp.pid",
        };
        env.root.write(pidfile, format!("{}\n", holder.id()));
        let mut opts = env.options();
        opts.lock_wait = Duration::from_secs(1);
        let b = env.backend_with(opts);
        let t = Instant::now();
        let err = b.refresh(&src).unwrap_err();
        let waited = t.elapsed();
        let _ = holder.kill();
        let _ = holder.wait();
        eprintln!("{pm:?} locked after {waited:?}: {err}");
        assert!(matches!(err, Error::Locked { .. }), "{err:?}");
        assert!(
            waited >= Duration::from_millis(900) && waited < Duration::from_secs(15),
            "{waited:?}"
        );
    }
);

both!(installed_reads_a_rhel_style_database_too, |pm| {
    let env = Env::with(pm, "good", &good_settings(), None);
    // Only the RHEL-style database (the zypper setup imported the key into
    // this host's default one).
    let _ = std::fs::remove_dir_all(env.root.file("/root/.rpmdb"));
    let f = fixture();
    let r = env.root.path().display().to_string();
    for args in [
        vec![
            "--root",
            &r,
            "--dbpath",
            "/var/lib/rpm",
            "--import",
            f.release_key.to_str().unwrap(),
        ],
        vec![
            "--root",
            &r,
            "--dbpath",
            "/var/lib/rpm",
            "-i",
            f.rpm("16.0.0").to_str().unwrap(),
        ],
    ] {
        let out = Command::new("rpm").args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(env.root.file("/var/lib/rpm/rpmdb.sqlite").is_file());
    assert!(!env.root.file("/root/.rpmdb/rpmdb.sqlite").exists());
    let b = env.backend();
    assert_eq!(
        b.installed(&pkg()).unwrap().unwrap().version.as_str(),
        "16.0.0-1"
    );
    assert!(b
        .installed(&PkgName::parse("teleport").unwrap())
        .unwrap()
        .is_none());
});

both!(plan_shows_exact_restricted_verified_commands, |pm| {
    let env = Env::new(pm, "good");
    let b = env.backend();
    let src = b.locate_source(&pkg()).unwrap();
    let plan = b.plan(&src, &pkg(), &v("15.4.3"));
    let text: Vec<String> = plan.iter().map(|c| c.to_string()).collect();
    eprintln!("{pm:?} plan:\n  {}", text.join("\n  "));
    let all = text.join("\n");
    for forbidden in [
        "--nogpgcheck",
        "--no-gpg-checks",
        "--gpg-auto-import-keys",
        "gpgcheck=0",
        "gpgcheck=False",
        "--no-gpgcheck",
    ] {
        assert!(!all.contains(forbidden), "{forbidden} in {all}");
    }
    match pm {
        Pm::Dnf => {
            let install = &plan[1].args;
            let pos = |a: &str| {
                install
                    .iter()
                    .position(|x| x == a)
                    .unwrap_or_else(|| panic!("{a} missing: {all}"))
            };
            assert_eq!(
                pos("--disablerepo=*") + 1,
                pos("--enablerepo=teleport"),
                "{all}"
            );
            assert!(
                all.contains("--disableexcludes=teleport install teleport-ent-15.4.3"),
                "{all}"
            );
            assert!(all.contains("makecache --refresh"), "{all}");
        }
        Pm::Zypper => {
            assert!(
                all.contains(
                    "install --oldpackage --no-recommends --repo=teleport teleport-ent=15.4.3"
                ),
                "{all}"
            );
            assert!(
                all.contains("removelock teleport-ent") && all.contains("addlock teleport-ent"),
                "{all}"
            );
        }
    }
    // Nothing ran.
    assert_eq!(env.version().as_deref(), Some("15.4.2-1"));
    assert!(!b.is_held(&src, &pkg()).unwrap());
});

#[test]
fn dnf_exclude_hold_edits_only_its_section() {
    let env = Env::new(Pm::Dnf, "good");
    let other = "# keep me\n[other]\nbaseurl=http://127.0.0.1:9/\nenabled=0\ngpgcheck=1\n";
    let path = env.root.file(&env.repo_file);
    let original = format!("{}\n{other}", std::fs::read_to_string(&path).unwrap());
    std::fs::write(&path, &original).unwrap();
    let sys = System::rooted(env.root.path()).unwrap();
    let b = Dnf::new(sys, env.options()).unwrap();
    assert_eq!(b.hold_method(), HoldMethod::Exclude);
    let src: Source = b.locate_source(&pkg()).unwrap();
    b.hold(&src, &pkg()).unwrap();
    b.hold(&src, &pkg()).unwrap();
    let held = std::fs::read_to_string(&path).unwrap();
    assert_eq!(held.matches("exclude=teleport-ent").count(), 1, "{held}");
    assert!(held.ends_with(other), "{held}");
    b.unhold(&src, &pkg()).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), original);
}

#[test]
fn backend_for_builds_the_rpm_backends() {
    let env = Env::with(Pm::Dnf, "good", &good_settings(), None);
    let sys = System::rooted(env.root.path()).unwrap();
    for kind in [BackendKind::Dnf, BackendKind::Yum, BackendKind::Zypper] {
        let b = backends::backend_for(kind, sys.clone(), env.options()).unwrap();
        assert_eq!(b.kind(), kind);
    }
    let yum = Dnf::with_program(sys, env.options(), BackendKind::Yum, "dnf").unwrap();
    assert_eq!(yum.program(), "dnf");
}
