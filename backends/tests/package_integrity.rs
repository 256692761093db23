//! Integrity with the real dpkg/apt-get, rpm/dnf and rpm/zypper:
//! the agent's executable damaged (overwritten, truncated, removed, or its
//! mode changed) is reported by `verify_files`, and `reinstall` of the
//! installed version from the Teleport source repairs it; changes to the
//! configuration file, to documents and to modification times are not
//! reported, and an administrator's configuration survives the repair.

mod site;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use backends::{Backend, Error, FileFault, FileProblem, Source};
use site::*;
use testkit::channels::{AGENT_CONFFILE, AGENT_HELPER};

const BIN: &str = "/usr/bin/teleport";

fn good_output() -> Option<String> {
    Some("Teleport v15.4.3 git: go1.22".to_string())
}

/// A root with 15.4.3 installed, its source found and refreshed.
fn ready(pm: Pm) -> (Env, Box<dyn Backend>, Source) {
    let env = Env::new(pm, "15.4.3", false);
    let b = env.backend();
    let src = b.locate_source(&pkg()).unwrap();
    b.audit_trust(&src).unwrap();
    b.refresh(&src).unwrap();
    (env, b, src)
}

/// Reinstall the installed version, then check that all is well again.
fn repair(env: &Env, b: &dyn Backend, src: &Source) {
    let installed = b.installed(&pkg()).unwrap().unwrap();
    b.reinstall(src, &pkg(), &installed.version).unwrap();
    assert_eq!(b.verify_files(&pkg()).unwrap(), vec![]);
    assert_eq!(env.teleport_output(), good_output());
    assert_eq!(
        env.version().as_deref(),
        Some(reported(env.pm, "15.4.3").as_str())
    );
    env.end_gpg_agents();
}

fn only_problem(b: &dyn Backend) -> FileProblem {
    let p = b.verify_files(&pkg()).unwrap();
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].path, Path::new(BIN), "{p:?}");
    p[0].clone()
}

use std::path::Path;

all_backends!(a_sound_install_has_no_problems, |pm| {
    let (env, b, _) = ready(pm);
    assert_eq!(b.verify_files(&pkg()).unwrap(), vec![]);
    // Configuration edited, documents gone, binary touched: none of it
    // counts.
    let conf = env.file(AGENT_CONFFILE);
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str("TELEPORT_ARGS=\"--debug\"\n");
    std::fs::write(&conf, &text).unwrap();
    std::fs::remove_file(env.file("/usr/share/doc/teleport-ent/VERSION")).unwrap();
    let f = std::fs::File::options()
        .write(true)
        .open(env.file(BIN))
        .unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(86400 * 400))
        .unwrap();
    drop(f);
    assert_eq!(b.verify_files(&pkg()).unwrap(), vec![]);
    // Not installed at all.
    let other = backends::PkgName::parse("teleport").unwrap();
    let err = b.verify_files(&other).unwrap_err();
    assert!(matches!(err, Error::NotInstalled { .. }), "{err:?}");
});

all_backends!(an_overwritten_binary_is_reported_and_repaired, |pm| {
    let (env, b, src) = ready(pm);
    // Same size, other content: only the digest can tell.
    let orig = std::fs::read(env.file(BIN)).unwrap();
    let mut evil = orig.clone();
    let n = evil.len();
    evil[n - 3] = b'X';
    std::fs::write(env.file(BIN), &evil).unwrap();
    let p = only_problem(b.as_ref());
    eprintln!("{pm:?}: {p}");
    assert!(
        matches!(
            p.what,
            FileFault::Changed {
                digest: true,
                size: false,
                ..
            }
        ),
        "{p:?}"
    );
    // An administrator's configuration change is there before the repair...
    let conf = env.file(AGENT_CONFFILE);
    let edited = format!("{}EXTRA=1\n", std::fs::read_to_string(&conf).unwrap());
    std::fs::write(&conf, &edited).unwrap();
    repair(&env, b.as_ref(), &src);
    // ...and after it.
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), edited);
});

all_backends!(a_truncated_binary_is_reported_and_repaired, |pm| {
    let (env, b, src) = ready(pm);
    std::fs::write(env.file(BIN), b"").unwrap();
    let p = only_problem(b.as_ref());
    eprintln!("{pm:?}: {p}");
    assert!(p.what.content_changed(), "{p:?}");
    match pm {
        // dpkg compares the md5sum only.
        Pm::Apt => assert!(matches!(p.what, FileFault::Changed { digest: true, .. })),
        _ => assert!(matches!(
            p.what,
            FileFault::Changed {
                digest: true,
                size: true,
                ..
            }
        )),
    }
    repair(&env, b.as_ref(), &src);
});

