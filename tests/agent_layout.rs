//! Teleport's package layout (15.5, 16.5, 17.3 and later: the binaries in
//! `/opt/teleport/system/bin`, linked into `/usr/local/bin` by the
//! package's postinst / %post) and maintainer scripts that fail, with the
//! real dpkg/apt, dnf and zypper in `--root` roots. Each condition is first
//! shown with the plain tool: dpkg leaves a failed postinst half-configured
//! and `dpkg --configure -a` runs it again; dnf exits 0 after a failed
//! %post. Then the updater: the update is rolled back to the version
//! before, held, the target recorded as failed and not tried again; the
//! script runs once.

use std::path::{Path, PathBuf};

use testkit::deb::{build_deb, DebSpec};
use testkit::gpg::Key;
use testkit::rpm::{build_rpm, sign_rpm, RpmRepo, RpmSpec};
use testkit::world::apt::AptWorld;
use testkit::world::rpm::{fixture, Pm, RpmWorld, KEY_IN_ROOT};
use testkit::world::{self, PKG};

/// Where the postinst counts its runs, inside the root.
const RUNS: &str = "/var/tmp/postinst-runs";
const LINK: &str = "/usr/local/bin/teleport";
const BIN: &str = "/opt/teleport/system/bin/teleport";

/// The postinst of the new layout: count the run, link the binary (fails
/// when a regular file is in the way, or without a shell in the root).
fn postinst() -> String {
    format!("echo run >> {RUNS}\nln -s {BIN} {LINK}\n")
}

fn layout_files(version: &str) -> Vec<(String, Vec<u8>, u32)> {
    vec![
        (
            BIN.to_string(),
            format!("#!/bin/sh\necho 'Teleport v{version} git: go1.22'\n").into_bytes(),
            0o755,
        ),
        (
            format!("/usr/share/doc/{PKG}/VERSION"),
            format!("{version}\n").into_bytes(),
            0o644,
        ),
    ]
}

/// `version` of the agent in the new layout, as a .deb.
fn layout_deb(version: &str, dir: &Path) -> PathBuf {
    let mut spec = DebSpec::agent(PKG, version);
    spec.files = layout_files(version);
    spec.postinst = Some(postinst());
    build_deb(&spec, dir)
}

/// A shell, `ln` and a `/var/tmp` inside an apt root (`dpkg --root` runs
/// maintainer scripts chrooted into the root).
fn give_root_a_shell(root: &Path) {
    testkit::aptroot::give_root_programs(root, &[("/bin/dash", "bin/sh"), ("/bin/ln", "bin/ln")]);
    std::fs::create_dir_all(root.join("usr/local/bin")).unwrap();
}

fn runs(root: &Path) -> usize {
    std::fs::read_to_string(root.join(RUNS.trim_start_matches('/')))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// An apt world at 15.4.2 (the old layout) whose repository offers 15.4.2
/// and 15.4.3 in the new layout, with a tarball's regular file at
/// `/usr/local/bin/teleport`.
fn apt_world_with_file_in_the_way() -> (AptWorld, testkit::http::Server) {
    let w = AptWorld::new("15.4.2", "15.4.3");
    give_root_a_shell(w.root.path());
    w.root.write(LINK, b"#!/bin/sh\necho 'tarball'\n");
    let new = layout_deb("15.4.3", &w.dir.path().join("layout-debs"));
    let server = w.publish_only("layout", &[world::apt::deb("15.4.2"), new]);
    (w, server)
}

/// The plain dpkg: the install exits 1, 15.4.3 is left half-configured
/// and `dpkg --configure -a` runs the failing postinst again.
#[test]
fn plain_dpkg_leaves_a_failed_postinst_half_configured_and_runs_it_again() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    give_root_a_shell(w.root.path());
    w.root.write(LINK, b"#!/bin/sh\necho 'tarball'\n");
    let new = layout_deb("15.4.3", &w.dir.path().join("layout-debs"));
    let out = w.root.dpkg(&["-i", new.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("File exists"),
        "{out:?}"
    );
    assert_eq!(w.root.status_abbrev(PKG).as_deref(), Some("iF "));
    assert_eq!(runs(w.root.path()), 1);
    let again = w.root.dpkg(&["--configure", "-a"]);
    assert!(!again.status.success());
    assert_eq!(runs(w.root.path()), 2, "the failed script runs again");
}

/// The updater: the failed postinst is a failed update; the regular file
/// is named; 15.4.2 is back, fully installed and held; 15.4.3 is recorded
/// as failed and never tried again (its script ran once).
#[test]
fn apt_failed_postinst_is_rolled_back_and_not_run_again() {
    let (w, _s) = apt_world_with_file_in_the_way();
    w.schedule_in_window();
    let r = w.run(&["run"]);
    r.expect(6)
        .logs_contain("/usr/local/bin/teleport is a regular file")
        .logs_contain("half-configured");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    assert_eq!(
        w.root.status_abbrev(PKG).as_deref(),
        Some("hi "),
        "held, fully installed"
    );
    assert_eq!(w.state()["failed_target"]["version"], "15.4.3");
    assert_eq!(runs(w.root.path()), 1);
    for _ in 0..2 {
        w.run(&["run"]).expect(0);
        assert_eq!(w.root.status_abbrev(PKG).as_deref(), Some("hi "));
    }
    assert_eq!(runs(w.root.path()), 1, "the failed script is not run again");
}

/// A "successful" install after which the binary systemd runs is gone:
/// the unit names `/usr/bin/teleport`, which the new layout no longer
/// ships (its postinst links `/usr/local/bin/teleport` fine). Rolled back.
#[test]
fn apt_exec_start_gone_after_a_successful_install_is_rolled_back() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    give_root_a_shell(w.root.path());
    w.root.write(
        "/etc/systemd/system/teleport.service",
        b"[Service]\nExecStart=/usr/bin/teleport start --config /etc/teleport.yaml\n",
    );
    let new = layout_deb("15.4.3", &w.dir.path().join("layout-debs"));
    let _s = w.publish_only("layout", &[world::apt::deb("15.4.2"), new]);
    w.schedule_in_window();
    w.run(&["run"])
        .expect(6)
        .logs_contain("ExecStart runs /usr/bin/teleport, which does not exist");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    assert_eq!(w.root.status_abbrev(PKG).as_deref(), Some("hi "));
    assert_eq!(w.state()["failed_target"]["version"], "15.4.3");
}

