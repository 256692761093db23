//! The space gate of an install: before the download, the package's
//! download and installed sizes, as the repository's metadata says them
//! (read through the package manager: [`backends::Backend::package_sizes`]),
//! against the free space where they go: the package cache
//! ([`backends::Backend::download_dir`]) and the filesystems of the
//! agent's installed executables (under `--root`, the root's), and the
//! package of the version replaced where it is kept for an offline
//! rollback ([`super::kept`]) unless it is kept already or the package
//! manager's cache holds it. When they do not fit, with a margin, the
//! install is refused before it starts.
//!
//! [`places`] observes (statvfs); [`judge`] decides, pure.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use backends::{Backend, PackageSizes, PkgName};

const MIB: u64 = 1024 * 1024;

/// The margin kept free beyond what the package needs on a filesystem: a
/// tenth of it, and at least this much (the package manager's own lists,
/// logs and database grow too).
pub const MARGIN_MIN: u64 = 16 * MIB;

/// One place the package's bytes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// What goes there ("the download", "the installed files").
    pub what: &'static str,
    /// The directory, as shown to the operator.
    pub path: String,
    /// The filesystem it is on (`st_dev`).
    pub dev: u64,
    /// Bytes free there for an unprivileged write (`f_bavail`).
    pub free: u64,
    /// Bytes the package needs there.
    pub need: u64,
}

/// The margin for `need` bytes.
pub fn margin(need: u64) -> u64 {
    (need / 10).max(MARGIN_MIN)
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / MIB as f64)
}

/// Whether every filesystem has room for what goes there (the places on
/// one filesystem add up) plus the margin: the line to log, or the refusal
/// naming sizes and paths.
pub fn judge(places: &[Place]) -> Result<String, String> {
    let mut devs: Vec<u64> = places.iter().map(|p| p.dev).collect();
    devs.sort_unstable();
    devs.dedup();
    let mut short = Vec::new();
    let mut fine = Vec::new();
    for dev in devs {
        let on: Vec<&Place> = places.iter().filter(|p| p.dev == dev).collect();
        let need: u64 = on.iter().map(|p| p.need).sum();
        let free = on.iter().map(|p| p.free).min().unwrap_or(0);
        let what = on
            .iter()
            .map(|p| format!("{} {} in {}", p.what, mib(p.need), p.path))
            .collect::<Vec<_>>()
            .join(" and ");
        let line = format!(
            "{what}: {} free there, {} needed with a margin of {}",
            mib(free),
            mib(need.saturating_add(margin(need))),
            mib(margin(need))
        );
        if free < need.saturating_add(margin(need)) {
            short.push(line);
        } else {
            fine.push(line);
        }
    }
    if short.is_empty() {
        Ok(fine.join("; "))
    } else {
        Err(short.join("; "))
    }
}

/// The nearest existing directory at or above `p`.
fn existing(p: &Path) -> Option<&Path> {
    p.ancestors().find(|a| a.is_dir())
}

/// Whether `a` and (the nearest existing directory at or above) `b` are on
/// one filesystem.
pub fn same_filesystem(a: &Path, b: &Path) -> bool {
    let dev = |p: &Path| {
        existing(p)
            .and_then(|d| std::fs::metadata(d).ok())
            .map(|m| m.dev())
    };
    let da = std::fs::metadata(a).ok().map(|m| m.dev());
    da.is_some() && da == dev(b)
}

/// Free bytes and device of the filesystem holding `p`.
fn statfs(p: &Path) -> Result<(u64, u64), String> {
    let dir = existing(p).ok_or_else(|| format!("{}: no such directory", p.display()))?;
    let dev = std::fs::metadata(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .dev();
    let s = nix::sys::statvfs::statvfs(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok((
        (s.blocks_available() as u64).saturating_mul(s.fragment_size() as u64),
        dev,
    ))
}

/// The places the package's bytes go, observed: the download in the
/// package cache, the installed files beside the agent's executables now
/// (`/usr` when the backend cannot tell).
pub fn places(
    b: &dyn Backend,
    pkg: &PkgName,
    sizes: PackageSizes,
    kept: Option<PathBuf>,
) -> Result<Vec<Place>, String> {
    let mut dirs: Vec<(&'static str, PathBuf, u64)> = Vec::new();
    if let Some(d) = b.download_dir() {
        dirs.push(("the download", d, sizes.download));
    }
    if let Some(d) = kept {
        // The version replaced, kept until the new one is verified: about
        // the size of the new one's download.
        dirs.push(("the kept package of the version before", d, sizes.download));
    }
    let mut installed: Vec<PathBuf> = b
        .executables(pkg)
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e.parent().map(|d| b.system().path(d)))
        .collect();
    if installed.is_empty() {
        installed.push(b.system().path("/usr"));
    }
    installed.sort();
    installed.dedup();
    let mut seen_devs = Vec::new();
    let mut out = Vec::new();
    for (what, d, need) in dirs {
        let (free, dev) = statfs(&d)?;
        out.push(place(what, &d, dev, free, need));
    }
    for d in installed {
        let (free, dev) = statfs(&d)?;
        // The installed files count once per filesystem.
        if !seen_devs.contains(&dev) {
            seen_devs.push(dev);
            out.push(place("the installed files", &d, dev, free, sizes.installed));
        }
    }
    Ok(out)
}

/// A place, named by its path on this host (inside the root under
/// `--root`: where the operator frees space).
fn place(what: &'static str, d: &Path, dev: u64, free: u64, need: u64) -> Place {
    Place {
        what,
        path: d.display().to_string(),
        dev,
        free,
        need,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(what: &'static str, dev: u64, free: u64, need: u64) -> Place {
        Place {
            what,
            path: format!("/fs{dev}"),
            dev,
            free,
            need,
        }
    }

    #[test]
    fn the_places_on_one_filesystem_add_up_with_the_margin() {
        // 200 MiB download and 500 MiB installed on one filesystem with
        // 760 MiB free: 700 + 70 (a tenth) do not fit.
        let one = [
            p("the download", 1, 760 * MIB, 200 * MIB),
            p("the installed files", 1, 760 * MIB, 500 * MIB),
        ];
        let e = judge(&one).unwrap_err();
        assert!(e.contains("the download 200.0 MiB in /fs1"), "{e}");
        assert!(e.contains("760.0 MiB free there, 770.0 MiB needed"), "{e}");
        // On two filesystems each fits.
        let two = [
            p("the download", 1, 760 * MIB, 200 * MIB),
            p("the installed files", 2, 760 * MIB, 500 * MIB),
        ];
        assert!(judge(&two).is_ok());
        // A small package still needs the least margin.
        assert!(judge(&[p("the download", 1, 16 * MIB, MIB)]).is_err());
        assert!(judge(&[p("the download", 1, 17 * MIB, MIB)]).is_ok());
        // Only the short filesystem is named.
        let e = judge(&[
            p("the download", 1, MIB, 2 * MIB),
            p("the installed files", 2, 900 * MIB, 2 * MIB),
        ])
        .unwrap_err();
        assert!(e.contains("/fs1") && !e.contains("/fs2"), "{e}");
    }
}
