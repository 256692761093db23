//! needrestart (Ubuntu, Debian) restarts services whose processes run
//! outdated files after a package operation, outside any maintenance
//! window. The updater's package ships
//! `/etc/needrestart/conf.d/teleport-ent-updater.conf`, which keeps
//! `teleport.service` out of needrestart's restarts (the updater restarts
//! it in the window). Shown with Debian 12's real needrestart (and the
//! packages it needs, installed from .debs the host's apt fetches once) in
//! the booted debian-apt container: first without the file, needrestart's
//! automatic mode restarts the agent; then with it, the agent keeps its
//! process and needrestart lists it as deferred. A test-only file keeps
//! needrestart to `teleport.service` (`blacklist_rc` of every other unit):
//! the .debs upgrade libraries of the image (liblzma5, perl-base) that the
//! container's own services map, and those must not be restarted here.

use super::versionlock::cached_debs;
use super::*;

/// needrestart and what Debian 12's minbase image lacks for it.
const NEEDRESTART_DEBS: &[&str] = &[
    "needrestart",
    "perl",
    "perl-base",
    "perl-modules-5.36",
    "libperl5.36",
    "libgdbm6",
    "libgdbm-compat4",
    "liblzma5",
    "xz-utils",
    "gettext-base",
    "binutils",
    "binutils-common",
    "binutils-x86-64-linux-gnu",
    "libbinutils",
    "libctf-nobfd0",
    "libctf0",
    "libgprofng0",
    "libjansson4",
    "libintl-perl",
    "libmodule-find-perl",
    "libproc-processtable-perl",
    "libsort-naturally-perl",
    "libterm-readkey-perl",
];

/// The file the updater's package ships.
const CONF: &str = "/etc/needrestart/conf.d/teleport-ent-updater.conf";
const ASIDE: &str = "/var/tmp/teleport-ent-updater.conf.aside";
/// The test's own file: every unit but the agent's is ignored.
const ONLY_AGENT: &str = "/etc/needrestart/conf.d/zz-matrix-only-teleport.conf";

/// Install Debian's needrestart in the container.
fn install(c: &Container) -> Result<(), String> {
    let mut inside = Vec::new();
    for deb in cached_debs("needrestart", NEEDRESTART_DEBS)? {
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
    c.write(
        ONLY_AGENT,
        "$nrconf{blacklist_rc} = [qr(^(?!teleport\\.service$))];\n",
    )
}

/// Make the agent's running process outdated as needrestart sees it: its
/// executable replaced on disk by the same bytes (a new inode), as a
/// package upgrade does; `/proc/PID/exe` then reads "(deleted)".
fn outdate_agent(c: &Container) -> Result<(), String> {
    c.ok(&["cp", "-p", "/usr/bin/teleport", "/usr/bin/teleport.nr"])?;
    c.ok(&["mv", "/usr/bin/teleport.nr", "/usr/bin/teleport"])?;
    Ok(())
}

/// `needrestart -r a -l` (restart automatically, as an apt run does on a
/// host configured so; outdated processes only, no kernel or microcode
/// hints): its output, and whether the agent got a new process.
fn run_needrestart(sut: &Sut) -> Result<(String, bool), String> {
    let c = sut.c;
    let pid = sut.show(AGENT_UNIT, "MainPID")?;
    let o = c.exec(&["needrestart", "-r", "a", "-l"])?;
    if !o.ok() {
        return Err(format!(
            "needrestart -r a -l: exit {:?}\n{}",
            o.code,
            o.tail(10)
        ));
    }
    let text = format!("{}{}", o.stdout, o.stderr);
    if !text.contains(AGENT_UNIT) {
        return Err(format!(
            "needrestart does not see {AGENT_UNIT} as outdated:\n{text}"
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut now = sut.show(AGENT_UNIT, "MainPID")?;
    while (now == pid || now == "0") && Instant::now() < deadline && text.contains("Restarting") {
        std::thread::sleep(Duration::from_millis(100));
        now = sut.show(AGENT_UNIT, "MainPID")?;
    }
    Ok((text, now != pid))
}

pub(super) fn needrestart_scenario(sut: &mut Sut) -> Result<String, String> {
    let c = sut.c;
    let version = sut.agent_version()?.ok_or("the agent is not installed")?;
    let owner = c.ok(&["dpkg-query", "-S", CONF])?;
    if !owner.starts_with("teleport-ent-updater:") {
        return Err(format!("{CONF} is not the updater's: {owner}"));
    }
    install(c)?;
    // Without the file: needrestart restarts the agent.
    c.ok(&["mv", CONF, ASIDE])?;
    outdate_agent(c)?;
    let plain = run_needrestart(sut);
    c.ok(&["mv", ASIDE, CONF])?;
    let (text, restarted) = plain?;
    if !restarted {
        return Err(format!(
            "without {CONF}, needrestart -r a did not restart {AGENT_UNIT}:\n{text}"
        ));
    }
    sut.expected_starts.push(version.clone());
    sut.check_starts()?;
    // With it: listed as deferred, not restarted.
    outdate_agent(c)?;
    let (text, restarted) = run_needrestart(sut)?;
    let deferred = text
        .split("Service restarts being deferred")
        .nth(1)
        .is_some_and(|t| t.contains(AGENT_UNIT));
    if restarted || !deferred {
        return Err(format!(
            "with {CONF}, needrestart -r a restarted {AGENT_UNIT} ({restarted}) or did not list it as deferred:\n{text}"
        ));
    }
    let starts = sut.check_starts()?;
    c.remove(ONLY_AGENT)?;
    c.ok(&["dpkg", "--purge", "needrestart"])?;
    Ok(format!(
        "without the file: needrestart restarted {AGENT_UNIT}; with it: deferred, same process; {starts}"
    ))
}
