//! The refusal matrix: every way a repository, a key or the package
//! manager's configuration can fail to vouch for the agent, run through the
//! real binary on every backend (apt with apt-get/dpkg, dnf and zypper with
//! rpm), against repositories signed on the fly.
//!
//! Every case asserts the same four things: exit code 3 ("refused"), the
//! installed version unchanged, the package database unchanged (versions,
//! selections/holds, install times, zypper locks), and a message naming the
//! cause. A case a backend cannot have (apt packages carry no signature of
//! their own) says so in the table instead of passing silently.
//!
//! `matrix!` (`testkit::each_backend!`) turns each row into `<row>::apt`, `<row>::dnf` and
//! `<row>::zypper`. The last section has the refusals of apt's own
//! sources and configuration (verification switched off in a source, no
//! `signed-by`, `AllowUnauthenticated`, stale lists), on apt alone.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use testkit::each_backend;
use testkit::gpg::Key;
use testkit::world::apt::AptWorld;
use testkit::world::rpm::{Pm, RpmWorld};
use testkit::world::{self, Kind, Run, World, KEYRING, PKG};

/// Keys the pinning cases put in the repository's keyring, made once per
/// test process and exported armored (the keys themselves are dropped, so
/// their gpg-agents end).
struct Keys {
    dir: PathBuf,
    fingerprints: Vec<(&'static str, String)>,
}

impl Keys {
    fn armored(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(format!("{name}.asc"))).unwrap()
    }
    fn fingerprint(&self, name: &str) -> String {
        self.fingerprints
            .iter()
            .find(|(n, _)| *n == name)
            .expect("known key")
            .1
            .clone()
    }
}

fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| {
        let dir = world::scratch_dir("refusal-keys");
        let homes = tempfile::tempdir().unwrap();
        let made: Vec<(&'static str, Key)> = vec![
            (
                "foreign",
                Key::generate(homes.path(), "Mallory <mallory@example.com>"),
            ),
            (
                "expired",
                Key::generate_expired(homes.path(), "Old release <old@example.com>"),
            ),
            ("revoked", {
                let k = Key::generate(homes.path(), "Revoked release <rev@example.com>");
                k.revoke();
                k
            }),
            (
                "expiring",
                Key::generate_expiring(homes.path(), "Next release <next@example.com>", "10d"),
            ),
        ];
        let mut fingerprints = Vec::new();
        for (name, k) in made {
            k.export_armored(&dir.join(format!("{name}.asc")));
            fingerprints.push((name, k.fingerprint()));
        }
        Keys { dir, fingerprints }
    })
}

