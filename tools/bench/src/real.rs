//! The real-host measurements (issue 26): dpkg databases of real-size
//! stanzas (about 800 bytes each, with their file lists and md5sums) at
//! several sizes, a floor program, and the no-op measured against the lean
//! v1 shell and the floor at every size, all interleaved in one run.

use super::*;

/// Synthetic stanzas of the length of real ones (~800 bytes: dependencies
/// on each other, so that apt sees a consistent database,
/// a multi-line description, a homepage, conffiles for some), each with a
/// file list and md5sums of a handful of files, as a server's many
/// installed packages. Returns the mean stanza length in bytes.
pub(crate) fn pad_dpkg_database(root: &AptRoot, count: usize) -> usize {
    let admin = root.admindir();
    let mut text = std::fs::read_to_string(admin.join("status")).unwrap_or_default();
    if !text.is_empty() && !text.ends_with("\n\n") {
        text.push('\n');
    }
    let before = text.len();
    for i in 0..count {
        let name = format!("synthetic-pkg-{i:04}");
        let files: Vec<String> = (0..8)
            .map(|f| match f {
                0 => format!("/usr/share/doc/{name}"),
                1 => format!("/usr/share/doc/{name}/copyright"),
                2 => format!("/usr/share/doc/{name}/changelog.Debian.gz"),
                3 => format!("/usr/lib/x86_64-linux-gnu/lib{name}.so.1.{i}"),
                4 => format!("/usr/share/man/man1/{name}.1.gz"),
                5 => format!("/usr/share/{name}/data-{i}.bin"),
                6 => format!("/usr/share/lintian/overrides/{name}"),
                _ => format!("/usr/share/{name}"),
            })
            .collect();
        let conffiles = if i % 5 == 0 {
            format!("Conffiles:\n /etc/{name}/{name}.conf 0123456789abcdef0123456789abcdef\n")
        } else {
            String::new()
        };
        let _ = write!(
            text,
            "Package: {name}\nStatus: install ok installed\nPriority: optional\n\
             Section: libs\nInstalled-Size: {}\n\
             Maintainer: Debian Synthetic Maintainers <pkg-synthetic-maintainers@lists.example.org>\n\
             Architecture: amd64\nMulti-Arch: same\nSource: synthetic-src-{i:04} (1.{i}.{}-{})\n\
             Version: 1.{i}.{}-{}+deb12u1\n\
             Depends: synthetic-pkg-{:04} (>= 1.0), synthetic-pkg-{:04} (>= 1.0), synthetic-pkg-{:04}\n\
             {conffiles}\
             Description: synthetic package {i} of a dpkg database the size of a real one\n \
             One of many packages the bench installs into a throwaway root so that\n \
             dpkg's status file is as long as on a real server.\n \
             .\n \
             It installs nothing; its file list and md5sums name a handful of files.\n\
             Homepage: https://synthetic.example.org/packages/{name}\n\n",
            100 + i % 900,
            i % 13,
            i % 7,
            i % 13,
            i % 7,
            i / 2,
            i / 3,
            i / 5,
        );
        let list: String = files.iter().map(|f| format!("{f}\n")).collect();
        std::fs::write(admin.join(format!("info/{name}.list")), list).unwrap();
        let sums: String = files[1..]
            .iter()
            .map(|f| format!("0123456789abcdef0123456789abcdef  {}\n", &f[1..]))
            .collect();
        std::fs::write(admin.join(format!("info/{name}.md5sums")), sums).unwrap();
    }
    let mean = (text.len() - before) / count.max(1);
    std::fs::write(admin.join("status"), text).unwrap();
    mean
}

/// The floor program (`floor.c`), built with gcc into `dir`.
pub(crate) fn build_floor(dir: &Path) -> PathBuf {
    build_floor_variant(dir, false)
}

/// The floor program for dpkg's `status`, or (`rpm`) for rpm's sqlite
/// database (`-DFLOOR_RPM`, linked with libsqlite3: Debian's
/// libsqlite3-dev).
pub(crate) fn build_floor_variant(dir: &Path, rpm: bool) -> PathBuf {
    let src = dir.join("floor.c");
    std::fs::write(&src, include_str!("floor.c")).unwrap();
    let bin = dir.join(if rpm { "floor-rpm" } else { "floor" });
    let mut gcc = Command::new("gcc");
    gcc.args(["-O2", "-o"]).arg(&bin).arg(&src);
    if rpm {
        gcc.args(["-DFLOOR_RPM", "-lsqlite3"]);
    }
    let st = gcc
        .status()
        .expect("gcc (the floor program is built with it: apt-get install gcc)");
    assert!(st.success(), "gcc failed on floor.c (rpm variant: {rpm})");
    bin
}

