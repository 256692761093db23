//! Where the updater's time goes: its own log timestamps, `-v` command timings, and variants.

use super::*;

// ---------------------------------------------------------------- diagnostics

/// Unix time of an RFC 3339 UTC timestamp as the updater logs it
/// (`2026-11-21T06:26:29.483932Z`).
pub(crate) fn parse_utc(ts: &str) -> Option<f64> {
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

pub(crate) fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Where a no-op `run` spends its time, two ways: the phases between the
/// updater's own log lines, and interleaved variants that remove one
/// suspected cost each (trust-root loading, fsync).
pub(crate) fn noop_diagnostics(fx: &Fixture, root: &AptRoot, n: usize, report: &mut Report) {
    eprintln!("== no-op diagnostics: phases and variants, {n} iterations");
    let mut sec = noop_phases(fx, root, n);

    // Variants, interleaved round-robin.
    let variants = noop_variants(fx);
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

/// (label, extra environment, host mode); the last row is the v1 baseline.
type Variant<'a> = (String, Vec<(&'a str, PathBuf)>, bool);

/// The variants of the no-op the diagnostics measure.
fn noop_variants(fx: &Fixture) -> Vec<Variant<'static>> {
    let one_cert = fx.dir.path().join("one-cert.pem");
    let bundle = Path::new("/etc/ssl/certs/ca-certificates.crt");
    let eatmydata = Path::new("/usr/lib/x86_64-linux-gnu/libeatmydata.so");
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
    variants
}

/// Phases of a no-op, between the updater's own log lines: a markdown
/// section to which the variants are added.
fn noop_phases(fx: &Fixture, root: &AptRoot, n: usize) -> String {
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
    sec
}

/// The updater as it runs on a real host (no `--root`): in a private mount
/// namespace made in the child before exec, the root's /var/lib is mounted
/// on /var/lib (dpkg's database, the state directory) and a tmpfs on
/// /run/lock (the run lock lives on tmpfs on a systemd host), the root's
/// /usr laid read-only over the host's (the agent's files); the
/// configuration comes from `--config-dir`. Nothing outside the child's
/// namespace changes.
pub(crate) fn host_mode_cmd(fx: &Fixture, root: &AptRoot) -> Command {
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
/// The update's time outside the package manager's commands.
const PHASES: &[&str] = &[
    "outside commands: spawn → first log line (exec, config, run lock, APT_CONFIG under --root)",
    "outside commands: HTTP client set-up (trust roots) + GET /version, /critical",
    "outside commands: last log line → reaped (state.json, work dir removed, exit)",
    "outside commands: the rest (source list written, audit, logging, PATH look-ups, spawning)",
];

pub(crate) fn update_attribution(fx: &Fixture, n: usize, report: &mut Report) {
    eprintln!("== update attribution (-v), {n} fresh roots");
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
    report.sections.push(attribution_section(
        n,
        by_cmd,
        &phases,
        &extra_total,
        &walls,
    ));
}

/// The markdown section of [`update_attribution`].
fn attribution_section(
    n: usize,
    mut by_cmd: Vec<(String, bool, Vec<f64>)>,
    phases: &[Vec<f64>],
    extra_total: &[f64],
    walls: &[f64],
) -> String {
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
    for (label, v) in PHASES.iter().zip(phases) {
        row(&mut sec, label, "no (extra)", v);
    }
    row(&mut sec, "**all extra time**", "", extra_total);
    row(&mut sec, "**total wall**", "", walls);
    sec
}
