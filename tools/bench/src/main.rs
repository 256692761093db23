//! Benchmarks of `teleport-upgrade` against baselines measured in the same
//! run, interleaved, and reported as ratios (absolute times on a shared
//! machine are noise; ratios of interleaved runs are not).
//!
//! 1. no-op `run` (agent already at the target, window open): the updater
//!    against `scripts/bench-v1-baseline.sh`, which does what v1 does for the
//!    same decision (curl /version and /critical, read the schedule,
//!    dpkg-query, compare). Wall time, CPU time, peak RSS.
//! 2. a real update 15.4.2 -> 15.4.3 in a fresh apt root each iteration: the
//!    updater's `run` against the bare package-manager commands it runs
//!    (refresh of the Teleport source, exact install, hold), taken from its
//!    own `dry-run` output.
//! 3. refreshing only the Teleport source (the updater's refresh command)
//!    against a full `apt-get update` with five other signed repositories
//!    configured, lists cold and warm.
//! 4. binary size and startup time (`teleport-upgrade version`) against
//!    `/bin/true` and `bash -c :`.
//!
//! Every process is spawned directly (no shell) in a systemd-like
//! environment and timed from spawn to reap; CPU time (user + system) comes
//! from `wait4`'s rusage, which covers the process and the children it
//! waited for. Peak RSS comes from separate runs under GNU time (see
//! [`measure`] for why). After the table, diagnostics say where the
//! updater's time goes (its own log timestamps, `-v` command timings, and
//! variants that remove one suspected cost at a time). See BENCHMARKS.md.
//!
//! Usage: bench --updater PATH [--baseline-script PATH] [--quick]
//!              [--only noop,update,refresh,startup,rpm] [--out FILE.md]
//!        bench --updater PATH --serve   (the no-op fixture, kept up until
//!              stdin closes, with the commands to profile by hand)
//!        bench --ab N 'CMD A' 'CMD B'   (two commands, interleaved)

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use testkit::aptrepo::AptRepo;
use testkit::aptroot::AptRoot;
use testkit::deb::{build_deb, host_arch, DebSpec};
use testkit::gpg::Key;
use testkit::http::{Route, Server};

mod diagnostics;
mod fixture;
mod measure;
mod real;
mod refresh;
mod rpmhost;
mod rpmnoop;

use diagnostics::*;
use fixture::*;
use measure::*;
use refresh::*;

const PKG: &str = "teleport-ent";
const INTEGRITY_RECORD: &str = "/var/lib/teleport-upgrade/integrity.json";
const CHANNEL: &str = "/v1/webapi/automaticupgrades/channel/default";
const KEYRING: &str = "/usr/share/keyrings/teleport-archive-keyring.asc";
const OTHER_KEYRING: &str = "/usr/share/keyrings/vendor-archive-keyring.gpg";
/// Stanzas in the Packages index of each of the other repositories.
const OTHER_REPOS: &[usize] = &[200, 300, 400, 500, 600];

/// The environment of a systemd service (what runs the updater's timer),
/// the same for every measured command: the developer's environment may set
/// SSL_CERT_FILE/SSL_CERT_DIR, proxies or TELEPORT_UPGRADE_CONFIG, which
/// would change what is measured.
const SERVICE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn clean_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new(program);
    c.env_clear().env("PATH", SERVICE_PATH).env("LC_ALL", "C");
    c
}

/// One command of the bare sequence, rebuilt from `dry-run`'s output.
struct Step {
    cmd: Command,
    stdin: Option<Vec<u8>>,
    shown: String,
}