/// What a case expects of a backend.
enum Expect {
    /// Exit 3 with a message holding every needle.
    Refused(Vec<String>),
    /// The backend cannot have this case; why.
    NotApplicable(&'static str),
}

fn refused(needles: &[&str]) -> Expect {
    Expect::Refused(needles.iter().map(|s| s.to_string()).collect())
}

/// Set up the world (in a window, 15.4.2 installed, target 15.4.3), apply
/// the case, run once, and check the four assertions.
fn check(kind: Kind, case: fn(&World) -> Expect) {
    let w = World::new(kind, "15.4.2", "15.4.3");
    w.schedule_in_window();
    let needles = match case(&w) {
        Expect::Refused(n) => n,
        Expect::NotApplicable(why) => {
            eprintln!("{kind:?}: not applicable: {why}");
            return;
        }
    };
    let version = w.installed();
    let db = w.package_db();
    let r = w.run(&["run"]);
    eprintln!("{kind:?}:\n{}", r.stderr());
    r.expect(3);
    for n in &needles {
        assert!(
            r.stderr().contains(n.as_str()),
            "{kind:?}: the logs do not name {n:?}\n{}",
            r.stderr()
        );
    }
    assert_eq!(w.installed(), version, "{kind:?}: the agent moved");
    assert_eq!(w.package_db(), db, "{kind:?}: the package database changed");
    assert_eq!(w.state()["last_run"]["result"], "refused", "{kind:?}");
}

macro_rules! matrix {
    ($name:ident, $case:expr) => {
        each_backend!($name, |kind| check(kind, $case));
    };
}

// ---- signatures the package manager checks ----

matrix!(unsigned_metadata, |w| {
    w.unsign_metadata();
    match w.kind() {
        Kind::Apt => refused(&["is not signed"]),
        Kind::Dnf => refused(&["repomd.xml.asc"]),
        Kind::Zypper => refused(&["unsigned"]),
    }
});

matrix!(metadata_signed_by_an_unknown_key, |w| {
    w.resign_with_unknown_key();
    match w.kind() {
        Kind::Apt => refused(&["NO_PUBKEY"]),
        Kind::Dnf => refused(&["repomd.xml GPG signature verification error"]),
        Kind::Zypper => refused(&["Signature verification failed for repomd.xml"]),
    }
});

matrix!(tampered_package, |w| {
    w.tamper_target_package();
    match w.kind() {
        Kind::Apt => refused(&["Hash Sum mismatch"]),
        Kind::Dnf => refused(&["teleport-ent-15.4.3", "checksum doesn't match"]),
        Kind::Zypper => refused(&["digest: BAD"]),
    }
});

matrix!(unsigned_package, |w| {
    match w {
    World::Apt(_) => Expect::NotApplicable(
        "a .deb carries no signature: apt vouches for it through the signed metadata's hashes (see tampered_package)"
    ),
    World::Rpm(r) => {
        r.point_at("unsignedrpm");
        match r.pm {
            world::rpm::Pm::Dnf => refused(&["teleport-ent-15.4.3", "is not signed"]),
            world::rpm::Pm::Zypper => refused(&["Package is not signed"]),
        }
    }
}
});

matrix!(package_signed_by_a_foreign_key, |w| match w {
    World::Apt(_) => Expect::NotApplicable("a .deb carries no signature of its own"),
    World::Rpm(r) => {
        r.point_at("foreignrpm");
        match r.pm {
            world::rpm::Pm::Dnf => refused(&["not correct for this package"]),
            world::rpm::Pm::Zypper => refused(&["NOKEY"]),
        }
    }
});

// Yesterday's metadata is cached and verified; today the same URL serves
// metadata signed by another key. A refresh that only warns would let the
// cached metadata decide.
matrix!(stale_metadata_after_a_key_change, |w| {
    w.run(&["run"]).expect(0);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"), "the first run");
    // The lower target seen by a check before (it is installed only on a
    // second one).
    w.set_target("15.4.2");
    w.sight_lower_target();
    w.resign_in_place_with_unknown_key();
    match w.kind() {
        Kind::Apt => refused(&["NO_PUBKEY"]),
        Kind::Dnf => refused(&["GPG signature verification error"]),
        Kind::Zypper => refused(&["Signature verification failed"]),
    }
});

// ---- configuration that switches checks off: refused before any package
// operation, naming file, line and setting ----

/// One way of switching verification off: a label, the change, and what
/// the refusal must name.
type SwitchOff = (&'static str, Box<dyn Fn(&World)>, Vec<String>);

/// Each backend's ways of switching verification off.
fn switch_offs(w: &World) -> Vec<SwitchOff> {
    fn apt_line(w: &World, opts: &str) {
        let World::Apt(a) = w else { unreachable!() };
        a.root.write(
            "/etc/apt/sources.list.d/teleport.list",
            format!(
                "deb [{opts}] {}/ bookworm stable/v15\n",
                a.repo_server.url()
            )
            .as_bytes(),
        );
    }
    fn apt_conf(w: &World, text: &'static str) {
        let World::Apt(a) = w else { unreachable!() };
        a.root
            .write("/etc/apt/apt.conf.d/99insecure", text.as_bytes());
    }
    fn rpm_settings(w: &World, set: &[(&'static str, Option<&'static str>)]) {
        let World::Rpm(r) = w else { unreachable!() };
        let mut s = world::rpm::settings();
        for (k, v) in set {
            match v {
                Some(v) => match s.iter_mut().find(|(sk, _)| sk == k) {
                    Some(e) => e.1 = v,
                    None => s.push((k, v)),
                },
                None => s.retain(|(sk, _)| sk != k),
            }
        }
        r.write_repo_file("good", &s);
    }
    fn main_conf(w: &World, text: &'static str) {
        let World::Rpm(r) = w else { unreachable!() };
        let file = match r.pm {
            world::rpm::Pm::Dnf => "/etc/dnf/dnf.conf",
            world::rpm::Pm::Zypper => "/etc/zypp/zypp.conf",
        };
        r.root.write(file, text);
    }
    let n = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let kr = KEYRING;
    match w.kind() {
        Kind::Apt => vec![
            (
                "trusted=yes",
                Box::new(move |w: &World| apt_line(w, &format!("signed-by={kr} trusted=yes")))
                    as Box<dyn Fn(&World)>,
                n(&["teleport.list:1", "trusted=yes"]),
            ),
            (
                "allow-insecure=yes",
                Box::new(move |w: &World| {
                    apt_line(w, &format!("signed-by={kr} allow-insecure=yes"))
                }),
                n(&["teleport.list:1", "allow-insecure=yes"]),
            ),
            (
                "allow-weak=yes",
                Box::new(move |w: &World| apt_line(w, &format!("signed-by={kr} allow-weak=yes"))),
                n(&["teleport.list:1", "allow-weak=yes"]),
            ),
            (
                "no signed-by (plain http)",
                Box::new(|w: &World| apt_line(w, "arch=amd64")),
                n(&["teleport.list:1", "not restricted to a keyring"]),
            ),
            (
                "APT::Get::AllowUnauthenticated",
                Box::new(|w: &World| apt_conf(w, "APT::Get::AllowUnauthenticated \"true\";\n")),
                n(&["99insecure:1", "AllowUnauthenticated"]),
            ),
            (
                "Acquire::AllowInsecureRepositories",
                Box::new(|w: &World| {
                    apt_conf(w, "// x\nAcquire::AllowInsecureRepositories \"1\";\n")
                }),
                n(&["99insecure:2", "AllowInsecureRepositories"]),
            ),
            (
                "Acquire::AllowDowngradeToInsecureRepositories",
                Box::new(|w: &World| {
                    apt_conf(
                        w,
                        "Acquire { AllowDowngradeToInsecureRepositories \"true\"; };\n",
                    )
                }),
                n(&["99insecure:1", "AllowDowngradeToInsecureRepositories"]),
            ),
        ],
        Kind::Dnf | Kind::Zypper => {
            let mut v: Vec<SwitchOff> = vec![
                (
                    "gpgcheck=0",
                    Box::new(|w: &World| rpm_settings(w, &[("gpgcheck", Some("0"))])),
                    n(&["teleport.repo:6", "gpgcheck=0"]),
                ),
                (
                    "repo_gpgcheck=0",
                    Box::new(|w: &World| rpm_settings(w, &[("repo_gpgcheck", Some("0"))])),
                    n(&["teleport.repo:7", "repo_gpgcheck=0"]),
                ),
                (
                    "no gpgkey",
                    Box::new(|w: &World| rpm_settings(w, &[("gpgkey", None)])),
                    n(&["teleport.repo:1", "gpgkey"]),
                ),
            ];
            if w.kind() == Kind::Dnf {
                v.push((
                    "dnf.conf repo_gpgcheck=0 (global)",
                    Box::new(|w: &World| {
                        rpm_settings(w, &[("repo_gpgcheck", None)]);
                        main_conf(w, "[main]\ngpgcheck=1\nrepo_gpgcheck=0\n");
                    }),
                    n(&["/etc/dnf/dnf.conf:3", "repo_gpgcheck=0"]),
                ));
            } else {
                v.push((
                    "pkg_gpgcheck=0",
                    Box::new(|w: &World| rpm_settings(w, &[("pkg_gpgcheck", Some("0"))])),
                    n(&["teleport.repo:8", "pkg_gpgcheck=0"]),
                ));
                v.push((
                    "zypp.conf repo_gpgcheck = off (global)",
                    Box::new(|w: &World| {
                        rpm_settings(w, &[("repo_gpgcheck", None)]);
                        main_conf(w, "[main]\n# x\nrepo_gpgcheck = off\n");
                    }),
                    n(&["/etc/zypp/zypp.conf:3", "repo_gpgcheck = off"]),
                ));
            }
            v
        }
    }
}

fn check_switch_offs(kind: Kind) {
    // The variants of one backend, each in a fresh world.
    let probe = World::new(kind, "15.4.2", "15.4.3");
    let variants = switch_offs(&probe);
    drop(probe);
    assert!(variants.len() >= 4, "{kind:?}: too few variants");
    for (label, apply, needles) in variants {
        let w = World::new(kind, "15.4.2", "15.4.3");
        w.schedule_in_window();
        apply(&w);
        let db = w.package_db();
        let r = w.run(&["run"]);
        eprintln!("{kind:?} {label}:\n{}", r.stderr());
        assert_eq!(r.code(), 3, "{kind:?} {label}: exit\n{}", r.stderr());
        for n in &needles {
            assert!(
                r.stderr().contains(n.as_str()),
                "{kind:?} {label}: the logs do not name {n:?}\n{}",
                r.stderr()
            );
        }
        assert_eq!(w.installed().as_deref(), Some("15.4.2"), "{kind:?} {label}");
        assert_eq!(w.package_db(), db, "{kind:?} {label}: package database");
        assert_eq!(
            w.repo_requests(),
            0,
            "{kind:?} {label}: refused before any package operation"
        );
    }
}

mod configuration_switches_checks_off {
    use super::*;
    #[test]
    fn apt() {
        check_switch_offs(Kind::Apt)
    }
    #[test]
    fn dnf() {
        check_switch_offs(Kind::Dnf)
    }
    #[test]
    fn zypper() {
        check_switch_offs(Kind::Zypper)
    }
}

// ---- key pinning (`trusted-keys`): refused before any package operation ----

fn pin(w: &World, fingerprints: &[String]) {
    w.config("trusted-keys", &fingerprints.join("\n"));
}

matrix!(keyring_lacks_the_pinned_key, |w| {
    pin(w, &[keys().fingerprint("foreign")]);
    refused(&[
        "none of the fingerprints",
        "trusted-keys",
        &w.release_fingerprint(),
    ])
});

matrix!(keyring_trusts_a_key_that_is_not_pinned, |w| {
    let mut ring = std::fs::read(w.keyring()).unwrap();
    ring.extend(keys().armored("foreign"));
    std::fs::write(w.keyring(), ring).unwrap();
    pin(w, &[w.release_fingerprint()]);
    refused(&["also trusts", &keys().fingerprint("foreign")])
});

matrix!(pinned_key_expired, |w| {
    std::fs::write(w.keyring(), keys().armored("expired")).unwrap();
    pin(w, &[keys().fingerprint("expired")]);
    refused(&["expired on", &keys().fingerprint("expired")])
});

matrix!(pinned_key_revoked, |w| {
    std::fs::write(w.keyring(), keys().armored("revoked")).unwrap();
    pin(w, &[keys().fingerprint("revoked")]);
    refused(&["is revoked", &keys().fingerprint("revoked")])
});

// ---- controls: pinning a sound setup lets the update through ----

fn control(kind: Kind, extra_expiring_key: bool) {
    let w = World::new(kind, "15.4.2", "15.4.3");
    w.schedule_in_window();
    let mut pins = vec![w.release_fingerprint()];
    if extra_expiring_key {
        // A key rotation: the next release key is already in the keyring
        // and pinned, and it expires in ten days.
        let mut ring = std::fs::read(w.keyring()).unwrap();
        ring.extend(keys().armored("expiring"));
        std::fs::write(w.keyring(), ring).unwrap();
        pins.push(keys().fingerprint("expiring"));
    }
    pin(&w, &pins);
    let r = w.run(&["run"]);
    eprintln!("{kind:?}:\n{}", r.stderr());
    r.expect(0).logs_contain("pinned key");
    if extra_expiring_key {
        r.logs_contain("WARN").logs_contain("expires on");
    }
    assert_eq!(w.installed().as_deref(), Some("15.4.3"), "{kind:?}");
}

macro_rules! matrix_control {
    ($name:ident, $extra:expr) => {
        each_backend!($name, |kind| control(kind, $extra));
    };
}

matrix_control!(pinned_release_key_lets_the_update_through, false);
matrix_control!(expiring_pinned_key_warns_and_updates, true);

/// A malformed pin file is a configuration error (exit 2) naming the file
/// and line; nothing is asked of the repository.
#[test]
fn a_malformed_trusted_keys_file_is_a_configuration_error() {
    let w = World::new(Kind::Apt, "15.4.2", "15.4.3");
    w.schedule_in_window();
    w.config("trusted-keys", "# release key\nDEADBEEF\n");
    let r = w.run(&["run"]);
    r.expect(2)
        .logs_contain("trusted-keys")
        .logs_contain("line 2")
        .logs_contain("not an OpenPGP fingerprint");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    assert_eq!(w.repo_requests(), 0);
}

// ---- enforcement (issue 14): what the plain package manager falls for,
// the updater refuses, also with its configuration audit switched off ----
//
// Each row runs three fresh roots: (1) the plain dnf/zypper, run by hand as
// an operator would, DOES install the unsigned or foreign 15.4.3: the
// weakening is real; (2) the updater refuses it (exit 3, database
// unchanged, the cause named); (3) the same with the audit switched off
// (`TELEPORT_UPGRADE_TEST_SKIP_AUDIT`, honoured by debug builds only): the
// options the updater forces on the command line refuse it alone.

/// The updater's run in `w`, with `env` added to the caller's environment.
fn run_with_env(w: &RpmWorld, args: &[&str], env: &[(String, String)]) -> Run {
    let mut c = world::command(w.root.path(), args);
    c.env_remove("TELEPORT_UPGRADE_TEST_SKIP_AUDIT");
    for (k, v) in env {
        c.env(k, v);
    }
    Run(c.output().unwrap())
}

/// The plain package manager in `w`'s root, without any option of the
/// updater's, installing 15.4.3 as an operator would (zypper refreshes
/// first: the fixture's repositories are not auto-refreshed).
fn plain_install(w: &RpmWorld, env: &[(String, String)]) -> String {
    plain_install_with(w, env, true)
}

/// [`plain_install`]; `host_key`: tell dnf where the root's key is on the
/// host (dnf reads gpgkey paths on the host even with --installroot).
fn plain_install_with(w: &RpmWorld, env: &[(String, String)], host_key: bool) -> String {
    let root = w.root.path().display().to_string();
    let mut outputs = String::new();
    let mut cmds: Vec<std::process::Command> = Vec::new();
    match w.pm {
        Pm::Dnf => {
            let mut c = w.root.command("dnf");
            c.args([
                "-y".to_string(),
                format!("--installroot={root}"),
                format!("--config={}", w.root.file("/etc/dnf/dnf.conf").display()),
                format!(
                    "--setopt=reposdir={}",
                    w.root.file("/etc/yum.repos.d").display()
                ),
                "install".into(),
                "teleport-ent-15.4.3".into(),
            ]);
            if host_key {
                // dnf reads gpgkey paths on the host even with
                // --installroot: name the root's key as a host would.
                c.arg(format!(
                    "--setopt=teleport.gpgkey=file://{}",
                    w.root.file(world::rpm::KEY_IN_ROOT).display()
                ));
            }
            cmds.push(c);
        }
        Pm::Zypper => {
            for args in [
                vec!["--non-interactive", "--root", &root, "refresh"],
                vec![
                    "--non-interactive",
                    "--root",
                    &root,
                    "install",
                    "--oldpackage",
                    "teleport-ent=15.4.3",
                ],
            ] {
                let mut c = w.root.command("zypper");
                // What zypper reads for this root unless told otherwise.
                c.env("ZYPP_CONF", w.root.file("/etc/zypp/zypp.conf"));
                c.args(args);
                cmds.push(c);
            }
        }
    }
    for mut c in cmds {
        for (k, v) in env {
            c.env(k, v);
        }
        c.stdin(std::process::Stdio::null());
        let out = c.output().unwrap();
        outputs.push_str(&String::from_utf8_lossy(&out.stdout));
        outputs.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    w.root.end_gpg_agents();
    outputs
}

/// A weakening: how to set it up in a root, the environment of the caller,
/// what the audit's refusal names, what the enforcement's refusal names.
struct Weakening {
    pm: Pm,
    setup: fn(&RpmWorld),
    env: fn(&RpmWorld) -> Vec<(String, String)>,
    audit: &'static [&'static str],
    enforced: &'static [&'static str],
}

fn no_env(_: &RpmWorld) -> Vec<(String, String)> {
    Vec::new()
}

fn expect_refused(w: &RpmWorld, env: &[(String, String)], needles: &[&str], label: &str) {
    let db = w.package_db();
    let r = run_with_env(w, &["run"], env);
    eprintln!("{label}:\n{}", r.stderr());
    assert_eq!(r.code(), 3, "{label}: exit\n{}", r.stderr());
    for n in needles {
        assert!(
            r.stderr().contains(n),
            "{label}: the logs do not name {n:?}\n{}",
            r.stderr()
        );
    }
    assert_eq!(w.installed().as_deref(), Some("15.4.2"), "{label}");
    assert_eq!(w.package_db(), db, "{label}: the package database changed");
}

fn check_weakening(row: Weakening) {
    // (1) The weakening is real.
    let w = RpmWorld::new(row.pm, "15.4.2", "15.4.3");
    (row.setup)(&w);
    let out = plain_install(&w, &(row.env)(&w));
    assert_eq!(
        w.installed().as_deref(),
        Some("15.4.3"),
        "{:?}: the plain package manager did not fall for it:\n{out}",
        row.pm
    );
    drop(w);
    // (2) The updater refuses it.
    let w = RpmWorld::new(row.pm, "15.4.2", "15.4.3");
    w.schedule_in_window();
    (row.setup)(&w);
    expect_refused(&w, &(row.env)(&w), row.audit, "audited");
    drop(w);
    // (3) The enforcement alone refuses it.
    let w = RpmWorld::new(row.pm, "15.4.2", "15.4.3");
    w.schedule_in_window();
    (row.setup)(&w);
    let mut env = (row.env)(&w);
    env.push(("TELEPORT_UPGRADE_TEST_SKIP_AUDIT".into(), "1".into()));
    expect_refused(&w, &env, row.enforced, "audit skipped");
}

/// The fixture's settings with `set` applied (`None`: removed).
fn with_settings(
    set: &[(&'static str, Option<&'static str>)],
) -> Vec<(&'static str, &'static str)> {
    let mut s = world::rpm::settings();
    for (k, v) in set {
        match v {
            Some(v) => match s.iter_mut().find(|(sk, _)| sk == k) {
                Some(e) => e.1 = v,
                None => s.push((k, v)),
            },
            None => s.retain(|(sk, _)| sk != k),
        }
    }
    s
}

/// No signature setting in the repository: everything is inherited.
const INHERIT: &[(&str, Option<&str>)] = &[
    ("gpgcheck", None),
    ("repo_gpgcheck", None),
    ("pkg_gpgcheck", None),
];

mod enforced {
    use super::*;

