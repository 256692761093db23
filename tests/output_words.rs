//! The updater judges apt's messages, not the words of the URLs they
//! quote: a signed repository whose path contains "insecure" updates like
//! any other (it used to be refused as "reported something unverified").

use testkit::world::apt::AptWorld;
use testkit::world::KEYRING;

#[test]
fn a_url_with_the_word_insecure_is_not_a_finding() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.schedule_in_window();
    // The same signed repository, reached under /insecure/.
    std::os::unix::fs::symlink(".", w.repo.dir().join("insecure")).unwrap();
    let line = format!(
        "deb [signed-by={KEYRING}] {}/insecure/ bookworm stable/v15\n",
        w.repo_server.url()
    );
    w.root
        .write("/etc/apt/sources.list.d/teleport.list", line.as_bytes());
    // Plain apt (the keyring named by its host path): the repository
    // verifies, and apt's output carries the word.
    let host_line = format!(
        "deb [signed-by={}] {}/insecure/ bookworm stable/v15\n",
        w.root.file(KEYRING).display(),
        w.repo_server.url()
    );
    let out = w.root.apt_get_with_sources(&host_line, &["update"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("/insecure bookworm InRelease"), "{text}");
    let r = w.run(&["run"]);
    eprintln!("{}", r.stderr());
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
}
