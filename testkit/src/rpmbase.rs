//! Declaring a system that rpm did not install to rpm: an empty package
//! whose `Provides:` are what the system really offers.
//!
//! A Debian root with Debian's `rpm`, `dnf` or `zypper` has an empty rpm
//! database: glibc, `/bin/sh` and ca-certificates are there, installed by
//! dpkg, but rpm knows nothing of them, so an rpm with ordinary automatic
//! requirements (`libc.so.6(GLIBC_2.34)(64bit)`, `/bin/sh`) cannot be
//! installed. On a real RPM distribution the glibc, bash and ca-certificates
//! packages provide them. [`library_provides`] computes the shared-library
//! provides from the root's actual libraries with rpm's own generator
//! (`/usr/lib/rpm/elfdeps --provides`, what rpmbuild runs on glibc), so a
//! requirement the root's libraries do not meet (a newer glibc symbol
//! version) is still refused; [`build_provides_rpm`] wraps them, with the
//! few non-library capabilities the caller names, into a file-less package.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::gpg::run;
use crate::rpm::host_rpm_arch;

/// rpm's ELF dependency generator.
pub const ELFDEPS: &str = "/usr/lib/rpm/elfdeps";

/// The shared-library capabilities (`libc.so.6()(64bit)`,
/// `libc.so.6(GLIBC_2.34)(64bit)`, ...) of the libraries found directly in
/// `lib_dirs` (paths inside `root`, e.g. `/usr/lib/x86_64-linux-gnu`):
/// regular ELF files whose name contains `.so`. Sorted, without duplicates.
pub fn library_provides(root: &Path, lib_dirs: &[&str]) -> Vec<String> {
    let mut files = Vec::new();
    for d in lib_dirs {
        let dir = root.join(d.trim_start_matches('/'));
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().into_owned();
            let is_file = e.file_type().map(|t| t.is_file()).unwrap_or(false);
            // elfdeps fails on anything but ELF (e.g. `libc.so`, a linker
            // script).
            if is_file && name.contains(".so") && is_elf(&e.path()) {
                files.push(e.path());
            }
        }
    }
    files.sort();
    assert!(
        !files.is_empty(),
        "no shared libraries below {} in {lib_dirs:?}",
        root.display()
    );
    let mut child = Command::new(ELFDEPS)
        .arg("--provides")
        .env("LC_ALL", "C")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {ELFDEPS} (Debian package rpm): {e}"));
    {
        let mut stdin = child.stdin.take().expect("elfdeps stdin");
        for f in &files {
            writeln!(stdin, "{}", f.display()).expect("write to elfdeps");
        }
    }
    let out = child.wait_with_output().expect("elfdeps output");
    assert!(
        out.status.success(),
        "{ELFDEPS} --provides failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    v.sort();
    v.dedup();
    v
}

fn is_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

/// Build a file-less package `name-version-1.<host arch>.rpm` into `out_dir`
/// that provides each of `provides` (one `Provides:` line each; a path such
/// as `/bin/sh` satisfies file requirements too).
pub fn build_provides_rpm(
    name: &str,
    version: &str,
    summary: &str,
    provides: &[String],
    out_dir: &Path,
) -> PathBuf {
    for p in provides {
        assert!(
            !p.is_empty() && !p.contains('\n') && !p.contains('%'),
            "bad capability {p:?}"
        );
    }
    std::fs::create_dir_all(out_dir)
        .unwrap_or_else(|e| panic!("create {}: {e}", out_dir.display()));
    let work = tempfile::Builder::new()
        .prefix("rpmbuild-provides-")
        .tempdir_in(out_dir)
        .expect("rpmbuild work directory");
    let arch = host_rpm_arch();
    let mut spec = format!(
        "Name: {name}\nVersion: {version}\nRelease: 1\nSummary: {summary}\n\
         License: Apache-2.0\nBuildArch: {arch}\nAutoReqProv: no\n"
    );
    for p in provides {
        spec.push_str(&format!("Provides: {p}\n"));
    }
    spec.push_str(&format!("\n%description\n{summary}\n\n%files\n"));
    let spec_file = work.path().join(format!("{name}.spec"));
    std::fs::write(&spec_file, spec).expect("write spec");
    let top = work.path().join("top");
    let mut cmd = Command::new("rpmbuild");
    cmd.env("LC_ALL", "C")
        .args(["-bb", "--quiet"])
        .arg("--define")
        .arg(format!("_topdir {}", top.display()))
        .args(["--define", "debug_package %{nil}"])
        .args(["--define", "__os_install_post %{nil}"])
        .arg(&spec_file);
    run(cmd, "rpmbuild -bb (provides package)");
    let file = format!("{name}-{version}-1.{arch}.rpm");
    let built = top.join("RPMS").join(arch).join(&file);
    let dest = out_dir.join(&file);
    std::fs::rename(&built, &dest)
        .unwrap_or_else(|e| panic!("move {} to {}: {e}", built.display(), dest.display()));
    dest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_glibc_provides_and_a_provides_package() {
        if !Path::new(ELFDEPS).exists() {
            eprintln!("SKIP: {ELFDEPS} missing (apt-get install rpm)");
            return;
        }
        let arch_dir = format!("/usr/lib/{}-linux-gnu", std::env::consts::ARCH);
        let p = library_provides(Path::new("/"), &[&arch_dir]);
        assert!(
            p.iter().any(|c| c.starts_with("libc.so.6(GLIBC_2.34)")),
            "{p:?}"
        );
        let d = tempfile::tempdir().unwrap();
        let rpm = build_provides_rpm(
            "base-system",
            "1",
            "test",
            &["/bin/sh".to_string(), "libc.so.6()(64bit)".to_string()],
            d.path(),
        );
        let out = Command::new("rpm")
            .args(["-qp", "--provides"])
            .arg(&rpm)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("/bin/sh") && text.contains("libc.so.6()(64bit)"),
            "{text}"
        );
    }
}
