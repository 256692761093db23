//! The no-op on rpm hosts (issue 26): the updater on dnf and zypper roots
//! with rpm databases of several sizes (see [`crate::rpmhost`]), against
//! the lean v1 shell's rpm variant and the floor program's, all
//! interleaved in one loop; the processes of one run of each counted.

use super::*;
use crate::real::{as_if_30_minutes_later, assert_noop, build_floor_variant, interleave_many};
use crate::rpmhost::{db_dir, Pm, RpmFixture};
use testkit::rpm::RpmRoot;

/// The peers of one root, as commands.
struct Peers<'a> {
    updater: &'a Path,
    baseline: &'a Path,
    floor: &'a Path,
    port: u16,
}

impl Peers<'_> {
    fn updater(&self, root: &RpmRoot) -> Command {
        let mut c = clean_command(self.updater);
        c.arg("--root").arg(root.path()).arg("run");
        c
    }

    /// The lean v1 shell: `rpm --root R --dbpath D -q --qf %{VERSION}`
    /// where it runs dpkg-query on apt hosts.
    fn baseline(&self, root: &RpmRoot) -> Command {
        let mut c = clean_command("/bin/bash");
        c.arg(self.baseline)
            .arg("--config-dir")
            .arg(root.file("/etc/teleport-upgrade.d"))
            .arg("--rpm-root")
            .arg(root.path())
            .arg("--rpm-dbpath")
            .arg(db_dir(root.path()));
        c
    }

    fn floor(&self, root: &RpmRoot, executables: &[PathBuf]) -> Command {
        let mut c = clean_command(self.floor);
        c.arg(self.port.to_string())
            .arg(CHANNEL)
            .arg(root.file(db_dir(root.path())).join("rpmdb.sqlite"))
            .arg(PKG)
            .args(executables);
        c
    }
}

/// The agent's executables as rpm recorded them (for the floor's `stat`s).
fn executables(root: &RpmRoot) -> Vec<PathBuf> {
    let out = root.rpm(&["-q", "--qf", "[%{FILEMODES:octal} %{FILENAMES}\\n]", PKG]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(m, _)| {
            m.starts_with("100") && u32::from_str_radix(&m[3..], 8).is_ok_and(|m| m & 0o111 != 0)
        })
        .map(|(_, f)| root.file(f))
        .collect()
}

/// Processes (distinct pids) and the successful `execve`s (program and
/// first arguments) of one run of `cmd` under `strace -f`; `None` without
/// strace.
fn count_processes(cmd: &Command, trace: &Path) -> Option<(usize, Vec<String>)> {
    let mut s = clean_command("strace");
    s.args([
        "-f",
        "-qq",
        "-s",
        "40",
        "-e",
        "trace=execve,clone,clone3,fork,vfork",
        "-o",
    ])
    .arg(trace)
    .arg(cmd.get_program())
    .args(cmd.get_args());
    let out = s.stdin(Stdio::null()).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = std::fs::read_to_string(trace).ok()?;
    // threads are clones with CLONE_THREAD: not processes
    let threads: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("CLONE_THREAD"))
        .filter_map(|l| l.rsplit("= ").next())
        .collect();
    let mut pids: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split(' ').next())
        .filter(|p| !threads.contains(p))
        .collect();
    pids.sort();
    pids.dedup();
    // `pid execve("/p", ["a0", "a1", ...], ...) = 0`, or split by another
    // process's line into `... <unfinished ...>` and `<... execve resumed>) = 0`
    let mut pending: Vec<(&str, &str)> = Vec::new();
    let mut execs = Vec::new();
    for l in text.lines() {
        let pid = l.split(' ').next().unwrap_or("");
        let call = if l.contains("execve(") {
            if !l.ends_with("<unfinished ...>") {
                l.ends_with("= 0").then_some(l)
            } else {
                pending.push((pid, l));
                None
            }
        } else if l.contains("execve resumed>") && l.ends_with("= 0") {
            pending.iter().rfind(|(p, _)| *p == pid).map(|(_, c)| *c)
        } else {
            None
        };
        if let Some(c) = call {
            let args = c.split_once(", [").map_or("", |x| x.1);
            let args = args.split("], ").next().unwrap_or("");
            let words: Vec<&str> = args
                .split(", ")
                .map(|w| w.trim_matches('"'))
                .filter(|w| !w.contains("/tmp/"))
                .take(5)
                .collect();
            execs.push(words.join(" "));
        }
    }
    if let Some(d) = std::env::var_os("BENCH_TRACE_DIR") {
        let _ = std::fs::copy(
            trace,
            Path::new(&d).join(format!(
                "trace-{}.txt",
                std::process::id() as u64 + execs.len() as u64 * 1000 + pids.len() as u64
            )),
        );
    }
    Some((pids.len(), execs))
}

