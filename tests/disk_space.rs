//! Space (issue 23, item 5): before downloading, the agent package's
//! download and installed sizes, from the repository's metadata as the
//! package manager reports it, are compared with the free space where they
//! go; when the package does not fit (with a margin), the update is refused
//! before it starts: exit 4, result word `no-space`, the sizes and paths
//! named, nothing downloaded, nothing installed, the hold unchanged.
//!
//! Real apt/dpkg against a real small tmpfs (the tests run as root): the
//! agent's target version ships a 4 MiB incompressible file, and the
//! filesystem it installs into is a 2 MiB tmpfs. The plain `apt-get
//! install` first shows what happens without the check: it downloads, then
//! dpkg runs out of space midway through the unpack.

use std::path::{Path, PathBuf};
use std::process::Command;

use testkit::deb::build_deb;
use testkit::world::apt::{deb, deb_spec, AptWorld};

/// A small tmpfs mounted over `dir` with `dir`'s files copied in;
/// unmounted when dropped (also when a test fails).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn over(dir: &Path, size: &str) -> Tmpfs {
        let keep = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir).unwrap();
        let copy = |from: &Path, to: &Path| {
            let ok = Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", from.display()))
                .arg(to)
                .status()
                .unwrap();
            assert!(ok.success(), "cp -a {} {}", from.display(), to.display());
        };
        copy(dir, keep.path());
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(
            mounted.success(),
            "mount a small tmpfs (the tests run as root)"
        );
        let t = Tmpfs(dir.to_path_buf());
        copy(keep.path(), dir);
        t
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// 4 MiB that no compressor shrinks (a xorshift stream).
fn incompressible(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// An apt world whose repository offers 15.4.2 and a big 15.4.3 (a 4 MiB
/// file beside the agent in /usr/bin), 15.4.2 installed, a window open.
fn big_world() -> AptWorld {
    let w = AptWorld::new("15.4.2", "15.4.3");
    let mut spec = deb_spec("15.4.3");
    spec.files.push((
        "/usr/bin/teleport-data".into(),
        incompressible(4 << 20),
        0o644,
    ));
    let big = build_deb(&spec, &w.dir.path().join("big-debs"));
    let server = w.publish_only("big", &[deb("15.4.2"), big]);
    std::mem::forget(server); // serves until the test process ends
    w.schedule_in_window();
    w
}

/// The .deb files in the root's package cache (and its partial/).
fn cached_debs(w: &AptWorld) -> Vec<String> {
    let mut v = Vec::new();
    for d in ["/var/cache/apt/archives", "/var/cache/apt/archives/partial"] {
        if let Ok(rd) = std::fs::read_dir(w.root.file(d)) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.ends_with(".deb") || n.contains("teleport") {
                    v.push(format!("{d}/{n}"));
                }
            }
        }
    }
    v
}

