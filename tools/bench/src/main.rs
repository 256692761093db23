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
//!              [--only noop,update,refresh,startup] [--out FILE.md]
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

mod real;

const PKG: &str = "teleport-ent";
const INTEGRITY_RECORD: &str = "/var/lib/teleport-upgrade/integrity.json";
const CHANNEL: &str = "/v1/webapi/automaticupgrades/channel/default";
const KEYRING: &str = "/usr/share/keyrings/teleport-archive-keyring.asc";
const OTHER_KEYRING: &str = "/usr/share/keyrings/vendor-archive-keyring.gpg";
/// Stanzas in the Packages index of each of the other repositories.
const OTHER_REPOS: &[usize] = &[200, 300, 400, 500, 600];

// ---------------------------------------------------------------- measuring

/// One measured run (or sequence of runs) of processes.
#[derive(Clone, Copy, Debug)]
struct Sample {
    wall: Duration,
    /// User + system time of the process and its waited-for children.
    cpu: Duration,
    /// Peak resident set size, from a separate run under GNU time
    /// ([`peak_rss`]); 0 in timed samples.
    rss_kib: u64,
}

/// Where a measured process's stdout and stderr go.
#[derive(Clone, Copy)]
enum Output<'a> {
    Null,
    /// Appended to this file (kept to explain a failure).
    Log(&'a Path),
}

/// Spawns `cmd`, feeds `stdin`, reaps it with `wait4`. Returns the sample
/// (wall time, and CPU time from the rusage) and the exit code (-1 when
/// killed by a signal).
///
/// wait4's `ru_maxrss` is not used: when a child execs, Linux records the
/// high-water mark of the memory it replaces, which for a child spawned by
/// this (larger) process is this process's own; every figure would be
/// floored at the bench's RSS. Peak RSS comes from [`peak_rss`] instead.
fn measure(cmd: &mut Command, stdin: Option<&[u8]>, out: Output) -> (Sample, i32) {
    match out {
        Output::Null => {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
        Output::Log(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("open log");
            cmd.stdout(f.try_clone().expect("dup log")).stderr(f);
        }
    }
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", cmd.get_program()));
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        pipe.write_all(bytes).expect("write stdin");
    }
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; wait4 fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointers to locals; pid is our own child.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            panic!("wait4: {err}");
        }
    }
    let wall = started.elapsed();
    // The child is reaped: std's handle must not wait for it again (it does
    // not on drop).
    drop(child);
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (
        Sample {
            wall,
            cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
            rss_kib: 0,
        },
        code,
    )
}

/// Peak RSS of one run of `cmd` (the largest of the process and the children
/// it waited for), as GNU time reports it (`/usr/bin/time -f %M`, wait4's
/// `ru_maxrss`): time is small, so the floor the exec inherits (see
/// [`measure`]) is about 1 MiB instead of the bench's own RSS. In a separate
/// run from the timed ones, so that time's fork and exec are never timed.
fn peak_rss(cmd: &Command) -> Sample {
    let out = tempfile::NamedTempFile::new().expect("temp file");
    let mut t = clean_command("/usr/bin/time");
    t.args(["-f", "%M", "-o"])
        .arg(out.path())
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => t.env(k, v),
            None => t.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        t.current_dir(d);
    }
    measure_ok(&mut t, None, Output::Null);
    let text = std::fs::read_to_string(out.path()).expect("read time's output");
    let kib = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in time's output: {text:?}"));
    Sample {
        wall: Duration::ZERO,
        cpu: Duration::ZERO,
        rss_kib: kib,
    }
}

/// `measure`, panicking (with the log) unless the exit code is 0.
fn measure_ok(cmd: &mut Command, stdin: Option<&[u8]>, out: Output) -> Sample {
    let what = format!("{cmd:?}");
    let (s, code) = measure(cmd, stdin, out);
    if code != 0 {
        let log = match out {
            Output::Log(p) => std::fs::read_to_string(p).unwrap_or_default(),
            Output::Null => String::from("(output discarded; rerun it by hand)"),
        };
        panic!("exit {code}: {what}\n{log}");
    }
    s
}

/// Several processes one after the other, as one sample: wall time from the
/// first start to the last reap, CPU summed, peak RSS the largest.
fn measure_seq(steps: &mut [Step], out: Output) -> Sample {
    let started = Instant::now();
    let mut cpu = Duration::ZERO;
    for step in steps {
        let s = measure_ok(&mut step.cmd, step.stdin.as_deref(), out);
        cpu += s.cpu;
    }
    Sample {
        wall: started.elapsed(),
        cpu,
        rss_kib: 0,
    }
}

/// Runs `a` and `b` `n` times each, interleaved, alternating which goes
/// first, after `warmup` unmeasured rounds.
fn interleave(
    n: usize,
    warmup: usize,
    mut a: impl FnMut() -> Sample,
    mut b: impl FnMut() -> Sample,
) -> (Vec<Sample>, Vec<Sample>) {
    for _ in 0..warmup {
        a();
        b();
    }
    let (mut sa, mut sb) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        if i % 2 == 0 {
            sa.push(a());
            sb.push(b());
        } else {
            sb.push(b());
            sa.push(a());
        }
        eprint!(".");
    }
    eprintln!();
    (sa, sb)
}

// ---------------------------------------------------------------- statistics

#[derive(Clone, Copy, Debug)]
struct Stats {
    n: usize,
    min: f64,
    median: f64,
    max: f64,
}

