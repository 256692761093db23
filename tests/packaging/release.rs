//! Part of `tests/packaging.rs` (see there).

use super::*;

/// The libraries a packaged binary may need.
pub(crate) const ALLOWED_NEEDED: &[&str] = &[
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "libpthread.so.0",
    "librt.so.1",
    "libutil.so.1",
    "libgcc_s.so.1",
    "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1",
];

/// (NEEDED libraries, GLIBC_ versions required) of an ELF binary, read
/// with readelf.
pub(crate) fn dynamic_deps(bin: &Path) -> (Vec<String>, Vec<(u32, u32, u32)>) {
    let d = run_ok(Command::new("readelf").arg("-d").arg(bin));
    let needed = d
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split('[').nth(1)?.split(']').next().map(String::from))
        .collect();
    let v = run_ok(Command::new("readelf").arg("-V").arg(bin));
    let mut versions: Vec<(u32, u32, u32)> = v
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("GLIBC_"))
        .filter_map(|n| {
            let mut it = n.split('.').map(|x| x.parse::<u32>());
            let a = it.next()?.ok()?;
            let b = it.next().unwrap_or(Ok(0)).ok()?;
            let c = it.next().unwrap_or(Ok(0)).ok()?;
            Some((a, b, c))
        })
        .collect();
    versions.sort();
    versions.dedup();
    (needed, versions)
}

/// Fails on a GLIBC_ version above 2.17 or a library beyond the allowed set.
pub(crate) fn check_floor(what: &str, bin: &Path) -> String {
    let (needed, versions) = dynamic_deps(bin);
    assert!(
        !versions.is_empty(),
        "{what}: no GLIBC_ version at all: not read?"
    );
    let beyond: Vec<&String> = needed
        .iter()
        .filter(|n| !ALLOWED_NEEDED.contains(&n.as_str()))
        .collect();
    assert!(
        beyond.is_empty(),
        "{what} needs libraries beyond the allowed set: {beyond:?}"
    );
    let max = *versions.last().unwrap();
    assert!(
        max <= (2, 17, 0),
        "{what} requires GLIBC_{}.{}.{}: above the 2.17 floor",
        max.0,
        max.1,
        max.2
    );
    format!(
        "{what}: NEEDED {needed:?}, highest GLIBC_{}.{}",
        max.0, max.1
    )
}

/// The floor check catches what it is there for: the binary cargo built
/// for the tests (Debian 12's glibc) is above it.
#[test]
pub(crate) fn floor_check_refuses_a_binary_built_against_a_newer_glibc() {
    let (_, versions) = dynamic_deps(Path::new(BIN));
    assert!(
        versions.last().is_some_and(|v| *v > (2, 17, 0)),
        "the test binary needs no glibc above 2.17: the control proves nothing here ({versions:?})"
    );
    let r = std::panic::catch_unwind(|| check_floor("test binary", Path::new(BIN)));
    assert!(r.is_err(), "check_floor accepted a binary above the floor");
}

pub(crate) struct Release {
    dir: PathBuf,
    /// (rpm arch, .deb, .rpm)
    packages: Vec<(String, PathBuf, PathBuf)>,
}

/// `scripts/build-packages` as a release builds them: both architectures,
/// cargo-zigbuild against glibc 2.17 (in target/release-build, so later
/// runs are incremental).
pub(crate) fn release() -> &'static Release {
    static R: OnceLock<Release> = OnceLock::new();
    R.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("release-packages");
        let _ = fs::remove_dir_all(&dir);
        let out = run(Command::new("bash")
            .arg(repo().join("scripts/build-packages"))
            .arg("--out")
            .arg(&dir)
            .arg("--fast")
            // Always target/release-build: never the directory cargo test holds.
            .env_remove("CARGO_TARGET_DIR"));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "build-packages (release, x86_64 and aarch64) failed (scripts/deps installs the toolchain):\n{stdout}\n{}",
            stderr.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
        );
        let paths: Vec<PathBuf> = stdout.lines().map(PathBuf::from).collect();
        assert_eq!(paths.len(), 4, "four packages expected:\n{stdout}");
        let mut packages = Vec::new();
        for (arch, deb_arch) in [("x86_64", "amd64"), ("aarch64", "arm64")] {
            let deb = paths.iter().find(|p| p.to_string_lossy().ends_with(&format!("_{deb_arch}.deb"))).unwrap_or_else(|| panic!("no {deb_arch} .deb:\n{stdout}")).clone();
            let rpm = paths.iter().find(|p| p.to_string_lossy().ends_with(&format!(".{arch}.rpm"))).unwrap_or_else(|| panic!("no {arch} .rpm:\n{stdout}")).clone();
            packages.push((arch.to_string(), deb, rpm));
        }
        Release { dir, packages }
    })
}