    #[test]
    fn dnf_gpgcheck_false() {
        check_weakening(Weakening {
            pm: Pm::Dnf,
            setup: |w| {
                w.write_repo_file(
                    "unsignedrpm",
                    &with_settings(&[("gpgcheck", Some("False"))]),
                )
            },
            env: no_env,
            audit: &["teleport.repo:6", "gpgcheck=False"],
            enforced: &["teleport-ent-15.4.3", "is not signed"],
        })
    }

    #[test]
    fn dnf_repo_gpgcheck_off() {
        check_weakening(Weakening {
            pm: Pm::Dnf,
            setup: |w| {
                w.write_repo_file("nometa", &with_settings(&[("repo_gpgcheck", Some("off"))]))
            },
            env: no_env,
            audit: &["teleport.repo:7", "repo_gpgcheck=off"],
            enforced: &["repomd.xml.asc"],
        })
    }

    #[test]
    fn dnf_gpgcheck_no_inherited_from_dnf_conf() {
        check_weakening(Weakening {
            pm: Pm::Dnf,
            setup: |w| {
                w.write_repo_file("unsignedrpm", &with_settings(&[("gpgcheck", None)]));
                w.root.write("/etc/dnf/dnf.conf", "[main]\ngpgcheck=no\n");
            },
            env: no_env,
            audit: &["/etc/dnf/dnf.conf:2", "gpgcheck=no"],
            enforced: &["teleport-ent-15.4.3", "is not signed"],
        })
    }

