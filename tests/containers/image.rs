//! Root filesystems of the matrix, built once and cached.
//!
//! ```text
//! <cache>/images/<image>-<hash of its recipe>/rootfs     the root filesystem
//! <cache>/images/<image>-<hash of its recipe>/recipe.txt what it was built from
//! <cache>/runs/<row>-<pid>/                              writable layers of running containers
//! ```
//!
//! `<cache>` is `/var/cache/teleport-ent-updater-tests` (or
//! `$CONTAINER_TESTS_CACHE`). An image is built into a temporary directory
//! and renamed into place when complete, under an exclusive lock, so an
//! interrupted build is never used and two test processes never build the
//! same image at once. A changed recipe gets a new hash (bump
//! [`RECIPE_VERSION`] when the code of a step changes); images of older
//! recipes are removed when the new one is built. Containers never write to
//! an image: they run on an overlay of it.
//!
//! The images (all from Debian 12's mirror, the only distribution this
//! machine can reach):
//! - `debian12`: debootstrap minbase with systemd, dbus, cron and
//!   ca-certificates, libgpgme11 (the updater's one library beyond libc).
//! - `debian12-dnf`: `debian12` plus Debian's `dnf` and `rpm`.
//! - `debian12-zypper`: `debian12` plus Debian's `zypper` and `rpm`.
//! - `debian13-dnf5`: `debian13` plus Debian forky's (testing's) `dnf5`
//!   5.4.6 and `rpm` 6, the only dnf5 Debian's archive has, with what they
//!   need from forky (glibc 2.43, libstdc++ 16, ...; forky pinned at 100,
//!   so nothing else comes from it: systemd stays trixie's 257, as forky's
//!   262 refuses to boot on this machine's cgroup v1 hierarchy);
//!   `/usr/bin/dnf -> dnf5` as on Fedora 41 and later; libdnf5's `local`
//!   plugin disabled (Fedora ships it in a package of its own; Debian
//!   enables it, and without `createrepo_c` it fails every transaction
//!   with exit 1). The testing suite's Release file is valid for a week
//!   only: apt is told not to check that.
//! - `debian13-apt3`: `debian13` with forky's apt (3.3 on 2026-12-07, the
//!   newest apt Debian has: sqv, the 3.1+ solver and output), built the
//!   same way (forky pinned at 100, only what apt needs from it).
//!
//! In the rpm images rpm keeps its database in `/var/lib/rpm`, as on RHEL
//! and SUSE (Debian's rpm defaults to `~/.rpmdb`, which differs between a
//! shell, where HOME=/root, and a systemd service, where HOME is unset), and
//! a file-less package `debian-base-system` declares to rpm what the
//! dpkg-installed base really provides (see `testkit::rpmbase`).
//! The Debian sources are removed from every image once it is built: the
//! tests install only from their own loopback repositories.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

use crate::nspawn::{run, run_in_rootfs};

/// Bump when a build step below changes.
const RECIPE_VERSION: u32 = 1;

pub const DEFAULT_CACHE: &str = "/var/cache/teleport-ent-updater-tests";
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
const SUITE: &str = "bookworm";
/// libgpgme11: the updater links libgpgme (key pinning); on a real host apt
/// pulls it from the distribution, here the only repository is the test's.
const BASE_PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "dbus",
    "cron",
    "ca-certificates",
    "libgpgme11",
];

