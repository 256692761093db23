//! The in-process reader of dpkg's `status` file agrees with `dpkg-query`
//! on a real dpkg database, in every state an agent package can be left
//! in, and the apt backend falls back to `dpkg-query` when dpkg's journal
//! holds pending entries.

use std::time::Duration;

use backends::apt::Apt;
use backends::{dpkg_status, Backend, Options, PkgName, System};
use testkit::aptroot::AptRoot;
use testkit::deb::{build_deb, DebSpec};

fn options() -> Options {
    Options {
        lock_wait: Duration::from_secs(5),
        command_timeout: Duration::from_secs(60),
        source_file: None,
        ..Options::default()
    }
}

fn agree(root: &AptRoot, pkg: &str) {
    let text = std::fs::read_to_string(root.admindir().join("status")).unwrap();
    let ours = dpkg_status::find(&text, pkg).unwrap();
    let theirs = root.status_abbrev(pkg);
    match theirs {
        None => assert!(
            ours.iter().all(|e| e.status == "not-installed"),
            "{pkg}: dpkg-query knows nothing, we found {ours:?}"
        ),
        Some(a) => {
            assert_eq!(ours.len(), 1, "{pkg}");
            assert_eq!(ours[0].abbrev(), a[..2], "{pkg}: status abbreviation");
        }
    }
}

#[test]
fn the_status_file_reader_agrees_with_dpkg_query() {
    let d = tempfile::tempdir().unwrap();
    let root = AptRoot::new(&d.path().join("root"));
    let debs = d.path().join("debs");
    let ok = build_deb(&DebSpec::agent("teleport-ent", "15.4.3"), &debs);
    let mut conf =
        DebSpec::agent("teleport", "15.4.2").with_conffile("/etc/teleport/t.conf", b"x\n");
    conf.files[0].0 = "/usr/bin/teleport-oss".into();
    let conf = build_deb(&conf, &debs);
    let mut half = DebSpec::agent("teleport-ent-fips", "15.4.1");
    half.files[0].0 = "/usr/bin/teleport-fips".into();
    half.postinst = Some("#!/bin/sh\nexit 1\n".into());
    let half = build_deb(&half, &debs);
    root.dpkg_install(&ok);
    root.dpkg_install(&conf);
    agree(&root, "teleport-ent");
    agree(&root, "teleport");
    root.set_hold("teleport-ent", true);
    agree(&root, "teleport-ent");
    // config-files only
    assert!(root.dpkg(&["--remove", "teleport"]).status.success());
    agree(&root, "teleport");
    // unpacked, not configured; then a failed postinst (half-configured)
    assert!(root
        .dpkg(&["--unpack", half.to_str().unwrap()])
        .status
        .success());
    agree(&root, "teleport-ent-fips");
    let _ = root.dpkg(&["--configure", "teleport-ent-fips"]);
    agree(&root, "teleport-ent-fips");
    assert_eq!(
        &root.status_abbrev("teleport-ent-fips").unwrap()[..2],
        "iF",
        "the fixture is half-configured"
    );
    agree(&root, "never-heard-of");

    // The backend answers from the file, as dpkg-query does.
    let apt = Apt::new(System::rooted(root.path()).unwrap(), options()).unwrap();
    let pkg = PkgName::parse("teleport-ent").unwrap();
    let src = backends::Source {
        file: root.file("/etc/apt/sources.list.d/teleport.list"),
        description: String::new(),
        id: String::new(),
        keyrings: Vec::new(),
        uris: Vec::new(),
    };
    assert_eq!(
        apt.installed(&pkg).unwrap().unwrap().version.to_string(),
        "15.4.3"
    );
    assert!(apt.is_held(&src, &pkg).unwrap());
    let fips = PkgName::parse("teleport-ent-fips").unwrap();
    assert!(
        apt.installed(&fips).unwrap().is_some(),
        "half-configured counts as installed"
    );
}

#[test]
fn a_pending_dpkg_journal_sends_the_backend_to_dpkg_query() {
    let d = tempfile::tempdir().unwrap();
    let root = AptRoot::new(&d.path().join("root"));
    let debs = d.path().join("debs");
    root.dpkg_install(&build_deb(&DebSpec::agent("teleport-ent", "15.4.3"), &debs));
    // A journal entry dpkg has not folded into `status` yet: the package
    // was removed (as a dpkg killed after the removal would leave it).
    let updates = root.admindir().join("updates");
    std::fs::create_dir_all(&updates).unwrap();
    std::fs::write(
        updates.join("0000"),
        "Package: teleport-ent\nStatus: deinstall ok config-files\nVersion: 15.4.3\nArchitecture: amd64\n\n",
    )
    .unwrap();
    assert!(dpkg_status::journal_pending(&root.admindir()));
    // status alone still says installed; dpkg-query applies the journal
    let text = std::fs::read_to_string(root.admindir().join("status")).unwrap();
    assert_eq!(
        dpkg_status::find(&text, "teleport-ent").unwrap()[0].abbrev(),
        "ii"
    );
    assert_eq!(&root.status_abbrev("teleport-ent").unwrap()[..2], "rc");
    let apt = Apt::new(System::rooted(root.path()).unwrap(), options()).unwrap();
    let pkg = PkgName::parse("teleport-ent").unwrap();
    assert_eq!(apt.installed(&pkg).unwrap(), None, "the journal's truth");
}