/// Splits a line `Display`ed by `CommandLine` (POSIX single quotes, `'\''`).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    cur.push(q);
                }
            }
            '\\' => {
                in_word = true;
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// The commands `teleport-upgrade dry-run` says an update of `root` would
/// run, rebuilt to run for real. The dry run names files in its private
/// work directory (the single-source list and, under `--root`, the
/// APT_CONFIG), which it removes on exit: they are recreated in `work` with
/// the contents backends/src/apt.rs gives them (`Apt::root_config_text` and
/// `locate_source`), and the paths rewritten to point there.
fn bare_update_steps(fx: &Fixture, root: &AptRoot, work: &Path) -> Vec<Step> {
    let out = fx
        .updater_cmd(root, &["-v", "dry-run"])
        .stdin(Stdio::null())
        .output()
        .expect("run dry-run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("plan:"),
        "dry-run failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // The commands of the plan's steps, each shown once under its step.
    let lines: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("plan:"))
        .filter(|l| l.starts_with("       "))
        .map(str::trim)
        .filter(|l| {
            !l.starts_with('(')
                && !l.starts_with("on failure:")
                && !l.starts_with("wait for")
                && !l.starts_with("POST")
        })
        .collect();
    assert_eq!(lines.len(), 3, "expected refresh, install, hold:\n{stdout}");
    // The dry run left apt's caches in the root (its `apt-cache policy`
    // built them): remove them, so that the bare sequence starts from the
    // same state as the updater's run.
    for f in ["pkgcache.bin", "srcpkgcache.bin"] {
        let _ = std::fs::remove_file(root.file("/var/cache/apt").join(f));
    }

    // The private work directory: the parent of APT_CONFIG.
    let apt_config = shell_words(lines[0])
        .into_iter()
        .find_map(|w| w.strip_prefix("APT_CONFIG=").map(PathBuf::from))
        .expect("APT_CONFIG in the plan (--root)");
    let private = apt_config.parent().unwrap().to_string_lossy().into_owned();
    std::fs::create_dir_all(work).unwrap();
    let r = root.path().display().to_string();
    std::fs::write(
        work.join("apt.conf"),
        format!(
            "// Written by teleport-upgrade for --root {r}.\n\
             Dir \"{r}/\";\n\
             Dir::State::status \"{r}/var/lib/dpkg/status\";\n\
             DPkg::Options {{ \"--root={r}\"; \"--admindir={r}/var/lib/dpkg\"; }};\n\
             APT::Sandbox::User \"root\";\n"
        ),
    )
    .unwrap();
    std::fs::write(
        work.join("teleport-source.list"),
        format!(
            "# Generated by teleport-upgrade from /etc/apt/sources.list.d/teleport.list: only the Teleport repository.\n\
             deb [signed-by={}] {}/ bookworm stable/v15\n",
            root.file(KEYRING).display(),
            fx.repo_server.url()
        ),
    )
    .unwrap();
    std::fs::write(
        work.join("enforce.conf"),
        backends::apt_trust::clear_file_text(),
    )
    .unwrap();
    let work_s = work.display().to_string();
    let relocate = |s: &str| s.replace(&private, &work_s);

    lines
        .iter()
        .map(|line| {
            let mut words = shell_words(line);
            let mut stdin = None;
            if words.ends_with(&["<<<".to_string(), "(input)".to_string()]) {
                words.truncate(words.len() - 2);
                // The one command with input: dpkg --set-selections (the hold).
                assert!(words.iter().any(|w| w == "--set-selections"), "{line}");
                stdin = Some(format!("{PKG} hold\n").into_bytes());
            }
            let mut it = words.into_iter().peekable();
            let mut env = Vec::new();
            while let Some(w) = it.peek() {
                match w.split_once('=') {
                    Some((k, v))
                        if !k.is_empty()
                            && k.chars().all(|c| c.is_ascii_uppercase() || c == '_') =>
                    {
                        env.push((k.to_string(), relocate(v)));
                        it.next();
                    }
                    _ => break,
                }
            }
            let program = it.next().expect("program");
            let args: Vec<String> = it.map(|a| relocate(&a)).collect();
            // The updater's runner adds LC_ALL=C to every command.
            let mut cmd = clean_command(&program);
            cmd.args(&args);
            for (k, v) in &env {
                cmd.env(k, v);
            }
            Step {
                cmd,
                stdin,
                shown: relocate(line.trim()),
            }
        })
        .collect()
}

fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .len()
}

// ---------------------------------------------------------------- the benches

struct Plan {
    noop: usize,
    update: usize,
    attribution: usize,
    refresh_cold: usize,
    refresh_warm: usize,
    startup: usize,
}

/// Runs an hour: the updater's timer (every 30 min) and v1's (every 5 min,
/// see the reference on the shipped v1 units).
const UPDATER_RUNS_PER_HOUR: f64 = 2.0;
const V1_RUNS_PER_HOUR: f64 = 12.0;

