//! apt's credentials in `/etc/apt/auth.conf.d/` (`machine HOST login USER
//! password PASS`, the form apt recommends over a password in the URL)
//! never reach the log, `status`, `status --json`, the metrics or any file
//! the updater writes: a table of passwords with every special character
//! the format can hold (it is split on whitespace, so no space), through a
//! dry run, an update, a failing run and both status forms. The repository
//! is shown to receive the credentials (apt really used the file).

use testkit::world::apt::AptWorld;
use testkit::world::{self, PKG};

/// Passwords with every printable special character (no whitespace: the
/// netrc format apt reads splits on it).
const PASSWORDS: &[&str] = &[
    "Pa55;w,o?r'd]>x",
    "P\"q`u~o!t#e$s%",
    "Am&p^e*r(s)a_n+d",
    "Co:l@o/n\\s=l{a}s[h|",
    "Pl<u.s-m>i%2Fn",
];

/// RFC 4648 base64, for the expected `Authorization: Basic` header.
fn base64(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Every regular file under `dir`, as text.
fn files_under(dir: &std::path::Path, out: &mut String) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.filter_map(|e| e.ok()) {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            files_under(&p, out);
        } else if p.is_file() {
            out.push_str(&format!("--- {}\n", p.display()));
            out.push_str(&String::from_utf8_lossy(
                &std::fs::read(&p).unwrap_or_default(),
            ));
        }
    }
}

#[test]
fn apt_auth_conf_d_credentials_never_printed() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.schedule_in_window();
    std::fs::create_dir_all(w.root.file("/var/lib/prometheus/node-exporter")).unwrap();
    // With its scheme: apt applies an entry without one to https only.
    let host = w.repo_server.url();
    let mut seen = String::new();
    let mut keep = |label: &str, r: &world::Run| {
        seen.push_str(&format!("--- {label}\n{}{}", r.stdout(), r.stderr()));
    };
    for (i, pass) in PASSWORDS.iter().enumerate() {
        w.root.write(
            "/etc/apt/auth.conf.d/teleport.conf",
            format!("machine {host} login teleport password {pass}\n").as_bytes(),
        );
        let before = w.repo_server.requests().len();
        keep("dry-run", &w.run(&["dry-run", "-v"]));
        if i == 0 {
            let r = w.run(&["run", "-v"]);
            keep("run", &r);
            r.expect(0);
            assert_eq!(w.installed().as_deref(), Some("15.4.3"));
        }
        // A failing run: a version the repository does not have (apt
        // fetches the lists with the credentials, then fails).
        w.set_target("15.4.9");
        let r = w.run(&["force", "-v"]);
        keep("failing run", &r);
        assert_ne!(r.code(), 0, "{pass}: the failing run\n{}", r.stderr());
        w.set_target("15.4.3");
        keep("status", &w.run(&["status"]));
        keep("status --json", &w.run(&["status", "--json"]));
        let want = format!("Basic {}", base64(format!("teleport:{pass}").as_bytes()));
        let sent = w.repo_server.requests()[before..]
            .iter()
            .any(|r| r.header("authorization") == Some(want.as_str()));
        assert!(
            sent,
            "{pass}: apt did not send the credentials of auth.conf.d"
        );
    }
    files_under(&w.root.file("/var/lib/teleport-upgrade"), &mut seen);
    files_under(&w.root.file("/var/lib/prometheus/node-exporter"), &mut seen);
    files_under(&w.root.file("/etc/teleport-upgrade.d"), &mut seen);
    assert!(
        seen.contains(PKG) && seen.contains("teleport_upgrade"),
        "{seen}"
    );
    for pass in PASSWORDS {
        assert!(
            !seen.contains(pass),
            "{pass} was printed or written:\n{seen}"
        );
    }
}
