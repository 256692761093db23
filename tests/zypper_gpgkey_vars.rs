//! zypper's `gpgkey` with a variable is judged and pinned as zypper
//! expands it.
//!
//! `gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-$basearch`: zypper's own
//! listing (`zypper --xmlout lr`) names `RPM-GPG-KEY-<arch>`. A file
//! literally called `RPM-GPG-KEY-$basearch` holds the release key, the
//! expanded one another key: with the release key pinned, the updater
//! pins the key zypper will use and refuses (exit 3), naming the expanded
//! file, before any package operation. (Before: the pin read the literal
//! file, passed, and the run went on.) With the release key behind the
//! expanded name, the update goes through.
//!
//! zypper reads `vars.d` from the host's `/etc/zypp` even with `--root`
//! (zypper 1.14.42, strace): a custom variable is not testable in a root
//! without touching the host, and the updater takes whatever zypper lists.

use testkit::world::rpm::{fixture, Pm, RpmWorld};

fn arch() -> String {
    let out = std::process::Command::new("uname")
        .arg("-m")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn world(expanded_key: &[u8]) -> RpmWorld {
    let w = RpmWorld::new(Pm::Zypper, "15.4.2", "15.4.3");
    w.schedule_in_window();
    let release = std::fs::read(&fixture().release_key).unwrap();
    w.root
        .write("/etc/pki/rpm-gpg/RPM-GPG-KEY-$basearch", &release);
    w.root.write(
        &format!("/etc/pki/rpm-gpg/RPM-GPG-KEY-{}", arch()),
        expanded_key,
    );
    w.root.write(
        Pm::Zypper.repo_file(),
        format!(
            "[teleport]\nname=Teleport\nbaseurl={}\ngpgcheck=1\nrepo_gpgcheck=1\npkg_gpgcheck=1\nenabled=1\nautorefresh=0\ngpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-$basearch\n",
            w.repo_url("good")
        ),
    );
    w.config("trusted-keys", &fixture().release_fingerprint);
    w
}

#[test]
fn zypper_gpgkey_is_pinned_as_zypper_expands_it() {
    let foreign = std::fs::read(&fixture().foreign_key).unwrap();
    let w = world(&foreign);
    let (code, listed) = w.plain(&["--xmlout", "lr"]);
    assert_eq!(code, 0, "{listed}");
    let expanded = format!("RPM-GPG-KEY-{}", arch());
    assert!(
        listed.contains(&format!("gpgkey=\"file:/etc/pki/rpm-gpg/{expanded}\"")),
        "{listed}"
    );

    let db = w.package_db();
    let r = w.run(&["run"]);
    eprintln!("{}", r.stderr());
    assert_eq!(r.code(), 3, "{}", r.stderr());
    assert!(r.stderr().contains(&expanded), "{}", r.stderr());
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    assert_eq!(w.package_db(), db);

    let release = std::fs::read(&fixture().release_key).unwrap();
    let w = world(&release);
    let r = w.run(&["run"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert!(
        r.stderr().contains("as zypper expands it"),
        "{}",
        r.stderr()
    );
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
}
