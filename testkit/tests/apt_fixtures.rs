//! Proves the apt side of the kit with the real tools: gpg, dpkg-deb,
//! apt-ftparchive, dpkg and apt-get against the loopback server.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use testkit::aptrepo::AptRepo;
use testkit::aptroot::AptRoot;
use testkit::deb::{build_deb, host_arch, DebSpec};
use testkit::gpg::Key;
use testkit::http::{Route, Server};

const PKG: &str = "teleport-ent";
const UID: &str = "Teleport Test <test@example.invalid>";

fn text(out: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[track_caller]
fn assert_ok(out: &Output) {
    assert!(out.status.success(), "expected success\n{}", text(out));
}

#[track_caller]
fn assert_fails_with(out: &Output, needles: &[&str]) {
    let all = text(out);
    assert!(!out.status.success(), "expected failure\n{all}");
    assert!(
        needles.iter().any(|n| all.contains(n)),
        "expected one of {needles:?}\n{all}"
    );
}

fn agent_debs(out: &Path, versions: &[&str]) -> Vec<PathBuf> {
    versions
        .iter()
        .map(|v| build_deb(&DebSpec::agent(PKG, v), out))
        .collect()
}

/// A key whose binary public key is exported to `<dir>/<name>.gpg`.
fn key_with_keyring(dir: &Path, name: &str) -> (Key, PathBuf) {
    let key = Key::generate(dir, UID);
    let keyring = dir.join(format!("{name}.gpg"));
    key.export_binary(&keyring);
    (key, keyring)
}

#[test]
fn key_generation_and_exports() {
    let tmp = tempfile::tempdir().unwrap();
    let key = Key::generate(tmp.path(), UID);
    let fpr = key.fingerprint();
    assert_eq!(fpr.len(), 40);
    assert!(
        fpr.chars()
            .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)),
        "{fpr}"
    );
    assert_eq!(key.uid(), UID);
    assert!(fpr.ends_with(&key.key_id()));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(key.gnupghome())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    let asc = tmp.path().join("key.asc");
    key.export_armored(&asc);
    assert!(std::fs::read_to_string(&asc)
        .unwrap()
        .starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"));
    let bin = tmp.path().join("key.gpg");
    key.export_binary(&bin);
    let bytes = std::fs::read(&bin).unwrap();
    assert!(
        !bytes.is_empty() && bytes[0] & 0x80 != 0,
        "binary OpenPGP packet expected"
    );

    // Both signature kinds verify with gpgv against the exported keyring.
    let msg = tmp.path().join("msg");
    std::fs::write(&msg, "hello\n").unwrap();
    let clear = tmp.path().join("msg.asc");
    key.clearsign(&msg, &clear);
    assert!(std::fs::read_to_string(&clear)
        .unwrap()
        .contains("BEGIN PGP SIGNED MESSAGE"));
    let gpgv = |args: &[&Path]| {
        let mut cmd = std::process::Command::new("gpgv");
        cmd.arg("--keyring").arg(&bin);
        cmd.args(args);
        cmd.output().unwrap()
    };
    assert_ok(&gpgv(&[&clear]));
    for armor in [true, false] {
        let sig = tmp.path().join(format!("msg.sig.{armor}"));
        key.detach_sign(&msg, &sig, armor);
        let head = std::fs::read(&sig).unwrap();
        assert_eq!(head.starts_with(b"-----BEGIN PGP SIGNATURE-----"), armor);
        assert_ok(&gpgv(&[&sig, &msg]));
    }
    // The agent is ended with the key; the home goes away too.
    let home = key.gnupghome().to_path_buf();
    drop(key);
    assert!(!home.exists());
}

