//! The rpm database where each distribution keeps it, under `--root`: a
//! real rpm database (made by the real rpm) in a root of each layout, the
//! agent package installed into it, and the backend's query must find it.
//!
//! Layouts: `/var/lib/rpm` (RHEL <= 9, Amazon Linux, SLES 15),
//! `/usr/lib/sysimage/rpm` (openSUSE, newer Fedora) with and without the
//! `/var/lib/rpm` link, and a location only the root's own rpm macros name
//! (`%_dbpath`), also when a stale empty database sits at `/var/lib/rpm`.

use std::path::Path;
use std::process::Command;

use backends::rpmdb;
use backends::{PkgName, Runner, System};
use testkit::rpm::{build_rpm, RpmSpec};

fn have_rpm() -> bool {
    Command::new("rpmbuild").arg("--version").output().is_ok()
}

fn rpm(root: &Path, args: &[&str]) {
    let out = Command::new("rpm")
        .env("LC_ALL", "C")
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("run rpm");
    assert!(
        out.status.success(),
        "rpm --root {} {args:?}: {}{}",
        root.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A root whose database is at `db` (made with `rpm --initdb`, the agent
/// installed into it), with `macros` written into its `/etc/rpm/macros`
/// (or `/usr/lib/rpm/macros` when `vendor_macros`).
struct Layout {
    db: &'static str,
    macros: Option<&'static str>,
    vendor_macros: bool,
    /// `/var/lib/rpm` is a relative link to the database (openSUSE).
    var_link: bool,
    /// An empty database also at `/var/lib/rpm`.
    stale_var: bool,
}

fn world(l: &Layout) -> (tempfile::TempDir, System) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(root.join(l.db.trim_start_matches('/'))).unwrap();
    if let Some(m) = l.macros {
        let f = if l.vendor_macros {
            "usr/lib/rpm/macros"
        } else {
            "etc/rpm/macros"
        };
        std::fs::create_dir_all(root.join(f).parent().unwrap()).unwrap();
        std::fs::write(root.join(f), m).unwrap();
    }
    rpm(&root, &["--dbpath", l.db, "--initdb"]);
    let pkg = build_rpm(
        &RpmSpec::agent("teleport-ent", "15.4.2"),
        &tmp.path().join("pkgs"),
    );
    rpm(
        &root,
        &["--dbpath", l.db, "-i", "--nodeps", pkg.to_str().unwrap()],
    );
    if l.var_link {
        std::fs::create_dir_all(root.join("var/lib")).unwrap();
        std::os::unix::fs::symlink("../../usr/lib/sysimage/rpm", root.join("var/lib/rpm")).unwrap();
    }
    if l.stale_var {
        std::fs::create_dir_all(root.join("var/lib/rpm")).unwrap();
        rpm(&root, &["--dbpath", "/var/lib/rpm", "--initdb"]);
    }
    let system = System::rooted(&root).unwrap();
    (tmp, system)
}

fn installed(system: &System) -> Option<String> {
    let pkg = PkgName::parse("teleport-ent").unwrap();
    rpmdb::installed(system, &Runner::default(), &pkg)
        .unwrap()
        .map(|i| i.version.to_string())
}

fn check(l: Layout) {
    if !have_rpm() {
        panic!("rpm/rpmbuild are needed (apt-get install rpm)");
    }
    let (_tmp, system) = world(&l);
    assert_eq!(
        installed(&system).as_deref(),
        Some("15.4.2-1"),
        "the agent in a root with its database at {} (macros {:?}) was not found; dbpath chosen: {:?}",
        l.db,
        l.macros,
        rpmdb::dbpath(&system, &Runner::default())
    );
}

#[test]
fn var_lib_rpm_as_on_rhel_amazon_linux_and_sles() {
    check(Layout {
        db: "/var/lib/rpm",
        macros: Some("%_dbpath %{_var}/lib/rpm\n"),
        vendor_macros: true,
        var_link: false,
        stale_var: false,
    })
}

#[test]
fn usr_lib_sysimage_rpm_as_on_opensuse_with_the_var_link() {
    check(Layout {
        db: "/usr/lib/sysimage/rpm",
        macros: Some("%_dbpath %{_usr}/lib/sysimage/rpm\n"),
        vendor_macros: true,
        var_link: true,
        stale_var: false,
    })
}

#[test]
fn usr_lib_sysimage_rpm_as_on_newer_fedora_without_macros_read() {
    check(Layout {
        db: "/usr/lib/sysimage/rpm",
        macros: None,
        vendor_macros: false,
        var_link: false,
        stale_var: false,
    })
}

/// Only the root's own macros say where: no known location holds it.
#[test]
fn where_the_roots_own_macros_put_it() {
    let (_tmp, system) = {
        if !have_rpm() {
            panic!("rpm/rpmbuild are needed (apt-get install rpm)");
        }
        world(&Layout {
            db: "/var/lib/rpmdb-site",
            macros: Some("# site layout\n%_site_db %{_var}/lib/rpmdb-site\n%_dbpath %{_site_db}\n"),
            vendor_macros: false,
            var_link: false,
            stale_var: false,
        })
    };
    assert_eq!(
        rpmdb::root_macro_dbpath(&system).as_deref(),
        Some("/var/lib/rpmdb-site")
    );
    assert_eq!(installed(&system).as_deref(), Some("15.4.2-1"));
}

/// The root's macros name /usr/lib/sysimage/rpm, and an empty database
/// left at /var/lib/rpm must not hide it.
#[test]
fn the_roots_macros_win_over_a_stale_database_at_var_lib_rpm() {
    check(Layout {
        db: "/usr/lib/sysimage/rpm",
        macros: Some("%_dbpath /usr/lib/sysimage/rpm\n"),
        vendor_macros: false,
        var_link: false,
        stale_var: true,
    })
}

/// The control: the plain rpm of this host, pointed at such a root without
/// `--dbpath`, does not see the agent: the layout question is real.
#[test]
fn control_the_hosts_rpm_alone_misses_the_roots_own_layout() {
    if !have_rpm() {
        panic!("rpm/rpmbuild are needed (apt-get install rpm)");
    }
    let (_tmp, system) = world(&Layout {
        db: "/var/lib/rpmdb-site",
        macros: Some("%_dbpath /var/lib/rpmdb-site\n"),
        vendor_macros: false,
        var_link: false,
        stale_var: false,
    });
    let out = Command::new("rpm")
        .env("LC_ALL", "C")
        .arg("--root")
        .arg(system.root().unwrap())
        .args(["-q", "teleport-ent"])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && text.contains("is not installed"),
        "the host's rpm found the agent without --dbpath: {text}"
    );
}
