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
//! `matrix!` turns each row into `<row>::apt`, `<row>::dnf` and
//! `<row>::zypper`.

mod common;
#[macro_use]
#[path = "common/multi.rs"]
mod multi;
#[path = "common/rpmworld.rs"]
mod rpmworld;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::KEYRING;
use multi::{Kind, World};
use testkit::gpg::Key;

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
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("refusal-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
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
        mod $name {
            use super::*;
            #[test]
            fn apt() {
                check(Kind::Apt, $case)
            }
            #[test]
            fn dnf() {
                check(Kind::Dnf, $case)
            }
            #[test]
            fn zypper() {
                check(Kind::Zypper, $case)
            }
        }
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
            rpmworld::Pm::Dnf => refused(&["teleport-ent-15.4.3", "is not signed"]),
            rpmworld::Pm::Zypper => refused(&["Package is not signed"]),
        }
    }
}
});

matrix!(package_signed_by_a_foreign_key, |w| match w {
    World::Apt(_) => Expect::NotApplicable("a .deb carries no signature of its own"),
    World::Rpm(r) => {
        r.point_at("foreignrpm");
        match r.pm {
            rpmworld::Pm::Dnf => refused(&["not correct for this package"]),
            rpmworld::Pm::Zypper => refused(&["NOKEY"]),
        }
    }
});

// Yesterday's metadata is cached and verified; today the same URL serves
// metadata signed by another key. A refresh that only warns would let the
// cached metadata decide.
matrix!(stale_metadata_after_a_key_change, |w| {
    w.run(&["run"]).expect(0);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"), "the first run");
    w.resign_in_place_with_unknown_key();
    w.set_target("15.4.2");
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
        let mut s = rpmworld::settings();
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
            rpmworld::Pm::Dnf => "/etc/dnf/dnf.conf",
            rpmworld::Pm::Zypper => "/etc/zypp/zypp.conf",
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
        mod $name {
            use super::*;
            #[test]
            fn apt() {
                control(Kind::Apt, $extra)
            }
            #[test]
            fn dnf() {
                control(Kind::Dnf, $extra)
            }
            #[test]
            fn zypper() {
                control(Kind::Zypper, $extra)
            }
        }
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
    apply: fn(&common::World) -> Vec<(String, String)>,
    needles: fn(&common::World) -> Vec<String>,
    before_any_fetch: bool,
}

const WEAK_ON: &str =
    "Acquire::AllowInsecureRepositories \"on\";\nAPT::Get::AllowUnauthenticated \"on\";\n";

fn weak_conf(w: &common::World, text: &str) {
    w.root.write("/etc/apt/apt.conf.d/99weak", text.as_bytes());
}

/// A file outside the root's apt.conf.d holding `text` (host path).
fn outside_file(w: &common::World, text: &str) -> PathBuf {
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
fn prove_plain_apt_installs_unsigned(w: &common::World, env: &[(String, String)], label: &str) {
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
    w.root.dpkg_install(&common::deb("15.4.2"));
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
    w: &common::World,
    env: &[(String, String)],
    needles: &[String],
    label: &str,
    before_any_fetch: bool,
) {
    let db = dpkg_db(w);
    let requests = w.repo_server.requests().len();
    let mut c = w.cmd(&["run"]);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let r = common::Run(out);
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
    assert_eq!(dpkg_db(w), db, "{label}: the dpkg status changed");
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

/// dpkg's view of every package (version, selection, status).
fn dpkg_db(w: &common::World) -> String {
    let out = std::process::Command::new("dpkg-query")
        .arg(format!("--admindir={}", w.root.admindir().display()))
        .args(["-W", "-f", "${Package} ${Version} ${Status}\\n"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The audit sees weakening `i` as apt reads it and refuses, naming it.
fn audit_refuses(i: usize) {
    let row = &apt_weakenings()[i];
    let w = common::World::new("15.4.2", "15.4.3");
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
    let w = common::World::new("15.4.2", "15.4.3");
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
    let w = common::World::new("15.4.2", "15.4.3");
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
    let r = common::Run(c.output().unwrap());
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
        &format!("{}/version", common::CHANNEL),
        testkit::http::Route::redirect(&url),
    );
    let answer = {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(("127.0.0.1", w.vs_port())).unwrap();
        write!(
            c,
            "GET {}/version HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            common::CHANNEL
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

fn with_credentials(w: &World) {
    match w {
        World::Apt(a) => {
            let url = a
                .repo_server
                .url()
                .replace("http://", &format!("http://teleport:{TOKEN}@"));
            a.root.write(
                "/etc/apt/sources.list.d/teleport.list",
                format!("deb [signed-by={KEYRING}] {url}/ bookworm stable/v15\n").as_bytes(),
            );
        }
        World::Rpm(r) => {
            let url = r
                .repo_url("good")
                .replace("http://", &format!("http://teleport:{TOKEN}@"));
            r.root.write(
                r.pm.repo_file(),
                testkit::rpm::RpmRepo::repo_file("teleport", &url, &rpmworld::settings()),
            );
        }
    }
}

fn credentials_never_printed(kind: Kind) {
    let w = World::new(kind, "15.4.2", "15.4.3");
    w.schedule_in_window();
    with_credentials(&w);
    let mut seen = String::new();
    let mut show = |label: &str, r: &common::Run| {
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
    w.config("schedule", &common::schedule_in_window());
    let fail = w.run(&["force", "-v"]);
    assert_ne!(fail.code(), 0, "{kind:?}: the failing run");
    show("failing run", &fail);
    seen.push_str(&std::fs::read_to_string(w.state_file()).unwrap());
    assert!(
        !seen.contains(TOKEN),
        "{kind:?}: the token was printed:\n{seen}"
    );
    assert!(
        seen.contains("***@"),
        "{kind:?}: the source is shown, masked:\n{seen}"
    );
}

each_backend!(credentials_never_printed);

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
    let r = common::Run(c.output().unwrap());
    r.expect(0);
    assert!(r.stdout().contains("target:    15.4.3"), "{}", r.stdout());
    assert_eq!(proxy.asked(), 0, "the proxy was asked");
}
