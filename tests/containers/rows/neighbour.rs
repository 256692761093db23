//! Part of `tests/rows.rs` (see there): another transaction of the package
//! manager is running when the timer fires, as unattended-upgrades,
//! apt-daily-upgrade or dnf-automatic at boot and every morning.
//!
//! A neighbour package whose maintainer script runs for 12 s is installed
//! by the real package manager in a transient unit (`systemd-run`), as
//! those services run. While it runs, the plain tool gives up at once (on
//! apt: `dpkg --configure -a`, "frontend lock ... locked by another
//! process"); the updater's run waits (naming the process that holds the
//! lock), then makes its critical update once the neighbour is done. The
//! neighbour's transaction is not disturbed.

use super::*;

const NEIGHBOUR: &str = "busy-neighbour";
const STARTED: &str = "/run/busy-neighbour-started";
const DONE: &str = "/run/busy-neighbour-done";
const SCRIPT: &str =
    "touch /run/busy-neighbour-started\nsleep 12\ntouch /run/busy-neighbour-done\n";

/// The neighbour package for `pm`, built in `dir`, and the command that
/// installs it from `path` inside the container.
fn neighbour(pm: Pm, fx: &Fixtures, dir: &Path) -> (std::path::PathBuf, Vec<String>) {
    let readme = (
        format!("/usr/share/doc/{NEIGHBOUR}/README"),
        b"a package whose script takes its time\n".to_vec(),
        0o644,
    );
    match pm {
        Pm::Apt => {
            let mut spec = testkit::deb::DebSpec::agent(NEIGHBOUR, "1.0");
            spec.files = vec![readme];
            spec.postinst = Some(SCRIPT.into());
            let deb = testkit::deb::build_deb(&spec, dir);
            let inside = format!("/root/{}", deb.file_name().unwrap().to_string_lossy());
            (
                deb,
                ["apt-get", "install", "-y", "-q", &inside]
                    .map(String::from)
                    .to_vec(),
            )
        }
        Pm::Dnf | Pm::Zypper => {
            let mut spec = testkit::rpm::RpmSpec::agent(NEIGHBOUR, "1.0");
            spec.files = vec![readme];
            spec.post = Some(SCRIPT.into());
            let rpm = testkit::rpm::build_rpm(&spec, dir);
            testkit::rpm::sign_rpm(&fx.key, &rpm);
            let inside = format!("/root/{}", rpm.file_name().unwrap().to_string_lossy());
            let cmd: &[&str] = if pm == Pm::Dnf {
                &["dnf", "install", "-y", &inside]
            } else {
                &["zypper", "-n", "install", &inside]
            };
            (rpm, cmd.iter().map(|s| s.to_string()).collect())
        }
    }
}

/// The process name that holds the lock while the neighbour's script
/// runs: apt-get holds dpkg's frontend lock, dnf rpm's transaction lock
/// (librpm in its process); libzypp runs the `rpm` program for each
/// package, which takes rpm's lock itself.
fn holder_name(pm: Pm) -> &'static str {
    match pm {
        Pm::Apt => "apt-get",
        Pm::Dnf => "dnf",
        Pm::Zypper => "rpm",
    }
}

pub(crate) fn busy_neighbour(sut: &mut Sut, fx: &Fixtures) -> Result<String, String> {
    let (c, pm) = (sut.c, sut.pm);
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (file, install) = neighbour(pm, fx, tmp.path());
    let inside = install.last().unwrap().clone();
    c.write(&inside, std::fs::read(&file).map_err(|e| e.to_string())?)?;
    let before = sut.agent_version()?.unwrap_or_default();
    let target = if before == "16.0.0" {
        "15.4.3"
    } else {
        "16.0.0"
    };
    let since = now();
    let mut argv = vec![
        "systemd-run",
        "--unit",
        NEIGHBOUR,
        "--service-type=oneshot",
        "--no-block",
    ];
    argv.extend(install.iter().map(String::as_str));
    c.ok(&argv)?;
    let t0 = Instant::now();
    while !c.exists(STARTED) {
        if t0.elapsed() > Duration::from_secs(120) {
            return Err(format!(
                "the neighbour's script never started{}",
                sut.diagnostics()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let plain = if pm == Pm::Apt {
        let o = c.exec(&["dpkg", "--configure", "-a"])?;
        if o.ok() || !o.stderr.contains("lock") {
            return Err(format!(
                "the plain dpkg did not give up on the lock:\n{}",
                o.tail(6)
            ));
        }
        let first = o.stderr.lines().next().unwrap_or("").trim().to_string();
        format!("plain dpkg --configure -a: exit {:?} ({first}); ", o.code)
    } else {
        String::new()
    };
    // The version server says critical: the update is due at once.
    sut.vs.set(target, true);
    let (result, status) = sut.run_service()?;
    if result != "success" || status != "0" {
        return Err(format!(
            "{SERVICE}: Result={result}, status {status}{}",
            sut.diagnostics()
        ));
    }
    if !c.exists(DONE) {
        return Err("the updater's run ended before the neighbour's transaction".into());
    }
    let journal = sut.journal_since(since)?;
    let holder = holder_name(pm);
    let waited = journal
        .lines()
        .find(|l| l.contains("the package manager is busy") && l.contains(&format!("({holder})")))
        .ok_or(format!(
            "no wait naming {holder} in the run's journal:\n{journal}"
        ))?
        .trim()
        .to_string();
    sut.vs.set(target, false);
    let d = sut.expect_update(target, "the version server marks it critical")?;
    if pm.installed(c, NEIGHBOUR)?.as_deref() != Some("1.0") {
        return Err(format!(
            "{NEIGHBOUR} is not installed: its transaction was disturbed"
        ));
    }
    let unit = sut.show(&format!("{NEIGHBOUR}.service"), "Result")?;
    if unit != "success" {
        return Err(format!("the neighbour's unit: Result={unit}"));
    }
    let _ = c.exec(&["systemctl", "reset-failed", &format!("{NEIGHBOUR}.service")]);
    Ok(format!(
        "{plain}the run: {waited}; then {d}; {NEIGHBOUR} 1.0 installed"
    ))
}
