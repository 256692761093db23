use super::*;
use std::os::unix::fs::PermissionsExt;

/// Stand-ins only answer `--version` here: the real dnf5 (Debian forky's
/// 5.4.6) needs glibc 2.38 and runs in the container matrix's `dnf5` row.
fn script(dir: &Path, name: &str, body: &str) {
    let p = dir.join(name);
    std::fs::write(&p, format!("{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn runner(dir: &Path) -> Runner {
    Runner {
        timeout: std::time::Duration::from_secs(10),
        path: Some(dir.as_os_str().to_owned()),
    }
}

#[test]
fn dnf_linked_to_dnf5_is_recognised_without_running_it() {
    let d = tempfile::tempdir().unwrap();
    let ran = d.path().join("ran");
    script(
        d.path(),
        "dnf5",
        &format!(
            "#!/bin/sh\ntouch {}\necho 'dnf5 version 5.2.6.2'",
            ran.display()
        ),
    );
    std::os::unix::fs::symlink("dnf5", d.path().join("dnf")).unwrap();
    assert!(is_dnf5(&runner(d.path()), "dnf"));
    assert!(!ran.exists(), "recognised by its name, not run");
}

#[test]
fn a_dnf_that_says_dnf5_is_dnf5() {
    let d = tempfile::tempdir().unwrap();
    script(
        d.path(),
        "dnf",
        "#!/bin/sh\n[ \"$1\" = --version ] && echo 'dnf5 version 5.4.6.0' && echo 'libdnf5 version 5.4.6.0'",
    );
    assert!(is_dnf5(&runner(d.path()), "dnf"));
}

#[test]
fn dnf4_is_not_dnf5() {
    let d = tempfile::tempdir().unwrap();
    let ran = d.path().join("ran");
    script(
        d.path(),
        "dnf",
        &format!(
            "#!/usr/bin/python3 -s\nimport sys\nopen({:?}, 'w')",
            ran.display()
        ),
    );
    assert!(!is_dnf5(&runner(d.path()), "dnf"));
    assert!(!ran.exists(), "dnf 4 (a Python script) is not run");
    // A dnf 4 that is not a script (as yum on some hosts): asked.
    let d = tempfile::tempdir().unwrap();
    script(d.path(), "dnf", "#!/bin/sh\necho 4.14.0");
    assert!(!is_dnf5(&runner(d.path()), "dnf"));
    // The host's real dnf, when there is one, is dnf 4.
    if Runner::default().find("dnf").is_some() {
        assert!(!is_dnf5(&Runner::default(), "dnf"));
    }
    assert!(!is_dnf5(&runner(d.path()), "missing"));
}

#[test]
fn dnf5_in_a_root_is_refused_naming_it() {
    let d = tempfile::tempdir().unwrap();
    script(d.path(), "dnf", "#!/bin/sh\necho 'dnf5 version 5.4.6.0'");
    let root = tempfile::tempdir().unwrap();
    let opts = crate::Options {
        command_timeout: std::time::Duration::from_secs(10),
        ..Default::default()
    };
    let sys = crate::System::rooted(root.path()).unwrap();
    let r = runner(d.path());
    assert!(is_dnf5(&r, "dnf"));
    let e = match super::super::Dnf::build(sys, opts, crate::BackendKind::Dnf, "dnf", r) {
        Ok(_) => panic!("dnf5 in a root was accepted"),
        Err(e) => e,
    };
    let m = e.to_string();
    assert!(matches!(e, Error::Unsupported { .. }), "{m}");
    assert!(m.contains("dnf5 is not supported with --root"), "{m}");
}

/// As dnf5 5.4.6 printed it (measured, abridged).
const DUMP: &str = "======== \"teleport\" repository configuration: ========\nbandwidth = 0\nbaseurl = file:///srv/signed\nenabled = 1\nenabled_metadata = \nexclude = \ngpgcheck = 1\ngpgkey = file:///a,file:///b\nmediaid = \npkg_gpgcheck = 0\nproxy_sslverify = 1\nrepo_gpgcheck = 1\nskip_if_unavailable = 1\n";

#[test]
fn the_dump_is_read_as_the_audit_reads_dnf4s_view() {
    let v = parse_dump(DUMP, "teleport").unwrap();
    assert_eq!(v["repo"], "present");
    // gpgcheck is dnf5's package check: pkg_gpgcheck wins.
    assert_eq!(v["gpgcheck"], "0");
    assert_eq!(v["repo_gpgcheck"], "1");
    assert_eq!(v["gpgkey"], "file:///a file:///b");
    assert_eq!(parse_dump("", "teleport").unwrap()["repo"], "absent");
    // Another repository's header is not this one's.
    assert!(parse_dump(DUMP, "other").is_err());
    let p = |t: &str| parse_dump(t, "teleport");
    assert!(p("gpgcheck = 1\n").unwrap_err().contains("pkg_gpgcheck"));
    assert!(p("pkg_gpgcheck = yes\nrepo_gpgcheck = 1\n").is_err());
    assert!(p("a b = 1\n").is_err());
}

#[test]
fn the_lock_is_waited_for_then_named() {
    let d = tempfile::tempdir().unwrap();
    let lock = d.path().join("system-repo.lock");
    std::fs::write(&lock, "").unwrap();
    wait_for_lock(&lock, Duration::from_secs(1)).unwrap();
    if Runner::default().find("python3").is_none() {
        return;
    }
    // Another process holds it as dnf5 does (fcntl, write).
    let mut holder = std::process::Command::new("python3")
        .args([
            "-c",
            "import fcntl,sys,time\nf=open(sys.argv[1],'r+')\nfcntl.lockf(f,fcntl.LOCK_EX)\nprint('locked',flush=True)\ntime.sleep(30)",
        ])
        .arg(&lock)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    let t = Instant::now();
    let e = wait_for_lock(&lock, Duration::from_millis(700)).unwrap_err();
    assert!(t.elapsed() >= Duration::from_millis(700));
    let m = e.to_string();
    assert!(matches!(e, Error::Locked { .. }), "{m}");
    assert!(
        m.contains(&format!("process {}", holder.id())) && m.contains("python3"),
        "{m}"
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
    wait_for_lock(&lock, Duration::from_secs(1)).unwrap();
}