fn floor_cmd(fx: &Fixture, floor: &Path, root: &AptRoot) -> Command {
    let list = std::fs::read_to_string(root.admindir().join(format!("info/{PKG}.list"))).unwrap();
    let mut c = clean_command(floor);
    c.arg(fx.vs.port().to_string())
        .arg(CHANNEL)
        .arg(root.admindir().join("status"))
        .arg(PKG);
    for l in list.lines().filter(|l| l.contains("/bin/")) {
        if root.file(l).is_file() {
            c.arg(root.file(l));
        }
    }
    c
}

/// Runs every command `n` times, interleaved, the starting one rotating
/// every iteration, after `warmup` unmeasured rounds.
pub(crate) fn interleave_many(
    n: usize,
    warmup: usize,
    cmds: &mut [Box<dyn FnMut() -> Sample + '_>],
) -> Vec<Vec<Sample>> {
    for _ in 0..warmup {
        for c in cmds.iter_mut() {
            c();
        }
    }
    let k = cmds.len();
    let mut out = vec![Vec::with_capacity(n); k];
    for i in 0..n {
        for j in 0..k {
            let at = (i + j) % k;
            out[at].push(cmds[at]());
        }
        eprint!(".");
    }
    eprintln!();
    out
}

pub(crate) fn assert_noop(what: &str, cmd: &mut Command, needle: &str) {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(needle),
        "{what} is not a no-op ({}):\n{text}",
        out.status
    );
}

/// Before a timed run: every time in the updater's integrity record moved
/// 30 minutes back, as if the previous run was 30 minutes ago, so that the
/// timed runs walk through the verify cycle at the timer's cadence (most
/// owe less than a batch and hash nothing, about every third hashes one);
/// the bench's own runs are back to back, which would never owe one.
pub(crate) fn as_if_30_minutes_later(p: &Path) {
    let mut r: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
    assert!(r["slice"]["file"].is_u64(), "a sliced record");
    r["verified_at"] = (r["verified_at"].as_i64().unwrap() - 1800).into();
    let last = r["slice"]["last_run"].as_i64().unwrap();
    if last != 0 {
        r["slice"]["last_run"] = (last - 1800).into();
    }
    std::fs::write(p, r.to_string()).unwrap();
}

/// A root at the target with a `k`-package database, its first run (the
/// full verification) reported, and every peer checked to be a no-op:
/// (k, mean stanza bytes, MB of `status`, root).
fn noop_root(
    fx: &Fixture,
    floor: &Path,
    k: usize,
    report: &mut Report,
) -> (usize, usize, f64, AptRoot) {
    let root = AptRoot::new(&fx.dir.path().join(format!("noop-{k}")));
    let mean = pad_dpkg_database(&root, k);
    let root = fx.finish_root(root, "15.4.3");
    let mb = file_size(&root.admindir().join("status")) as f64 / 1e6;
    // the first run after install: no integrity record, a full verification
    let first = measure_ok(&mut fx.updater_cmd(&root, &["run"]), None, Output::Null);
    report.plain(
        &format!("first no-op after install ({k} packages; no integrity record: `dpkg --verify` of the whole agent): CPU time (n=1)"),
        format!("{:.1} ms", ms(first.cpu)),
        "—".into(),
        f64::NAN,
    );
    assert_noop(
        "the updater",
        &mut fx.updater_cmd(&root, &["run"]),
        "decision=\"up-to-date\"",
    );
    assert_noop(
        "the v1 baseline",
        &mut fx.baseline_cmd(&root),
        "is up to date (15.4.3)",
    );
    assert_noop(
        "the floor",
        &mut floor_cmd(fx, floor, &root),
        "up to date (15.4.3)",
    );
    let v1_state = root.file("/var/lib/teleport-upgrade-v1");
    assert_noop(
        "the shipped v1 script (reconstructed)",
        &mut fx.shipped_cmd(&root, &v1_state),
        "is up to date (15.4.3)",
    );
    assert!(root.is_held(PKG), "the shipped v1 script holds the agent");
    (k, mean, mb, root)
}

/// The shipped v1 script's cache of the version server's answers in
/// `state`: written a minute ago (`warm`), or removed.
fn v1_cache(state: &Path, warm: bool) {
    let files = ["state-target-version", "state-critical"];
    if !warm {
        for f in files {
            let _ = std::fs::remove_file(state.join(f));
        }
        return;
    }
    std::fs::create_dir_all(state).unwrap();
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 60;
    std::fs::write(state.join(files[0]), format!("{at} 15.4.3\n")).unwrap();
    std::fs::write(state.join(files[1]), format!("{at} no\n")).unwrap();
}