#[test]
fn agent_deb_contents() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = DebSpec::agent(PKG, "15.4.2");
    assert_eq!(spec.arch, host_arch());
    let deb = build_deb(&spec, tmp.path());
    assert_eq!(
        deb.file_name().unwrap().to_str().unwrap(),
        format!("{PKG}_15.4.2_{}.deb", host_arch())
    );
    let field = |f: &str| {
        let out = std::process::Command::new("dpkg-deb")
            .arg("--field")
            .arg(&deb)
            .arg(f)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    assert_eq!(field("Package"), PKG);
    assert_eq!(field("Version"), "15.4.2");
    let listing = std::process::Command::new("dpkg-deb")
        .arg("--contents")
        .arg(&deb)
        .output()
        .unwrap();
    let listing = String::from_utf8(listing.stdout).unwrap();
    assert!(
        listing.contains("-rwxr-xr-x root/root") && listing.contains("./usr/bin/teleport"),
        "{listing}"
    );
    assert!(
        listing.contains(&format!("./usr/share/doc/{PKG}/VERSION")),
        "{listing}"
    );

    // The epoch is left out of the file name.
    let epoch = build_deb(&DebSpec::agent("other", "1:2.0"), tmp.path());
    assert!(epoch.ends_with(format!("other_2.0_{}.deb", host_arch())));
}

#[test]
fn apt_updates_and_installs_exact_version_from_signed_repo() {
    let tmp = tempfile::tempdir().unwrap();
    let (key, keyring) = key_with_keyring(tmp.path(), "teleport");
    let debs = agent_debs(&tmp.path().join("debs"), &["15.4.2", "15.4.3"]);
    let repo = AptRepo::build(
        &tmp.path().join("www"),
        "bookworm",
        "stable/v15",
        &debs,
        Some(&key),
    );
    let dists = repo.dir().join("dists/bookworm");
    for f in [
        "Release",
        "InRelease",
        "Release.gpg",
        "stable/v15/binary-amd64/Packages.gz",
    ] {
        let f = f.replace("amd64", host_arch());
        assert!(dists.join(&f).is_file(), "missing {f}");
    }
    let release = std::fs::read_to_string(repo.release_path()).unwrap();
    for line in [
        "Codename: bookworm",
        "Suite: bookworm",
        "Components: stable/v15",
    ] {
        assert!(release.contains(line), "{release}");
    }
    assert!(
        release.contains(&format!("Architectures: {}", host_arch())),
        "{release}"
    );
    assert!(
        !release.contains(" Release\n") && !release.contains("InRelease"),
        "Release hashed itself:\n{release}"
    );

    let server = Server::start(repo.dir());
    let root = AptRoot::new(&tmp.path().join("root"));
    root.dpkg_install(&debs[0]);
    assert_eq!(root.installed_version(PKG).as_deref(), Some("15.4.2"));
    assert_eq!(root.installed_version("not-there"), None);

    let line = repo.sources_line(&server.url(), &keyring);
    assert_eq!(
        line,
        format!(
            "deb [signed-by={}] {} bookworm stable/v15",
            keyring.display(),
            server.url()
        )
    );
    assert_ok(&root.apt_get_with_sources(&line, &["update", "--error-on=any"]));
    assert_eq!(server.hits("/dists/bookworm/InRelease"), 1);

    assert_ok(&root.apt_get_with_sources(&line, &["install", "-y", "teleport-ent=15.4.3"]));
    assert_eq!(root.installed_version(PKG).as_deref(), Some("15.4.3"));
    assert_eq!(
        server.hits(&format!(
            "/pool/stable/v15/{PKG}_15.4.3_{}.deb",
            host_arch()
        )),
        1
    );
    let out = std::process::Command::new(root.file("/usr/bin/teleport"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Teleport v15.4.3 git: go1.22\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.file(&format!("/usr/share/doc/{PKG}/VERSION"))).unwrap(),
        "15.4.3\n"
    );

    // A downgrade needs --allow-downgrades.
    let out = root.apt_get_with_sources(&line, &["install", "-y", "teleport-ent=15.4.2"]);
    assert_fails_with(&out, &["--allow-downgrades"]);
    assert_ok(&root.apt_get_with_sources(
        &line,
        &["install", "-y", "--allow-downgrades", "teleport-ent=15.4.2"],
    ));
    assert_eq!(root.installed_version(PKG).as_deref(), Some("15.4.2"));

    // Holds: apt-mark works in the alternate root, and a held package needs
    // --allow-change-held-packages.
    let mark = root
        .command("apt-mark")
        .args(["hold", PKG])
        .output()
        .unwrap();
    assert_ok(&mark);
    assert!(root.is_held(PKG));
    assert_eq!(root.status_abbrev(PKG).as_deref(), Some("hi "));
    assert_eq!(root.installed_version(PKG).as_deref(), Some("15.4.2"));
    let out = root.apt_get_with_sources(&line, &["install", "-y", "teleport-ent=15.4.3"]);
    assert_fails_with(&out, &["--allow-change-held-packages"]);
    assert_ok(&root.apt_get_with_sources(
        &line,
        &[
            "install",
            "-y",
            "--allow-change-held-packages",
            "teleport-ent=15.4.3",
        ],
    ));
    assert_eq!(root.installed_version(PKG).as_deref(), Some("15.4.3"));
    root.set_hold(PKG, false);
    assert!(!root.is_held(PKG));

    // A repository that loses its signatures after a good update is an error
    // even without --error-on=any ("is no longer signed")...
    repo.sign_with(None);
    let out = root.apt_get_with_sources(&line, &["update"]);
    assert_fails_with(&out, &["is no longer signed"]);
    // ...but TRAP from the reference: one signed by an unknown key only warns
    // and keeps the previous lists, unless --error-on=any is given.
    let other = Key::generate(tmp.path(), "Other <other@example.invalid>");
    repo.sign_with(Some(&other));
    let out = root.apt_get_with_sources(&line, &["update"]);
    assert_ok(&out);
    assert!(
        text(&out).contains("NO_PUBKEY") && text(&out).contains("previous index files"),
        "{}",
        text(&out)
    );
    let out = root.apt_get_with_sources(&line, &["update", "--error-on=any"]);
    assert_fails_with(&out, &["NO_PUBKEY"]);
    // Re-signed with the right key, all is well again.
    repo.sign_with(Some(&key));
    assert_ok(&root.apt_get_with_sources(&line, &["update", "--error-on=any"]));
}