/// A repository (under the fixture's served directory, named `name`)
/// offering the fixture's 15.4.2 and 15.4.3 in the new layout with a %post
/// that links (and fails: the root has no shell), signed by a new key the
/// root trusts beside the release key.
fn rpm_layout_repo(w: &RpmWorld, name: &str) {
    let f = fixture();
    let key = Key::generate(&w.dir.path().join("k"), "Layout test <layout@example.com>");
    let mut spec = RpmSpec::agent(PKG, "15.4.3");
    spec.files = layout_files("15.4.3");
    spec.post = Some(postinst());
    let rpm = build_rpm(&spec, &w.dir.path().join("build"));
    sign_rpm(&key, &rpm);
    RpmRepo::build(
        &f.repos.join(name),
        &[f.rpm("15.4.2").to_path_buf(), rpm],
        Some(&key),
    );
    let armored = w.dir.path().join("layout.asc");
    key.export_armored(&armored);
    w.root.import_key(&armored);
    // rpmbuild makes the %post require /bin/sh: declared, not there (as
    // a broken shell would be), so the %post fails.
    let sh = testkit::rpmbase::build_provides_rpm(
        "sh-declared",
        "1",
        "declares /bin/sh",
        &["/bin/sh".to_string()],
        &w.dir.path().join("build"),
    );
    w.root.install(&sh);
    let mut both = std::fs::read(&f.release_key).unwrap();
    both.extend(std::fs::read(&armored).unwrap());
    w.root.write(KEY_IN_ROOT, both);
    w.point_at(name);
}

/// The plain dnf: the %post fails, dnf exits 0, 15.4.3 is installed and
/// `/usr/local/bin/teleport` does not exist (Teleport 17.3.0's agents).
#[test]
fn plain_dnf_exits_0_after_a_failed_post() {
    let w = RpmWorld::new(Pm::Dnf, "15.4.2", "15.4.3");
    rpm_layout_repo(&w, "layout-plain");
    let key = format!(
        "--setopt=teleport.gpgkey=file://{}",
        w.root.file(KEY_IN_ROOT).display()
    );
    let (code, out) = w.plain(&[&key, "install", &format!("{PKG}-15.4.3")]);
    assert_eq!(code, 0, "{out}");
    assert!(out.to_lowercase().contains("scriptlet"), "{out}");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    assert!(std::fs::symlink_metadata(w.root.file(LINK)).is_err());
}

