//! Measuring processes (spawn to reap, rusage), statistics and the report.

use super::*;

// ---------------------------------------------------------------- measuring

/// One measured run (or sequence of runs) of processes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sample {
    pub(crate) wall: Duration,
    /// User + system time of the process and its waited-for children.
    pub(crate) cpu: Duration,
    /// Peak resident set size, from a separate run under GNU time
    /// ([`peak_rss`]); 0 in timed samples.
    pub(crate) rss_kib: u64,
}

/// Where a measured process's stdout and stderr go.
#[derive(Clone, Copy)]
pub(crate) enum Output<'a> {
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
pub(crate) fn measure(cmd: &mut Command, stdin: Option<&[u8]>, out: Output) -> (Sample, i32) {
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
pub(crate) fn peak_rss(cmd: &Command) -> Sample {
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
pub(crate) fn measure_ok(cmd: &mut Command, stdin: Option<&[u8]>, out: Output) -> Sample {
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
pub(crate) fn measure_seq(steps: &mut [Step], out: Output) -> Sample {
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
pub(crate) fn interleave(
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
pub(crate) struct Stats {
    pub(crate) n: usize,
    pub(crate) min: f64,
    pub(crate) median: f64,
    pub(crate) max: f64,
}

pub(crate) fn stats(values: impl IntoIterator<Item = f64>) -> Stats {
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

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(crate) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[derive(Clone, Copy)]
pub(crate) enum Metric {
    Wall,
    Cpu,
    Rss,
}

impl Metric {
    pub(crate) fn get(self, s: &Sample) -> f64 {
        match self {
            Metric::Wall => ms(s.wall),
            Metric::Cpu => ms(s.cpu),
            Metric::Rss => mib(s.rss_kib),
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Metric::Wall => "wall time",
            Metric::Cpu => "CPU time",
            Metric::Rss => "peak RSS",
        }
    }

    pub(crate) fn fmt(self, st: &Stats) -> String {
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
pub(crate) enum Target {
    None,
    /// updater median / baseline median at most this.
    RatioAtMost(f64),
    /// updater median at most this many MiB.
    MibAtMost(f64),
    /// (updater - baseline) / baseline at most this fraction.
    OverheadAtMost(f64),
}

pub(crate) struct Row {
    pub(crate) measurement: String,
    pub(crate) updater: String,
    pub(crate) baseline: String,
    pub(crate) ratio: String,
    pub(crate) target: String,
    pub(crate) met: String,
}

/// Paired per-iteration ratios (updater_i / baseline_i), for the notes.
pub(crate) struct Paired {
    pub(crate) what: String,
    pub(crate) stats: Stats,
}

#[derive(Default)]
pub(crate) struct Report {
    pub(crate) rows: Vec<Row>,
    pub(crate) paired: Vec<Paired>,
    pub(crate) notes: Vec<String>,
    /// Diagnostics: where the updater's time goes (markdown, with a title).
    pub(crate) sections: Vec<String>,
}

impl Report {
    pub(crate) fn compare(
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
    pub(crate) fn check(&mut self, what: &str, value: String, target: String, met: bool) {
        self.rows.push(Row {
            measurement: what.to_string(),
            updater: value,
            baseline: "—".into(),
            ratio: "—".into(),
            target,
            met: yes_no(met),
        });
    }

    pub(crate) fn plain(&mut self, what: &str, updater: String, baseline: String, ratio: f64) {
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

    pub(crate) fn markdown(&self) -> String {
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

pub(crate) fn yes_no(b: bool) -> String {
    if b { "yes" } else { "**no**" }.to_string()
}