fn stats(values: impl IntoIterator<Item = f64>) -> Stats {
    let mut v: Vec<f64> = values.into_iter().collect();
    assert!(!v.is_empty());
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Stats {
        n,
        min: v[0],
        median,
        max: v[n - 1],
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[derive(Clone, Copy)]
enum Metric {
    Wall,
    Cpu,
    Rss,
}

impl Metric {
    fn get(self, s: &Sample) -> f64 {
        match self {
            Metric::Wall => ms(s.wall),
            Metric::Cpu => ms(s.cpu),
            Metric::Rss => mib(s.rss_kib),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Metric::Wall => "wall time",
            Metric::Cpu => "CPU time",
            Metric::Rss => "peak RSS",
        }
    }

    fn fmt(self, st: &Stats) -> String {
        match self {
            Metric::Wall | Metric::Cpu => {
                format!("{:.1} ms ({:.1}–{:.1})", st.median, st.min, st.max)
            }
            Metric::Rss => format!("{:.1} MiB ({:.1}–{:.1})", st.median, st.min, st.max),
        }
    }
}

/// A target a row is checked against.
#[derive(Clone, Copy)]
enum Target {
    None,
    /// updater median / baseline median at most this.
    RatioAtMost(f64),
    /// updater median at most this many MiB.
    MibAtMost(f64),
    /// (updater - baseline) / baseline at most this fraction.
    OverheadAtMost(f64),
}

struct Row {
    measurement: String,
    updater: String,
    baseline: String,
    ratio: String,
    target: String,
    met: String,
}

/// Paired per-iteration ratios (updater_i / baseline_i), for the notes.
struct Paired {
    what: String,
    stats: Stats,
}

#[derive(Default)]
struct Report {
    rows: Vec<Row>,
    paired: Vec<Paired>,
    notes: Vec<String>,
    /// Diagnostics: where the updater's time goes (markdown, with a title).
    sections: Vec<String>,
}

impl Report {
    fn compare(
        &mut self,
        what: &str,
        metric: Metric,
        updater: &[Sample],
        baseline: &[Sample],
        target: Target,
    ) {
        let su = stats(updater.iter().map(|s| metric.get(s)));
        let sb = stats(baseline.iter().map(|s| metric.get(s)));
        let ratio = su.median / sb.median;
        let (target_text, met) = match target {
            Target::None => ("—".to_string(), "—".to_string()),
            Target::RatioAtMost(r) => (format!("≤ {r}×"), yes_no(ratio <= r)),
            Target::MibAtMost(m) => (format!("≤ {m} MiB"), yes_no(su.median <= m)),
            Target::OverheadAtMost(f) => (
                format!("overhead ≤ {:.0} %", f * 100.0),
                yes_no(ratio - 1.0 <= f),
            ),
        };
        let ratio_text = match target {
            Target::OverheadAtMost(_) => {
                format!("{ratio:.2}× ({:+.1} %)", (ratio - 1.0) * 100.0)
            }
            _ => format!("{ratio:.2}×"),
        };
        self.rows.push(Row {
            measurement: format!("{what}: {} (n={})", metric.name(), su.n),
            updater: metric.fmt(&su),
            baseline: metric.fmt(&sb),
            ratio: ratio_text,
            target: target_text,
            met,
        });
        if !matches!(metric, Metric::Rss) {
            let paired = stats(
                updater
                    .iter()
                    .zip(baseline)
                    .map(|(u, b)| metric.get(u) / metric.get(b)),
            );
            self.paired.push(Paired {
                what: format!("{what}: {}", metric.name()),
                stats: paired,
            });
        }
    }

    /// A row with its own figure and target (no baseline).
    fn check(&mut self, what: &str, value: String, target: String, met: bool) {
        self.rows.push(Row {
            measurement: what.to_string(),
            updater: value,
            baseline: "—".into(),
            ratio: "—".into(),
            target,
            met: yes_no(met),
        });
    }

    fn plain(&mut self, what: &str, updater: String, baseline: String, ratio: f64) {
        self.rows.push(Row {
            measurement: what.to_string(),
            updater,
            baseline,
            ratio: if ratio.is_nan() {
                "—".into()
            } else {
                format!("{ratio:.2}×")
            },
            target: "—".into(),
            met: "—".into(),
        });
    }

    fn markdown(&self) -> String {
        let mut s = String::new();
        s.push_str("| measurement | updater | baseline | ratio | target | met? |\n");
        s.push_str("|---|---|---|---|---|---|\n");
        for r in &self.rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                r.measurement, r.updater, r.baseline, r.ratio, r.target, r.met
            );
        }
        if !self.paired.is_empty() {
            s.push_str("\nPaired ratios (updater ÷ baseline within each interleaved iteration): median (min–max)\n\n");
            for p in &self.paired {
                let _ = writeln!(
                    s,
                    "- {}: {:.2}× ({:.2}–{:.2}), n={}",
                    p.what, p.stats.median, p.stats.min, p.stats.max, p.stats.n
                );
            }
        }
        if !self.notes.is_empty() {
            s.push_str("\nNotes\n\n");
            for n in &self.notes {
                let _ = writeln!(s, "- {n}");
            }
        }
        for sec in &self.sections {
            s.push('\n');
            s.push_str(sec);
        }
        s
    }
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "**no**" }.to_string()
}

// ---------------------------------------------------------------- fixtures

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// What every measurement shares: the keys, the agent packages, the signed
/// Teleport repository and the version server, all on loopback.
/// The size of the agent package the fixtures build.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Size {
    /// A few KiB: the package manager's fixed costs only.
    Tiny,
    /// A real agent's size: a ~200 MB executable beside `teleport` (a real
    /// `teleport-ent` installs 200-500 MB of executables), and a dpkg
    /// database of a typical server (~1,500 installed packages).
    Real,
}

impl Size {
    fn label(self) -> &'static str {
        match self {
            Size::Tiny => "tiny package",
            Size::Real => "real-size package (200 MB executable, 1,500-package dpkg database of ~800-byte stanzas)",
        }
    }
}

/// Bytes of the real-size executable.
const REAL_EXEC_BYTES: usize = 200 * 1024 * 1024;
/// Synthetic packages in the real-size dpkg database.
const REAL_DB_PACKAGES: usize = 1500;