#[test]
fn multi_component_repo_moves_from_v15_to_v16() {
    let tmp = tempfile::tempdir().unwrap();
    let (key, keyring) = key_with_keyring(tmp.path(), "teleport");
    let v15 = agent_debs(&tmp.path().join("debs"), &["15.4.2", "15.4.3"]);
    let v16 = agent_debs(&tmp.path().join("debs"), &["16.0.0"]);
    let mut repo = AptRepo::build_multi(
        &tmp.path().join("www/debian"),
        "bookworm",
        &[("stable/v15", &v15), ("stable/v16", &v16)],
        Some(&key),
    );
    assert_eq!(repo.components(), ["stable/v15", "stable/v16"]);
    let release = std::fs::read_to_string(repo.release_path()).unwrap();
    assert!(
        release.contains("Components: stable/v15 stable/v16"),
        "{release}"
    );

    // Served from a parent directory, like https://apt.releases.teleport.dev/debian.
    let server = Server::start(&tmp.path().join("www"));
    let base = format!("{}/debian", server.url());
    let root = AptRoot::new(&tmp.path().join("root"));
    root.dpkg_install(&v15[0]);

    let v15_line = repo.sources_line_for(&base, &keyring, "stable/v15");
    assert!(v15_line.ends_with("bookworm stable/v15"));
    assert_ok(&root.apt_get_with_sources(&v15_line, &["update", "--error-on=any"]));
    assert_ok(&root.apt_get_with_sources(&v15_line, &["upgrade", "-y"]));
    assert_eq!(root.installed_version(PKG).as_deref(), Some("15.4.3"));
    // 16.0.0 is not visible through the v15 component.
    let out = root.apt_get_with_sources(&v15_line, &["install", "-y", "teleport-ent=16.0.0"]);
    assert_fails_with(&out, &["Version '16.0.0' for 'teleport-ent' was not found"]);

    let v16_line = repo.sources_line_for(&base, &keyring, "stable/v16");
    assert_ok(&root.apt_get_with_sources(&v16_line, &["update", "--error-on=any"]));
    assert_ok(&root.apt_get_with_sources(&v16_line, &["install", "-y", "teleport-ent=16.0.0"]));
    assert_eq!(root.installed_version(PKG).as_deref(), Some("16.0.0"));

    // Publishing a new version later: add it, re-index, re-sign.
    let newer = agent_debs(&tmp.path().join("debs"), &["16.0.1"]);
    repo.add_debs("stable/v16", &newer, Some(&key));
    assert_ok(&root.apt_get_with_sources(
        &repo.sources_line(&base, &keyring),
        &["update", "--error-on=any"],
    ));
    assert_ok(&root.apt_get_with_sources(&v16_line, &["upgrade", "-y"]));
    assert_eq!(root.installed_version(PKG).as_deref(), Some("16.0.1"));

    // The same through a deb822 file in the root's sources.list.d.
    root.write(
        "/etc/apt/sources.list.d/teleport.sources",
        repo.sources_deb822(&base, &keyring).as_bytes(),
    );
    assert_ok(&root.apt_get(&["update", "--error-on=any"]));
}

