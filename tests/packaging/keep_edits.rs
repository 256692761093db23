//! Removing or replacing the package never deletes a configuration file the
//! operator edited (issue 25): `dpkg --purge` in a throwaway dpkg root,
//! `rpm -e` and an rpm upgrade over Teleport's own package in a throwaway
//! rpm root, each with the real dpkg/rpm and the packages as built.

use super::*;

/// The operator's `package`: edited (a comment line the updater ignores),
/// so not the bytes Teleport's package ships as a conffile.
const EDITED_PACKAGE: &str = "# pinned by the operator\nteleport-ent\n";
const ENDPOINT: &str = "teleport.example.com:443/v1/webapi/automaticupgrades/channel/default\n";

/// `dpkg --purge` of ours, on a host migrated from Teleport's package:
/// `package` (an obsolete conffile inherited from Teleport's package, which
/// the operator edited) and our README conffile (edited) stay byte for
/// byte, the operator's own files stay, the unedited cron conffile and the
/// state go. Once as `dpkg -r` then `dpkg -P`, once as `dpkg -P` alone.
#[test]
fn deb_purge_keeps_the_configuration_the_operator_edited() {
    if skip_all() {
        return;
    }
    let b = built();
    for two_steps in [true, false] {
        let r = DpkgRoot::new(b, &format!("purge-keeps-{two_steps}"));
        let v1 = v1_updater::build_deb_for_dpkg_root("15.4.3", &b.dir.join("v1-purge"));
        r.dpkg(&["-i", v1.to_str().unwrap()]);
        let cfg = r.path("/etc/teleport-upgrade.d");
        fs::write(cfg.join("package"), EDITED_PACKAGE).unwrap();
        fs::write(cfg.join("endpoint"), ENDPOINT).unwrap();
        r.dpkg(&["-i", b.deb.to_str().unwrap()]);
        let readme = cfg.join("README");
        let edited_readme = fs::read_to_string(&readme).unwrap() + "# the operator's note\n";
        fs::write(&readme, &edited_readme).unwrap();

        if two_steps {
            r.dpkg(&["-r", PKG]);
        }
        let out = r.dpkg(&["-P", PKG]);
        assert_eq!(r.version(), "", "{PKG} is still known to dpkg");
        let what = if two_steps {
            "dpkg -r; dpkg -P"
        } else {
            "dpkg -P"
        };
        for (f, want) in [
            ("package", EDITED_PACKAGE),
            ("README", edited_readme.as_str()),
            ("endpoint", ENDPOINT),
        ] {
            assert_eq!(
                fs::read_to_string(cfg.join(f)).ok().as_deref(),
                Some(want),
                "{what}: /etc/teleport-upgrade.d/{f} not kept byte for byte\n{out}"
            );
        }
        assert!(
            !r.path("/etc/cron.d/teleport-upgrade").exists(),
            "{what}: the unedited cron conffile is left"
        );
        assert!(
            !r.path("/var/lib/teleport-upgrade").exists(),
            "{what}: the state directory is left"
        );
    }
}

/// A throwaway rpm root (merged /usr) with the tools the scriptlets use.
fn rpm_root(b: &Built, name: &str) -> (PathBuf, impl Fn(&[&str]) -> Output) {
    let root = b.dir.join(name);
    let _ = fs::remove_dir_all(&root);
    for d in [
        "etc",
        "usr/sbin",
        "usr/bin",
        "usr/lib",
        "var/lib/rpm",
        "var/tmp",
        "run",
        "tmp",
    ] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
    for p in [
        "sh", "mkdir", "rm", "rmdir", "cp", "mv", "find", "grep", "cut", "md5sum", "dirname",
    ] {
        copy_into_root(&root, p);
    }
    let sh = which_host("sh");
    if !root.join("usr/bin/sh").exists() {
        std::os::unix::fs::symlink(&sh, root.join("usr/bin/sh")).unwrap();
    }
    let r = root.clone();
    let rpm = move |args: &[&str]| {
        run(Command::new("rpm")
            .arg("--root")
            .arg(&r)
            .args(["--dbpath", "/var/lib/rpm"])
            .args(args))
    };
    let init = rpm(&["--initdb"]);
    assert!(init.status.success(), "{init:?}");
    (root, rpm)
}

fn rpm_ok(rpm: &impl Fn(&[&str]) -> Output, args: &[&str]) -> String {
    let o = rpm(args);
    let said =
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "rpm {args:?}: {said}");
    assert!(!said.contains("scriptlet failed"), "rpm {args:?}: {said}");
    said
}

/// Ours over Teleport's package on rpm (`rpm -U`, what dnf upgrade and
/// zypper run): Teleport's package owns /etc/teleport-upgrade.d/package
/// without %config (fpm marks nothing), so erasing it deletes the
/// operator's file; ours puts it back byte for byte (and its drop-in under
/// /etc is set aside). Then `rpm -e` of ours after the operator edited our
/// %config files: rpm keeps them as .rpmsave, and the operator's files
/// stay.
#[test]
fn rpm_upgrade_and_erase_keep_the_configuration_the_operator_edited() {
    if skip_all() {
        return;
    }
    let b = built();
    let (root, rpm) = rpm_root(b, "rpm-keeps-root");
    let v1 = v1_updater::build_rpm("15.4.3", None, &b.dir.join("v1-rpm-keeps"));
    rpm_ok(&rpm, &["-i", "--nodeps", v1.to_str().unwrap()]);
    let cfg = root.join("etc/teleport-upgrade.d");
    fs::write(cfg.join("package"), EDITED_PACKAGE).unwrap();
    fs::write(cfg.join("endpoint"), ENDPOINT).unwrap();

    let said = rpm_ok(&rpm, &["-U", "--nodeps", b.rpm.to_str().unwrap()]);
    for (f, want) in [("package", EDITED_PACKAGE), ("endpoint", ENDPOINT)] {
        assert_eq!(
            fs::read_to_string(cfg.join(f)).ok().as_deref(),
            Some(want),
            "rpm -U over Teleport's package: /etc/teleport-upgrade.d/{f} not kept\n{said}"
        );
    }
    let dropin = root.join(v1_updater::DROPIN.trim_start_matches('/'));
    assert!(
        !dropin.exists(),
        "Teleport's drop-in is still in effect\n{said}"
    );
    assert!(
        !root
            .join("var/lib/teleport-upgrade/migrating-config")
            .exists(),
        "the copies were not cleaned up"
    );

    let readme = cfg.join("README");
    let edited_readme = fs::read_to_string(&readme).unwrap() + "# the operator's note\n";
    fs::write(&readme, &edited_readme).unwrap();
    let cron = root.join("etc/cron.d/teleport-upgrade");
    let edited_cron = fs::read_to_string(&cron).unwrap() + "# the operator's note\n";
    fs::write(&cron, &edited_cron).unwrap();
    let said = rpm_ok(&rpm, &["-e", PKG]);
    for (path, want) in [
        (cfg.join("README.rpmsave"), edited_readme.as_str()),
        (
            root.join("etc/cron.d/teleport-upgrade.rpmsave"),
            edited_cron.as_str(),
        ),
        (cfg.join("package"), EDITED_PACKAGE),
        (cfg.join("endpoint"), ENDPOINT),
    ] {
        assert_eq!(
            fs::read_to_string(&path).ok().as_deref(),
            Some(want),
            "rpm -e: {} not kept\n{said}",
            path.display()
        );
    }
}