/// The plain tool: `apt-get install` with the agent's filesystem too small
/// downloads the package, then dpkg fails midway ("No space left on
/// device"). The updater: refuses before the download, naming the sizes
/// and the path; nothing downloaded, installed or held; once there is room
/// the same run updates.
#[test]
fn a_package_that_does_not_fit_is_refused_before_the_download() {
    // The plain tool first.
    let w = big_world();
    let fs = Tmpfs::over(&w.root.file("/usr/bin"), "2m");
    // The root's sources line, with the key's host path (apt runs here
    // without a chroot).
    let line = std::fs::read_to_string(w.root.file("/etc/apt/sources.list.d/teleport.list"))
        .unwrap()
        .replace(
            "signed-by=/",
            &format!("signed-by={}/", w.root.path().display()),
        );
    let up = w.root.apt_get_with_sources(&line, &["update"]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let plain = w
        .root
        .apt_get_with_sources(&line, &["install", "-y", "teleport-ent=15.4.3"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&plain.stdout),
        String::from_utf8_lossy(&plain.stderr)
    );
    eprintln!("plain apt-get install:\n{text}");
    assert!(!plain.status.success(), "plain apt-get fails");
    assert!(
        text.contains("No space left on device"),
        "dpkg ran out of space midway:\n{text}"
    );
    assert!(
        !cached_debs(&w).is_empty(),
        "the plain tool downloaded the package first"
    );
    drop(fs);

    // The updater, on a fresh host of the same shape.
    let w = big_world();
    assert!(!w.held(), "the world starts unheld");
    let fs = Tmpfs::over(&w.root.file("/usr/bin"), "2m");
    let r = w.run(&["run"]);
    eprintln!("updater:\n{}", r.stderr());
    r.expect(4)
        .logs_contain("not enough free space")
        .logs_contain(&w.root.file("/usr/bin").display().to_string())
        .logs_contain("nothing was downloaded or changed");
    assert_eq!(
        w.installed().as_deref(),
        Some("15.4.2"),
        "nothing installed"
    );
    assert!(!w.held(), "the hold unchanged");
    assert_eq!(cached_debs(&w), Vec::<String>::new(), "nothing downloaded");
    assert!(
        !w.root.file("/var/lib/teleport-upgrade/plan.json").exists(),
        "no plan left"
    );
    let st = w.state();
    assert_eq!(st["last_run"]["result"], "no-space", "{st:#}");
    // A dry run shows the check in the plan.
    let dry = w.run(&["dry-run"]);
    dry.expect(0);
    assert!(
        dry.stdout().contains("fits in the free space"),
        "{}",
        dry.stdout()
    );
    drop(fs);

    // With room, the same run updates.
    w.run(&["run"]).expect(0);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
}

/// The package cache too small for the download: refused the same way,
/// naming the cache directory.
#[test]
fn a_download_that_does_not_fit_in_the_cache_is_refused() {
    let w = big_world();
    let _fs = Tmpfs::over(&w.root.file("/var/cache/apt/archives"), "2m");
    let r = w.run(&["run"]);
    eprintln!("updater:\n{}", r.stderr());
    r.expect(4)
        .logs_contain("not enough free space")
        .logs_contain(&format!(
            " in {}: ",
            w.root.file("/var/cache/apt/archives").display()
        ));
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    assert_eq!(cached_debs(&w), Vec::<String>::new(), "nothing downloaded");
}

/// dnf: the sizes come from dnf's own metadata (`dnf repoquery`), the
/// download goes to dnf's cache in the root. The fixture's packages are a
/// few KiB, so an 8 MiB tmpfs over the cache holds them but not the least
/// margin (16 MiB): refused, naming dnf's cache; with room, the run
/// updates and says the package fits (the sizes were read, not skipped).
#[test]
fn dnf_reads_the_sizes_from_its_metadata() {
    use testkit::world::{Kind, World};
    let w = World::new(Kind::Dnf, "15.4.2", "15.4.3");
    w.schedule_in_window();
    let cache = w.file("/var/cache/dnf");
    let fs = Tmpfs::over(&cache, "8m");
    let r = w.run(&["run"]);
    eprintln!("updater:\n{}", r.stderr());
    r.expect(4)
        .logs_contain("not enough free space")
        .logs_contain("from the repository's metadata")
        .logs_contain(&format!("the download 0.0 MiB in {}: ", cache.display()));
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    assert_eq!(w.state()["last_run"]["result"], "no-space");
    drop(fs);
    w.run(&["run"]).expect(0).logs_contain("15.4.3 fits: ");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
}

/// zypper: the sizes come from zypper's own view of the metadata (a dry
/// run of exactly the install, which the agent's hold does not stop), the
/// download goes to zypper's package cache in the root. As for dnf: an
/// 8 MiB tmpfs over the cache does not hold the least margin: refused,
/// naming the cache, the hold kept; with room, the update goes ahead.
#[test]
fn zypper_reads_the_sizes_from_its_metadata() {
    use testkit::world::{Kind, World};
    let w = World::new(Kind::Zypper, "15.4.2", "15.4.3");
    w.schedule_in_window();
    let plain = |args: &[&str]| match &w {
        World::Rpm(r) => r.plain(args),
        World::Apt(_) => unreachable!(),
    };
    // Held, as every run leaves it: the plain dry run is stopped by the lock.
    assert_eq!(plain(&["addlock", "teleport-ent"]).0, 0);
    let cache = w.file("/var/cache/zypp/packages");
    let fs = Tmpfs::over(&cache, "8m");
    let r = w.run(&["run"]);
    eprintln!("updater:\n{}", r.stderr());
    r.expect(4)
        .logs_contain("not enough free space")
        .logs_contain("from the repository's metadata")
        .logs_contain(&format!("the download 0.0 MiB in {}: ", cache.display()));
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    assert_eq!(w.state()["last_run"]["result"], "no-space");
    let (_, locks) = plain(&["locks"]);
    assert!(locks.contains("teleport-ent"), "still held: {locks}");
    drop(fs);
    w.run(&["run"]).expect(0).logs_contain("15.4.3 fits: ");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
}

/// The package of the version replaced is kept for an offline rollback
/// until the new one is verified: where it goes (the state directory) must
/// have room too, unless it is kept already or apt's archive cache holds a
/// copy on the same filesystem (linked). Here 15.4.2 and 15.4.3 are both
/// 4 MiB and the state directory is a 3 MiB tmpfs: refused before the
/// download, naming it. (Without the kept package counted, the update went
/// on, the keep failed with the state directory full, and the host had no
/// offline rollback.)
#[test]
fn the_kept_package_of_the_version_before_needs_room_too() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    let mut debs = Vec::new();
    for v in ["15.4.2", "15.4.3"] {
        let mut spec = deb_spec(v);
        spec.files.push((
            "/usr/bin/teleport-data".into(),
            incompressible(4 << 20),
            0o644,
        ));
        debs.push(build_deb(&spec, &w.dir.path().join(format!("big-{v}"))));
    }
    let server = w.publish_only("big", &debs);
    std::mem::forget(server);
    w.schedule_in_window();
    let state_dir = w.root.file("/var/lib/teleport-upgrade");
    let _fs = Tmpfs::over(&state_dir, "3m");
    let r = w.run(&["run"]);
    eprintln!("updater:\n{}", r.stderr());
    r.expect(4)
        .logs_contain("not enough free space")
        .logs_contain("the kept package of the version before")
        .logs_contain(&state_dir.display().to_string());
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    assert_eq!(cached_debs(&w), Vec::<String>::new(), "nothing downloaded");
    assert_eq!(w.state()["last_run"]["result"], "no-space");
}