    #[test]
    fn zypper_pkg_gpgcheck_off_in_the_repo() {
        check_weakening(Weakening {
            pm: Pm::Zypper,
            setup: |w| {
                w.write_repo_file(
                    "unsignedrpm",
                    &with_settings(&[("pkg_gpgcheck", Some("off"))]),
                )
            },
            env: no_env,
            audit: &["teleport.repo:8", "pkg_gpgcheck=off"],
            enforced: &["Package is not signed"],
        })
    }

    #[test]
    fn zypper_gpgcheck_off_in_the_repo() {
        check_weakening(Weakening {
            pm: Pm::Zypper,
            setup: |w| {
                let mut s = with_settings(INHERIT);
                s.push(("gpgcheck", "off"));
                w.write_repo_file("nometa", &s);
            },
            env: no_env,
            audit: &["teleport.repo:7", "gpgcheck=off"],
            enforced: &["unsigned"],
        })
    }

    #[test]
    fn zypper_gpgcheck_off_in_zypp_conf() {
        check_weakening(Weakening {
            pm: Pm::Zypper,
            setup: |w| {
                w.write_repo_file("nometa", &with_settings(INHERIT));
                w.root
                    .write("/etc/zypp/zypp.conf", "[main]\ngpgcheck = off\n");
            },
            env: no_env,
            audit: &["/etc/zypp/zypp.conf:2", "gpgcheck = off"],
            enforced: &["unsigned"],
        })
    }

