//! A clock behind (issue 23, item 8): apt refuses a Release file dated
//! after this host's clock ("not valid yet"). The plain `apt-get update`
//! is shown failing first; the updater then says it is the clock, naming
//! it and what it reads, and changes nothing. (The version server's
//! certificate not valid yet: tests/tls.rs.)

use testkit::world::apt::AptWorld;

#[test]
fn a_release_file_not_valid_yet_names_the_clock() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.schedule_in_window();
    // The repository's Release dated in 2099, signed again by its key.
    let release = w.repo.release_path();
    let text = std::fs::read_to_string(&release).unwrap();
    let dated: String = text
        .lines()
        .map(|l| match l.starts_with("Date:") {
            true => "Date: Tue, 01 Dec 2099 00:00:00 UTC".to_string(),
            false => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    assert_ne!(dated, text, "the Release has a Date field");
    std::fs::write(&release, dated).unwrap();
    w.repo.sign_with(Some(&w.key));

    // The plain tool: apt refuses the Release file.
    let line = w.host_sources_line();
    let plain = w
        .root
        .apt_get_with_sources(&line, &["update", "--error-on=any"]);
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&plain.stdout),
        String::from_utf8_lossy(&plain.stderr)
    );
    eprintln!("plain apt-get update:\n{out}");
    assert!(!plain.status.success());
    assert!(out.contains("not valid yet"), "{out}");

    // The updater names the clock; nothing is installed.
    let r = w.run(&["run"]);
    eprintln!("updater:\n{}", r.stderr());
    r.logs_contain("not valid yet")
        .logs_contain("this host's clock is behind (it reads ");
    assert_ne!(r.code(), 0);
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
}