/// One measured root.
struct Measured {
    pm: Pm,
    k: usize,
    mb: f64,
    root: RpmRoot,
    executables: Vec<PathBuf>,
}

/// The root of `pm` with `k` packages, its first run (no integrity record:
/// the whole agent verified) reported, brought to the steady state (the
/// record present, the hold applied: the versionlock on dnf, the lock on
/// zypper) and every peer checked to be a no-op.
fn steady_root(fx: &RpmFixture, p: &Peers, pm: Pm, k: usize, report: &mut Report) -> Measured {
    let root = fx.root(pm, k);
    let db = root.file(db_dir(root.path())).join("rpmdb.sqlite");
    let mb = file_size(&db) as f64 / 1e6;
    let first = measure_ok(&mut p.updater(&root), None, Output::Null);
    report.plain(
        &format!(
            "{}: first no-op after install ({k} packages; no integrity record: the whole agent verified): CPU time (n=1)",
            pm.name()
        ),
        format!("{:.1} ms", ms(first.cpu)),
        "—".into(),
        f64::NAN,
    );
    assert_noop(
        "the updater",
        &mut p.updater(&root),
        "decision=\"up-to-date\"",
    );
    assert!(root.file(INTEGRITY_RECORD).is_file(), "no integrity record");
    let (hold_file, what) = match pm {
        Pm::Dnf => (crate::rpmhost::VERSIONLOCK_LIST, "versionlock"),
        Pm::Zypper => ("/etc/zypp/locks", "lock"),
    };
    let held = std::fs::read_to_string(root.file(hold_file)).unwrap_or_default();
    assert!(
        held.contains(PKG),
        "{}: no {what} of {PKG} in {hold_file}:\n{held}",
        pm.name()
    );
    assert_noop(
        "the v1 baseline",
        &mut p.baseline(&root),
        "is up to date (15.4.3)",
    );
    let executables = executables(&root);
    assert!(!executables.is_empty(), "the agent's executables");
    assert_noop(
        "the floor",
        &mut p.floor(&root, &executables),
        "up to date (15.4.3)",
    );
    Measured {
        pm,
        k,
        mb,
        root,
        executables,
    }
}

/// The rows of one root: (paced, back to back, lean v1, floor) samples.
fn rows(m: &Measured, s: &[Vec<Sample>], report: &mut Report) {
    let (u, ub, b, f) = (&s[0], &s[1], &s[2], &s[3]);
    let what = format!(
        "{} no-op, {} packages ({:.1} MB rpmdb.sqlite)",
        m.pm.name(),
        m.k,
        m.mb
    );
    let paced = "with its slice at the 30-min cadence";
    for (peer, peer_name, t) in [
        (b, "lean v1 shell (rpm)", 0.3),
        (f, "floor program (rpm)", 3.0),
    ] {
        for metric in [Metric::Wall, Metric::Cpu] {
            report.compare(
                &format!("{what} {paced}, vs {peer_name}"),
                metric,
                u,
                peer,
                Target::RatioAtMost(t),
            );
        }
        report.compare(
            &format!("{what} back to back (no slice owed), vs {peer_name}"),
            Metric::Cpu,
            ub,
            peer,
            Target::RatioAtMost(t),
        );
    }
    let max = u.iter().chain(ub).map(|x| ms(x.cpu)).fold(0.0, f64::max);
    report.check(
        &format!(
            "{what}: the costliest single no-op's CPU of these {} runs",
            u.len() + ub.len()
        ),
        format!("{max:.1} ms"),
        "≤ 50 ms".into(),
        max <= 50.0,
    );
}