    /// The caller's `ZYPP_CONF` switches checks off; the root's own
    /// zypp.conf (what the audit reads) is clean. zypper never sees the
    /// caller's file: the updater hands it its own.
    #[test]
    fn zypper_callers_zypp_conf() {
        fn evil(w: &RpmWorld) -> Vec<(String, String)> {
            let p = w.dir.path().join("caller-zypp.conf");
            std::fs::write(&p, "[main]\ngpgcheck = off\n").unwrap();
            vec![("ZYPP_CONF".into(), p.display().to_string())]
        }
        check_weakening(Weakening {
            pm: Pm::Zypper,
            setup: |w| w.write_repo_file("nometa", &with_settings(INHERIT)),
            env: evil,
            audit: &["unsigned"],
            enforced: &["unsigned"],
        })
    }
}

/// An operator's mirror file, sorting first, defines the same repo id
/// `[teleport]` as the Teleport file, with packages signed by another key
/// (and that key listed). The audit and the pinned key look at the Teleport
/// file; dnf would install from the mirror. Refused before any package
/// operation, naming both files, also with the audit switched off.
#[test]
fn dnf_repo_id_defined_twice() {
    fn setup(w: &RpmWorld) {
        let f = world::rpm::fixture();
        w.root.write(
            "/etc/pki/rpm-gpg/RPM-GPG-KEY-mirror",
            std::fs::read(&f.foreign_key).unwrap(),
        );
        // dnf reads gpgkey paths on the host: name them so.
        let keys = format!(
            "file://{} file://{}",
            w.root.file(world::rpm::KEY_IN_ROOT).display(),
            w.root.file("/etc/pki/rpm-gpg/RPM-GPG-KEY-mirror").display()
        );
        w.root.write(
            "/etc/yum.repos.d/aaa-mirror.repo",
            testkit::rpm::RpmRepo::repo_file(
                "teleport",
                &w.repo_url("foreignrpm"),
                &[("gpgcheck", "1"), ("repo_gpgcheck", "1"), ("gpgkey", &keys)],
            ),
        );
        w.config("trusted-keys", &world::rpm::fixture().release_fingerprint);
    }
    // (1) Plain dnf takes the mirror's definition: a foreign-signed agent.
    let w = RpmWorld::new(Pm::Dnf, "15.4.2", "15.4.3");
    setup(&w);
    let out = plain_install_with(&w, &[], false);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"), "{out}");
    let sig = w
        .root
        .rpm(&["-q", "--qf", "%{RSAHEADER:pgpsig}\n", "teleport-ent"]);
    let sig = String::from_utf8_lossy(&sig.stdout).to_string();
    let foreign = world::rpm::fixture()
        .foreign_fingerprint
        .to_ascii_lowercase();
    assert!(
        foreign.ends_with(&sig.trim().rsplit(' ').next().unwrap().to_ascii_lowercase()),
        "the plain dnf installed the mirror's (foreign-signed) package: {sig}"
    );
    drop(w);
    for skip in [false, true] {
        let w = RpmWorld::new(Pm::Dnf, "15.4.2", "15.4.3");
        w.schedule_in_window();
        setup(&w);
        let mut env = Vec::new();
        if skip {
            env.push((
                "TELEPORT_UPGRADE_TEST_SKIP_AUDIT".to_string(),
                "1".to_string(),
            ));
        }
        expect_refused(
            &w,
            &env,
            &[
                "[teleport] is defined more than once",
                "/etc/yum.repos.d/aaa-mirror.repo:1",
                "/etc/yum.repos.d/teleport.repo:1",
            ],
            if skip { "audit skipped" } else { "audited" },
        );
    }
}

/// zypper: the same alias in two files of repos.d is refused too.
#[test]
fn zypper_alias_defined_twice() {
    let w = RpmWorld::new(Pm::Zypper, "15.4.2", "15.4.3");
    w.schedule_in_window();
    w.root.write(
        "/etc/zypp/repos.d/aaa-mirror.repo",
        testkit::rpm::RpmRepo::repo_file(
            "teleport",
            &w.repo_url("foreignrpm"),
            &world::rpm::settings(),
        ),
    );
    expect_refused(
        &w,
        &[],
        &[
            "[teleport] is defined more than once",
            "aaa-mirror.repo:1",
            "teleport.repo:1",
        ],
        "zypper duplicate",
    );
}

/// The caller's `HOME` holds a `~/.rpmmacros` that moves `%_dbpath`: the
/// plain tool then writes a second rpm database (and the system's never
/// sees the update). The updater's rpm, dnf and zypper read root's home:
/// the system database is updated and no other one is written.
fn callers_rpmmacros(pm: Pm) {
    fn home(w: &RpmWorld) -> Vec<(String, String)> {
        let h = w.dir.path().join("caller-home");
        std::fs::create_dir_all(&h).unwrap();
        std::fs::write(h.join(".rpmmacros"), "%_dbpath /var/lib/caller-rpmdb\n").unwrap();
        vec![("HOME".into(), h.display().to_string())]
    }
    let other_db = |w: &RpmWorld| w.root.file("/var/lib/caller-rpmdb");
    // (1) The plain tool with the caller's HOME uses another database.
    let w = RpmWorld::new(pm, "15.4.2", "15.4.3");
    if pm == Pm::Zypper {
        w.write_repo_file("good", &world::rpm::settings());
    }
    let out = plain_install(&w, &home(&w));
    assert!(other_db(&w).is_dir(), "{pm:?}: no second database:\n{out}");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"), "{pm:?}: {out}");
    drop(w);
    // (2) The updater updates the system's database, and only it.
    let w = RpmWorld::new(pm, "15.4.2", "15.4.3");
    w.schedule_in_window();
    let r = run_with_env(&w, &["run"], &home(&w));
    eprintln!("{}", r.stderr());
    r.expect(0);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"), "{pm:?}");
    assert!(
        !other_db(&w).exists(),
        "{pm:?}: a second database was written"
    );
}

#[test]
fn dnf_callers_rpmmacros() {
    callers_rpmmacros(Pm::Dnf)
}

#[test]
fn zypper_callers_rpmmacros() {
    callers_rpmmacros(Pm::Zypper)
}

// ---- repository files the updater edits keep mode, owner and links ----

/// Make the Teleport repository file a relative symlink to a 0600 file
/// owned by 4242:4243 (credentials in the baseurl are common); returns the
/// target's host path.
fn link_and_protect(def: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = def
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("teleport-repos");
    std::fs::create_dir_all(&dir).unwrap();
    let target = dir.join(def.file_name().unwrap());
    std::fs::rename(def, &target).unwrap();
    let rel = PathBuf::from("../teleport-repos").join(def.file_name().unwrap());
    std::os::unix::fs::symlink(&rel, def).unwrap();
    std::os::unix::fs::chown(&target, Some(4242), Some(4243)).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    target
}

fn assert_kept(def: &Path, target: &Path, label: &str) {
    use std::os::unix::fs::MetadataExt;
    let l = std::fs::symlink_metadata(def).unwrap();
    assert!(l.file_type().is_symlink(), "{label}: the link was replaced");
    assert_eq!(
        std::fs::canonicalize(def).unwrap(),
        std::fs::canonicalize(target).unwrap(),
        "{label}: the link points elsewhere"
    );
    let m = std::fs::metadata(target).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o600, "{label}: mode");
    assert_eq!((m.uid(), m.gid()), (4242, 4243), "{label}: owner");
}

/// dnf's `exclude=` hold (the v1 way, used in an alternate root).
#[test]
fn dnf_exclude_hold_keeps_mode_owner_and_link() {
    let w = RpmWorld::new(Pm::Dnf, "15.4.2", "15.4.3");
    w.schedule_in_window();
    let def = w.root.file(Pm::Dnf.repo_file());
    let target = link_and_protect(&def);
    w.run(&["run"]).expect(0);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    let text = std::fs::read_to_string(&target).unwrap();
    assert!(text.contains("exclude=teleport-ent"), "{text}");
    assert_kept(&def, &target, "exclude hold");
}

/// A channel move (stable/v15 -> stable/v16) rewrites the link's target in
/// place, mode and owner kept; so does its backup.
fn channel_move_keeps_mode_owner_and_link(kind: Kind) {
    let w = World::new(kind, "15.4.3", "16.0.0");
    w.point_at_channel_site(world::channel_site());
    w.schedule_in_window();
    let def = w.repo_definition_path();
    let target = link_and_protect(&def);
    w.run(&["run"]).expect(0);
    assert_eq!(w.installed().as_deref(), Some("16.0.0"), "{kind:?}");
    let text = std::fs::read_to_string(&target).unwrap();
    assert!(text.contains("stable/v16"), "{kind:?}: {text}");
    assert_kept(&def, &target, &format!("{kind:?} channel move"));
}

mod channel_move_keeps_mode_owner_and_link {
    use super::*;
    #[test]
    fn dnf() {
        channel_move_keeps_mode_owner_and_link(Kind::Dnf)
    }
    #[test]
    fn zypper() {
        channel_move_keeps_mode_owner_and_link(Kind::Zypper)
    }
}