fn bench_noop(fx: &Fixture, n: usize, report: &mut Report) {
    eprintln!("== no-op run: updater vs v1 baseline, {n} interleaved iterations");
    let root = fx.root(&fx.dir.path().join("noop-root"), "15.4.3");

    // Both must reach the same decision before anything is timed.
    let out = fx
        .updater_cmd(&root, &["run"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.contains("decision=\"up-to-date\""),
        "the updater's run is not a no-op ({}):\n{err}",
        out.status
    );
    let out = fx
        .baseline_cmd(&root)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let berr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && berr.contains("is up to date (15.4.3)"),
        "the baseline is not a no-op ({}):\n{berr}",
        out.status
    );
    let hits_before = fx.vs.hits(&format!("{CHANNEL}/version"));

    let (u, b) = interleave(
        n,
        2,
        || measure_ok(&mut fx.updater_cmd(&root, &["run"]), None, Output::Null),
        || measure_ok(&mut fx.baseline_cmd(&root), None, Output::Null),
    );
    // Each side asked the version server once per run (warm-up included).
    let hits = fx.vs.hits(&format!("{CHANNEL}/version")) - hits_before;
    assert_eq!(hits, 2 * (n + 2), "every run must ask the version server");

    let (ur, br) = interleave(
        n,
        1,
        || peak_rss(&fx.updater_cmd(&root, &["run"])),
        || peak_rss(&fx.baseline_cmd(&root)),
    );

    let what = format!("no-op run, {}", fx.size.label());
    report.compare(&what, Metric::Wall, &u, &b, Target::RatioAtMost(0.3));
    report.compare(&what, Metric::Cpu, &u, &b, Target::RatioAtMost(0.3));
    report.compare(&what, Metric::Rss, &ur, &br, Target::MibAtMost(16.0));
    // The cost per hour at each one's cadence: the updater's timer fires
    // every 30 minutes (2 runs an hour), the shipped v1 timer every 5
    // minutes (12 an hour).
    for metric in [Metric::Wall, Metric::Cpu] {
        let mu = stats(u.iter().map(|x| metric.get(x))).median * UPDATER_RUNS_PER_HOUR;
        let mb = stats(b.iter().map(|x| metric.get(x))).median * V1_RUNS_PER_HOUR;
        report.plain(
            &format!(
                "no-op cost per hour, {}: {} (updater {UPDATER_RUNS_PER_HOUR} runs/h, v1 {V1_RUNS_PER_HOUR} runs/h)",
                fx.size.label(),
                metric.name()
            ),
            format!("{mu:.1} ms/h"),
            format!("{mb:.1} ms/h"),
            mu / mb,
        );
    }

    // Peak RSS is the largest of the process and the children it waited
    // for: show what the children alone reach, so that the updater's row is
    // known to be its own.
    let mut q = clean_command("dpkg-query");
    q.arg(format!("--admindir={}", root.admindir().display()))
        .args(["-W", "-f=${db:Status-Abbrev}\t${Version}\n", PKG]);
    let dq = stats((0..5).map(|_| mib(peak_rss(&q).rss_kib)));
    let mut c = clean_command("curl");
    c.args(["-fsS", "--max-time", "10"]).arg(format!(
        "http://127.0.0.1:{}{CHANNEL}/version",
        fx.vs.port()
    ));
    let cu = stats((0..5).map(|_| mib(peak_rss(&c).rss_kib)));
    let tr = stats((0..5).map(|_| mib(peak_rss(&clean_command("/bin/true")).rss_kib)));
    report.notes.push(format!(
        "peak RSS (GNU time's %M, in separate runs) is the largest of the process and the children it waited for: \
         dpkg-query alone peaks at {:.1} MiB (the baseline's other child; the updater reads dpkg's status file in process and starts no child in a no-op run), \
         curl alone at {:.1} MiB (the baseline's largest child), `/bin/true` at {:.1} MiB (the floor of the method).",
        dq.median, cu.median, tr.median
    ));
    report.notes.push(
        "the no-op fixture names the package (`package` = teleport-ent) so that both sides query dpkg once; \
         without it the updater looks for teleport-ent-fips first (one more dpkg-query)."
            .into(),
    );
    noop_diagnostics(fx, &root, n, report);
}

