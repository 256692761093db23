//! The rpm-dnf row's versionlock scenarios: dnf's versionlock plugin
//! (Debian 12's `dnf-plugins-core` 4.3.1, the real plugin) installed late
//! in the row, after the earlier scenarios have exercised the `exclude=`
//! hold.
//!
//! The image stays without the plugin (it keeps the exclude= path covered).
//! Its .debs (`dnf-plugins-core` and the two Python modules it needs that
//! the image lacks, `python3-dateutil` and `python3-six`) are fetched on the
//! host with `apt-get download` once, cached beside the images, and
//! installed with `dpkg -i` inside the container.
//!
//! Design under test (backends/src/dnf/hold.rs, locklist.rs): with the
//! plugin the hold is a versionlock of exactly the installed
//! `epoch:version-release`, a line recorded as the updater's own; an update
//! adds the new lock first (plan step `hold`), then deletes the updater's
//! own lines of other versions and the `exclude=` an earlier run left (step
//! `drop-old-holds`), so the host is never unheld on the way, and the
//! operator has one hold to look at.

use std::path::PathBuf;

use super::*;
use crate::image::cache_dir;

/// The Debian packages that bring the plugin (and what the image lacks).
const PLUGIN_DEBS: &[&str] = &["dnf-plugins-core", "python3-dateutil", "python3-six"];

/// The plugin's .debs, from the cache, else fetched with the host's apt.
fn plugin_debs() -> Result<Vec<PathBuf>, String> {
    cached_debs("dnf-versionlock", PLUGIN_DEBS)
}

