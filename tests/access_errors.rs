//! A repository that refuses access (HTTP 401 or 403) is an access error,
//! not a trust refusal: exit 4 ("update-failed") with the HTTP status
//! shown, never exit 3 "refused ... is not signed".
//!
//! Each case first shows what the plain tool prints for it (apt follows
//! the 401 with "is not signed", which the updater used to take for a
//! signature failure).

use testkit::http::Route;
use testkit::world::apt::AptWorld;
use testkit::world::rpm::{Pm, RpmWorld};

fn deny_apt(w: &AptWorld, code: u16) {
    for f in ["InRelease", "Release", "Release.gpg"] {
        w.repo_server.set_route(
            &format!("/dists/bookworm/{f}"),
            Route::status(code, "denied"),
        );
    }
}

fn expect_access_error(code: i32, stderr: &str, status: &str) {
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("refused access"), "{stderr}");
    assert!(stderr.contains(status), "{stderr}");
    assert!(!stderr.contains("refused: "), "{stderr}");
}

#[test]
fn apt_401_and_403_are_access_errors() {
    for (code, status) in [(401, "401"), (403, "403")] {
        let w = AptWorld::new("15.4.2", "15.4.3");
        w.schedule_in_window();
        deny_apt(&w, code);
        let out = w.root.apt_get(&["update"]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains(status), "{text}");
        assert!(text.contains("is not signed"), "plain apt: {text}");
        let r = w.run(&["run"]);
        eprintln!("{}", r.stderr());
        expect_access_error(r.code(), &r.stderr(), status);
        assert_eq!(w.installed().as_deref(), Some("15.4.2"));
        assert_eq!(w.state()["last_run"]["result"], "update-failed");
    }
}

#[test]
fn rpm_401_is_an_access_error() {
    for pm in [Pm::Dnf, Pm::Zypper] {
        let w = RpmWorld::new(pm, "15.4.2", "15.4.3");
        w.schedule_in_window();
        for f in ["repomd.xml", "repomd.xml.asc", "repomd.xml.key"] {
            w.repo_server
                .set_route(&format!("/good/repodata/{f}"), Route::status(401, "denied"));
        }
        let r = w.run(&["run"]);
        eprintln!("{pm:?}: {}", r.stderr());
        expect_access_error(r.code(), &r.stderr(), "401");
        assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    }
}