/// `steady`: the updater's root has its integrity record (a run outside
/// the window verified and recorded the installed agent before), as every
/// update but the first after install; otherwise the timed run first
/// verifies the old package in full.
fn bench_update(fx: &Fixture, n: usize, attribution: usize, steady: bool, report: &mut Report) {
    eprintln!("== real update 15.4.2 -> 15.4.3, fresh roots (steady state: {steady}): updater vs bare apt commands, {n} interleaved iterations");
    let mut shown = Vec::new();
    let mut iteration = 0usize;
    let mut u = Vec::new();
    let mut b = Vec::new();
    // Fresh roots each iteration (built untimed); order alternates.
    for i in 0..n {
        iteration += 1;
        let it = tempfile::Builder::new()
            .prefix(&format!("update-{iteration}-"))
            .tempdir_in(fx.dir.path())
            .unwrap();
        let root_u = fx.root(&it.path().join("u"), "15.4.2");
        let root_b = fx.root(&it.path().join("b"), "15.4.2");
        if steady {
            // The update that installed 15.4.2 was the updater's own
            // (apt-get keeps what it downloads): its .deb is in apt's
            // archive cache, which the updater keeps for an offline
            // rollback by a hard link instead of downloading it again.
            let deb = fx.deb("15.4.2");
            let archives = root_u.file("/var/cache/apt/archives");
            std::fs::create_dir_all(&archives).unwrap();
            std::fs::copy(deb, archives.join(deb.file_name().unwrap())).unwrap();
            fx.set_window(&root_u, false);
            measure_ok(&mut fx.updater_cmd(&root_u, &["run"]), None, Output::Null);
            assert!(
                root_u.file(INTEGRITY_RECORD).is_file(),
                "no integrity record"
            );
            fx.set_window(&root_u, true);
            // apt's own cache valid, as apt-daily leaves a host (the
            // updater's previous update, long ago, left it stale): what
            // `apt-cache policy` reads on a real host.
            for r in [&root_u, &root_b] {
                let o = r.command("apt-cache").arg("policy").output().unwrap();
                assert!(o.status.success(), "apt-cache policy in the root");
            }
        }
        let mut steps = bare_update_steps(fx, &root_b, &it.path().join("bare-work"));
        if shown.is_empty() {
            shown = steps.iter().map(|s| s.shown.clone()).collect();
        }
        let log_u = it.path().join("updater.log");
        let log_b = it.path().join("bare.log");
        let run_u = || {
            measure_ok(
                &mut fx.updater_cmd(&root_u, &["run"]),
                None,
                Output::Log(&log_u),
            )
        };
        let mut run_b = || measure_seq(&mut steps, Output::Log(&log_b));
        if i % 2 == 0 {
            u.push(run_u());
            b.push(run_b());
        } else {
            b.push(run_b());
            u.push(run_u());
        }
        for (side, root) in [("updater", &root_u), ("bare commands", &root_b)] {
            assert_eq!(
                root.installed_version(PKG).as_deref(),
                Some("15.4.3"),
                "{side}: not updated"
            );
            assert!(root.is_held(PKG), "{side}: not held");
        }
        eprint!(".");
    }
    eprintln!();
    let state = if steady {
        "steady state (integrity record present; the installed version's .deb in apt's archive cache, as the updater's previous update left it)"
    } else {
        "first update after install (no integrity record)"
    };
    let what = format!(
        "real update 15.4.2→15.4.3, {}, {state} (updater `run` vs bare refresh+install+hold)",
        fx.size.label()
    );
    let target = match fx.size {
        Size::Tiny => Target::OverheadAtMost(0.10),
        Size::Real => Target::OverheadAtMost(0.05),
    };
    report.compare(&what, Metric::Wall, &u, &b, target);
    report.compare(
        &format!("real update, {}, {state}", fx.size.label()),
        Metric::Cpu,
        &u,
        &b,
        Target::None,
    );
    report.notes.push(format!(
        "bare commands of the update (from `dry-run`, work directory relocated): `{}`",
        shown.join("` ; `")
    ));
    if fx.size == Size::Tiny && !steady {
        update_attribution(fx, attribution, report);
    }
}