#[test]
fn unsigned_repo_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (_key, keyring) = key_with_keyring(tmp.path(), "teleport");
    let debs = agent_debs(&tmp.path().join("debs"), &["15.4.3"]);
    let repo = AptRepo::build(
        &tmp.path().join("www"),
        "bookworm",
        "stable/v15",
        &debs,
        None,
    );
    assert!(!repo.dir().join("dists/bookworm/InRelease").exists());
    let server = Server::start(repo.dir());
    let root = AptRoot::new(&tmp.path().join("root"));
    let line = repo.sources_line(&server.url(), &keyring);
    let out = root.apt_get_with_sources(&line, &["update", "--error-on=any"]);
    assert_fails_with(&out, &["is not signed"]);
    let out = root.apt_get_with_sources(&line, &["install", "-y", "teleport-ent=15.4.3"]);
    assert_fails_with(
        &out,
        &["Unable to locate package", "has no installation candidate"],
    );
    assert_eq!(root.installed_version(PKG), None);
}

#[test]
fn repo_signed_by_another_key_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (_trusted, keyring) = key_with_keyring(tmp.path(), "teleport");
    let attacker = Key::generate(tmp.path(), "Attacker <evil@example.invalid>");
    let debs = agent_debs(&tmp.path().join("debs"), &["15.4.3"]);
    let repo = AptRepo::build(
        &tmp.path().join("www"),
        "bookworm",
        "stable/v15",
        &debs,
        Some(&attacker),
    );
    let server = Server::start(repo.dir());
    let root = AptRoot::new(&tmp.path().join("root"));
    let out = root.apt_get_with_sources(
        &repo.sources_line(&server.url(), &keyring),
        &["update", "--error-on=any"],
    );
    assert_fails_with(&out, &["NO_PUBKEY"]);
    assert!(text(&out).contains(&attacker.key_id()), "{}", text(&out));
}

#[test]
fn repo_signed_by_expired_key_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let expired = Key::generate_expired(tmp.path(), UID);
    let keyring = tmp.path().join("expired.gpg");
    expired.export_binary(&keyring);
    let debs = agent_debs(&tmp.path().join("debs"), &["15.4.3"]);
    let repo = AptRepo::build(
        &tmp.path().join("www"),
        "bookworm",
        "stable/v15",
        &debs,
        Some(&expired),
    );
    let server = Server::start(repo.dir());
    let root = AptRoot::new(&tmp.path().join("root"));
    let out = root.apt_get_with_sources(
        &repo.sources_line(&server.url(), &keyring),
        &["update", "--error-on=any"],
    );
    assert_fails_with(&out, &["EXPKEYSIG"]);

    // A key that expires later is still fine today.
    let later = Key::generate_expiring(tmp.path(), UID, "1d");
    let keyring = tmp.path().join("later.gpg");
    later.export_binary(&keyring);
    repo.sign_with(Some(&later));
    assert_ok(&root.apt_get_with_sources(
        &repo.sources_line(&server.url(), &keyring),
        &["update", "--error-on=any"],
    ));
}

