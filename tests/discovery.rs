//! What the updater finds for itself on an apt host: the Teleport source
//! whatever its file name (or `source-file`, when none is found), the agent
//! package (detected, or `package`), and the target as the repository
//! offers it (with a Debian revision when not offered as written).

use testkit::world::apt::AptWorld;
use testkit::world::{self, KEYRING};

#[test]
fn the_source_is_found_whatever_its_file_name() {
    // Not teleport.list, not a Teleport URL: found through apt's own lists.
    let w = AptWorld::new("15.4.2", "15.4.3");
    std::fs::remove_file(w.root.file("/etc/apt/sources.list.d/teleport.list")).unwrap();
    w.root.write(
        "/etc/apt/sources.list.d/agent-repo.sources",
        format!(
            "Types: deb\nURIs: {}/\nSuites: bookworm\nComponents: stable/v15\nSigned-By: {KEYRING}\n",
            w.repo_server.url()
        )
        .as_bytes(),
    );
    // Another repository that must not be used.
    w.root.write(
        "/etc/apt/sources.list.d/debian.list",
        b"deb [signed-by=/usr/share/keyrings/debian.gpg] http://127.0.0.1:9/debian bookworm main\n",
    );
    let up = w
        .root
        .apt_get_with_sources(&w.host_sources_line(), &["update"]);
    assert!(up.status.success());
    w.schedule_in_window();
    w.run(&["run"]).expect(0).logs_contain("agent-repo.sources");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
}

#[test]
fn no_repository_found_is_a_clear_error() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    std::fs::remove_file(w.root.file("/etc/apt/sources.list.d/teleport.list")).unwrap();
    w.schedule_in_window();
    w.run(&["run"]).expect(4).logs_contain("source-file");
    // a source-file that names nothing is a configuration error (exit 2)
    // naming the setting, before anything is asked
    w.config("source-file", "/etc/apt/sources.list.d/custom.list");
    w.run(&["run"])
        .expect(2)
        .logs_contain("source-file")
        .logs_contain("custom.list");
    // and the configured source-file fixes it
    w.root.write(
        "/etc/apt/sources.list.d/custom.list",
        format!(
            "deb [signed-by={KEYRING}] {}/ bookworm stable/v15\n",
            w.repo_server.url()
        )
        .as_bytes(),
    );
    w.config("source-file", "/etc/apt/sources.list.d/custom.list");
    w.run(&["run"]).expect(0);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
}

#[test]
fn the_package_is_detected_or_configured() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.config("package", "teleport");
    w.schedule_in_window();
    w.run(&["run"])
        .expect(2)
        .logs_contain("no Teleport agent package is installed");
    w.config("package", "nginx");
    w.run(&["run"]).expect(2).logs_contain("package");
    w.remove_config("package");
    w.run(&["run"]).expect(0);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
}

/// The version is installed as the version server wrote it (one apt-get, no
/// apt-cache); a repository that carries it only with a Debian revision
/// (`16.0.1-1`) is asked for the exact string afterwards, and that is what
/// is installed and held.
#[test]
fn a_debian_revision_is_found_when_the_version_is_not_offered_as_written() {
    let w = AptWorld::new("15.4.2", "16.0.1");
    let dir = w.dir.path().join("revision");
    let deb = testkit::deb::build_deb(&world::apt::deb_spec("16.0.1-1"), &dir.join("debs"));
    let _server = w.publish_only("revision/repo", &[deb]);
    w.schedule_in_window();
    w.run(&["run"])
        .expect(0)
        .logs_contain("offers 16.0.1 as 16.0.1-1");
    assert_eq!(w.installed().as_deref(), Some("16.0.1-1"));
    assert!(w.held());

    // Offered as written: no `apt-cache madison`.
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.schedule_in_window();
    let r = w.run(&["-v", "run"]);
    r.expect(0);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    assert!(
        !r.stderr().contains("madison"),
        "an update as written asks no apt-cache madison:\n{}",
        r.stderr()
    );
}