/// `n` bytes that look like a program to a compressor: pseudo-random
/// blocks (xorshift) between runs of repeated text, so gzip neither
/// collapses them nor spends its worst case on them.
fn executable_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(n);
    let mut x = seed | 1;
    while v.len() < n {
        for _ in 0..(48 * 1024 / 8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.extend_from_slice(&x.to_le_bytes());
        }
        for _ in 0..512 {
            v.extend_from_slice(b"teleport.");
        }
    }
    v.truncate(n);
    v
}

struct Fixture {
    size: Size,
    dir: tempfile::TempDir,
    key: Key,
    debs: Vec<PathBuf>,
    _repo: AptRepo,
    repo_server: Server,
    vs: Server,
    updater: PathBuf,
    baseline_script: PathBuf,
}

impl Fixture {
    fn new(updater: PathBuf, baseline_script: PathBuf, size: Size) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = Key::generate(
            &dir.path().join("keys"),
            "Teleport Bench Release <bench@example.com>",
        );
        let debs: Vec<PathBuf> = ["15.4.2", "15.4.3"]
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let mut spec = DebSpec::agent(PKG, v);
                if size == Size::Real {
                    spec.files.push((
                        "/usr/bin/tctl".into(),
                        executable_bytes(REAL_EXEC_BYTES, 0x9e37_79b9_7f4a_7c15 + i as u64),
                        0o755,
                    ));
                }
                build_deb(&spec, &dir.path().join("debs"))
            })
            .collect();
        let repo = AptRepo::build(
            &dir.path().join("repo"),
            "bookworm",
            "stable/v15",
            &debs,
            Some(&key),
        );
        let repo_server = Server::start(repo.dir());
        let vs_root = dir.path().join("vs");
        std::fs::create_dir_all(&vs_root).unwrap();
        let vs = Server::start(&vs_root);
        vs.set_route(&format!("{CHANNEL}/version"), Route::ok("v15.4.3\n"));
        vs.set_route(&format!("{CHANNEL}/critical"), Route::ok("no\n"));
        Fixture {
            size,
            dir,
            key,
            debs,
            _repo: repo,
            repo_server,
            vs,
            updater,
            baseline_script,
        }
    }

    fn deb(&self, version: &str) -> &Path {
        self.debs
            .iter()
            .find(|d| {
                d.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .contains(&format!("_{version}_"))
            })
            .expect("known version")
    }

    /// A root with `installed` in place, the Teleport source (signed-by its
    /// keyring), the updater's configuration (version server on loopback,
    /// apt, the package named) and a schedule with a window open now.
    fn root(&self, dir: &Path, installed: &str) -> AptRoot {
        let root = AptRoot::new(dir);
        if self.size == Size::Real {
            real::pad_dpkg_database(&root, REAL_DB_PACKAGES);
        }
        self.finish_root(root, installed)
    }

    /// The rest of [`Fixture::root`], on a root whose dpkg database is made.
    fn finish_root(&self, root: AptRoot, installed: &str) -> AptRoot {
        root.dpkg_install(self.deb(installed));
        self.key.export_armored(&root.file(KEYRING));
        root.write(
            "/etc/apt/sources.list.d/teleport.list",
            format!(
                "deb [signed-by={KEYRING}] {}/ bookworm stable/v15\n",
                self.repo_server.url()
            )
            .as_bytes(),
        );
        self.set_window(&root, true);
        for (name, value) in [
            ("endpoint", format!("127.0.0.1:{}{CHANNEL}", self.vs.port())),
            ("insecure", "yes".into()),
            ("installer", "apt".into()),
            ("package", PKG.into()),
        ] {
            root.write(
                &format!("/etc/teleport-upgrade.d/{name}"),
                format!("{value}\n").as_bytes(),
            );
        }
        root
    }

    /// A schedule with a window open now (`open`), or only tomorrow.
    fn set_window(&self, root: &AptRoot, open: bool) {
        let n = now();
        let now_window = if open {
            format!("{} {}\n", n - 600, n + 6 * 3600)
        } else {
            String::new()
        };
        root.write(
            "/etc/teleport-upgrade.d/schedule",
            format!(
                "# generated by teleport\n{now_window}{} {}\n",
                n + 86400,
                n + 90000
            )
            .as_bytes(),
        );
    }

    fn updater_cmd(&self, root: &AptRoot, args: &[&str]) -> Command {
        let mut c = clean_command(&self.updater);
        c.arg("--root").arg(root.path()).args(args);
        c
    }

    fn baseline_cmd(&self, root: &AptRoot) -> Command {
        let mut c = clean_command("/bin/bash");
        c.arg(&self.baseline_script)
            .arg("--config-dir")
            .arg(root.file("/etc/teleport-upgrade.d"))
            .arg("--admindir")
            .arg(root.admindir());
        c
    }
}

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
        .updater_cmd(root, &["dry-run"])
        .stdin(Stdio::null())
        .output()
        .expect("run dry-run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("would run:"),
        "dry-run failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("would run:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
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

/// A signed repository of `count` synthetic but realistic Packages stanzas
/// (about 1 KiB each, checksums and descriptions that do not compress away),
/// for apt-get update only: its pool is empty, as update never reads it.
fn other_repo(dir: &Path, vendor: usize, count: usize, key: &Key) {
    let arch = host_arch();
    let bin = dir.join(format!("dists/bookworm/main/binary-{arch}"));
    std::fs::create_dir_all(&bin).unwrap();
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64 ^ (vendor as u64) << 17;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    const WORDS: &[&str] = &[
        "library",
        "daemon",
        "client",
        "server",
        "runtime",
        "plugin",
        "tools",
        "support",
        "development",
        "files",
        "headers",
        "documentation",
        "command",
        "line",
        "interface",
        "network",
        "storage",
        "monitoring",
        "agent",
        "proxy",
        "database",
        "driver",
        "cloud",
        "secure",
        "fast",
        "lightweight",
        "metrics",
        "logging",
        "cluster",
        "container",
        "orchestration",
        "configuration",
        "management",
        "utility",
        "shared",
        "static",
        "bindings",
        "python",
        "extension",
        "module",
        "compression",
        "encryption",
        "backup",
    ];
    let mut text = String::new();
    for i in 0..count {
        let name = format!("vendor{vendor}-pkg{i:04}");
        let version = format!(
            "{}.{}.{}-{}",
            next() % 20,
            next() % 50,
            next() % 100,
            1 + next() % 3
        );
        let mut hex = |len: usize| -> String {
            let mut h = String::new();
            while h.len() < len {
                let _ = write!(h, "{:016x}", next());
            }
            h.truncate(len);
            h
        };
        let (md5, sha256, desc_md5) = (hex(32), hex(64), hex(32));
        let mut sentence = |words: usize| -> String {
            (0..words)
                .map(|_| WORDS[(next() % WORDS.len() as u64) as usize])
                .collect::<Vec<_>>()
                .join(" ")
        };
        let summary = sentence(6);
        let long: Vec<String> = (0..4).map(|_| format!(" {}.", sentence(10))).collect();
        let _ = write!(
            text,
            "Package: {name}\n\
             Version: {version}\n\
             Architecture: {arch}\n\
             Maintainer: Vendor {vendor} Packaging <packaging@vendor{vendor}.example>\n\
             Installed-Size: {}\n\
             Depends: libc6 (>= 2.34), libssl3 (>= 3.0.0), vendor{vendor}-common (= {version})\n\
             Homepage: https://vendor{vendor}.example/{name}\n\
             Priority: optional\n\
             Section: utils\n\
             Filename: pool/main/v/{name}/{name}_{version}_{arch}.deb\n\
             Size: {}\n\
             MD5sum: {md5}\n\
             SHA256: {sha256}\n\
             Description: {summary}\n{}\n\
             Description-md5: {desc_md5}\n\n",
            100 + next() % 50_000,
            10_000 + next() % 20_000_000,
            long.join("\n"),
        );
    }
    let packages = bin.join("Packages");
    std::fs::write(&packages, &text).unwrap();
    let gz = std::fs::File::create(bin.join("Packages.gz")).unwrap();
    let st = Command::new("gzip")
        .args(["-9", "-n", "-c"])
        .arg(&packages)
        .stdout(gz)
        .status()
        .expect("gzip");
    assert!(st.success());
    let dists = dir.join("dists/bookworm");
    let mut cmd = Command::new("apt-ftparchive");
    cmd.current_dir(dir).env("LC_ALL", "C");
    for (f, v) in [
        ("Origin", format!("Vendor{vendor}")),
        ("Label", format!("Vendor{vendor}")),
        ("Suite", "bookworm".into()),
        ("Codename", "bookworm".into()),
        ("Architectures", arch.to_string()),
        ("Components", "main".into()),
    ] {
        cmd.arg("-o")
            .arg(format!("APT::FTPArchive::Release::{f}={v}"));
    }
    cmd.arg("release").arg("dists/bookworm");
    let out = cmd.output().expect("apt-ftparchive release");
    assert!(out.status.success(), "apt-ftparchive release failed");
    std::fs::write(dists.join("Release"), &out.stdout).unwrap();
    key.clearsign(&dists.join("Release"), &dists.join("InRelease"));
    key.detach_sign(&dists.join("Release"), &dists.join("Release.gpg"), true);
}

fn rm_lists(root: &AptRoot) {
    let lists = root.file("/var/lib/apt/lists");
    for e in std::fs::read_dir(&lists).unwrap().flatten() {
        let p = e.path();
        if p.is_file() && e.file_name() != "lock" {
            std::fs::remove_file(&p).unwrap();
        }
    }
    let _ = std::fs::remove_dir_all(lists.join("partial"));
    std::fs::create_dir_all(lists.join("partial")).unwrap();
    let cache = root.file("/var/cache/apt");
    for f in ["pkgcache.bin", "srcpkgcache.bin"] {
        let _ = std::fs::remove_file(cache.join(f));
    }
}

fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .len()
}

