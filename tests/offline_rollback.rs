//! A rollback that does not need the network (apt): the .deb of the
//! version being replaced is kept in the state directory (one version at
//! most) from before the install until the new version is verified, and a
//! rollback installs it locally after checking it against the SHA256 of the
//! signed `Packages` index it was downloaded under.
//!
//! The repository here drops the version before (404) and stops answering
//! its index the moment the broken version is installed, as when a release
//! is pulled (17.3.0 was) while the network is down: the rollback from the
//! repository, which the updater did before, then fails (exit 7).

use std::path::Path;

use testkit::http::Route;
use testkit::world::apt::{deb, deb_spec, AptWorld};
use testkit::world::{self, BROKEN, BROKEN_MARKER, PKG};

const KEPT: &str = "/var/lib/teleport-upgrade/previous";

/// Readiness that follows the installed package: 503 while the broken
/// version's marker is installed.
fn with_readyz(w: &AptWorld) {
    let marker = w.root.file(BROKEN_MARKER);
    w.vs.set_route(
        "/readyz",
        Route::gate(&marker, Route::status(503, "not ready"), Route::ok("ok")),
    );
    w.config("diag-addr", &format!("127.0.0.1:{}", w.vs.port()));
    w.config("health-timeout", "3");
}

/// Once `BROKEN` is installed the repository no longer serves `old`'s
/// .deb nor its signed index.
fn drop_from_repository_once_broken(w: &AptWorld, old: &str) {
    let marker = w.root.file(BROKEN_MARKER);
    let pool = format!("/pool/stable/v15/{}", deb_spec(old).file_name());
    let bytes = std::fs::read(deb(old)).unwrap();
    w.repo_server.set_route(
        &pool,
        Route::gate(&marker, Route::status(404, "gone"), Route::ok(bytes)),
    );
    for f in ["/dists/bookworm/InRelease", "/dists/bookworm/Release"] {
        let body = std::fs::read(w.repo.dir().join(f.trim_start_matches('/'))).unwrap();
        w.repo_server.set_route(
            f,
            Route::gate(&marker, Route::status(503, "down"), Route::ok(body)),
        );
    }
}

fn kept_files(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root.join(KEPT.trim_start_matches('/')))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The broken update is rolled back from the kept .deb although the
/// repository dropped the version before and does not answer; the kept
/// file is gone afterwards; the target is recorded as failed.
#[test]
fn rollback_installs_the_kept_package_when_the_repository_dropped_it() {
    let w = AptWorld::new("15.4.3", BROKEN);
    with_readyz(&w);
    drop_from_repository_once_broken(&w, "15.4.3");
    w.schedule_in_window();
    let r = w.run(&["run"]);
    r.expect(6)
        .logs_contain("kept the package of 15.4.3")
        .logs_contain("matches the SHA-256")
        .logs_contain("from the kept package file");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    assert!(w.held());
    assert_eq!(w.state()["failed_target"]["version"], BROKEN);
    assert!(
        kept_files(w.root.path()).is_empty(),
        "removed after the rollback"
    );
    let pool = format!("/pool/stable/v15/{}", deb_spec("15.4.3").file_name());
    assert_eq!(
        w.repo_server.hits(&pool),
        1,
        "downloaded once, before the install"
    );
}

/// The kept file is one version's .deb and its record, from before the
/// install until the new version is verified (killed after the install,
/// it is still there); the run that verifies the update removes it.
#[test]
fn the_kept_package_lives_until_the_new_version_is_verified() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.vs.set_route("/readyz", Route::ok("ok"));
    w.config("diag-addr", &format!("127.0.0.1:{}", w.vs.port()));
    w.config("health-timeout", "3");
    w.schedule_in_window();
    let out = w
        .cmd(&["run"])
        .env("TELEPORT_UPGRADE_FAILPOINT", "after-install:kill")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    let deb_name = deb_spec("15.4.2").file_name();
    assert_eq!(
        kept_files(w.root.path()),
        vec!["kept.json".to_string(), deb_name]
    );
    w.run(&["run"])
        .expect(0)
        .logs_contain("the agent is healthy");
    assert!(
        kept_files(w.root.path()).is_empty(),
        "removed once verified"
    );
    // A tampered kept file is not installed: removed, and the rollback
    // goes to the repository (here still serving 15.4.3).
    w.vs.set_route(
        "/readyz",
        Route::gate(
            &w.root.file(BROKEN_MARKER),
            Route::status(503, "not ready"),
            Route::ok("ok"),
        ),
    );
    w.config("health-timeout", "3");
    world::set_target(&w.vs, BROKEN);
    let out = w
        .cmd(&["run"])
        .env("TELEPORT_UPGRADE_FAILPOINT", "after-install:kill")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let kept = w
        .root
        .file(&format!("{KEPT}/{}", deb_spec("15.4.3").file_name()));
    let mut bytes = std::fs::read(&kept).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    // a new file: the kept one may be a hard link to apt's archive copy
    std::fs::remove_file(&kept).unwrap();
    std::fs::write(&kept, bytes).unwrap();
    w.run(&["run"])
        .expect(6)
        .logs_contain("removed, not installed");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    assert!(kept_files(w.root.path()).is_empty());
    let _ = PKG;
}

/// apt's own copy of the installed version in its archive cache is kept
/// (linked, checked against the signed index), not downloaded again: here
/// the repository never serves the version before's .deb, so only the
/// cache can give it.
#[test]
fn the_archive_caches_copy_is_kept_without_a_download() {
    let w = AptWorld::new("15.4.3", BROKEN);
    with_readyz(&w);
    drop_from_repository_once_broken(&w, "15.4.3");
    let pool = format!("/pool/stable/v15/{}", deb_spec("15.4.3").file_name());
    w.repo_server
        .set_route(&pool, Route::status(404, "never served"));
    let archives = w.root.file("/var/cache/apt/archives");
    std::fs::create_dir_all(&archives).unwrap();
    std::fs::copy(deb("15.4.3"), archives.join(deb_spec("15.4.3").file_name())).unwrap();
    w.schedule_in_window();
    w.run(&["run", "-v"])
        .expect(6)
        .logs_contain("the package to keep is in apt's archive cache")
        .logs_contain("kept the package of 15.4.3")
        .logs_contain("from the kept package file");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    assert!(
        kept_files(&w.root.file("/")).is_empty(),
        "{:?}",
        kept_files(&w.root.file("/"))
    );
}

/// dnf and zypper: the installed version's .rpm is kept (downloaded from
/// the agent's repository alone, its signature checked with `rpm -K`), and
/// a broken update is rolled back from it (`rpm -U`, signature checked
/// again), then removed.
fn rpm_rollback_installs_the_kept_package(kind: world::Kind) {
    let w = world::World::new(kind, "15.4.3", BROKEN);
    w.set_readiness(w.broken_gate(), "3");
    w.schedule_in_window();
    let r = w.run(&["run", "-v"]);
    r.expect(6)
        .logs_contain("kept the package of 15.4.3")
        .logs_contain("rpm -K")
        .logs_contain("from the kept package file");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"), "{kind:?}");
    assert_eq!(w.state()["failed_target"]["version"], BROKEN);
    let left = kept_files(&w.file("/"));
    assert!(left.is_empty(), "{kind:?}: {left:?}");
}

#[test]
fn dnf_rollback_installs_the_kept_package() {
    rpm_rollback_installs_the_kept_package(world::Kind::Dnf);
}

#[test]
fn zypper_rollback_installs_the_kept_package() {
    rpm_rollback_installs_the_kept_package(world::Kind::Zypper);
}
