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
#[path = "refusal_matrix/rpm_weakenings.rs"]
mod rpm_weakenings;
#[allow(unused_imports)]
use rpm_weakenings::*;
#[path = "refusal_matrix/apt_weakenings.rs"]
mod apt_weakenings;
#[allow(unused_imports)]
use apt_weakenings::*;
#[path = "refusal_matrix/network.rs"]
mod network;
#[allow(unused_imports)]
use network::*;
#[path = "refusal_matrix/apt_sources.rs"]
mod apt_sources;
#[allow(unused_imports)]
use apt_sources::*;

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
    match w.kind() {
        Kind::Apt => apt_switch_offs(),
        Kind::Dnf | Kind::Zypper => rpm_switch_offs(w.kind()),
    }
}

/// The strings a refusal must name.
fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect::<Vec<_>>()
}

/// The repository's sources.list line, with these options.
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

/// An apt.conf fragment.
fn apt_conf(w: &World, text: &'static str) {
    let World::Apt(a) = w else { unreachable!() };
    a.root
        .write("/etc/apt/apt.conf.d/99insecure", text.as_bytes());
}

/// The repository file with these settings changed (`None`: removed).
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

/// The package manager's main configuration file.
fn main_conf(w: &World, text: &'static str) {
    let World::Rpm(r) = w else { unreachable!() };
    let file = match r.pm {
        world::rpm::Pm::Dnf => "/etc/dnf/dnf.conf",
        world::rpm::Pm::Zypper => "/etc/zypp/zypp.conf",
    };
    r.root.write(file, text);
}

/// apt's ways of switching verification off.
fn apt_switch_offs() -> Vec<SwitchOff> {
    let kr = KEYRING;
    vec![
        (
            "trusted=yes",
            Box::new(move |w: &World| apt_line(w, &format!("signed-by={kr} trusted=yes")))
                as Box<dyn Fn(&World)>,
            names(&["teleport.list:1", "trusted=yes"]),
        ),
        (
            "allow-insecure=yes",
            Box::new(move |w: &World| apt_line(w, &format!("signed-by={kr} allow-insecure=yes"))),
            names(&["teleport.list:1", "allow-insecure=yes"]),
        ),
        (
            "allow-weak=yes",
            Box::new(move |w: &World| apt_line(w, &format!("signed-by={kr} allow-weak=yes"))),
            names(&["teleport.list:1", "allow-weak=yes"]),
        ),
        (
            "no signed-by (plain http)",
            Box::new(|w: &World| apt_line(w, "arch=amd64")),
            names(&["teleport.list:1", "not restricted to a keyring"]),
        ),
        (
            "APT::Get::AllowUnauthenticated",
            Box::new(|w: &World| apt_conf(w, "APT::Get::AllowUnauthenticated \"true\";\n")),
            names(&["99insecure:1", "AllowUnauthenticated"]),
        ),
        (
            "Acquire::AllowInsecureRepositories",
            Box::new(|w: &World| apt_conf(w, "// x\nAcquire::AllowInsecureRepositories \"1\";\n")),
            names(&["99insecure:2", "AllowInsecureRepositories"]),
        ),
        (
            "Acquire::AllowDowngradeToInsecureRepositories",
            Box::new(|w: &World| {
                apt_conf(
                    w,
                    "Acquire { AllowDowngradeToInsecureRepositories \"true\"; };\n",
                )
            }),
            names(&["99insecure:1", "AllowDowngradeToInsecureRepositories"]),
        ),
    ]
}

/// dnf's and zypper's ways of switching verification off.
fn rpm_switch_offs(kind: Kind) -> Vec<SwitchOff> {
    let mut v: Vec<SwitchOff> = vec![
        (
            "gpgcheck=0",
            Box::new(|w: &World| rpm_settings(w, &[("gpgcheck", Some("0"))])),
            names(&["teleport.repo:6", "gpgcheck=0"]),
        ),
        (
            "repo_gpgcheck=0",
            Box::new(|w: &World| rpm_settings(w, &[("repo_gpgcheck", Some("0"))])),
            names(&["teleport.repo:7", "repo_gpgcheck=0"]),
        ),
        (
            "no gpgkey",
            Box::new(|w: &World| rpm_settings(w, &[("gpgkey", None)])),
            names(&["teleport.repo:1", "gpgkey"]),
        ),
    ];
    if kind == Kind::Dnf {
        v.push((
            "dnf.conf repo_gpgcheck=0 (global)",
            Box::new(|w: &World| {
                rpm_settings(w, &[("repo_gpgcheck", None)]);
                main_conf(w, "[main]\ngpgcheck=1\nrepo_gpgcheck=0\n");
            }),
            names(&["/etc/dnf/dnf.conf:3", "repo_gpgcheck=0"]),
        ));
    } else {
        v.push((
            "pkg_gpgcheck=0",
            Box::new(|w: &World| rpm_settings(w, &[("pkg_gpgcheck", Some("0"))])),
            names(&["teleport.repo:8", "pkg_gpgcheck=0"]),
        ));
        v.push((
            "zypp.conf repo_gpgcheck = off (global)",
            Box::new(|w: &World| {
                rpm_settings(w, &[("repo_gpgcheck", None)]);
                main_conf(w, "[main]\n# x\nrepo_gpgcheck = off\n");
            }),
            names(&["/etc/zypp/zypp.conf:3", "repo_gpgcheck = off"]),
        ));
    }
    v
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