// ---- mirrorlist= repositories: refresh and install work; a channel move
// is left to the operator ----

fn mirrorlist_repository(pm: Pm) {
    let w = RpmWorld::new(pm, "15.4.2", "15.4.3");
    w.schedule_in_window();
    w.repo_server.set_route(
        "/mirrors/teleport.txt",
        testkit::http::Route::ok(format!("{}\n", w.repo_url("good"))),
    );
    let mut text = String::from("[teleport]\nname=Teleport (mirrors)\nenabled=1\n");
    text.push_str(&format!(
        "mirrorlist={}/mirrors/teleport.txt\n",
        w.repo_server.url()
    ));
    for (k, v) in world::rpm::settings() {
        text.push_str(&format!("{k}={v}\n"));
    }
    w.root.write(pm.repo_file(), &text);
    let r = w.run(&["run"]);
    eprintln!("{}", r.stderr());
    r.expect(0);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"), "{pm:?}");
    // A new major: no URL to move; the log says the operator moves it.
    w.set_target("16.0.0");
    let r = w.run(&["run"]);
    eprintln!("{}", r.stderr());
    r.logs_contain("cannot move its channel");
}

#[test]
fn dnf_mirrorlist_repository() {
    mirrorlist_repository(Pm::Dnf)
}

#[test]
fn zypper_mirrorlist_repository() {
    mirrorlist_repository(Pm::Zypper)
}

// ---- apt: weakenings in ordinary apt syntax, seen as apt reads them, and
// enforced away on the command line ----
//
// Each row makes the repository unsigned, applies one weakening, and first
// proves that the plain apt-get in the same root does install the unsigned
// 15.4.3 (so the weakening is real); the root is then put back (15.4.2,
// lists and archives emptied) and the updater must refuse: exit 3, the
// agent and dpkg status unchanged, a message naming the cause.

/// One apt weakening: a label, the change (it returns the environment the
/// caller sets, for both the plain apt-get and the updater), what the audit
/// must name, and whether the audit refuses before any package operation.
struct AptWeakening {
    label: &'static str,
    apply: fn(&AptWorld) -> Vec<(String, String)>,
    needles: fn(&AptWorld) -> Vec<String>,
    before_any_fetch: bool,
}

const WEAK_ON: &str =
    "Acquire::AllowInsecureRepositories \"on\";\nAPT::Get::AllowUnauthenticated \"on\";\n";

fn weak_conf(w: &AptWorld, text: &str) {
    w.root.write("/etc/apt/apt.conf.d/99weak", text.as_bytes());
}

/// A file outside the root's apt.conf.d holding `text` (host path).
fn outside_file(w: &AptWorld, text: &str) -> PathBuf {
    let p = w.dir.path().join("elsewhere/weak.conf");
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

fn apt_weakenings() -> Vec<AptWeakening> {
    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }
    vec![
        AptWeakening {
            label: "\"on\" spelling",
            apply: |w| {
                weak_conf(w, WEAK_ON);
                vec![]
            },
            needles: |_| {
                s(&[
                    "99weak:1",
                    "Acquire::AllowInsecureRepositories \"on\"",
                    "99weak:2",
                    "APT::Get::AllowUnauthenticated \"on\"",
                ])
            },
            before_any_fetch: true,
        },
        AptWeakening {
            label: "\"enable\" spelling",
            apply: |w| {
                weak_conf(
                    w,
                    "Acquire::AllowInsecureRepositories \"enable\";\nAPT::Get::AllowUnauthenticated \"Enable\";\n",
                );
                vec![]
            },
            needles: |_| {
                s(&[
                    "99weak:1",
                    "\"enable\"",
                    "99weak:2",
                    "AllowUnauthenticated \"Enable\"",
                ])
            },
            before_any_fetch: true,
        },
        AptWeakening {
            label: "block syntax",
            apply: |w| {
                weak_conf(
                    w,
                    "Acquire {\n  AllowInsecureRepositories \"true\";\n};\nAPT { Get { AllowUnauthenticated \"true\"; }; };\n",
                );
                vec![]
            },
            needles: |_| {
                s(&[
                    "99weak:2",
                    "AllowInsecureRepositories",
                    "99weak:4",
                    "AllowUnauthenticated",
                ])
            },
            before_any_fetch: true,
        },
        AptWeakening {
            label: "#include from outside apt.conf.d",
            apply: |w| {
                let f = outside_file(w, WEAK_ON);
                weak_conf(
                    w,
                    &format!("// local settings\n#include \"{}\";\n", f.display()),
                );
                vec![]
            },
            needles: |w| {
                let f = w.dir.path().join("elsewhere/weak.conf");
                vec![
                    format!("{}:1", f.display()),
                    "AllowInsecureRepositories".into(),
                    format!("{}:2", f.display()),
                ]
            },
            before_any_fetch: true,
        },
        AptWeakening {
            label: "trusted=on on the source",
            apply: |w| {
                w.root.write(
                    "/etc/apt/sources.list.d/teleport.list",
                    format!(
                        "deb [signed-by={KEYRING} trusted=on] {}/ bookworm stable/v15\n",
                        w.repo_server.url()
                    )
                    .as_bytes(),
                );
                vec![]
            },
            needles: |_| s(&["teleport.list:1", "trusted=on", "reads \"on\" as true"]),
            before_any_fetch: true,
        },
        AptWeakening {
            label: "the caller's APT_CONFIG",
            apply: |w| {
                // The caller's APT_CONFIG: the root's own settings plus the
                // weakening, as an operator's shell might export it.
                let base = std::fs::read_to_string(w.root.config_path()).unwrap();
                let f = outside_file(w, &format!("{base}{WEAK_ON}"));
                vec![("APT_CONFIG".into(), f.display().to_string())]
            },
            // The updater's children never see it: apt (with a clean
            // environment) refuses the unsigned repository itself.
            needles: |_| {
                s(&[
                    "APT_CONFIG",
                    "from the environment: package managers run with a clean environment",
                    "is not signed",
                ])
            },
            before_any_fetch: false,
        },
    ]
}

