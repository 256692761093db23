//! `--root` with a root whose rpm database is not where the host's rpm
//! keeps its own: an image root built on a Debian host (the host's rpm
//! says `~/.rpmdb`) holding a RHEL-style `/var/lib/rpm`. The updater reads
//! the root's database there (backends/tests/rpmdb_layouts.rs); the
//! package manager must write it there too. Plain dnf does not: it
//! installs into a new, empty `<root>/root/.rpmdb` (shown first), and the
//! root's own database keeps the old version. (Before: the updater's dnf
//! did the same, exit 4, files at the new version, database at the old.)

use std::path::Path;

use testkit::world::rpm::{Pm, RpmWorld};
use testkit::world::PKG;

const ROOT_DB: &str = "/var/lib/rpm";

/// A world whose database lives at `/var/lib/rpm` of the root (moved
/// from where the host's rpm made it).
fn world(pm: Pm) -> RpmWorld {
    let w = RpmWorld::new(pm, "15.4.2", "15.4.3");
    w.schedule_in_window();
    let made = w.root.file("/root/.rpmdb");
    let want = w.root.file(ROOT_DB);
    std::fs::create_dir_all(want.parent().unwrap()).unwrap();
    assert!(
        made.is_dir(),
        "the host's rpm keeps its database in ~/.rpmdb"
    );
    std::fs::rename(&made, &want).unwrap();
    w
}

/// The version of the agent in the root's database at `db`.
fn version_in(w: &RpmWorld, db: &str) -> Option<String> {
    let out = w
        .root
        .rpm(&["--dbpath", db, "-q", "--qf", "%{VERSION}\\n", PKG]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn holds_db(dir: &Path) -> bool {
    ["rpmdb.sqlite", "Packages.db", "Packages"]
        .iter()
        .any(|f| dir.join(f).is_file())
}

#[test]
fn plain_dnf_writes_another_database() {
    let w = world(Pm::Dnf);
    // (--nogpgcheck: plain dnf would read the key file from the host; the
    // signature is not what this shows.)
    let (code, out) = w.plain(&["--nogpgcheck", "install", "teleport-ent-15.4.3"]);
    eprintln!("{out}");
    assert_eq!(code, 0, "{out}");
    assert!(holds_db(&w.root.file("/root/.rpmdb")), "a second database");
    assert_eq!(version_in(&w, ROOT_DB).as_deref(), Some("15.4.2"));
}

fn update_writes_the_roots_database(pm: Pm) {
    let w = world(pm);
    let r = w.run(&["run"]);
    eprintln!("{}", r.stderr());
    r.expect(0);
    assert_eq!(version_in(&w, ROOT_DB).as_deref(), Some("15.4.3"), "{pm:?}");
    assert!(
        !holds_db(&w.root.file("/root/.rpmdb")),
        "{pm:?}: no second database"
    );
}

#[test]
fn dnf_update_writes_the_roots_database() {
    update_writes_the_roots_database(Pm::Dnf)
}

#[test]
fn zypper_update_writes_the_roots_database() {
    update_writes_the_roots_database(Pm::Zypper)
}