// ---------------------------------------------------------------- diagnostics

/// Unix time of an RFC 3339 UTC timestamp as the updater logs it
/// (`2026-11-21T06:26:29.483932Z`).
fn parse_utc(ts: &str) -> Option<f64> {
    let ts = ts.strip_suffix('Z')?;
    let (date, time) = ts.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, dd) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':');
    let (hh, mm) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let ss: f64 = t.next()?.parse().ok()?;
    // Days from the civil date (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + dd - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hh * 3600 + mm * 60) as f64 + ss)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Where a no-op `run` spends its time, two ways: the phases between the
/// updater's own log lines, and interleaved variants that remove one
/// suspected cost each (trust-root loading, fsync).
fn noop_diagnostics(fx: &Fixture, root: &AptRoot, n: usize, report: &mut Report) {
    eprintln!("== no-op diagnostics: phases and variants, {n} iterations");
    // Phases, from the log lines' timestamps (spawn and reap from here).
    const MARKS: &[(&str, &str)] = &[
        (
            "read the maintenance schedule",
            "exec, argument parsing, config directory, run lock (flock + fsync), logging set-up, schedule",
        ),
        (
            "found the agent package",
            "apt backend set-up (private work dir; under --root an APT_CONFIG written atomically: fsync ×2), dpkg-query",
        ),
        (
            "asked the version server",
            "HTTP client set-up (trust roots), runtime, GET /version + /critical",
        ),
        ("checked the agent's health", "health (schedule; systemd not asked under --root)"),
        ("decision=\"up-to-date\"", "the decision"),
    ];
    let mut phases: Vec<Vec<f64>> = vec![Vec::new(); MARKS.len() + 1];
    let log = fx.dir.path().join("noop-phases.log");
    for _ in 0..n {
        let _ = std::fs::remove_file(&log);
        let t0 = unix_now();
        let s = measure_ok(&mut fx.updater_cmd(root, &["run"]), None, Output::Log(&log));
        let t_end = t0 + s.wall.as_secs_f64();
        let text = std::fs::read_to_string(&log).unwrap();
        let mut prev = t0;
        let mut k = 0;
        for line in text.lines() {
            if k < MARKS.len() && line.contains(MARKS[k].0) {
                let t = parse_utc(line.split_whitespace().next().unwrap_or(""))
                    .unwrap_or_else(|| panic!("no timestamp in {line:?}"));
                phases[k].push((t - prev) * 1000.0);
                prev = t;
                k += 1;
            }
        }
        assert_eq!(k, MARKS.len(), "log lines missing:\n{text}");
        phases[MARKS.len()].push((t_end - prev) * 1000.0);
    }
    let mut sec = format!(
        "### Where a no-op `run` spends its time\n\n\
         Phases between the updater's own log lines (timestamps in µs; spawn and reap taken by the bench), n={n}:\n\n\
         | phase, ending at the log line | what happens there | median ms (min–max) |\n|---|---|---|\n"
    );
    for (i, times) in phases.iter().enumerate() {
        let st = stats(times.iter().copied());
        let (mark, what) = if i < MARKS.len() {
            (MARKS[i].0, MARKS[i].1)
        } else {
            (
                "(process reaped)",
                "state.json written atomically (fsync of the file and of its directory), work dir removed, exit",
            )
        };
        let _ = writeln!(
            sec,
            "| {} | {} | {:.2} ({:.2}–{:.2}) |",
            mark.replace('|', "/").replace('"', "`"),
            what,
            st.median,
            st.min,
            st.max
        );
    }

    // Variants, interleaved round-robin.
    let one_cert = fx.dir.path().join("one-cert.pem");
    let bundle = Path::new("/etc/ssl/certs/ca-certificates.crt");
    let eatmydata = Path::new("/usr/lib/x86_64-linux-gnu/libeatmydata.so");
    // (label, extra environment, host mode); the last row is the v1 baseline.
    type Variant<'a> = (String, Vec<(&'a str, PathBuf)>, bool);
    let mut variants: Vec<Variant> = vec![(
        "as measured above: `--root`, trust roots from the bundle and the /etc/ssl/certs directory (no SSL_CERT_* set, as under systemd)".into(),
        vec![],
        false,
    )];
    if bundle.is_file() {
        let pem = std::fs::read_to_string(bundle).unwrap();
        let end = "-----END CERTIFICATE-----";
        if let Some(i) = pem.find(end) {
            std::fs::write(&one_cert, format!("{}\n", &pem[..i + end.len()])).unwrap();
            variants.push((
                "`SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt`: the bundle only, no directory scan".into(),
                vec![("SSL_CERT_FILE", bundle.to_path_buf())],
                false,
            ));
            variants.push((
                "`SSL_CERT_FILE=<one certificate>`: trust roots practically not loaded".into(),
                vec![("SSL_CERT_FILE", one_cert.clone())],
                false,
            ));
        }
    }
    if eatmydata.is_file() {
        variants.push((
            "`LD_PRELOAD=libeatmydata.so`: every fsync made a no-op".into(),
            vec![("LD_PRELOAD", eatmydata.to_path_buf())],
            false,
        ));
        if one_cert.is_file() {
            variants.push((
                "one certificate and fsync a no-op".into(),
                vec![
                    ("SSL_CERT_FILE", one_cert.clone()),
                    ("LD_PRELOAD", eatmydata.to_path_buf()),
                ],
                false,
            ));
        }
    }
    variants.push((
        "host mode as on a real host: no `--root` (so no APT_CONFIG written), run in a private mount namespace \
         with the root's /var/lib on /var/lib and a tmpfs on /run/lock (as /run is on a systemd host); \
         the namespace set-up is inside the measured time"
            .into(),
        vec![],
        true,
    ));
    let out = host_mode_cmd(fx, root)
        .stdin(Stdio::null())
        .output()
        .expect("run the updater in host mode");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.contains("decision=\"up-to-date\"") && !err.contains("--root"),
        "host mode is not a no-op ({}):\n{err}",
        out.status
    );
    let run_variant = |v: Option<&Variant>| {
        let mut c = match v {
            None => fx.baseline_cmd(root),
            Some((_, _, true)) => host_mode_cmd(fx, root),
            Some((_, env, false)) => {
                let mut c = fx.updater_cmd(root, &["run"]);
                for (k, v) in env {
                    c.env(k, v);
                }
                c
            }
        };
        measure_ok(&mut c, None, Output::Null)
    };
    let rows = variants.len() + 1;
    let pick = |k: usize| variants.get(k);
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); rows];
    for k in 0..rows {
        run_variant(pick(k));
    }
    for i in 0..n {
        for j in 0..rows {
            let k = (i + j) % rows;
            samples[k].push(run_variant(pick(k)));
        }
    }
    let base_wall = stats(samples[0].iter().map(|s| ms(s.wall))).median;
    let base_cpu = stats(samples[0].iter().map(|s| ms(s.cpu))).median;
    let v1_wall = stats(samples[rows - 1].iter().map(|s| ms(s.wall))).median;
    let _ = write!(
        sec,
        "\nThe same no-op `run` with one suspected cost removed at a time, and the v1 baseline, interleaved round-robin, n={n} each:\n\n\
         | variant | wall ms, median (min–max) | Δ wall | CPU ms, median | Δ CPU | wall ÷ v1 baseline |\n|---|---|---|---|---|---|\n"
    );
    for (j, samples) in samples.iter().enumerate() {
        let label = match pick(j) {
            Some((l, _, _)) => l.as_str(),
            None => "the v1 baseline (`scripts/bench-v1-baseline.sh`)",
        };
        let w = stats(samples.iter().map(|s| ms(s.wall)));
        let c = stats(samples.iter().map(|s| ms(s.cpu)));
        let _ = writeln!(
            sec,
            "| {label} | {:.1} ({:.1}–{:.1}) | {:+.1} | {:.1} | {:+.1} | {:.2}× |",
            w.median,
            w.min,
            w.max,
            w.median - base_wall,
            c.median,
            c.median - base_cpu,
            w.median / v1_wall
        );
    }
    report.sections.push(sec);
}