pub fn cache_dir() -> PathBuf {
    std::env::var_os("CONTAINER_TESTS_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE))
}

pub fn runs_dir() -> PathBuf {
    cache_dir().join("runs")
}

pub fn mirror() -> String {
    std::env::var("CONTAINER_TESTS_MIRROR")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_MIRROR.to_string())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Image {
    Debian,
    Dnf,
    Zypper,
    /// Debian 11 (bullseye: apt 2.2, glibc 2.31, systemd 247), without
    /// libgpgme: the updater must run and update without it.
    Debian11,
    /// Debian 13 (trixie: apt 3 with sqv, t64 libraries, systemd 257).
    Debian13,
    /// Debian 13 with forky's dnf5 (the only dnf5 Debian's archive has).
    Dnf5,
    /// Debian 13 with forky's apt (3.3): the newest apt.
    Apt3,
}

impl Image {
    pub fn name(self) -> &'static str {
        match self {
            Image::Debian => "debian12",
            Image::Dnf => "debian12-dnf",
            Image::Zypper => "debian12-zypper",
            Image::Debian11 => "debian11",
            Image::Debian13 => "debian13",
            Image::Dnf5 => "debian13-dnf5",
            Image::Apt3 => "debian13-apt3",
        }
    }

    /// The Debian release debootstrap installs (the rpm images start from
    /// `debian12`).
    fn suite(self) -> &'static str {
        match self {
            Image::Debian11 => "bullseye",
            Image::Debian13 | Image::Dnf5 | Image::Apt3 => "trixie",
            _ => SUITE,
        }
    }

    fn base_packages(self) -> Vec<&'static str> {
        let mut p = BASE_PACKAGES.to_vec();
        match self {
            // No libgpgme at all (key pinning loads it only when configured).
            Image::Debian11 => p.retain(|x| *x != "libgpgme11"),
            Image::Debian13 => {
                for x in p.iter_mut() {
                    if *x == "libgpgme11" {
                        *x = "libgpgme11t64";
                    }
                }
            }
            _ => {}
        }
        p
    }

    /// The image a layered image starts from.
    fn base(self) -> Image {
        if self.uses_forky() {
            Image::Debian13
        } else {
            Image::Debian
        }
    }

    /// Whether its extra packages come from forky (on `debian13`).
    fn uses_forky(self) -> bool {
        matches!(self, Image::Dnf5 | Image::Apt3)
    }

    fn is_debootstrapped(self) -> bool {
        matches!(self, Image::Debian | Image::Debian11 | Image::Debian13)
    }

    /// Debian packages added on top of `debian12`.
    fn extra_packages(self) -> &'static [&'static str] {
        match self {
            Image::Debian | Image::Debian11 | Image::Debian13 => &[],
            Image::Dnf => &["dnf", "rpm"],
            Image::Zypper => &["zypper", "rpm"],
            Image::Dnf5 => &["dnf5", "rpm"],
            Image::Apt3 => &["apt"],
        }
    }

    /// Everything that determines the image, as text (hashed into its
    /// directory name).
    pub fn recipe(self) -> String {
        let mut r = format!(
            "recipe-version {RECIPE_VERSION}\n\
             debootstrap --variant=minbase --include={} {} (Debian mirror)\n\
             remove /etc/hostname; seal: no apt sources, lists or caches\n",
            self.base_packages().join(","),
            self.suite()
        );
        if self.uses_forky() {
            r.push_str(
                "from debian13; sources trixie + forky (Pin-Priority 100); apt-get -o Acquire::Check-Valid-Until=false update; install -t forky\n",
            );
        }
        if self == Image::Dnf5 {
            r.push_str("/usr/bin/dnf -> dnf5; libdnf5 plugin local: enabled = 0\n");
        }
        if self == Image::Apt3 {
            r.push_str(&format!(
                "apt-get install --no-install-recommends {}; the forky pin removed; seal\n",
                self.extra_packages().join(" ")
            ));
        } else if !self.is_debootstrapped() {
            r.push_str(&format!(
                "apt-get install --no-install-recommends {}\n\
                 /etc/rpm/macros: %_dbpath /var/lib/rpm; rpm --initdb\n\
                 rpm -i debian-base-system (elfdeps --provides of /usr/lib/<triplet>/*.so*, /bin/sh, /usr/bin/sh, /bin/bash, rtld(GNU_HASH), ca-certificates)\n\
                 seal\n",
                self.extra_packages().join(" ")
            ));
        }
        r
    }

    pub fn dir(self) -> PathBuf {
        cache_dir().join("images").join(format!(
            "{}-{:016x}",
            self.name(),
            fnv1a(self.recipe().as_bytes())
        ))
    }

    pub fn rootfs(self) -> PathBuf {
        self.dir().join("rootfs")
    }

    pub fn is_cached(self) -> bool {
        self.dir().join("recipe.txt").is_file()
    }
}

