//! Refreshing the Teleport source against a full `apt-get update`, start-up, and the profiling server.

use super::*;

/// A signed repository of `count` synthetic but realistic Packages stanzas
/// (about 1 KiB each, checksums and descriptions that do not compress away),
/// for apt-get update only: its pool is empty, as update never reads it.
pub(crate) fn other_repo(dir: &Path, vendor: usize, count: usize, key: &Key) {
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
    sign_release(dir, vendor, arch, key);
}

/// The signed `Release`, `InRelease` and `Release.gpg` of a vendor repository.
fn sign_release(dir: &Path, vendor: usize, arch: &str, key: &Key) {
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

pub(crate) fn rm_lists(root: &AptRoot) {
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

pub(crate) fn bench_refresh(fx: &Fixture, cold: usize, warm: usize, report: &mut Report) {
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
    let (mut f, full_shown) = full_update_cmd(f_steps.into_iter().next().unwrap());
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

pub(crate) fn bench_startup(fx: &Fixture, n: usize, report: &mut Report) {
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
pub(crate) fn serve_for_profiling(fx: &Fixture) {
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

/// The updater's refresh command without its single-source options: a full
/// `apt-get update` of the root's sources; and how it is shown.
fn full_update_cmd(step: Step) -> (Command, String) {
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
    let shown = format!("apt-get {}", keep.join(" "));
    (cmd, shown)
}
