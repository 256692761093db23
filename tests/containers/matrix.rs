//! The distro matrix: the same end-to-end scenarios in containers booted
//! with systemd under systemd-nspawn (Debian with apt, dnf/rpm, zypper/rpm)
//! and in one without systemd (the cron path). See tests/containers/README.md.
//!
//! Needs root, debootstrap, systemd-nspawn, unshare and nsenter, and, the
//! first time (cold cache), the Debian mirror. When something is missing the
//! test FAILS saying what; `SKIP_CONTAINER_TESTS=1` skips it explicitly.
//! `CONTAINER_ROWS=debian-apt,rpm-dnf` runs only those rows.

mod cron;
mod fixtures;
mod image;
mod nspawn;
mod rows;
mod v1_updater;

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use rows::{Outcome, Row, RowReport, Scenario};

fn skip_requested() -> bool {
    std::env::var("SKIP_CONTAINER_TESTS").is_ok_and(|v| v == "1")
}

/// From /proc/self/status (`Uid: real effective saved fs`).
fn effective_uid() -> Option<u32> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Everything the matrix needs from the host, or why it cannot run.
fn prerequisites(need_mirror: bool) -> Result<(), Vec<String>> {
    let mut missing = Vec::new();
    if effective_uid() != Some(0) {
        missing.push("must run as root (mounts, namespaces, systemd-nspawn)".to_string());
    }
    for (tool, package) in [
        ("debootstrap", "debootstrap"),
        ("systemd-nspawn", "systemd-container"),
        ("unshare", "util-linux"),
        ("nsenter", "util-linux"),
        ("rpmbuild", "rpm"),
        ("rpmsign", "rpm"),
        ("createrepo_c", "createrepo-c"),
        ("apt-ftparchive", "apt-utils"),
        ("dpkg-deb", "dpkg"),
        ("dpkg-gencontrol", "dpkg-dev"),
        ("gpg", "gnupg"),
    ] {
        if which::which(tool).is_err() {
            missing.push(format!(
                "{tool} is not installed (apt-get install {package})"
            ));
        }
    }
    if !std::path::Path::new(testkit::rpmbase::ELFDEPS).exists() {
        missing.push(format!(
            "{} is missing (apt-get install rpm)",
            testkit::rpmbase::ELFDEPS
        ));
    }
    if !std::fs::read_to_string("/proc/filesystems").is_ok_and(|f| f.contains("overlay")) {
        missing.push("the kernel has no overlay filesystem".into());
    }
    if need_mirror {
        if let Err(e) = image::mirror_reachable() {
            missing.push(format!(
                "the container images are not cached in {} and the Debian mirror {} cannot be reached to build them: {e}",
                image::cache_dir().display(),
                image::mirror()
            ));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing)
    }
}

fn selected_rows() -> Vec<Row> {
    match std::env::var("CONTAINER_ROWS") {
        Ok(list) if !list.trim().is_empty() => {
            let rows: Vec<Row> = list
                .split(',')
                .map(|n| {
                    Row::ALL
                        .into_iter()
                        .find(|r| r.name() == n.trim())
                        .unwrap_or_else(|| {
                            panic!(
                                "CONTAINER_ROWS: unknown row {n:?} (rows: {})",
                                Row::ALL.map(|r| r.name()).join(", ")
                            )
                        })
                })
                .collect();
            rows
        }
        _ => Row::ALL.to_vec(),
    }
}

/// Printed whether the test passes or not: straight to the process's
/// stderr (libtest captures only print!/eprint!), and into a file.
fn show(text: &str) {
    let _ = std::io::stderr().write_all(text.as_bytes());
    let _ = std::fs::write(
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("containers-matrix.txt"),
        text,
    );
}