/// The updater as it runs on a real host (no `--root`): in a private mount
/// namespace made in the child before exec, the root's /var/lib is mounted
/// on /var/lib (dpkg's database, the state directory) and a tmpfs on
/// /run/lock (the run lock lives on tmpfs on a systemd host), the root's
/// /usr laid read-only over the host's (the agent's files); the
/// configuration comes from `--config-dir`. Nothing outside the child's
/// namespace changes.
fn host_mode_cmd(fx: &Fixture, root: &AptRoot) -> Command {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::process::CommandExt;
    let mut c = clean_command(&fx.updater);
    c.arg("--config-dir")
        .arg(root.file("/etc/teleport-upgrade.d"))
        .arg("run");
    let cstr = |p: &Path| CString::new(p.as_os_str().as_bytes()).unwrap();
    let var_lib = cstr(&root.file("/var/lib"));
    // The agent's files (dpkg --verify checks them) over the host's /usr.
    let usr = cstr(Path::new("/usr"));
    let overlay = cstr(Path::new("overlay"));
    let usr_lower = CString::new(format!("lowerdir={}:/usr", root.file("/usr").display())).unwrap();
    let (slash, host_var_lib, run_lock, tmpfs) = (
        cstr(Path::new("/")),
        cstr(Path::new("/var/lib")),
        cstr(Path::new("/run/lock")),
        cstr(Path::new("tmpfs")),
    );
    let check = |r: libc::c_int| {
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    // SAFETY: only async-signal-safe calls (unshare, mount) on C strings
    // made before the fork.
    unsafe {
        c.pre_exec(move || {
            let null = std::ptr::null();
            check(libc::unshare(libc::CLONE_NEWNS))?;
            check(libc::mount(
                null,
                slash.as_ptr(),
                null,
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            check(libc::mount(
                var_lib.as_ptr(),
                host_var_lib.as_ptr(),
                null,
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            ))?;
            check(libc::mount(
                tmpfs.as_ptr(),
                run_lock.as_ptr(),
                tmpfs.as_ptr(),
                0,
                std::ptr::null(),
            ))?;
            check(libc::mount(
                overlay.as_ptr(),
                usr.as_ptr(),
                overlay.as_ptr(),
                libc::MS_RDONLY,
                usr_lower.as_ptr().cast(),
            ))?;
            Ok(())
        });
    }
    c
}

/// Where the updater's time goes in a real update, from its own `-v` log:
/// each command's duration (from its `running` to its `finished` debug
/// line, µs timestamps), split into the commands of the bare sequence and
/// the extra ones, and the time outside commands, with its largest phases.
fn update_attribution(fx: &Fixture, n: usize, report: &mut Report) {
    eprintln!("== update attribution (-v), {n} fresh roots");
    const PHASES: &[&str] = &[
        "outside commands: spawn → first log line (exec, config, run lock, APT_CONFIG under --root)",
        "outside commands: HTTP client set-up (trust roots) + GET /version, /critical",
        "outside commands: last log line → reaped (state.json, work dir removed, exit)",
        "outside commands: the rest (source list written, audit, logging, PATH look-ups, spawning)",
    ];
    let mut by_cmd: Vec<(String, bool, Vec<f64>)> = Vec::new();
    let mut phases: Vec<Vec<f64>> = vec![Vec::new(); PHASES.len()];
    let mut walls = Vec::new();
    let mut extra_total = Vec::new();
    for i in 0..n {
        let it = tempfile::Builder::new()
            .prefix(&format!("attr-{i}-"))
            .tempdir_in(fx.dir.path())
            .unwrap();
        let root = fx.root(&it.path().join("u"), "15.4.2");
        let log = it.path().join("updater.log");
        let t0 = unix_now();
        let s = measure_ok(
            &mut fx.updater_cmd(&root, &["-v", "run"]),
            None,
            Output::Log(&log),
        );
        let t_end = t0 + s.wall.as_secs_f64();
        assert_eq!(root.installed_version(PKG).as_deref(), Some("15.4.3"));
        let text = std::fs::read_to_string(&log).unwrap();
        let mut this: Vec<(String, bool, f64)> = Vec::new();
        let (mut first, mut last) = (None, t0);
        let (mut found, mut asked) = (None, None);
        let mut started = None;
        let mut in_commands = 0.0;
        for line in text.lines() {
            let Some(t) = line.split_whitespace().next().and_then(parse_utc) else {
                continue; // the rest of a multi-line record
            };
            first.get_or_insert(t);
            last = t;
            if line.contains("found the agent package") {
                found = Some(t);
            } else if line.contains("asked the version server") {
                asked = Some(t);
            } else if line.contains("DEBUG running command=") {
                started = Some(t);
            } else if line.contains("DEBUG finished command=") {
                let d = (t - started.take().expect("finished without running")) * 1000.0;
                let (label, in_plan) = if line.contains("apt-get") && line.contains(" update") {
                    ("`apt-get update` of the Teleport source", true)
                } else if line.contains("apt-get") && line.contains(" install ") {
                    ("`apt-get install teleport-ent=15.4.3`", true)
                } else if line.contains("--set-selections") {
                    ("`dpkg --set-selections` (hold)", true)
                } else if line.contains("apt-cache") && line.contains(" policy ") {
                    ("`apt-cache policy teleport-ent` (find the source)", false)
                } else if line.contains("apt-cache") && line.contains(" madison ") {
                    (
                        "`apt-cache madison teleport-ent` (exact version string)",
                        false,
                    )
                } else if line.contains("--audit") {
                    ("`dpkg --audit` (interrupted dpkg?)", false)
                } else if line.contains("dpkg-query") {
                    (
                        "`dpkg-query` ×2 (installed version, before and after)",
                        false,
                    )
                } else {
                    ("other commands", false)
                };
                in_commands += d;
                match this.iter_mut().find(|(l, _, _)| l == label) {
                    Some(e) => e.2 += d,
                    None => this.push((label.to_string(), in_plan, d)),
                }
            }
        }
        let extra: f64 = this.iter().filter(|e| !e.1).map(|e| e.2).sum();
        for (label, in_plan, t) in this {
            match by_cmd.iter_mut().find(|(l, _, _)| *l == label) {
                Some(e) => e.2.push(t),
                None => by_cmd.push((label, in_plan, vec![t])),
            }
        }
        let outside = ms(s.wall) - in_commands;
        let start = (first.expect("log lines") - t0) * 1000.0;
        let http = (asked.expect("asked") - found.expect("found")) * 1000.0;
        let exit = (t_end - last) * 1000.0;
        for (k, v) in [start, http, exit, outside - start - http - exit]
            .into_iter()
            .enumerate()
        {
            phases[k].push(v);
        }
        walls.push(ms(s.wall));
        extra_total.push(extra + outside);
    }
    by_cmd.sort_by_key(|(_, in_plan, _)| !*in_plan);
    let mut sec = format!(
        "### Where the updater's time goes in a real update\n\n\
         From `teleport-upgrade -v run` in fresh roots (each command timed between its `running` and \
         `finished` debug lines), n={n}; median ms (min–max):\n\n\
         | | in the bare sequence? | ms |\n|---|---|---|\n"
    );
    let row = |sec: &mut String, label: &str, what: &str, v: &[f64]| {
        let st = stats(v.iter().copied());
        let _ = writeln!(
            sec,
            "| {label} | {what} | {:.1} ({:.1}–{:.1}) |",
            st.median, st.min, st.max
        );
    };
    for (label, in_plan, times) in &by_cmd {
        row(
            &mut sec,
            label,
            if *in_plan { "yes" } else { "no (extra)" },
            times,
        );
    }
    for (label, v) in PHASES.iter().zip(&phases) {
        row(&mut sec, label, "no (extra)", v);
    }
    row(&mut sec, "**all extra time**", "", &extra_total);
    row(&mut sec, "**total wall**", "", &walls);
    report.sections.push(sec);
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
            fx.set_window(&root_u, false);
            measure_ok(&mut fx.updater_cmd(&root_u, &["run"]), None, Output::Null);
            assert!(
                root_u.file(INTEGRITY_RECORD).is_file(),
                "no integrity record"
            );
            fx.set_window(&root_u, true);
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
        "steady state (integrity record present)"
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

fn bench_refresh(fx: &Fixture, cold: usize, warm: usize, report: &mut Report) {
    eprintln!(
        "== refresh: Teleport source only vs full apt-get update with {} other repositories",
        OTHER_REPOS.len()
    );
    let other_key = Key::generate(
        &fx.dir.path().join("keys"),
        "Other Vendor Archive <archive@vendor.example>",
    );
    let mut servers = Vec::new();
    let mut bytes = 0;
    for (v, count) in OTHER_REPOS.iter().enumerate() {
        let d = fx.dir.path().join(format!("vendor{v}"));
        other_repo(&d, v, *count, &other_key);
        bytes += file_size(&d.join(format!(
            "dists/bookworm/main/binary-{}/Packages",
            host_arch()
        )));
        servers.push(Server::start(&d));
    }
    let root_t = fx.root(&fx.dir.path().join("refresh-teleport"), "15.4.2");
    let root_f = fx.root(&fx.dir.path().join("refresh-full"), "15.4.2");
    // The Teleport-only refresh is the updater's own command; the full one is
    // the same command without the single-source options.
    let mut t = bare_update_steps(fx, &root_t, &fx.dir.path().join("refresh-teleport-work"))
        .into_iter()
        .next()
        .unwrap();
    let f_steps = bare_update_steps(fx, &root_f, &fx.dir.path().join("refresh-full-work"));
    // A full `apt-get update` reads the root's own sources, where apt (with
    // `Dir`, not `RootDir`) takes `signed-by` paths as host paths: write them
    // as such (the updater maps them into the root itself).
    for root in [&root_t, &root_f] {
        other_key.export_binary(&root.file(OTHER_KEYRING));
        let mut sources = String::new();
        for s in &servers {
            let _ = writeln!(
                sources,
                "deb [signed-by={}] {}/ bookworm main",
                root.file(OTHER_KEYRING).display(),
                s.url()
            );
        }
        root.write("/etc/apt/sources.list.d/vendors.list", sources.as_bytes());
        root.write(
            "/etc/apt/sources.list.d/teleport.list",
            format!(
                "deb [signed-by={}] {}/ bookworm stable/v15\n",
                root.file(KEYRING).display(),
                fx.repo_server.url()
            )
            .as_bytes(),
        );
    }
    let full_shown;
    let mut f = {
        let step = f_steps.into_iter().next().unwrap();
        let args: Vec<String> = step
            .cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let mut keep = Vec::new();
        let mut i = 0;
        while i < args.len() {
            if args[i] == "-o"
                && i + 1 < args.len()
                && (args[i + 1].starts_with("Dir::Etc::SourceList=")
                    || args[i + 1].starts_with("Dir::Etc::SourceParts=")
                    || args[i + 1].starts_with("APT::Get::List-Cleanup="))
            {
                i += 2;
                continue;
            }
            keep.push(args[i].clone());
            i += 1;
        }
        let mut cmd = clean_command(step.cmd.get_program());
        for (k, v) in step.cmd.get_envs() {
            if let Some(v) = v {
                cmd.env(k, v);
            }
        }
        cmd.args(&keep);
        full_shown = format!("apt-get {}", keep.join(" "));
        cmd
    };
    let log = fx.dir.path().join("refresh.log");
    for (label, n, clear) in [("cold lists", cold, true), ("warm lists", warm, false)] {
        if n == 0 {
            continue;
        }
        eprintln!("   {label}: {n} iterations");
        let (u, b) = interleave(
            n,
            if clear { 0 } else { 1 },
            || {
                if clear {
                    rm_lists(&root_t);
                }
                measure_ok(&mut t.cmd, None, Output::Log(&log))
            },
            || {
                if clear {
                    rm_lists(&root_f);
                }
                measure_ok(&mut f, None, Output::Log(&log))
            },
        );
        report.compare(
            &format!("refresh, {label} (Teleport source only vs full `apt-get update`)"),
            Metric::Wall,
            &u,
            &b,
            Target::None,
        );
        report.compare(
            &format!("refresh, {label}"),
            Metric::Cpu,
            &u,
            &b,
            Target::None,
        );
    }
    let lists = std::fs::read_dir(root_f.file("/var/lib/apt/lists"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with("_Packages"))
        .count();
    assert_eq!(
        lists,
        1 + OTHER_REPOS.len(),
        "the full update fetched every index"
    );
    report.notes.push(format!(
        "refresh: the full update sees the Teleport source and {} other signed repositories on their own loopback servers \
         ({} Packages stanzas, {:.1} MiB of uncompressed Packages, fetched as .gz); \
         Teleport only: `{}`; full: `{}`. \"Cold\": lists and caches removed before each run; \"warm\": left from the previous run \
         (the loopback server sends no Last-Modified, so apt fetches every InRelease again and skips unchanged indexes by hash).",
        OTHER_REPOS.len(),
        OTHER_REPOS.iter().sum::<usize>(),
        bytes as f64 / 1048576.0,
        t.shown,
        full_shown
    ));
    drop(servers);
}

fn bench_startup(fx: &Fixture, n: usize, report: &mut Report) {
    eprintln!("== size and startup, {n} interleaved iterations");
    let built = file_size(&fx.updater);
    let stripped_path = fx.dir.path().join("teleport-upgrade.stripped");
    let st = Command::new("strip")
        .arg("--strip-all")
        .arg("-o")
        .arg(&stripped_path)
        .arg(&fx.updater)
        .status()
        .expect("strip (binutils)");
    assert!(st.success());
    let stripped = file_size(&stripped_path);
    let bash = file_size(Path::new("/bin/bash"));
    let fmt_size = |b: u64| format!("{b} B ({:.2} MiB)", b as f64 / 1048576.0);
    report.plain(
        "binary size, as built (vs /bin/bash, v1's interpreter)",
        fmt_size(built),
        fmt_size(bash),
        built as f64 / bash as f64,
    );
    report.plain(
        "binary size, `strip --strip-all` (vs /bin/bash)",
        fmt_size(stripped),
        fmt_size(bash),
        stripped as f64 / bash as f64,
    );

    let version = || {
        let mut c = clean_command(&fx.updater);
        c.arg("version");
        measure_ok(&mut c, None, Output::Null)
    };
    let version_cmd = || {
        let mut c = clean_command(&fx.updater);
        c.arg("version");
        c
    };
    let t = || measure_ok(&mut clean_command("/bin/true"), None, Output::Null);
    let (u, b) = interleave(n, 3, version, t);
    let (ur, br) = interleave(
        n,
        1,
        || peak_rss(&version_cmd()),
        || peak_rss(&clean_command("/bin/true")),
    );
    report.compare(
        "startup `teleport-upgrade version` vs `/bin/true`",
        Metric::Wall,
        &u,
        &b,
        Target::None,
    );
    report.compare(
        "startup `version` vs `/bin/true`",
        Metric::Rss,
        &ur,
        &br,
        Target::None,
    );
    let bash_c = || {
        let mut c = clean_command("/bin/bash");
        c.args(["-c", ":"]);
        measure_ok(&mut c, None, Output::Null)
    };
    let (u, b) = interleave(n, 3, version, bash_c);
    let (ur, br) = interleave(
        n,
        1,
        || peak_rss(&version_cmd()),
        || {
            let mut c = clean_command("/bin/bash");
            c.args(["-c", ":"]);
            peak_rss(&c)
        },
    );
    report.compare(
        "startup `teleport-upgrade version` vs `bash -c :`",
        Metric::Wall,
        &u,
        &b,
        Target::None,
    );
    report.compare(
        "startup `version` vs `bash -c :`",
        Metric::Rss,
        &ur,
        &br,
        Target::None,
    );
}

/// `--serve`: the no-op fixture, kept up until stdin closes, with the
/// commands to run by hand (for strace, perf...).
fn serve_for_profiling(fx: &Fixture) {
    let root = fx.root(&fx.dir.path().join("noop-root"), "15.4.3");
    let up = fx.updater_cmd(&root, &["run"]);
    let base = fx.baseline_cmd(&root);
    let show = |c: &Command| {
        std::iter::once(c.get_program())
            .chain(c.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!("root: {}", root.path().display());
    println!("updater:  LC_ALL=C {}", show(&up));
    println!("baseline: LC_ALL=C {}", show(&base));
    println!("(serving until stdin closes)");
    let _ = std::io::stdout().flush();
    let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
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
         [--only noop,update,refresh,startup] [--sizes tiny,real] [--db-sizes 500,1500,5000] [--out FILE.md] | --serve\n       bench --ab N 'CMD A' 'CMD B'"
    );
    std::process::exit(2);
}

fn main() {
    let mut updater = None;
    let mut baseline_script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/bench-v1-baseline.sh");
    let mut quick = false;
    let mut only: Option<Vec<String>> = None;
    let mut out_file = None;
    let mut serve = false;
    let mut sizes = vec![Size::Tiny, Size::Real];
    let mut db_sizes = vec![500, 1500, 5000];
    let mut args = std::env::args().skip(1);
    let all: Vec<String> = std::env::args().skip(1).collect();
    if all.first().map(String::as_str) == Some("--ab") {
        match &all[1..] {
            [n, a, b] => ab(n.parse().unwrap_or_else(|_| usage()), a, b),
            _ => usage(),
        }
        return;
    }
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
    for size in sizes {
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