/// The plain apt-get, in the same root and with the caller's environment
/// `env`, installs the unsigned 15.4.3; then the root is put back.
fn prove_plain_apt_installs_unsigned(w: &AptWorld, env: &[(String, String)], label: &str) {
    let apt = |args: &[&str]| {
        let mut c = w.root.command("apt-get");
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.args(args).output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let up = apt(&["update"]);
    let inst = apt(&["install", "-y", "teleport-ent=15.4.3"]);
    assert_eq!(
        w.installed().as_deref(),
        Some("15.4.3"),
        "{label}: the weakening is not real: plain apt-get did not install the unsigned package\n{up}\n{inst}"
    );
    // Back to the state the updater must find and leave.
    w.root.dpkg_install(&world::apt::deb("15.4.2"));
    for d in ["/var/lib/apt/lists", "/var/cache/apt/archives"] {
        for e in std::fs::read_dir(w.root.file(d)).unwrap().flatten() {
            if e.path().is_file() {
                std::fs::remove_file(e.path()).unwrap();
            }
        }
    }
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
}

/// Run the updater (with `env`, plus `extra`), and check the refusal.
fn expect_apt_refusal(
    w: &AptWorld,
    env: &[(String, String)],
    needles: &[String],
    label: &str,
    before_any_fetch: bool,
) {
    let db = w.package_db();
    let requests = w.repo_server.requests().len();
    let mut c = w.cmd(&["run"]);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let r = world::Run(out);
    eprintln!("{label}:\n{}", r.stderr());
    assert_eq!(r.code(), 3, "{label}: exit\n{}", r.stderr());
    for n in needles {
        assert!(
            r.stderr().contains(n.as_str()),
            "{label}: the logs do not name {n:?}\n{}",
            r.stderr()
        );
    }
    assert_eq!(
        w.installed().as_deref(),
        Some("15.4.2"),
        "{label}: the agent moved"
    );
    assert_eq!(w.package_db(), db, "{label}: the dpkg status changed");
    assert!(!w.held(), "{label}: a hold appeared");
    if before_any_fetch {
        assert_eq!(
            w.repo_server.requests().len(),
            requests,
            "{label}: refused before any package operation"
        );
    }
    assert_eq!(w.state()["last_run"]["result"], "refused", "{label}");
}

/// The audit sees weakening `i` as apt reads it and refuses, naming it.
fn audit_refuses(i: usize) {
    let row = &apt_weakenings()[i];
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.schedule_in_window();
    w.repo.sign_with(None);
    let env = (row.apply)(&w);
    prove_plain_apt_installs_unsigned(&w, &env, row.label);
    expect_apt_refusal(
        &w,
        &env,
        &(row.needles)(&w),
        row.label,
        row.before_any_fetch,
    );
}

/// With the audit switched off (the debug-build-only
/// `TELEPORT_UPGRADE_TEST_SKIP_APT_CONFIG_AUDIT=1`), the options the
/// updater forces on apt's command line (and the source options it does
/// not carry) alone stop the unsigned install of weakening `i`: apt itself
/// refuses the repository.
fn enforcement_refuses(i: usize) {
    let row = &apt_weakenings()[i];
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.schedule_in_window();
    w.repo.sign_with(None);
    let mut env = (row.apply)(&w);
    prove_plain_apt_installs_unsigned(&w, &env, row.label);
    env.push((backends::apt::SKIP_CONFIG_AUDIT_ENV.into(), "1".into()));
    // apt itself refuses (not the updater's second look at apt's output).
    let needles = vec![
        "apt reported a signature or integrity failure".to_string(),
        "is not signed".to_string(),
    ];
    expect_apt_refusal(&w, &env, &needles, row.label, false);
}

/// `<name>::audit` and `<name>::enforcement` for row `i` of
/// [`apt_weakenings`].
macro_rules! apt_weakening {
    ($name:ident, $i:expr) => {
        mod $name {
            #[test]
            fn audit() {
                super::audit_refuses($i)
            }
            #[test]
            fn enforcement() {
                super::enforcement_refuses($i)
            }
        }
    };
}

apt_weakening!(apt_on_spelling, 0);
apt_weakening!(apt_enable_spelling, 1);
apt_weakening!(apt_block_syntax, 2);
apt_weakening!(apt_include_from_outside_apt_conf_d, 3);
apt_weakening!(apt_trusted_on_source, 4);
apt_weakening!(apt_callers_apt_config, 5);

#[test]
fn every_apt_weakening_has_its_rows() {
    assert_eq!(apt_weakenings().len(), 6);
}

/// A writable directory first on the caller's PATH, holding a fake
/// apt-get (and dpkg, dpkg-query, apt-config): never used.
#[test]
fn a_hostile_path_is_not_used() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.schedule_in_window();
    let evil = w.dir.path().join("evil-bin");
    std::fs::create_dir_all(&evil).unwrap();
    let marker = w.dir.path().join("hijacked");
    for tool in [
        "apt-get",
        "apt-cache",
        "apt-config",
        "dpkg",
        "dpkg-query",
        "systemctl",
    ] {
        let p = evil.join(tool);
        std::fs::write(
            &p,
            format!(
                "#!/bin/sh\necho \"$0 $*\" >> {}\nexit 0\n",
                marker.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let path = format!(
        "{}:{}",
        evil.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // The fake is real: a shell with this PATH runs it.
    let out = std::process::Command::new("sh")
        .args(["-c", "apt-get --version"])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        marker.exists(),
        "the fake apt-get was not run by a plain shell"
    );
    std::fs::remove_file(&marker).unwrap();

    let mut c = w.cmd(&["run"]);
    c.env("PATH", &path).env("LD_LIBRARY_PATH", &evil);
    let r = world::Run(c.output().unwrap());
    eprintln!("{}", r.stderr());
    r.expect(0).logs_contain("LD_LIBRARY_PATH");
    assert_eq!(
        w.installed().as_deref(),
        Some("15.4.3"),
        "the real apt-get installed the update"
    );
    assert!(w.held());
    assert!(
        !marker.exists(),
        "a program from the caller's PATH was run: {}",
        std::fs::read_to_string(&marker).unwrap_or_default()
    );
}

/// A listener that counts the connections it is asked for.
struct Counting {
    port: u16,
    count: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Counting {
    fn start() -> Counting {
        let l = std::net::TcpListener::bind(("0.0.0.0", 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let c = count.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if let Ok(mut s) = s {
                    use std::io::Write;
                    let _ = s.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\n15.4.3",
                    );
                }
            }
        });
        Counting { port, count }
    }
    fn asked(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// This host's address on a non-loopback interface (no packet is sent).
fn non_loopback_ip() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// With `insecure` (plain http to loopback), a redirect from the version
/// server to another host is refused, and that host is never asked.
#[test]
fn a_redirect_off_loopback_is_refused_and_the_other_host_never_asked() {
    let Some(ip) = non_loopback_ip() else {
        eprintln!("no non-loopback interface on this machine: nothing to redirect to");
        return;
    };
    let other = Counting::start();
    let url = format!("http://{ip}:{}/version", other.port);
    // The other host is reachable, and the redirect is really served.
    drop(std::net::TcpStream::connect((ip, other.port)).unwrap());
    let w = World::new(Kind::Apt, "15.4.2", "15.4.3");
    w.schedule_in_window();
    w.set_vs_route(
        &format!("{}/version", world::CHANNEL),
        testkit::http::Route::redirect(&url),
    );
    let answer = {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(("127.0.0.1", w.vs_port())).unwrap();
        write!(
            c,
            "GET {}/version HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            world::CHANNEL
        )
        .unwrap();
        let mut text = String::new();
        c.read_to_string(&mut text).unwrap();
        text
    };
    assert!(
        answer.starts_with("HTTP/1.1 30") && answer.contains(&format!("\r\nLocation: {url}\r\n")),
        "the version server redirects:\n{answer}"
    );
    let before = other.asked();
    let r = w.run(&["run"]);
    eprintln!("{}", r.stderr());
    r.expect(3)
        .logs_contain("refusing a redirect from the loopback version server to another host");
    assert_eq!(other.asked(), before, "the other host was asked");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
}

// ---- credentials in repository URLs never appear in any output ----

const TOKEN: &str = "s3cr3tT0KEN";

fn with_credentials(w: &World, token: &str) {
    match w {
        World::Apt(a) => {
            let url = a
                .repo_server
                .url()
                .replace("http://", &format!("http://teleport:{token}@"));
            a.root.write(
                "/etc/apt/sources.list.d/teleport.list",
                format!("deb [signed-by={KEYRING}] {url}/ bookworm stable/v15\n").as_bytes(),
            );
        }
        World::Rpm(r) => {
            let url = r
                .repo_url("good")
                .replace("http://", &format!("http://teleport:{token}@"));
            r.root.write(
                r.pm.repo_file(),
                testkit::rpm::RpmRepo::repo_file("teleport", &url, &world::rpm::settings()),
            );
        }
    }
}

fn credentials_never_printed(kind: Kind) {
    check_credentials(kind, TOKEN);
}

each_backend!(credentials_never_printed);

/// A password with raw characters that end a URL's authority elsewhere
/// (`;`, `,`, `'`, `>`), which apt accepts as written (zypper refuses them
/// raw, "Invalid password component", and dnf splits a baseurl on `,`:
/// there they are written URL-encoded, which the first row covers).
#[test]
fn apt_credentials_with_special_characters_never_printed() {
    check_credentials(Kind::Apt, "S3c;r,e'T>k");
}

fn check_credentials(kind: Kind, token: &str) {
    let w = World::new(kind, "15.4.2", "15.4.3");
    w.schedule_in_window();
    with_credentials(&w, token);
    let mut seen = String::new();
    let mut show = |label: &str, r: &world::Run| {
        seen.push_str(&format!("--- {label}\n{}{}", r.stdout(), r.stderr()));
    };
    let dry = w.run(&["dry-run"]);
    dry.expect(0);
    show("dry-run", &dry);
    let st = w.run(&["status"]);
    show("status", &st);
    let run = w.run(&["run", "-v"]);
    run.expect(0);
    show("run", &run);
    assert_eq!(
        w.installed().as_deref(),
        Some("15.4.3"),
        "{kind:?}: the credentials work"
    );
    let json = w.run(&["status", "--json"]);
    show("status --json", &json);
    // A failing run: a version the repository does not have.
    w.set_target("15.4.9");
    w.config("schedule", &world::schedule_in_window());
    let fail = w.run(&["force", "-v"]);
    assert_ne!(fail.code(), 0, "{kind:?}: the failing run");
    show("failing run", &fail);
    seen.push_str(&std::fs::read_to_string(w.state_file()).unwrap());
    assert!(
        !seen.contains(token),
        "{kind:?}: the token was printed:\n{seen}"
    );
    assert!(
        seen.contains("***@"),
        "{kind:?}: the source is shown, masked:\n{seen}"
    );
}

/// With `http_proxy`/`https_proxy` set (kept for the package managers),
/// the version server on loopback is still asked directly: the proxy is
/// never asked, and the decision is taken.
#[test]
fn the_loopback_version_server_never_goes_through_a_proxy() {
    let proxy = Counting::start();
    let w = World::new(Kind::Apt, "15.4.2", "15.4.3");
    w.schedule_in_window();
    let World::Apt(a) = &w else { unreachable!() };
    let p = format!("http://127.0.0.1:{}", proxy.port);
    let mut c = a.cmd(&["dry-run"]);
    for k in [
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
    ] {
        c.env(k, &p);
    }
    c.env_remove("no_proxy").env_remove("NO_PROXY");
    let r = world::Run(c.output().unwrap());
    r.expect(0);
    assert!(r.stdout().contains("target:    15.4.3"), "{}", r.stdout());
    assert_eq!(proxy.asked(), 0, "the proxy was asked");
}

// ---- apt's sources and configuration, on apt alone ----
//
// Every refusal leaves the agent unchanged and exits 3.

fn assert_refused(w: &AptWorld, needle: &str) {
    w.schedule_in_window();
    let r = w.run(&["run"]);
    r.expect(3);
    assert!(
        r.stderr().to_lowercase().contains(&needle.to_lowercase()),
        "logs lack {needle:?}\n{}",
        r.stderr()
    );
    assert_eq!(
        w.installed().as_deref(),
        Some("15.4.2"),
        "a refusal must leave the agent unchanged"
    );
    assert_eq!(w.state()["last_run"]["result"], "refused");
}

#[test]
fn repository_signed_by_an_unknown_key_is_refused() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    let other = testkit::gpg::Key::generate(&w.dir.path().join("other"), "Mallory <m@example.com>");
    w.repo.sign_with(Some(&other));
    assert_refused(&w, "NO_PUBKEY");
}

#[test]
fn unsigned_repository_is_refused() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.repo.sign_with(None);
    assert_refused(&w, "signed");
}

#[test]
fn tampered_package_is_refused() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.repo
        .tamper(&format!("{PKG}_15.4.3_{}.deb", testkit::deb::host_arch()));
    assert_refused(&w, "mismatch");
}

#[test]
fn stale_lists_do_not_hide_a_key_gone_wrong() {
    // Yesterday the key worked and the lists were fetched; today the
    // repository is signed by another key. apt-get update alone would only
    // warn and use the old lists.
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.schedule_in_window();
    w.run(&["run"]).expect(0);
    w.run(&["force"]).expect(0); // already at target
    w.set_target("15.4.2");
    w.sight_lower_target(); // a lower target is installed on its second check
    let other = testkit::gpg::Key::generate(&w.dir.path().join("other"), "Mallory <m@example.com>");
    w.repo.sign_with(Some(&other));
    let r = w.run(&["run"]);
    r.expect(3);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
}

#[test]
fn a_source_that_switches_verification_off_is_refused() {
    for opt in ["trusted=yes", "allow-insecure=yes", "allow-weak=yes"] {
        let w = AptWorld::new("15.4.2", "15.4.3");
        w.root.write(
            "/etc/apt/sources.list.d/teleport.list",
            format!(
                "deb [signed-by={KEYRING} {opt}] {}/ bookworm stable/v15\n",
                w.repo_server.url()
            )
            .as_bytes(),
        );
        assert_refused(&w, opt);
        assert_eq!(
            w.repo_server.requests().len(),
            0,
            "{opt}: refused before any package operation"
        );
    }
}

#[test]
fn a_source_without_signed_by_is_refused() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.root.write(
        "/etc/apt/sources.list.d/teleport.list",
        format!("deb {}/ bookworm stable/v15\n", w.repo_server.url()).as_bytes(),
    );
    assert_refused(&w, "not restricted to a keyring");
}

#[test]
fn apt_configuration_that_allows_unauthenticated_is_refused() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.root.write(
        "/etc/apt/apt.conf.d/99insecure",
        b"APT::Get::AllowUnauthenticated \"true\";\n",
    );
    assert_refused(&w, "99insecure:1");
}