#[test]
pub(crate) fn release_binaries_have_the_glibc_2_17_floor_on_both_architectures() {
    if skip_all() {
        return;
    }
    let r = release();
    for (arch, deb, rpm) in &r.packages {
        let x = r.dir.join(format!("x-deb-{arch}"));
        let _ = fs::remove_dir_all(&x);
        run_ok(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&x));
        let bin = x.join("usr/sbin/teleport-upgrade");
        let machine = run_ok(Command::new("readelf").arg("-h").arg(&bin));
        let want = if arch == "x86_64" {
            "X86-64"
        } else {
            "AArch64"
        };
        assert!(
            machine.contains(want),
            "{}: not an {arch} binary:\n{machine}",
            deb.display()
        );
        eprintln!("{}", check_floor(&format!("{arch} .deb"), &bin));

        let y = r.dir.join(format!("x-rpm-{arch}"));
        let _ = fs::remove_dir_all(&y);
        fs::create_dir_all(&y).unwrap();
        run_ok(
            Command::new("sh")
                .arg("-c")
                .arg("rpm2cpio \"$1\" | cpio -idm --quiet")
                .arg("sh")
                .arg(rpm)
                .current_dir(&y),
        );
        eprintln!(
            "{}",
            check_floor(
                &format!("{arch} .rpm"),
                &y.join("usr/sbin/teleport-upgrade")
            )
        );
        assert_eq!(
            run_ok(
                Command::new("rpm")
                    .arg("-qp")
                    .arg("--qf")
                    .arg("%{ARCH}")
                    .arg(rpm)
            ),
            *arch
        );
    }
}

/// Dependencies that resolve everywhere: libc6 (>= 2.17) and libgcc by
/// either name, no libgpgme (loaded at run time, recommended under both
/// names: libgpgme11t64 on Debian 13 / Ubuntu 24.04, libgpgme11 before,
/// libgpgme45 for gpgme 2);
/// on rpm by soname and symbol version, nothing above GLIBC_2.17.
#[test]
pub(crate) fn release_package_dependencies_resolve_on_every_supported_distribution() {
    if skip_all() {
        return;
    }
    let r = release();
    for (arch, deb, rpm) in &r.packages {
        let field = |name: &str| {
            run_ok(Command::new("dpkg-deb").arg("-f").arg(deb).arg(name))
                .trim()
                .to_string()
        };
        let depends = field("Depends");
        let mut parts: Vec<&str> = depends.split(", ").collect();
        parts.sort();
        let mut want = vec!["ca-certificates", "libc6 (>= 2.17)"];
        if depends.contains("libgcc") {
            want.push("libgcc-s1 | libgcc1");
        }
        want.sort();
        assert_eq!(parts, want, "{arch} Depends: {depends}");
        assert!(!depends.contains("gpgme"), "{depends}");
        let recommends = field("Recommends");
        assert!(
            recommends.contains("libgpgme11t64 | libgpgme11 | libgpgme45"),
            "{arch} Recommends: {recommends}"
        );

        let requires = run_ok(Command::new("rpm").arg("-qp").arg("--requires").arg(rpm));
        for line in requires.lines() {
            assert!(!line.contains("gpgme"), "{arch} rpm requires {line}");
            if let Some(v) = line.split("(GLIBC_").nth(1) {
                let v = v.split(')').next().unwrap();
                let mut it = v.split('.').map(|x| x.parse::<u32>().unwrap());
                let t = (it.next().unwrap(), it.next().unwrap_or(0));
                assert!(t <= (2, 17), "{arch} rpm requires {line}");
            }
            if line.starts_with("lib") {
                assert!(
                    line.ends_with("(64bit)"),
                    "{arch}: not a 64-bit soname requirement: {line}"
                );
            }
        }
        assert!(
            requires
                .lines()
                .any(|l| l.starts_with("libc.so.6(GLIBC_2.17)(64bit)")),
            "{requires}"
        );
        let weak = run_ok(Command::new("rpm").arg("-qp").arg("--recommends").arg(rpm));
        for soname in ["libgpgme.so.11()(64bit)", "libgpgme.so.45()(64bit)"] {
            assert!(weak.contains(soname), "{arch} rpm recommends: {weak}");
        }
        let rich = run_ok(Command::new("rpm").arg("-qp").arg("--requires").arg(rpm));
        assert!(
            !rich.contains("RichDependencies"),
            "{arch}: a rich dependency RHEL 7's rpm refuses: {rich}"
        );
    }
}