/// FNV-1a, 64 bits: a hash that stays the same across Rust versions.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Make sure every image in `images` is cached (building what is missing);
/// returns what was built, with the time each took.
pub fn ensure(images: &[Image]) -> Result<Vec<(Image, Duration)>, String> {
    let cache = cache_dir();
    fs::create_dir_all(cache.join("images"))
        .map_err(|e| format!("create {}: {e}", cache.display()))?;
    let lock_file = File::create(cache.join(".lock")).map_err(|e| e.to_string())?;
    let _lock = Flock::lock(lock_file, FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("lock {}/.lock: {e}", cache.display()))?;
    let mut built = Vec::new();
    for &img in images {
        // The rpm images start from debian12 (debian13-dnf5: debian13).
        let chain: &[Image] = if img.is_debootstrapped() {
            std::slice::from_ref(&img)
        } else {
            &[img.base(), img]
        };
        for &i in chain {
            if !i.is_cached() {
                let t = Instant::now();
                build(i)?;
                built.push((i, t.elapsed()));
            }
        }
    }
    Ok(built)
}

fn build(img: Image) -> Result<(), String> {
    let final_dir = img.dir();
    let tmp = final_dir.with_file_name(format!(
        "{}.building-{}",
        final_dir.file_name().unwrap().to_string_lossy(),
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    eprintln!(
        "building container image {} in {} ...",
        img.name(),
        tmp.display()
    );
    let result = match img {
        Image::Debian | Image::Debian11 | Image::Debian13 => build_debian(img, &tmp),
        Image::Dnf | Image::Zypper | Image::Dnf5 | Image::Apt3 => build_layered(img, &tmp),
    };
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&tmp);
        return Err(format!("building the {} image failed: {e}", img.name()));
    }
    fs::write(tmp.join("recipe.txt"), img.recipe()).map_err(|e| e.to_string())?;
    // Older recipes of this image are of no further use.
    remove_other_versions(img);
    fs::rename(&tmp, &final_dir).map_err(|e| format!("rename {}: {e}", tmp.display()))?;
    Ok(())
}