all_backends!(a_deleted_binary_is_reported_and_repaired, |pm| {
    let (env, b, src) = ready(pm);
    // Held, as the updater leaves it: the repair keeps the hold.
    b.hold(&src, &pkg()).unwrap();
    std::fs::remove_file(env.file(BIN)).unwrap();
    let p = only_problem(b.as_ref());
    assert_eq!(p.what, FileFault::Missing);
    assert_eq!(p.to_string(), "/usr/bin/teleport: missing");
    repair(&env, b.as_ref(), &src);
    assert!(b.is_held(&src, &pkg()).unwrap());
});

all_backends!(a_changed_mode_is_reported_by_rpm_only, |pm| {
    let (env, b, src) = ready(pm);
    std::fs::set_permissions(env.file(BIN), std::fs::Permissions::from_mode(0o644)).unwrap();
    let p = b.verify_files(&pkg()).unwrap();
    if pm == Pm::Apt {
        // dpkg records no modes.
        assert_eq!(p, vec![]);
        return;
    }
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        matches!(
            p[0].what,
            FileFault::Changed {
                mode: true,
                digest: false,
                size: false,
                ..
            }
        ),
        "{p:?}"
    );
    repair(&env, b.as_ref(), &src);
    let mode = std::fs::metadata(env.file(BIN))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
});

all_backends!(reinstall_is_exact_and_planned, |pm| {
    let (env, b, src) = ready(pm);
    // Only the installed version is reinstalled: anything else is refused
    // and nothing moves.
    let err = b.reinstall(&src, &pkg(), &v("16.0.0")).unwrap_err();
    assert!(matches!(err, Error::NotInstalled { .. }), "{err:?}");
    let err = b.reinstall(&src, &pkg(), &v("15.4.2")).unwrap_err();
    assert!(matches!(err, Error::NotInstalled { .. }), "{err:?}");
    assert_eq!(
        env.version().as_deref(),
        Some(reported(pm, "15.4.3").as_str())
    );
    let plan: Vec<String> = b
        .plan_reinstall(&src, &pkg(), &v(&reported(pm, "15.4.3")))
        .iter()
        .map(|c| c.to_string())
        .collect();
    eprintln!("{pm:?} plan_reinstall:\n  {}", plan.join("\n  "));
    let all = plan.join("\n");
    let want = match pm {
        Pm::Apt => "install --reinstall -y --no-install-recommends --allow-downgrades --allow-change-held-packages teleport-ent=15.4.3",
        Pm::Dnf => "--disableexcludes=teleport reinstall teleport-ent-15.4.3-1",
        Pm::Zypper => "install --force --no-recommends --repo=teleport teleport-ent=15.4.3-1",
    };
    assert!(all.contains(want), "{all}");
    assert!(
        plan[0].contains("update") || plan[0].contains("makecache") || plan[0].contains("refresh")
    );
    for forbidden in [
        "--nogpgcheck",
        "--no-gpg-checks",
        "--gpg-auto-import-keys",
        "--allow-unauthenticated",
    ] {
        assert!(!all.contains(forbidden), "{forbidden}: {all}");
    }
    // Nothing ran.
    assert_eq!(b.verify_files(&pkg()).unwrap(), vec![]);
});

all_backends!(an_executable_outside_bin_directories_counts, |pm| {
    let (env, b, src) = ready(pm);
    let helper = env.file(AGENT_HELPER);
    std::fs::write(&helper, "#!/bin/sh\necho evil\n").unwrap();
    let p = b.verify_files(&pkg()).unwrap();
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].path, Path::new(AGENT_HELPER));
    assert!(p[0].what.content_changed(), "{p:?}");
    repair(&env, b.as_ref(), &src);
    // Removed: rpm recorded its mode and reports it; dpkg records no modes,
    // so a missing file outside bin/sbin cannot be told from a document and
    // is not reported.
    std::fs::remove_file(&helper).unwrap();
    let p = b.verify_files(&pkg()).unwrap();
    match pm {
        Pm::Apt => assert_eq!(p, vec![]),
        _ => assert_eq!(
            p,
            vec![FileProblem {
                path: AGENT_HELPER.into(),
                what: FileFault::Missing
            }]
        ),
    }
    let installed = b.installed(&pkg()).unwrap().unwrap();
    b.reinstall(&src, &pkg(), &installed.version).unwrap();
    assert!(helper.is_file());
    env.end_gpg_agents();
});