fn table(reports: &[RowReport], prep: &str) -> String {
    let width = Scenario::ALL
        .iter()
        .map(|s| s.title().len())
        .max()
        .unwrap_or(10);
    let mut t = String::new();
    t.push_str("\n=== container matrix (tests/containers) ===\n");
    t.push_str(prep);
    t.push_str(&format!("{:width$}", "scenario"));
    for r in reports {
        t.push_str(&format!("  {:>11}", r.row.name()));
    }
    t.push('\n');
    for s in Scenario::ALL {
        if !reports.iter().any(|r| s.applies(r.row)) {
            continue;
        }
        t.push_str(&format!("{:width$}", s.title()));
        for r in reports {
            let cell = if !s.applies(r.row) {
                "-"
            } else {
                match r.results.get(&s) {
                    Some(Outcome::Pass(_)) => "PASS",
                    Some(Outcome::Fail(_)) => "FAIL",
                    None => "not run",
                }
            };
            t.push_str(&format!("  {cell:>11}"));
        }
        t.push('\n');
    }
    t.push_str(&format!("{:width$}", "row time"));
    for r in reports {
        t.push_str(&format!("  {:>10.1}s", r.elapsed.as_secs_f64()));
    }
    t.push('\n');
    t.push_str("\ndetails:\n");
    for r in reports {
        if let Some(e) = &r.error {
            t.push_str(&format!("[{}] SETUP FAILED: {e}\n", r.row.name()));
        }
        for (s, o) in &r.results {
            match o {
                Outcome::Pass(d) => {
                    t.push_str(&format!("[{}] PASS {}: {d}\n", r.row.name(), s.title()))
                }
                Outcome::Fail(e) => {
                    t.push_str(&format!("[{}] FAIL {}:\n{e}\n", r.row.name(), s.title()))
                }
            }
        }
    }
    t
}

#[test]
fn distro_matrix() {
    if skip_requested() {
        eprintln!("SKIP: SKIP_CONTAINER_TESTS=1, the container matrix is not run");
        return;
    }
    let started = Instant::now();
    let rows = selected_rows();
    let mut images: Vec<image::Image> = rows.iter().map(|r| r.image()).collect();
    images.dedup();
    let cold = images.iter().any(|i| !i.is_cached());
    if let Err(missing) = prerequisites(cold) {
        panic!(
            "the container matrix cannot run on this host:\n  - {}\n\
             Fix the above, or set SKIP_CONTAINER_TESTS=1 to skip the container tests explicitly.",
            missing.join("\n  - ")
        );
    }
    nspawn::reap_stale_runs(&image::runs_dir());

    let t = Instant::now();
    let built = image::ensure(&images).unwrap_or_else(|e| panic!("{e}"));
    let mut prep = String::new();
    for (img, d) in &built {
        prep.push_str(&format!(
            "image {} built in {:.1} s\n",
            img.name(),
            d.as_secs_f64()
        ));
    }
    if built.is_empty() {
        prep.push_str(&format!(
            "images cached in {}\n",
            image::cache_dir().display()
        ));
    }
    prep.push_str(&format!(
        "images ready after {:.1} s\n",
        t.elapsed().as_secs_f64()
    ));

    let t = Instant::now();
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    fixtures::reap_stale_work(&tmp);
    let work = tmp.join(format!("containers-{}", std::process::id()));
    let fx = fixtures::Fixtures::build(&work).unwrap_or_else(|e| panic!("fixtures: {e}"));
    prep.push_str(&format!(
        "fixtures (key, agent packages, updater {} and {}) built in {:.1} s\n\n",
        fx.updater.version,
        fx.updater_next.version,
        t.elapsed().as_secs_f64()
    ));

    // Rows run one after another: each is CPU-bound (dnf and zypper most),
    // and this machine has two cores.
    let reports: Vec<RowReport> = rows
        .iter()
        .map(|&r| {
            // A panic in one row (its container is torn down while
            // unwinding) must not hide the other rows' results.
            let t = Instant::now();
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                rows::run_row(r, &fx, fx.dir.path())
            }))
            .unwrap_or_else(|p| {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                RowReport::panicked(r, msg, t.elapsed())
            })
        })
        .collect();
    drop(fx);
    let _ = std::fs::remove_dir_all(&work);

    let mut text = table(&reports, &prep);
    text.push_str(&format!(
        "\ntotal {:.1} s\n",
        started.elapsed().as_secs_f64()
    ));
    show(&text);
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.row.name())
        .collect();
    assert!(
        failed.is_empty(),
        "container matrix rows failed: {failed:?} (see the table above)"
    );
}
