//! A lagging mirror (issue 23, item 6), with the real apt-get: a target
//! the repository does not offer yet is "waiting for the mirror" (its own
//! result word and counter, not a failure count), nothing is installed,
//! the re-check is arranged, and the next run installs it once the mirror
//! has it. The mirror has an aptly-like layout (`bookworm main`, no
//! `stable/vNN` component), chosen with `source-file` or `repository`:
//! its components are never rewritten, even for a new major version.

use testkit::aptrepo::AptRepo;
use testkit::http::Server;
use testkit::world::apt::{deb, AptWorld};
use testkit::world::KEYRING;

const MIRROR_LIST: &str = "/etc/apt/sources.list.d/mirror.list";

/// An aptly-like mirror of `versions` only, in place of the Teleport
/// source.
fn aptly_mirror(w: &AptWorld, versions: &[&str]) -> (AptRepo, Server, String) {
    let debs: Vec<_> = versions.iter().map(|v| deb(v)).collect();
    let repo = AptRepo::build(
        &w.dir.path().join("aptly"),
        "bookworm",
        "main",
        &debs,
        Some(&w.key),
    );
    let server = Server::start(repo.dir());
    let line = format!(
        "deb [signed-by={KEYRING}] {}/ bookworm main\n",
        server.url()
    );
    std::fs::remove_file(w.root.file("/etc/apt/sources.list.d/teleport.list")).unwrap();
    w.root.write(MIRROR_LIST, line.as_bytes());
    (repo, server, line)
}

fn metric(w: &AptWorld, name: &str) -> String {
    let text = std::fs::read_to_string(w.root.file("/var/lib/metrics/teleport_upgrade.prom"))
        .unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(name))
        .collect::<Vec<_>>()
        .join("\n")
}

fn waits_then_installs(w: &AptWorld, on_mirror: &[&str], target: &str) {
    w.set_target(target);
    w.schedule_in_window();
    w.config("metrics-dir", "/var/lib/metrics");
    std::fs::create_dir_all(w.root.file("/var/lib/metrics")).unwrap();
    let (mut repo, _server, line) = aptly_mirror(w, on_mirror);
    let r = w.run(&["run"]);
    eprintln!("{target} not on the mirror:\n{}", r.stderr());
    r.expect(0)
        .logs_contain("waiting for the mirror")
        .logs_contain("not a failure yet")
        .logs_contain("re-check");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    let st = w.state();
    assert_eq!(st["last_run"]["result"], "waiting-for-mirror");
    assert!(st["failed_target"].is_null(), "not a failed target");
    assert_eq!(
        std::fs::read_to_string(w.root.file(MIRROR_LIST)).unwrap(),
        line,
        "the mirror's components are not rewritten"
    );
    assert_eq!(
        metric(w, "teleport_upgrade_mirror_waits_total"),
        "teleport_upgrade_mirror_waits_total 1"
    );
    let failures = metric(w, "teleport_upgrade_failures_total");
    assert!(
        failures.lines().all(|l| l.ends_with(" 0")),
        "no failure counted: {failures}"
    );
    assert_eq!(st["mirror_wait"]["target"], target);
    let status = w.run(&["status"]);
    status.expect(0);
    assert!(
        status.stdout().contains(&format!(
            "mirror:      {target} not offered by the repository since"
        )),
        "{}",
        status.stdout()
    );
    // The mirror catches up: the next run installs it.
    repo.add_debs("main", &[deb(target)], Some(&w.key));
    let r = w.run(&["run"]);
    eprintln!("{target} on the mirror:\n{}", r.stderr());
    r.expect(0);
    assert_eq!(w.installed().as_deref(), Some(target));
    assert!(w.held());
    assert_eq!(
        std::fs::read_to_string(w.root.file(MIRROR_LIST)).unwrap(),
        line
    );
    assert!(w.state()["mirror_wait"].is_null(), "the wait is over");
}

/// A new major (which would move a `stable/vNN` channel): the mirror's
/// `main` is kept.
#[test]
fn an_aptly_mirror_through_source_file() {
    let w = AptWorld::new("15.4.2", "15.4.2");
    w.config("source-file", MIRROR_LIST);
    waits_then_installs(&w, &["15.4.2", "15.4.3"], "16.0.0");
}

/// A new patch release the mirror has not synced yet.
#[test]
fn an_aptly_mirror_through_repository() {
    let w = AptWorld::new("15.4.2", "15.4.2");
    w.config("repository", "mirror");
    waits_then_installs(&w, &["15.4.2"], "15.4.3");
}

/// The mirror never gets it: after `mirror-wait` (a day by default) the run
/// fails (exit 4) and counts a failure; `mirror-wait` 0 fails at once.
#[test]
fn a_mirror_that_never_syncs_fails_after_mirror_wait() {
    let w = AptWorld::new("15.4.2", "15.4.2");
    w.config("repository", "mirror");
    w.config("metrics-dir", "/var/lib/metrics");
    std::fs::create_dir_all(w.root.file("/var/lib/metrics")).unwrap();
    w.set_target("15.4.3");
    w.schedule_in_window();
    let (_repo, _server, _line) = aptly_mirror(&w, &["15.4.2"]);
    w.run(&["run"]).expect(0).logs_contain("not a failure yet");
    // 23 hours later: still waiting.
    testkit::world::backdate_since(w.root.path(), "mirror_wait", 23 * 3600);
    w.run(&["run"])
        .expect(0)
        .logs_contain("not a failure yet")
        .logs_contain("is kept already");
    // A day and a minute after the first: an operator must look.
    testkit::world::backdate_since(w.root.path(), "mirror_wait", 3600 + 60);
    let r = w.run(&["run"]);
    r.expect(4).logs_contain("mirror-wait is 86400 s");
    let st = w.state();
    assert_eq!(st["last_run"]["result"], "waiting-for-mirror");
    assert_eq!(st["last_run"]["exit_code"], 4);
    assert_eq!(st["mirror_waits_total"], 3);
    assert_eq!(
        metric(
            &w,
            "teleport_upgrade_failures_total{reason=\"waiting-for-mirror\"}"
        ),
        "teleport_upgrade_failures_total{reason=\"waiting-for-mirror\"} 1"
    );
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    // mirror-wait 0: the behaviour before it, exit 4 at once.
    w.config("mirror-wait", "0");
    w.run(&["run"]).expect(4);
}