/// The updater on dnf and zypper: the missing link after the failed %post
/// is a failed update, rolled back to 15.4.2 (held), 15.4.3 recorded as
/// failed and not tried again.
fn rpm_failed_post_is_rolled_back(pm: Pm, name: &str) {
    let w = RpmWorld::new(pm, "15.4.2", "15.4.3");
    rpm_layout_repo(&w, name);
    w.schedule_in_window();
    w.run(&["run"])
        .expect(6)
        .logs_contain("/usr/local/bin/teleport is missing");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"), "{pm:?}");
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.state_file()).unwrap()).unwrap();
    assert_eq!(st["failed_target"]["version"], "15.4.3", "{pm:?}");
    w.run(&["run"]).expect(0);
    assert_eq!(w.installed().as_deref(), Some("15.4.2"), "{pm:?}");
    let status = world::status_json(w.root.path());
    assert_eq!(status["held"], true, "{pm:?} {status:#}");
}

#[test]
fn dnf_failed_post_is_rolled_back() {
    rpm_failed_post_is_rolled_back(Pm::Dnf, "layout-dnf");
}

#[test]
fn zypper_failed_post_is_rolled_back() {
    rpm_failed_post_is_rolled_back(Pm::Zypper, "layout-zypper");
}

/// v2's link at `/usr/local/bin/teleport` means v2 runs the agent, even
/// when `update.yaml` says `enabled: false`: every run stands down.
#[test]
fn a_v2_link_stands_down_whatever_update_yaml_says() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.root.write(
        "/opt/teleport/default/update.yaml",
        b"version: v1\nkind: update_config\nspec:\n  enabled: false\n",
    );
    let link = w.root.file(LINK);
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink("/opt/teleport/default/versions/17.3.1/bin/teleport", &link)
        .unwrap();
    w.schedule_in_window();
    w.run(&["run"]).expect(0).logs_contain(
        "/usr/local/bin/teleport -> /opt/teleport/default/versions/17.3.1/bin/teleport",
    );
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    assert_eq!(w.status_json()["last_run"]["decision"], "stand-down");
    // Handed back (`teleport-update uninstall` removes v2's links).
    std::fs::remove_file(&link).unwrap();
    w.run(&["run"]).expect(0);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
}

/// The integrity check counts the links: a missing `/usr/local/bin` link
/// is not "intact" and is repaired (a reinstall runs the postinst again);
/// a regular file put in its way is named, not reinstalled at every run.
#[test]
fn a_missing_link_is_repaired_and_a_file_in_the_way_named_once() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    give_root_a_shell(w.root.path());
    let new = layout_deb("15.4.3", &w.dir.path().join("layout-debs"));
    let _s = w.publish_only("layout", &[world::apt::deb("15.4.2"), new]);
    w.schedule_in_window();
    w.run(&["run"]).expect(0);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    assert_eq!(runs(w.root.path()), 1);
    let link = w.root.file(LINK);
    std::fs::remove_file(&link).unwrap();
    w.schedule_outside_window();
    w.run(&["run"])
        .expect(0)
        .logs_contain("/usr/local/bin/teleport is missing");
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        Path::new(BIN),
        "repaired"
    );
    assert_eq!(runs(w.root.path()), 2, "the reinstall ran the postinst");
    w.run(&["run"]).expect(0);
    assert_eq!(runs(w.root.path()), 2, "intact: nothing to do");
    std::fs::remove_file(&link).unwrap();
    std::fs::write(&link, "#!/bin/sh\necho tarball\n").unwrap();
    for _ in 0..2 {
        w.run(&["run"])
            .expect(0)
            .logs_contain("/usr/local/bin/teleport is a regular file");
    }
    assert_eq!(runs(w.root.path()), 2, "no reinstall for a file in the way");
}

/// A run killed right after the install whose postinst failed: the next
/// run finishes the unfinished plan, judges the half-configured agent as
/// the update's failed script (rolled back, held, target recorded as
/// failed), and later runs do not run the script again.
#[test]
fn apt_kill_after_a_failed_postinst_converges_without_rerunning_it() {
    let (w, _s) = apt_world_with_file_in_the_way();
    w.schedule_in_window();
    let out = w
        .cmd(&["run"])
        .env("TELEPORT_UPGRADE_FAILPOINT", "after-install:kill")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(runs(w.root.path()), 1);
    let r = w.run(&["run"]);
    assert_eq!(r.code(), 6, "{}", r.stderr());
    assert_eq!(w.installed().as_deref(), Some("15.4.2"), "{}", r.stderr());
    assert!(w.held());
    assert_eq!(w.state()["failed_target"]["version"], "15.4.3");
    let after = runs(w.root.path());
    assert!(after <= 2, "the failed script ran {after} times");
    for _ in 0..2 {
        w.run(&["run"]);
    }
    assert_eq!(runs(w.root.path()), after, "not run again by later runs");
}