#[test]
fn tampered_deb_fails_the_install() {
    let tmp = tempfile::tempdir().unwrap();
    let (key, keyring) = key_with_keyring(tmp.path(), "teleport");
    let debs = agent_debs(&tmp.path().join("debs"), &["15.4.2", "15.4.3"]);
    let repo = AptRepo::build(
        &tmp.path().join("www"),
        "bookworm",
        "stable/v15",
        &debs,
        Some(&key),
    );
    let name = format!("{PKG}_15.4.3_{}.deb", host_arch());
    let pooled = repo.dir().join("pool/stable/v15").join(&name);
    let before = std::fs::read(&pooled).unwrap();
    repo.tamper(&name);
    let after = std::fs::read(&pooled).unwrap();
    assert_eq!(before.len(), after.len());
    assert_eq!(before.iter().zip(&after).filter(|(a, b)| a != b).count(), 1);

    let server = Server::start(repo.dir());
    let root = AptRoot::new(&tmp.path().join("root"));
    root.dpkg_install(&debs[0]);
    let line = repo.sources_line(&server.url(), &keyring);
    assert_ok(&root.apt_get_with_sources(&line, &["update", "--error-on=any"]));
    let out = root.apt_get_with_sources(&line, &["install", "-y", "teleport-ent=15.4.3"]);
    assert_fails_with(&out, &["Hash Sum mismatch", "Size mismatch"]);
    assert_eq!(root.installed_version(PKG).as_deref(), Some("15.4.2"));
}

#[test]
fn alternate_root_layout_and_config() {
    let tmp = tempfile::tempdir().unwrap();
    let root = AptRoot::new(&tmp.path().join("root"));
    for d in [
        "etc/apt/trusted.gpg.d",
        "var/lib/dpkg/info",
        "var/lib/apt/lists/partial",
        "usr/share/keyrings",
    ] {
        assert!(root.path().join(d).is_dir(), "{d}");
    }
    for f in [
        "var/lib/dpkg/status",
        "var/lib/dpkg/available",
        "etc/os-release",
    ] {
        assert!(root.path().join(f).is_file(), "{f}");
    }
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(root.file("/tmp"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o1777);
    }
    assert!(!root.config_path().starts_with(root.path()));
    root.write("/etc/apt/apt.conf.d/50test", b"Testkit::Marker \"yes\";\n");
    assert_eq!(
        root.file("/etc/apt/apt.conf.d/50test"),
        root.path().join("etc/apt/apt.conf.d/50test")
    );

    // The root's apt.conf.d is read, the host's is not.
    let dump = root.command("apt-config").arg("dump").output().unwrap();
    assert_ok(&dump);
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(dump.contains("Testkit::Marker \"yes\";"), "{dump}");
    assert!(
        !dump.contains("docker-clean") && !dump.contains("DPkg::Post-Invoke"),
        "{dump}"
    );
    let expected = format!(
        "Dir::State::status \"{}/var/lib/dpkg/status\";",
        root.path().display()
    );
    assert!(dump.contains(&expected), "{dump}");

    let config = root.config_path().to_path_buf();
    drop(root);
    assert!(
        !config.exists(),
        "the config tempdir is removed with the root"
    );
}

// ---------------------------------------------------------------- server

/// Sends `request` and reads one response (the server closes or the body is
/// complete). Returns (status, head, body).
fn exchange(port: u16, request: &str) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    read_response(&mut s, &mut Vec::new(), request.starts_with("HEAD"))
}

fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>, head_only: bool) -> (u16, String, Vec<u8>) {
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed before a full head");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..end].to_vec()).unwrap();
    buf.drain(..end + 4);
    let status: u16 = head[9..12].parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .map(|v| v.parse().unwrap())
        .unwrap_or(0);
    let len = if head_only { 0 } else { len };
    while buf.len() < len {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed before a full body");
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf.drain(..len).collect();
    (status, head, body)
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
}

#[test]
fn server_serves_files_and_routes() {
    let tmp = tempfile::tempdir().unwrap();
    let www = tmp.path().join("www");
    std::fs::create_dir_all(www.join("dir")).unwrap();
    std::fs::write(www.join("dir/a_1.0~beta_all.txt"), b"0123456789").unwrap();
    std::fs::write(tmp.path().join("secret"), b"secret").unwrap();
    std::os::unix::fs::symlink(tmp.path().join("secret"), www.join("escape")).unwrap();
    let server = Server::start(&www);
    let port = server.port();
    assert_eq!(server.url(), format!("http://127.0.0.1:{port}"));

    // Files, percent-decoding, HEAD, 404, traversal.
    let (status, head, body) = exchange(port, &get("/dir/a%5f1.0%7Ebeta_all.txt"));
    assert_eq!(
        (status, body.as_slice()),
        (200, &b"0123456789"[..]),
        "{head}"
    );
    assert!(head.contains("Content-Length: 10"), "{head}");
    assert_eq!(server.hits("/dir/a_1.0~beta_all.txt"), 1);
    let (status, head, body) = exchange(
        port,
        "HEAD /dir/a_1.0~beta_all.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
    assert!(
        head.contains("Content-Length: 10") && body.is_empty(),
        "{head}"
    );
    assert_eq!(server.hits("/dir/a_1.0~beta_all.txt"), 2);
    assert_eq!(exchange(port, &get("/missing")).0, 404);
    assert_eq!(exchange(port, &get("/dir")).0, 404);
    assert_eq!(exchange(port, &get("/dir/../../secret")).0, 400);
    assert_eq!(exchange(port, &get("/dir/%2e%2e/%2e%2e/secret")).0, 400);
    assert_eq!(exchange(port, &get("/escape")).0, 404);
    assert_eq!(
        exchange(
            port,
            "POST /dir HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .0,
        405
    );

    // Ranges.
    let range = |r: &str| {
        format!("GET /dir/a_1.0~beta_all.txt HTTP/1.1\r\nRange: {r}\r\nConnection: close\r\n\r\n")
    };
    let (status, head, body) = exchange(port, &range("bytes=2-4"));
    assert_eq!((status, body.as_slice()), (206, &b"234"[..]));
    assert!(head.contains("Content-Range: bytes 2-4/10"), "{head}");
    assert_eq!(exchange(port, &range("bytes=7-")).2, b"789");
    assert_eq!(exchange(port, &range("bytes=-2")).2, b"89");
    assert_eq!(exchange(port, &range("bytes=10-")).0, 416);
    assert_eq!(exchange(port, &range("bytes=0-1,3-4")).0, 200);

    // Routes override files and can be changed while running.
    server.set_route("/dir/a_1.0~beta_all.txt", Route::status(500, "boom"));
    let (status, _, body) = exchange(port, &get("/dir/a_1.0~beta_all.txt"));
    assert_eq!((status, body.as_slice()), (500, &b"boom"[..]));
    server.clear_route("/dir/a_1.0~beta_all.txt");
    assert_eq!(exchange(port, &get("/dir/a_1.0~beta_all.txt")).0, 200);

    server.set_route("/v1/webapi/ping", Route::ok(r#"{"ok":true}"#));
    let (status, head, body) = exchange(port, &get("/v1/webapi/ping?x=1"));
    assert_eq!((status, body.as_slice()), (200, &br#"{"ok":true}"#[..]));
    assert!(head.contains("Content-Type: application/json"), "{head}");

    server.set_route(
        "/slow",
        Route::Body {
            status: 200,
            body: b"late".to_vec(),
            delay: Duration::from_millis(300),
        },
    );
    let t = Instant::now();
    assert_eq!(exchange(port, &get("/slow")).2, b"late");
    assert!(t.elapsed() >= Duration::from_millis(300));

    server.set_route(
        "/moved",
        Route::Redirect {
            status: 301,
            location: "/dir/a_1.0~beta_all.txt".into(),
        },
    );
    let (status, head, _) = exchange(port, &get("/moved"));
    assert_eq!(status, 301);
    assert!(head.contains("Location: /dir/a_1.0~beta_all.txt"), "{head}");

    // Hang: the request is read, no answer comes; a client timeout fires.
    server.set_route("/hang", Route::Hang);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    s.write_all(get("/hang").as_bytes()).unwrap();
    let err = s.read(&mut [0u8; 16]).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err}"
    );
    assert_eq!(server.hits("/hang"), 1);

    assert!(server
        .requests()
        .iter()
        .any(|r| r.path == "/moved" && r.header("HOST") == Some("127.0.0.1")));
}

#[test]
fn server_keep_alive_and_pipelining() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("a"), b"AAA").unwrap();
    std::fs::write(tmp.path().join("b"), b"BBBB").unwrap();
    let server = Server::start(tmp.path());
    let mut s = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // Three pipelined requests in one write, the last one asks to close.
    s.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nHEAD /b HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let (st, head, body) = read_response(&mut s, &mut buf, false);
    assert_eq!((st, body.as_slice()), (200, &b"AAA"[..]));
    assert!(head.contains("Connection: keep-alive"), "{head}");
    let (st, head, body) = read_response(&mut s, &mut buf, true);
    assert_eq!(st, 200);
    assert!(
        head.contains("Content-Length: 4") && body.is_empty(),
        "{head}"
    );
    let (st, head, body) = read_response(&mut s, &mut buf, false);
    assert_eq!((st, body.as_slice()), (200, &b"BBBB"[..]));
    assert!(head.contains("Connection: close"), "{head}");
    // ...and then the server closes.
    assert_eq!(s.read(&mut [0u8; 8]).unwrap(), 0);

    // HTTP/1.0 without keep-alive closes too.
    let (st, head, _) = exchange(server.port(), "GET /a HTTP/1.0\r\n\r\n");
    assert_eq!(st, 200);
    assert!(head.contains("Connection: close"), "{head}");
}

#[test]
fn dropping_the_server_ends_everything_promptly() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("f"), b"x").unwrap();
    let server = Server::start(tmp.path());
    let port = server.port();
    server.set_route("/hang", Route::Hang);
    server.set_route(
        "/slow",
        Route::delayed(200, "late", Duration::from_secs(60)),
    );

    // A hung request, a very slow one and an idle keep-alive connection.
    let mut hung = TcpStream::connect(("127.0.0.1", port)).unwrap();
    hung.write_all(get("/hang").as_bytes()).unwrap();
    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.write_all(get("/slow").as_bytes()).unwrap();
    let mut idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    idle.write_all(b"GET /f HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (st, _, _) = read_response(&mut idle, &mut Vec::new(), false);
    assert_eq!(st, 200);
    let deadline = Instant::now() + Duration::from_secs(2);
    while (server.hits("/hang") == 0 || server.hits("/slow") == 0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(server.open_connections(), 3);

    let t = Instant::now();
    drop(server);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "drop took {:?}",
        t.elapsed()
    );

    // Every client sees its connection closed, none gets an answer.
    for s in [&mut hung, &mut slow, &mut idle] {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut rest = Vec::new();
        let n = s.read_to_end(&mut rest).unwrap_or(0);
        assert_eq!(
            n,
            0,
            "unexpected data: {:?}",
            String::from_utf8_lossy(&rest)
        );
    }
    // No thread of this server is left.
    let names = [format!("http-acc-{port}"), format!("http-conn-{port}")];
    let left: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|c| c.trim().to_string())
        .filter(|c| names.contains(c))
        .collect();
    assert!(left.is_empty(), "threads left: {left:?}");
    // And nobody listens on the port any more.
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}