fn remove_other_versions(img: Image) {
    let images = cache_dir().join("images");
    let prefix = format!("{}-", img.name());
    let keep = img.dir();
    let Ok(rd) = fs::read_dir(&images) else {
        return;
    };
    for e in rd.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        let rest = name.strip_prefix(&prefix).unwrap_or("");
        // `<name>-<16 hex>` only: debian12-dnf-... is not a version of debian12.
        if rest.len() == 16 && rest.chars().all(|c| c.is_ascii_hexdigit()) && e.path() != keep {
            eprintln!("removing the outdated image {}", e.path().display());
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

fn build_debian(img: Image, tmp: &Path) -> Result<(), String> {
    let rootfs = tmp.join("rootfs");
    let mut cmd = std::process::Command::new("debootstrap");
    cmd.arg("--variant=minbase")
        .arg(format!("--include={}", img.base_packages().join(",")))
        .arg(img.suite())
        .arg(&rootfs)
        .arg(mirror())
        .env("LC_ALL", "C");
    let out = run(&mut cmd, None, Duration::from_secs(600))?;
    fs::write(
        tmp.join("build.log"),
        format!("{}\n{}", out.stdout, out.stderr),
    )
    .map_err(|e| e.to_string())?;
    if !out.ok() {
        return Err(format!(
            "debootstrap failed ({:?})\n{}",
            out.code,
            out.tail(30)
        ));
    }
    // debootstrap copies the host's name; the container gets its machine
    // name instead.
    let _ = fs::remove_file(rootfs.join("etc/hostname"));
    seal(&rootfs)
}

/// A copy of `img`'s base with its layer on top: forky's apt, or the rpm
/// tools.
fn build_layered(img: Image, tmp: &Path) -> Result<(), String> {
    let rootfs = tmp.join("rootfs");
    let base = img.base().rootfs();
    let mut cp = std::process::Command::new("cp");
    cp.args(["-a", "--reflink=auto"]).arg(&base).arg(&rootfs);
    let out = run(&mut cp, None, Duration::from_secs(300))?;
    if !out.ok() {
        return Err(format!(
            "copying {} failed\n{}",
            base.display(),
            out.tail(10)
        ));
    }
    if img == Image::Apt3 {
        apt_layer(img, &rootfs)
    } else {
        rpm_layer(img, &rootfs, tmp)
    }
}

/// Install `img`'s extra packages from its suite (and forky, pinned at
/// 100: only what they need comes from it).
fn install_extra(img: Image, rootfs: &Path) -> Result<(), String> {
    let mut sources = format!("deb {} {} main\n", mirror(), img.suite());
    let mut update = vec!["apt-get", "update", "-q"];
    let mut install = vec!["apt-get", "install", "-y", "-q", "--no-install-recommends"];
    if img.uses_forky() {
        sources.push_str(&format!("deb {} forky main\n", mirror()));
        fs::write(
            rootfs.join(FORKY_PIN),
            "Package: *\nPin: release n=forky\nPin-Priority: 100\n",
        )
        .map_err(|e| e.to_string())?;
        update.splice(1..1, ["-o", "Acquire::Check-Valid-Until=false"]);
        install.extend(["-t", "forky"]);
    }
    fs::write(rootfs.join("etc/apt/sources.list"), sources).map_err(|e| e.to_string())?;
    let long = Duration::from_secs(600);
    run_in_rootfs(rootfs, &update, long)?;
    install.extend_from_slice(img.extra_packages());
    run_in_rootfs(rootfs, &install, long)?;
    Ok(())
}

const FORKY_PIN: &str = "etc/apt/preferences.d/forky";

/// forky's apt over `debian13`; the pin removed with the sources.
fn apt_layer(img: Image, rootfs: &Path) -> Result<(), String> {
    install_extra(img, rootfs)?;
    // "apt 3.3.3 (amd64)": what the row is for is an apt newer than trixie's.
    let v = run_in_rootfs(rootfs, &["apt-get", "--version"], Duration::from_secs(60))?;
    let first = v.stdout.lines().next().unwrap_or("").to_string();
    let minor = first
        .strip_prefix("apt 3.")
        .and_then(|r| r.split('.').next())
        .and_then(|m| m.parse::<u32>().ok());
    if !minor.is_some_and(|m| m >= 1) {
        return Err(format!("forky's apt is {first:?}, not 3.1 or later"));
    }
    let _ = fs::remove_file(rootfs.join(FORKY_PIN));
    seal(rootfs)
}

/// The rpm tools over a Debian root: `img`'s packages, rpm's database
/// where RHEL keeps it, the base declared to rpm; sealed.
fn rpm_layer(img: Image, rootfs: &Path, tmp: &Path) -> Result<(), String> {
    install_extra(img, rootfs)?;
    if img == Image::Dnf5 {
        dnf5_as_on_fedora(rootfs)?;
    }

    // rpm's database where RHEL and SUSE keep it.
    let macros = rootfs.join("etc/rpm/macros");
    fs::create_dir_all(macros.parent().unwrap()).map_err(|e| e.to_string())?;
    fs::write(
        &macros,
        "# Container test image: keep the rpm database where RHEL and SUSE keep it\n\
         # (Debian's rpm defaults to ~/.rpmdb, which depends on $HOME).\n\
         %_dbpath /var/lib/rpm\n",
    )
    .map_err(|e| e.to_string())?;
    let short = Duration::from_secs(120);
    run_in_rootfs(rootfs, &["rpm", "--initdb"], short)?;
    let dbpath = run_in_rootfs(rootfs, &["rpm", "--eval", "%{_dbpath}"], short)?;
    if dbpath.stdout.trim() != "/var/lib/rpm" {
        return Err(format!(
            "rpm's dbpath is {:?} despite /etc/rpm/macros",
            dbpath.stdout.trim()
        ));
    }

    // What the dpkg-installed base provides, declared to rpm.
    let ca = run_in_rootfs(
        rootfs,
        &["dpkg-query", "-W", "-f=${Version}", "ca-certificates"],
        short,
    )?;
    let mut provides = testkit::rpmbase::library_provides(
        rootfs,
        &[&format!("/usr/lib/{}-linux-gnu", std::env::consts::ARCH)],
    );
    provides.extend([
        "/bin/sh".to_string(),
        "/usr/bin/sh".to_string(),
        "/bin/bash".to_string(),
        // Declared by glibc's own spec on RPM distributions; Debian's
        // ld.so supports DT_GNU_HASH as well.
        "rtld(GNU_HASH)".to_string(),
        format!("ca-certificates = {}", ca.stdout.trim()),
    ]);
    let stub = testkit::rpmbase::build_provides_rpm(
        "debian-base-system",
        if img == Image::Dnf5 { "13" } else { "12" },
        "What the dpkg-installed Debian base of this test image provides",
        &provides,
        tmp,
    );
    let inside = format!("/var/tmp/{}", stub.file_name().unwrap().to_string_lossy());
    fs::copy(&stub, rootfs.join(inside.trim_start_matches('/'))).map_err(|e| e.to_string())?;
    run_in_rootfs(rootfs, &["rpm", "-i", &inside], short)?;
    let _ = fs::remove_file(rootfs.join(inside.trim_start_matches('/')));
    let _ = fs::remove_file(&stub);
    seal(rootfs)
}

/// `dnf` is dnf5 (Fedora 41 and later); libdnf5's `local` plugin, which
/// Fedora ships in a package of its own, disabled (Debian enables it, and
/// without `createrepo_c` it fails every transaction with exit 1).
fn dnf5_as_on_fedora(rootfs: &Path) -> Result<(), String> {
    std::os::unix::fs::symlink("dnf5", rootfs.join("usr/bin/dnf")).map_err(|e| e.to_string())?;
    let conf = rootfs.join("etc/dnf/libdnf5-plugins/local.conf");
    let text = fs::read_to_string(&conf).map_err(|e| format!("{}: {e}", conf.display()))?;
    let off = text.replace("enabled = host-only", "enabled = 0");
    if off == text {
        return Err(format!(
            "{} has no `enabled = host-only`:\n{text}",
            conf.display()
        ));
    }
    fs::write(&conf, off).map_err(|e| e.to_string())
}

/// No Debian sources, lists or downloaded packages left in the image.
fn seal(rootfs: &Path) -> Result<(), String> {
    run_in_rootfs(rootfs, &["apt-get", "clean"], Duration::from_secs(120))?;
    fs::write(
        rootfs.join("etc/apt/sources.list"),
        "# Emptied by the container test image recipe: the tests install only\n\
         # from their own loopback repositories.\n",
    )
    .map_err(|e| e.to_string())?;
    let lists = rootfs.join("var/lib/apt/lists");
    if let Ok(rd) = fs::read_dir(&lists) {
        for e in rd.filter_map(|e| e.ok()) {
            if e.file_type().map(|t| t.is_file()).unwrap_or(false) && e.file_name() != "lock" {
                let _ = fs::remove_file(e.path());
            }
        }
    }
    Ok(())
}

/// Can the Debian mirror be reached (only needed to build images)?
pub fn mirror_reachable() -> Result<(), String> {
    use std::net::{TcpStream, ToSocketAddrs};
    let m = mirror();
    let host_port = m
        .strip_prefix("http://")
        .ok_or_else(|| format!("the mirror {m} must be an http:// URL"))?
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let with_port = if host_port.contains(':') {
        host_port.clone()
    } else {
        format!("{host_port}:80")
    };
    let addrs: Vec<_> = with_port
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host_port}: {e}"))?
        .collect();
    for a in &addrs {
        if TcpStream::connect_timeout(a, Duration::from_secs(10)).is_ok() {
            return Ok(());
        }
    }
    Err(format!("cannot connect to {with_port} ({addrs:?})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipes_differ_and_hash_stably() {
        assert_eq!(fnv1a(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a(b"a"), 0xaf63dc4c8601ec8c);
        assert_ne!(Image::Dnf.dir(), Image::Zypper.dir());
        assert_ne!(Image::Apt3.dir(), Image::Dnf5.dir());
        assert!(Image::Apt3.recipe().contains("install -t forky"));
        assert!(Image::Dnf
            .recipe()
            .starts_with(&Image::Debian.recipe()[..40]));
    }
}