/// The no-op of the real-size agent at each dpkg database size: the
/// updater, the lean v1 shell, the floor program and the shipped v1
/// script (reconstructed, cache warm and cold), all interleaved.
pub(crate) fn bench_noop_scaling(fx: &Fixture, n: usize, sizes: &[usize], report: &mut Report) {
    eprintln!("== no-op, real-size agent, dpkg databases of {sizes:?} packages: updater vs lean v1 vs floor vs shipped v1 (reconstructed, cache warm and cold), {n} interleaved iterations");
    let floor = build_floor(fx.dir.path());
    let roots: Vec<_> = sizes
        .iter()
        .map(|&k| noop_root(fx, &floor, k, report))
        .collect();
    // dpkg's database older than the updater's racy window (2 s), as on a
    // host where nothing was installed in the last seconds
    std::thread::sleep(Duration::from_secs(3));
    let mut cmds: Vec<Box<dyn FnMut() -> Sample + '_>> = Vec::new();
    for (_, _, _, root) in &roots {
        cmds.push(Box::new(move || {
            as_if_30_minutes_later(&root.file(INTEGRITY_RECORD));
            measure_ok(&mut fx.updater_cmd(root, &["run"]), None, Output::Null)
        }));
        cmds.push(Box::new(move || {
            measure_ok(&mut fx.updater_cmd(root, &["run"]), None, Output::Null)
        }));
        cmds.push(Box::new(move || {
            measure_ok(&mut fx.baseline_cmd(root), None, Output::Null)
        }));
        let f = floor.clone();
        cmds.push(Box::new(move || {
            measure_ok(&mut floor_cmd(fx, &f, root), None, Output::Null)
        }));
        // The shipped v1 script (reconstructed): its answers cached by a
        // run a minute ago (warm), or not cached (cold, every 30 minutes).
        let state = root.file("/var/lib/teleport-upgrade-v1");
        let warm = state.clone();
        cmds.push(Box::new(move || {
            v1_cache(&warm, true);
            measure_ok(&mut fx.shipped_cmd(root, &warm), None, Output::Null)
        }));
        cmds.push(Box::new(move || {
            v1_cache(&state, false);
            measure_ok(&mut fx.shipped_cmd(root, &state), None, Output::Null)
        }));
    }
    let s = interleave_many(n, 2, &mut cmds);
    drop(cmds);
    let mut medians = (Vec::new(), Vec::new());
    for (j, (k, mean, mb, _)) in roots.iter().enumerate() {
        let (u, ub, b, f) = (&s[6 * j], &s[6 * j + 1], &s[6 * j + 2], &s[6 * j + 3]);
        let (warm, cold) = (&s[6 * j + 4], &s[6 * j + 5]);
        let what = format!("no-op, {k} packages ({mean}-byte stanzas, {mb:.2} MB status)");
        let paced = "with its slice at the 30-min cadence";
        for (peer, peer_name, t) in [
            (b, "lean v1 shell", 0.3),
            (f, "floor program", 3.0),
            (warm, "shipped v1 (reconstructed), cache warm", 0.2),
            (cold, "shipped v1 (reconstructed), cache cold", 0.2),
        ] {
            for m in [Metric::Wall, Metric::Cpu] {
                report.compare(
                    &format!("{what} {paced}, vs {peer_name}"),
                    m,
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
        medians.0.push(stats(u.iter().map(|x| ms(x.cpu))).median);
        medians.1.push(stats(ub.iter().map(|x| ms(x.cpu))).median);
    }
    for (m, how) in [(&medians.0, "paced"), (&medians.1, "back to back")] {
        if let (Some(first), Some(last)) = (m.first(), m.last()) {
            let g = last / first;
            report.check(
                &format!(
                    "no-op CPU growth from {} to {} packages, {how} (median ÷ median, same loop)",
                    sizes[0],
                    sizes[sizes.len() - 1]
                ),
                format!("{g:.2}×"),
                "< 1.20×".into(),
                g < 1.2,
            );
        }
    }
    if let Some((k, _, _, root)) = roots.last() {
        let (ur, br) = interleave(
            5,
            1,
            || peak_rss(&fx.updater_cmd(root, &["run"])),
            || peak_rss(&fx.baseline_cmd(root)),
        );
        report.compare(
            &format!("no-op, {k} packages"),
            Metric::Rss,
            &ur,
            &br,
            Target::MibAtMost(16.0),
        );
    }
}