#[test]
pub(crate) fn release_packages_lint_clean_on_both_architectures() {
    if skip_all() {
        return;
    }
    let r = release();
    for (arch, deb, rpm) in &r.packages {
        if have("lintian") {
            assert_lintian_clean(
                &format!("lintian {arch}"),
                Command::new("lintian").arg("--no-cfg").arg(deb),
            );
        } else {
            eprintln!("SKIP: lintian not installed");
        }
        if have("rpmlint") {
            let out = run(Command::new("rpmlint")
                .arg("-r")
                .arg(repo().join("rpm/teleport-ent-updater.rpmlintrc"))
                .arg(rpm));
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            eprintln!("rpmlint {arch}:\n{text}");
            let errors: Vec<&str> = text.lines().filter(|l| l.contains(": E: ")).collect();
            assert!(
                errors.is_empty(),
                "rpmlint errors ({arch}):\n{}",
                errors.join("\n")
            );
            assert!(text.contains(" 0 errors"), "rpmlint summary: {text}");
        } else {
            eprintln!("SKIP: rpmlint not installed");
        }
    }
}

pub(crate) const QEMU: &str = "/usr/bin/qemu-aarch64-static";

/// The packaged aarch64 binary (extracted once) and the arm64 C library to
/// run it with under qemu user emulation.
pub(crate) fn aarch64_binary() -> (PathBuf, PathBuf) {
    static B: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    B.get_or_init(|| {
        assert!(
            Path::new(QEMU).exists(),
            "{QEMU} is missing (apt-get install qemu-user-static; scripts/deps)"
        );
        let r = release();
        let x = r.dir.join("x-aarch64-run");
        let _ = fs::remove_dir_all(&x);
        let (_, deb, _) = r.packages.iter().find(|p| p.0 == "aarch64").unwrap();
        run_ok(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&x));
        // The arm64 C library scripts/deps fetched beside the aarch64 std.
        let cross = std::env::var_os("TU_CROSS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").expect("HOME"))
                    .join(".cache/teleport-ent-updater-cross")
            });
        let libc = fs::read_dir(&cross)
            .ok()
            .and_then(|rd| {
                rd.flatten()
                    .map(|e| e.path().join("libc"))
                    .find(|p| p.join("lib/ld-linux-aarch64.so.1").exists())
            })
            .unwrap_or_else(|| {
                panic!("no arm64 libc below {} (run scripts/deps)", cross.display())
            });
        (x.join("usr/sbin/teleport-upgrade"), libc)
    })
    .clone()
}

/// The aarch64 binary runs (under qemu user emulation here).
#[test]
pub(crate) fn release_aarch64_binary_runs_under_qemu() {
    if skip_all() {
        return;
    }
    let (bin, libc) = aarch64_binary();
    let out = run_ok(
        Command::new(QEMU)
            .arg("-L")
            .arg(&libc)
            .arg(&bin)
            .arg("version"),
    );
    assert!(
        out.starts_with(&format!("teleport-upgrade {}", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
}

/// The arm64 smoke row: the packaged aarch64 binary, run under qemu user
/// emulation, drives apt (the host's: qemu passes execve of a native
/// program to the kernel) in an alternate root with the agent 15.4.2
/// and a signed local repository offering 15.4.3: `version`, `dry-run`
/// (nothing changes) and a real `run` (15.4.3 installed and held).
/// An arm64 debootstrap root with its own apt would need binfmt_misc,
/// which this build machine does not offer (see tests/containers/README.md).
#[test]
pub(crate) fn arm64_smoke_the_aarch64_binary_updates_through_apt() {
    if skip_all() {
        return;
    }
    let (bin, libc) = aarch64_binary();
    let w = testkit::world::apt::AptWorld::new("15.4.2", "15.4.3");
    w.schedule_in_window();
    let run = |args: &[&str]| -> Output {
        let mut c = Command::new(QEMU);
        c.arg("-L")
            .arg(&libc)
            .arg(&bin)
            .arg("--root")
            .arg(w.root.path())
            .args(args)
            .env_remove("TELEPORT_UPGRADE_CONFIG")
            .env("LC_ALL", "C")
            .stdin(std::process::Stdio::null());
        run(&mut c)
    };
    let text = |o: &Output| {
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
    };

    let v = run(&["version"]);
    assert!(
        v.status.success() && text(&v).contains(env!("CARGO_PKG_VERSION")),
        "{}",
        text(&v)
    );

    let d = run(&["dry-run"]);
    assert!(d.status.success(), "dry-run failed:\n{}", text(&d));
    assert!(
        text(&d).contains("15.4.3"),
        "dry-run does not show the target:\n{}",
        text(&d)
    );
    assert_eq!(
        w.installed().as_deref(),
        Some("15.4.2"),
        "dry-run changed the agent"
    );

    let u = run(&["run"]);
    assert!(u.status.success(), "run failed:\n{}", text(&u));
    assert_eq!(
        w.installed().as_deref(),
        Some("15.4.3"),
        "not updated:\n{}",
        text(&u)
    );
    assert!(w.held(), "not held after the update");
    eprintln!("arm64 smoke (qemu user emulation):\n{}", text(&u));
}