/// The .debs of `pkgs` (Debian 12's, the images' release), from the cache
/// directory `name`, else fetched once with the host's apt.
pub(super) fn cached_debs(name: &str, pkgs: &[&str]) -> Result<Vec<PathBuf>, String> {
    let dir = cache_dir().join("debs").join(name);
    let found = |d: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "deb"))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let complete = |v: &[PathBuf]| {
        pkgs.iter().all(|p| {
            v.iter().any(|f| {
                f.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{p}_")))
            })
        })
    };
    let have = found(&dir);
    if complete(&have) {
        return Ok(have);
    }
    let parent = dir.parent().unwrap();
    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}-"))
        .tempdir_in(parent)
        .map_err(|e| e.to_string())?;
    let mut cmd = std::process::Command::new("apt-get");
    cmd.args(["-q", "-o", "APT::Sandbox::User=root", "download"])
        .args(pkgs)
        .current_dir(tmp.path());
    let o = crate::nspawn::run(&mut cmd, None, Duration::from_secs(300))?;
    let got = found(tmp.path());
    if !o.ok() || !complete(&got) {
        return Err(format!(
            "apt-get download {} on the host (the Debian mirror is needed once): exit {:?}\n{}",
            pkgs.join(" "),
            o.code,
            o.tail(6)
        ));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let kept = tmp.keep();
    std::fs::rename(&kept, &dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(found(&dir))
}

/// `dnf versionlock list` inside the container: its entries.
fn lock_list(c: &Container) -> Result<Vec<String>, String> {
    let o = c.exec(&["dnf", "-q", "--disablerepo=*", "versionlock", "list"])?;
    if !o.ok() {
        return Err(format!(
            "dnf versionlock list: exit {:?}\n{}",
            o.code,
            o.tail(4)
        ));
    }
    Ok(o.stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

/// The updater's whole journal (every run of the row).
fn full_journal(c: &Container) -> String {
    c.exec(&["journalctl", "-u", SERVICE, "--no-pager", "-o", "cat"])
        .map(|o| o.stdout)
        .unwrap_or_default()
}

/// The lock the plugin writes for the installed agent: `NAME-E:V-R.*`.
fn exact_lock(c: &Container) -> Result<String, String> {
    let evr = c.ok(&[
        "rpm",
        "-q",
        "--qf",
        "%|EPOCH?{%{EPOCH}}:{0}|:%{VERSION}-%{RELEASE}",
        AGENT,
    ])?;
    Ok(format!("{AGENT}-{}.*", evr.trim()))
}

/// The lock list must be exactly the lock of the installed version.
fn expect_exact_lock(c: &Container) -> Result<String, String> {
    let want = exact_lock(c)?;
    let got = lock_list(c)?;
    if got != [want.clone()] {
        return Err(format!(
            "dnf versionlock list shows {got:?}, expected exactly [{want:?}]"
        ));
    }
    Ok(want)
}

/// Does the repository file still carry `exclude=teleport-ent`?
fn excluded(c: &Container) -> bool {
    c.read(Pm::Dnf.repo_file())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .any(|(k, v)| k.trim() == "exclude" && v.split([' ', ',']).any(|w| w.trim() == AGENT))
}

/// Would `dnf upgrade teleport-ent` move the agent to 16.0.1 (asked with
/// `--assumeno`: nothing changes)? `plugin` false runs it with the
/// versionlock plugin disabled: the control that shows the lock is what
/// keeps the agent.
fn would_upgrade(c: &Container, plugin: bool) -> Result<bool, String> {
    let mut argv = vec!["dnf", "--refresh", "--assumeno"];
    if !plugin {
        argv.push("--disableplugin=versionlock");
    }
    argv.extend(["upgrade", AGENT]);
    let o = c.exec(&argv)?;
    Ok(o.stdout.contains("16.0.1"))
}

/// The lock alone keeps the agent: without the plugin `dnf upgrade` would
/// take 16.0.1 (the control), with it, it would not.
fn lock_keeps(c: &Container, lock: &str) -> Result<(), String> {
    if !would_upgrade(c, false)? {
        return Err(
            "even without the plugin dnf would not upgrade the agent: the control shows nothing"
                .into(),
        );
    }
    if would_upgrade(c, true)? {
        return Err(format!("dnf would upgrade the agent despite {lock}"));
    }
    Ok(())
}

/// `teleport-upgrade status --json`'s `held`.
fn status_held(c: &Container) -> Result<Option<bool>, String> {
    let o = c.exec(&["/usr/sbin/teleport-upgrade", "status", "--json"])?;
    let v: serde_json::Value = serde_json::from_str(&o.stdout)
        .map_err(|e| format!("status --json (exit {:?}): {e}\n{}", o.code, o.tail(6)))?;
    Ok(v["held"].as_bool())
}

fn expect_status_held(c: &Container, want: bool) -> Result<(), String> {
    match status_held(c)? {
        Some(h) if h == want => Ok(()),
        other => Err(format!(
            "teleport-upgrade status shows held = {other:?}, expected {want}"
        )),
    }
}

/// A routine `dnf upgrade` (16.0.1 is offered) leaves the agent where it
/// is, and does not restart it.
fn routine_upgrade_keeps(sut: &Sut) -> Result<String, String> {
    let before = sut.agent_version()?.unwrap_or_default();
    let pid = sut.show(AGENT_UNIT, "MainPID")?;
    sut.pm.routine_upgrade(sut.c)?;
    sut.expect_agent(&before)?;
    if sut.show(AGENT_UNIT, "MainPID")? != pid {
        return Err("the routine upgrade restarted the agent".into());
    }
    Ok(format!("dnf -y upgrade: still {before}"))
}

pub(super) fn versionlock_scenarios(
    rec: &mut Recorder,
    sut: &mut Sut,
    vs: &VersionServer,
) -> Result<(), String> {
    versionlock_holds(rec, sut, vs)?;
    versionlock_repaired(rec, sut, vs)?;
    versionlock_moves(rec, sut, vs)
}

/// The plugin installed: the next update holds with an exact versionlock.
fn versionlock_holds(rec: &mut Recorder, sut: &mut Sut, vs: &VersionServer) -> Result<(), String> {
    let c = sut.c;
    rec.step(Scenario::VersionlockHolds, || {
        // Before: no plugin, and the earlier runs held with exclude=.
        if c.exec(&["dnf", "-q", "--disablerepo=*", "versionlock", "list"])?.ok() {
            return Err("dnf versionlock answers before the plugin is installed".into());
        }
        if !excluded(c) {
            return Err(format!(
                "the earlier runs left no exclude={AGENT} in {}",
                Pm::Dnf.repo_file()
            ));
        }
        let mut inside = Vec::new();
        for deb in plugin_debs()? {
            let name = deb.file_name().unwrap().to_string_lossy().into_owned();
            let to = format!("/var/tmp/{name}");
            c.write(&to, std::fs::read(&deb).map_err(|e| e.to_string())?)?;
            inside.push(to);
        }
        let mut dpkg = vec!["dpkg", "-i"];
        dpkg.extend(inside.iter().map(String::as_str));
        c.ok(&dpkg)?;
        for f in &inside {
            c.remove(f)?;
        }
        if !lock_list(c)?.is_empty() {
            return Err("the fresh lock list is not empty".into());
        }
        sut.schedule_in_window()?;
        vs.set("16.0.0", false);
        sut.start_service()?;
        let d = sut.expect_update("16.0.0", "inside the maintenance window")?;
        let lock = expect_exact_lock(c)?;
        if excluded(c) {
            return Err(format!(
                "exclude={AGENT} is still in {} after the versionlock hold",
                Pm::Dnf.repo_file()
            ));
        }
        let journal = full_journal(c);
        for needle in ["versionlock add", "the hold is the versionlock now"] {
            if !journal.contains(needle) {
                return Err(format!("the journal has no {needle:?}:\n{journal}"));
            }
        }
        expect_status_held(c, true)?;
        lock_keeps(c, &lock)?;
        let kept = routine_upgrade_keeps(sut)?;
        Ok(format!(
            "plugin installed; {d}; lock list = [{lock}]; exclude= removed; status held; {kept} (without the plugin dnf would take 16.0.1)"
        ))
    })?;
    Ok(())
}

/// The operator deletes the lock: the next run restores it.
fn versionlock_repaired(
    rec: &mut Recorder,
    sut: &mut Sut,
    vs: &VersionServer,
) -> Result<(), String> {
    let c = sut.c;
    rec.step(Scenario::VersionlockRepaired, || {
        let repairs = sut.state()?["repairs_total"].as_u64().unwrap_or(0);
        // The operator deletes the lock.
        c.ok(&["dnf", "-q", "--disablerepo=*", "versionlock", "delete", AGENT])?;
        if !lock_list(c)?.is_empty() {
            return Err("dnf versionlock delete left entries".into());
        }
        expect_status_held(c, false)?;
        // Deleting it is a real weakening: dnf would now take 16.0.1.
        if !would_upgrade(c, true)? {
            return Err("without the lock dnf would still not upgrade the agent: the repair proves nothing".into());
        }
        sut.schedule_outside_window()?;
        vs.set("16.0.1", false);
        sut.start_service()?;
        sut.expect_agent("16.0.0")?;
        let decision = sut.last_run("decision")?;
        if decision != "wait" {
            return Err(format!("decided {decision:?}, expected wait{}", sut.diagnostics()));
        }
        let lock = expect_exact_lock(c)?;
        let st = sut.state()?;
        let total = st["repairs_total"].as_u64().unwrap_or(0);
        let last: Vec<String> = st["last_run"]["repairs"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        if total != repairs + 1 || !last.iter().any(|r| r.contains("held")) {
            return Err(format!(
                "repairs_total {repairs} -> {total}, last_run.repairs {last:?}; expected one more, a hold{}",
                sut.diagnostics()
            ));
        }
        let journal = sut.journal();
        if !journal.contains("repaired: the agent package was not held") {
            return Err(format!("the journal does not log the repair:\n{journal}"));
        }
        expect_status_held(c, true)?;
        lock_keeps(c, &lock)?;
        let kept = routine_upgrade_keeps(sut)?;
        let starts = sut.check_starts()?;
        Ok(format!(
            "lock deleted (status held=false, dnf would take 16.0.1); the run outside the window restored [{lock}] (repair {}; {}); {kept}; {starts}",
            total,
            last.join("; ")
        ))
    })?;
    Ok(())
}

/// The lock follows a fleet rollback and a rolled-back broken update.
fn versionlock_moves(rec: &mut Recorder, sut: &mut Sut, vs: &VersionServer) -> Result<(), String> {
    let c = sut.c;
    rec.step(Scenario::VersionlockMoves, || {
        // A fleet rollback to a lower version: installed on the second
        // check that sees it.
        sut.sight_lower("15.4.3")?;
        sut.schedule_in_window()?;
        vs.set("15.4.3", false);
        let second = sut.start_service();
        sut.done_sighting()?;
        second?;
        let d = sut.expect_update("15.4.3", "inside the maintenance window")?;
        let lock = expect_exact_lock(c)?;
        // A critical update to the broken build, rolled back by the health
        // check: the lock follows it there and back.
        let seen = sut.starts()?.len();
        let rollbacks = sut.state()?["rollbacks_total"].as_u64().unwrap_or(0);
        vs.set(BROKEN, true);
        let (result, status) = sut.run_service()?;
        let r = sut.expect_rolled_back(&result, &status, seen, "15.4.3", rollbacks + 1, 2, "restart loop")?;
        let back = expect_exact_lock(c)?;
        let journal = full_journal(c);
        let broken_lock = format!("versionlocked {AGENT}-0:{BROKEN}-");
        if !journal.contains(&broken_lock) {
            return Err(format!(
                "the journal shows no lock on {BROKEN} during the update:\n{journal}"
            ));
        }
        lock_keeps(c, &back)?;
        expect_status_held(c, true)?;
        Ok(format!(
            "fleet rollback: {d}; lock [{lock}]; broken {BROKEN} locked, then rolled back: {r}; lock [{back}]"
        ))
    })?;
    Ok(())
}