// ---------------------------------------------------------------- main

fn read_trim(p: &str) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let os = read_trim("/etc/os-release")
        .lines()
        .find_map(|l| {
            l.strip_prefix("PRETTY_NAME=")
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_default();
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let tool = |prog: &str, arg: &str| {
        Command::new(prog)
            .arg(arg)
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .unwrap_or_default()
    };
    format!(
        "- CPU: {cpu}, {cores} cores\n- kernel: {}, {os}\n- date: {date}\n- load average at start: {}\n- {}; {}; {}",
        read_trim("/proc/sys/kernel/osrelease"),
        read_trim("/proc/loadavg"),
        tool("apt-get", "--version"),
        tool("dpkg", "--version"),
        tool("curl", "--version"),
    )
}

/// `--ab N 'A' 'B'`: two command lines (split as a POSIX shell would split
/// plain words and single quotes, leading `VAR=value` words added to the
/// service environment, no shell) measured interleaved.
/// For finding causes: e.g. the updater with and without an environment
/// variable, or two builds of it.
fn ab(n: usize, a: &str, b: &str) {
    let parse = |line: &str| {
        let mut words = shell_words(line).into_iter().peekable();
        let mut env = Vec::new();
        while let Some((k, v)) = words.peek().and_then(|w| w.split_once('=')) {
            if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                break;
            }
            env.push((k.to_string(), v.to_string()));
            words.next();
        }
        let program = words.next().unwrap_or_else(|| usage());
        (env, program, words.collect::<Vec<_>>())
    };
    let (ea, pa, aa) = parse(a);
    let (eb, pb, ab) = parse(b);
    let cmd = |env: &[(String, String)], p: &str, args: &[String]| {
        let mut c = clean_command(p);
        c.args(args).envs(env.iter().cloned());
        c
    };
    let (sa, sb) = interleave(
        n,
        2,
        || measure_ok(&mut cmd(&ea, &pa, &aa), None, Output::Null),
        || measure_ok(&mut cmd(&eb, &pb, &ab), None, Output::Null),
    );
    let (ra, rb) = interleave(
        n,
        1,
        || peak_rss(&cmd(&ea, &pa, &aa)),
        || peak_rss(&cmd(&eb, &pb, &ab)),
    );
    let mut r = Report::default();
    r.compare("A vs B", Metric::Wall, &sa, &sb, Target::None);
    r.compare("A vs B", Metric::Cpu, &sa, &sb, Target::None);
    r.compare("A vs B", Metric::Rss, &ra, &rb, Target::None);
    println!(
        "A: {a}\nB: {b}\n\n{}",
        r.markdown().replace("| updater | baseline |", "| A | B |")
    );
}

fn usage() -> ! {
    eprintln!(
        "usage: bench --updater PATH [--baseline-script PATH] [--quick] \
         [--only noop,update,refresh,startup,rpm] [--sizes tiny,real] [--db-sizes 500,1500,5000] [--out FILE.md] | --serve\n       bench --ab N 'CMD A' 'CMD B'"
    );
    std::process::exit(2);
}

/// The command line (`--ab` aside).
struct Args {
    updater: PathBuf,
    baseline_script: PathBuf,
    quick: bool,
    only: Option<Vec<String>>,
    out_file: Option<PathBuf>,
    serve: bool,
    sizes: Vec<Size>,
    db_sizes: Vec<usize>,
}