/// The no-op on dnf and zypper roots at each database size: the updater
/// (paced and back to back), the lean v1 shell's rpm variant and the rpm
/// floor, all interleaved.
pub(crate) fn bench_rpm_noop(
    updater: &Path,
    baseline: &Path,
    n: usize,
    sizes: &[usize],
    agent_bytes: usize,
    report: &mut Report,
) {
    eprintln!("== rpm hosts: no-op, dnf and zypper, rpm databases of {sizes:?} packages: updater vs lean v1 (rpm) vs floor (rpm), {n} interleaved iterations");
    let built = Instant::now();
    let fx = RpmFixture::new(agent_bytes, sizes);
    let floor = build_floor_variant(fx.dir.path(), true);
    let p = Peers {
        updater,
        baseline,
        floor: &floor,
        port: fx.vs.port(),
    };
    let roots: Vec<Measured> = [Pm::Dnf, Pm::Zypper]
        .into_iter()
        .flat_map(|pm| sizes.iter().map(move |&k| (pm, k)))
        .map(|(pm, k)| steady_root(&fx, &p, pm, k, report))
        .collect();
    eprintln!(
        "rpm fixtures built in {:.0} s",
        built.elapsed().as_secs_f64()
    );
    // the rpm database older than the updater's racy window (2 s)
    std::thread::sleep(Duration::from_secs(3));
    let mut cmds: Vec<Box<dyn FnMut() -> Sample + '_>> = Vec::new();
    for m in &roots {
        let p = &p;
        cmds.push(Box::new(move || {
            as_if_30_minutes_later(&m.root.file(INTEGRITY_RECORD));
            measure_ok(&mut p.updater(&m.root), None, Output::Null)
        }));
        cmds.push(Box::new(move || {
            measure_ok(&mut p.updater(&m.root), None, Output::Null)
        }));
        cmds.push(Box::new(move || {
            measure_ok(&mut p.baseline(&m.root), None, Output::Null)
        }));
        cmds.push(Box::new(move || {
            measure_ok(&mut p.floor(&m.root, &m.executables), None, Output::Null)
        }));
    }
    let s = interleave_many(n, 2, &mut cmds);
    drop(cmds);
    let mut medians: Vec<(Pm, f64, f64)> = Vec::new();
    for (j, m) in roots.iter().enumerate() {
        let s = &s[4 * j..4 * j + 4];
        rows(m, s, report);
        medians.push((
            m.pm,
            stats(s[0].iter().map(|x| ms(x.cpu))).median,
            stats(s[1].iter().map(|x| ms(x.cpu))).median,
        ));
    }
    for pm in [Pm::Dnf, Pm::Zypper] {
        let m: Vec<_> = medians.iter().filter(|(p, _, _)| *p == pm).collect();
        if let (Some(first), Some(last)) = (m.first(), m.last()) {
            for (g, how) in [
                (last.1 / first.1, "paced"),
                (last.2 / first.2, "back to back"),
            ] {
                report.check(
                    &format!(
                        "{} no-op CPU growth from {} to {} packages, {how} (median ÷ median, same loop)",
                        pm.name(),
                        sizes[0],
                        sizes[sizes.len() - 1]
                    ),
                    format!("{g:.2}×"),
                    "< 1.20×".into(),
                    g < 1.2,
                );
            }
        }
    }
    rpm_notes(&p, &roots, fx.agent_mb, report);
}

/// Peak RSS and the processes of one run of each peer, at the largest
/// database of each package manager.
fn rpm_notes(p: &Peers, roots: &[Measured], agent_mb: usize, report: &mut Report) {
    let trace = tempfile::NamedTempFile::new().expect("temp file");
    for pm in [Pm::Dnf, Pm::Zypper] {
        let Some(m) = roots.iter().rfind(|m| m.pm == pm) else {
            continue;
        };
        let (ur, br) = interleave(
            5,
            1,
            || peak_rss(&p.updater(&m.root)),
            || peak_rss(&p.baseline(&m.root)),
        );
        report.compare(
            &format!("{} no-op, {} packages", pm.name(), m.k),
            Metric::Rss,
            &ur,
            &br,
            Target::MibAtMost(16.0),
        );
        let counts: Vec<String> = [
            ("the updater", p.updater(&m.root)),
            ("the lean v1 shell", p.baseline(&m.root)),
            ("the floor", p.floor(&m.root, &m.executables)),
        ]
        .iter()
        .map(|(who, c)| match count_processes(c, trace.path()) {
            Some((procs, execs)) => format!(
                "{who} {procs} processes, {} execs (`{}`)",
                execs.len(),
                execs.join("`, `")
            ),
            None => format!("{who}: not counted (no strace)"),
        })
        .collect();
        report.notes.push(format!(
            "{} no-op, {} packages, one run each under `strace -f -e trace=execve`: {}.",
            pm.name(),
            m.k,
            counts.join(", ")
        ));
    }
    report.notes.push(format!(
        "rpm rows: the agent rpm is {agent_mb} MB beyond its script (`/usr/bin/tctl`), signed, served by a signed rpm-md repository (testkit's `RpmRepo`), installed with `rpm -i`; the database holds synthetic packages of ~26 `%ghost` files, a changelog of 20 entries, requires and provides each (see METHOD.md); \
         the lean v1 shell queries `rpm --root R --dbpath D -q --qf '%{{VERSION}}' teleport-ent` where it runs dpkg-query on apt hosts; the floor reads the package's header from `rpmdb.sqlite` through rpm's Name index with libsqlite3 (one indexed lookup, no rpm process)."
    ));
}