fn parse_args() -> Args {
    let mut updater = None;
    let mut baseline_script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/bench-v1-baseline.sh");
    let mut quick = false;
    let mut only: Option<Vec<String>> = None;
    let mut out_file = None;
    let mut serve = false;
    let mut sizes = vec![Size::Real, Size::Tiny];
    let mut db_sizes = vec![500, 1500, 5000];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--updater" => updater = Some(PathBuf::from(args.next().unwrap_or_else(|| usage()))),
            "--baseline-script" => {
                baseline_script = PathBuf::from(args.next().unwrap_or_else(|| usage()))
            }
            "--quick" => quick = true,
            "--only" => {
                only = Some(
                    args.next()
                        .unwrap_or_else(|| usage())
                        .split(',')
                        .map(str::to_string)
                        .collect(),
                )
            }
            "--serve" => serve = true,
            "--sizes" => {
                sizes = args
                    .next()
                    .unwrap_or_else(|| usage())
                    .split(',')
                    .map(|w| match w {
                        "tiny" => Size::Tiny,
                        "real" => Size::Real,
                        _ => usage(),
                    })
                    .collect()
            }
            "--db-sizes" => {
                db_sizes = args
                    .next()
                    .unwrap_or_else(|| usage())
                    .split(',')
                    .map(|w| w.parse().unwrap_or_else(|_| usage()))
                    .collect()
            }
            "--out" => out_file = Some(PathBuf::from(args.next().unwrap_or_else(|| usage()))),
            _ => usage(),
        }
    }
    let updater = updater
        .unwrap_or_else(|| usage())
        .canonicalize()
        .expect("--updater path");
    let baseline_script = baseline_script
        .canonicalize()
        .expect("--baseline-script path");
    Args {
        updater,
        baseline_script,
        quick,
        only,
        out_file,
        serve,
        sizes,
        db_sizes,
    }
}

fn main() {
    let all: Vec<String> = std::env::args().skip(1).collect();
    if all.first().map(String::as_str) == Some("--ab") {
        match &all[1..] {
            [n, a, b] => ab(n.parse().unwrap_or_else(|_| usage()), a, b),
            _ => usage(),
        }
        return;
    }
    let Args {
        updater,
        baseline_script,
        quick,
        only,
        out_file,
        serve,
        sizes,
        db_sizes,
    } = parse_args();
    let want = |what: &str| match &only {
        None => true,
        Some(o) => o.iter().any(|x| x == what),
    };
    let plan = if quick {
        Plan {
            noop: 10,
            update: 3,
            attribution: 2,
            refresh_cold: 3,
            refresh_warm: 5,
            startup: 10,
        }
    } else {
        Plan {
            noop: 30,
            update: 10,
            attribution: 5,
            refresh_cold: 10,
            refresh_warm: 15,
            startup: 30,
        }
    };

    let machine = machine();
    eprintln!("building fixtures (key, packages, signed repository, version server)...");
    if serve {
        serve_for_profiling(&Fixture::new(updater, baseline_script, Size::Tiny));
        return;
    }
    let mut report = Report::default();
    let started = Instant::now();
    let mut shown_updater = updater.clone();
    let apt_rows = ["noop", "update", "refresh", "startup"]
        .iter()
        .any(|w| want(w));
    for &size in sizes.iter().filter(|_| apt_rows) {
        let built = Instant::now();
        let fx = Fixture::new(updater.clone(), baseline_script.clone(), size);
        eprintln!(
            "fixtures for the {} built in {:.0} s",
            size.label(),
            built.elapsed().as_secs_f64()
        );
        shown_updater = fx.updater.clone();
        if want("noop") {
            match size {
                Size::Tiny => bench_noop(&fx, plan.noop, &mut report),
                Size::Real => real::bench_noop_scaling(&fx, plan.noop, &db_sizes, &mut report),
            }
        }
        if want("update") {
            for steady in [true, false] {
                bench_update(&fx, plan.update, plan.attribution, steady, &mut report);
            }
        }
        if size == Size::Tiny {
            if want("refresh") {
                bench_refresh(&fx, plan.refresh_cold, plan.refresh_warm, &mut report);
            }
            if want("startup") {
                bench_startup(&fx, plan.startup, &mut report);
            }
        }
    }
    if want("rpm") {
        let agent = if sizes.contains(&Size::Real) {
            REAL_EXEC_BYTES
        } else {
            0
        };
        rpmnoop::bench_rpm_noop(
            &updater,
            &baseline_script,
            plan.noop,
            &db_sizes,
            agent,
            &mut report,
        );
    }
    let text = format!(
        "{machine}\n- load average at end: {}\n- updater: {}\n- measurements took {:.0} s{}\n\n{}",
        read_trim("/proc/loadavg"),
        shown_updater.display(),
        started.elapsed().as_secs_f64(),
        if quick { " (--quick)" } else { "" },
        report.markdown()
    );
    println!("{text}");
    if let Some(p) = out_file {
        std::fs::write(&p, &text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }
}
