//! Integrity of an installed package's executables, as the package
//! database recorded them: `dpkg --verify` (apt) and `rpm -V` (dnf, zypper).
//!
//! Only the package's executables are judged: files in a `bin` or `sbin`
//! directory (`/usr/bin/teleport`, `/usr/local/bin/tsh`,
//! `/opt/teleport/system/bin/tbot`), or otherwise recorded (rpm) or found
//! (dpkg) as executable regular files. Configuration files (`c`), documents
//! (`d`, `l`, `r`), ghost and artifact files are never reported, nor are
//! differences of modification time alone: an administrator may edit a
//! configuration, a minimal image may leave the documents out, and an mtime
//! says nothing about content.
//!
//! What each tool can see:
//!
//! | check              | `dpkg --verify`      | `rpm -V`              |
//! |--------------------|----------------------|-----------------------|
//! | missing            | yes                  | yes                   |
//! | content (digest)   | yes (md5)            | yes (file digest)     |
//! | size               | no                   | yes                   |
//! | mode, owner, link  | no                   | yes                   |
//!
//! Exit codes (measured, dpkg 1.21.23 and rpm 4.18.0): `dpkg --verify`
//! exits **0 whether or not it found problems** (1 when the package is not
//! installed), so its output is what counts; `rpm -V` exits 1 when it found
//! problems *and* when the package is not installed ("package X is not
//! installed" on stdout).
//!
//! The output is parsed strictly: a line that is not in the documented
//! format is an error, never silently skipped.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// One problem with one file of an installed package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProblem {
    /// The file as the target system sees it (`/usr/bin/teleport`).
    pub path: PathBuf,
    pub what: FileFault,
}

/// What is wrong with a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFault {
    /// The file is gone (or its metadata cannot be read).
    Missing,
    /// The file is there but is not what the package installed. At least
    /// one field is true.
    Changed {
        /// The content differs: its digest (dpkg: md5sum; rpm: the
        /// package's file digest).
        digest: bool,
        /// The size differs (rpm only).
        size: bool,
        /// The permissions or the file type differ (rpm only; rpm's `M`,
        /// and `P` for file capabilities).
        mode: bool,
        /// The owner or the group differs (rpm only).
        owner: bool,
        /// A symbolic link points elsewhere (rpm only).
        link: bool,
        /// A check could not be done (`?`: e.g. the file cannot be read).
        unverified: bool,
    },
}

impl FileFault {
    /// The content differs (the digest), nothing else known.
    pub const CONTENT: FileFault = FileFault::Changed {
        digest: true,
        size: false,
        mode: false,
        owner: false,
        link: false,
        unverified: false,
    };

    /// The file could not be read to check it.
    pub const UNREADABLE: FileFault = FileFault::Changed {
        digest: false,
        size: false,
        mode: false,
        owner: false,
        link: false,
        unverified: true,
    };

    /// Missing, or its content (digest, size or link target) changed.
    pub fn content_changed(&self) -> bool {
        match *self {
            FileFault::Missing => true,
            FileFault::Changed {
                digest, size, link, ..
            } => digest || size || link,
        }
    }
}

impl fmt::Display for FileFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FileFault::Missing => f.write_str("missing"),
            FileFault::Changed {
                digest,
                size,
                mode,
                owner,
                link,
                unverified,
            } => {
                let parts: Vec<&str> = [
                    (size, "size"),
                    (digest, "content"),
                    (mode, "mode"),
                    (owner, "owner"),
                    (link, "link target"),
                    (unverified, "could not be checked"),
                ]
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, s)| *s)
                .collect();
                write!(f, "changed ({})", parts.join(", "))
            }
        }
    }
}

impl fmt::Display for FileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.what)
    }
}

/// One line of `dpkg --verify` or `rpm -V` output, before the executable
/// filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyLine {
    pub path: PathBuf,
    /// The attribute marker: `c` config, `d` doc, `g` ghost, `l` license,
    /// `r` readme, `a` artifact; `None` for an ordinary file.
    pub attr: Option<char>,
    /// `None`: only differences that do not count (mtime) failed.
    pub fault: Option<FileFault>,
}

impl VerifyLine {
    /// An ordinary file (not config, doc, ghost, ...) with a fault that
    /// counts.
    pub fn counts(&self) -> bool {
        self.attr.is_none() && self.fault.is_some()
    }
}

fn parse_error(tool: &str, line: &str, why: &str) -> Error {
    Error::Parse {
        what: format!("{tool} output"),
        detail: format!("{why}: {line:?}"),
    }
}

/// `<attr> <path>` after the result column: one attribute character or a
/// space, one space, then an absolute path. A trailing ` (error)` is
/// removed from `missing` lines (dpkg and rpm add the errno text when the
/// error is not "no such file").
fn attr_and_path(
    tool: &str,
    line: &str,
    rest: &str,
    attrs: &str,
    missing: bool,
) -> Result<(Option<char>, PathBuf)> {
    let mut chars = rest.chars();
    let a = chars
        .next()
        .ok_or_else(|| parse_error(tool, line, "no attribute column"))?;
    let attr = match a {
        ' ' => None,
        c if attrs.contains(c) => Some(c),
        _ => return Err(parse_error(tool, line, "unknown attribute marker")),
    };
    if chars.next() != Some(' ') {
        return Err(parse_error(tool, line, "no space before the path"));
    }
    let mut path = chars.as_str();
    if missing && path.ends_with(')') {
        if let Some(i) = path.rfind(" (") {
            path = &path[..i];
        }
    }
    if !path.starts_with('/') {
        return Err(parse_error(tool, line, "the path is not absolute"));
    }
    Ok((attr, PathBuf::from(path)))
}

/// Parse `dpkg --verify --verify-format=rpm` output:
///
/// ```text
/// ??5?????? c /etc/teleport/t.conf
/// ??5??????   /usr/bin/teleport
/// missing     /usr/share/doc/tp/README
/// missing   c /etc/x (Permission denied)
/// ```
///
/// dpkg checks only the md5sum (column 3); the other columns are always
/// `?`. Its only attribute is `c` (conffile).
pub fn parse_dpkg_verify(out: &str) -> Result<Vec<VerifyLine>> {
    const TOOL: &str = "dpkg --verify";
    let mut v = Vec::new();
    for line in out.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("missing   ") {
            let (attr, path) = attr_and_path(TOOL, line, rest, "c", true)?;
            v.push(VerifyLine {
                path,
                attr,
                fault: Some(FileFault::Missing),
            });
            continue;
        }
        let (Some(flags), Some(rest)) = (line.get(..9), line.get(9..)) else {
            return Err(parse_error(TOOL, line, "too short"));
        };
        let rest = rest
            .strip_prefix(' ')
            .ok_or_else(|| parse_error(TOOL, line, "no space after the result column"))?;
        let b = flags.as_bytes();
        if !b.iter().all(|c| b"?.5".contains(c)) {
            return Err(parse_error(TOOL, line, "unknown result characters"));
        }
        let digest = b[2] == b'5';
        if b.iter().enumerate().any(|(i, c)| i != 2 && *c == b'5') {
            return Err(parse_error(TOOL, line, "a check result out of place"));
        }
        let (attr, path) = attr_and_path(TOOL, line, rest, "c", false)?;
        v.push(VerifyLine {
            path,
            attr,
            fault: digest.then_some(FileFault::CONTENT),
        });
    }
    Ok(v)
}

/// rpm's nine verify columns, in order.
const RPM_FLAGS: &[u8; 9] = b"SM5DLUGTP";

/// Parse `rpm -V` output:
///
/// ```text
/// S.5....T.  c /etc/tp/t.conf
/// .M.......    /opt/tp/helper
/// SM5....T.    /usr/bin/helperlink
/// missing     /usr/bin/teleport
/// missing   d /usr/share/doc/tp/README
/// ```
///
/// Columns: `S` size, `M` mode, `5` digest, `D` device, `L` link, `U`
/// user, `G` group, `T` mtime, `P` capabilities; `.` passed, `?` not
/// checked. Attributes: `c d g l r a`. A line whose only failure is `T`
/// (or `D`, which has no meaning for regular files) has no fault.
pub fn parse_rpm_verify(out: &str) -> Result<Vec<VerifyLine>> {
    const TOOL: &str = "rpm -V";
    const ATTRS: &str = "cdglra";
    let mut v = Vec::new();
    for line in out.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("missing   ") {
            let (attr, path) = attr_and_path(TOOL, line, rest, ATTRS, true)?;
            v.push(VerifyLine {
                path,
                attr,
                fault: Some(FileFault::Missing),
            });
            continue;
        }
        let (Some(flags), Some(rest)) = (line.get(..9), line.get(9..)) else {
            return Err(parse_error(TOOL, line, "too short"));
        };
        let rest = rest
            .strip_prefix("  ")
            .ok_or_else(|| parse_error(TOOL, line, "no two spaces after the result column"))?;
        let b = flags.as_bytes();
        let mut failed = [false; 9];
        let mut unverified = false;
        for (i, c) in b.iter().enumerate() {
            match *c {
                b'.' => {}
                b'?' => unverified = true,
                c if c == RPM_FLAGS[i] => failed[i] = true,
                _ => return Err(parse_error(TOOL, line, "unknown result characters")),
            }
        }
        let (attr, path) = attr_and_path(TOOL, line, rest, ATTRS, false)?;
        let [size, mode, digest, _dev, link, user, group, _mtime, caps] = failed;
        let fault = (size || mode || digest || link || user || group || caps || unverified)
            .then_some(FileFault::Changed {
                digest,
                size,
                mode: mode || caps,
                owner: user || group,
                link,
                unverified,
            });
        v.push(VerifyLine { path, attr, fault });
    }
    Ok(v)
}

/// Whether `path` lies in a `bin` or `sbin` directory (any depth:
/// `/usr/bin`, `/usr/local/sbin`, `/opt/teleport/system/bin`).
pub fn in_bin_dir(path: &Path) -> bool {
    path.parent().is_some_and(|p| {
        p.components()
            .any(|c| c.as_os_str() == "bin" || c.as_os_str() == "sbin")
    })
}

/// Keep the lines that count and concern executables: `is_exec(path)` says
/// whether a file outside `bin`/`sbin` directories is an executable.
pub fn executable_problems(
    lines: Vec<VerifyLine>,
    is_exec: impl Fn(&Path) -> bool,
) -> Vec<FileProblem> {
    lines
        .into_iter()
        .filter(|l| l.counts() && (in_bin_dir(&l.path) || is_exec(&l.path)))
        .filter_map(|l| l.fault.map(|what| FileProblem { path: l.path, what }))
        .collect()
}

/// Parse `rpm -q --qf '[%{FILEMODES:octal} %{FILENAMES}\n]'` into the
/// paths of executable regular files (any `x` bit).
pub fn rpm_executables(out: &str) -> Vec<PathBuf> {
    out.lines()
        .filter_map(|l| {
            let (mode, path) = l.split_once(' ')?;
            let mode = u32::from_str_radix(mode.trim(), 8).ok()?;
            (mode & 0o170000 == 0o100000 && mode & 0o111 != 0 && path.starts_with('/'))
                .then(|| PathBuf::from(path))
        })
        .collect()
}

/// MD5 (RFC 1321), the digest dpkg records for each file
/// (`info/<pkg>.md5sums`), computed in process so that a file can be
/// checked on its own, and in slices across runs: the state between
/// 64-byte blocks ([`Md5State`]) can be saved and resumed.
#[derive(Debug, Clone)]
pub struct Md5 {
    st: Md5State,
    buf: crate::blockbuf::BlockBuf,
}

/// The state of an [`Md5`] between blocks: what a slice of a file leaves
/// for the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Md5State {
    pub words: [u32; 4],
    /// Bytes hashed so far.
    pub len: u64,
}

impl Default for Md5State {
    fn default() -> Self {
        Md5State {
            words: [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476],
            len: 0,
        }
    }
}

const MD5_S: [u32; 16] = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
const MD5_K: [u32; 64] = [
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
];

fn md5_block(w: &mut [u32; 4], block: &[u8]) {
    let mut m = [0u32; 16];
    for (i, c) in block.chunks_exact(4).enumerate() {
        m[i] = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
    let [mut a, mut b, mut c, mut d] = *w;
    // The 64 steps written out (four rounds of 16), so that the shifts,
    // constants and message indexes are constants: 1.5-2× the throughput
    // of a loop at the release profile's opt-level "s" (`md5_speed`).
    macro_rules! step {
        ($f:expr, $a:ident, $b:ident, $c:ident, $d:ident, $i:expr, $g:expr, $s:expr) => {
            $a = $b.wrapping_add(
                $a.wrapping_add($f($b, $c, $d))
                    .wrapping_add(MD5_K[$i])
                    .wrapping_add(m[$g])
                    .rotate_left($s),
            );
        };
    }
    macro_rules! quad {
        ($f:expr, $r:expr, $q:expr, $g0:expr, $gm:expr) => {{
            const I: usize = $r * 16 + $q * 4;
            step!($f, a, b, c, d, I, ($g0 + $gm * I) % 16, MD5_S[$r * 4]);
            step!(
                $f,
                d,
                a,
                b,
                c,
                I + 1,
                ($g0 + $gm * (I + 1)) % 16,
                MD5_S[$r * 4 + 1]
            );
            step!(
                $f,
                c,
                d,
                a,
                b,
                I + 2,
                ($g0 + $gm * (I + 2)) % 16,
                MD5_S[$r * 4 + 2]
            );
            step!(
                $f,
                b,
                c,
                d,
                a,
                I + 3,
                ($g0 + $gm * (I + 3)) % 16,
                MD5_S[$r * 4 + 3]
            );
        }};
    }
    macro_rules! round {
        ($f:expr, $r:expr, $g0:expr, $gm:expr) => {
            quad!($f, $r, 0, $g0, $gm);
            quad!($f, $r, 1, $g0, $gm);
            quad!($f, $r, 2, $g0, $gm);
            quad!($f, $r, 3, $g0, $gm);
        };
    }
    let f = |b: u32, c: u32, d: u32| (b & c) | (!b & d);
    let g = |b: u32, c: u32, d: u32| (d & b) | (!d & c);
    let h = |b: u32, c: u32, d: u32| b ^ c ^ d;
    let ii = |b: u32, c: u32, d: u32| c ^ (b | !d);
    round!(f, 0, 0, 1);
    round!(g, 1, 1, 5);
    round!(h, 2, 5, 3);
    round!(ii, 3, 0, 7);
    w[0] = w[0].wrapping_add(a);
    w[1] = w[1].wrapping_add(b);
    w[2] = w[2].wrapping_add(c);
    w[3] = w[3].wrapping_add(d);
}

impl Default for Md5 {
    fn default() -> Self {
        Md5::resume(Md5State::default())
    }
}

impl Md5 {
    /// Continue from a saved state.
    pub fn resume(st: Md5State) -> Md5 {
        Md5 {
            st,
            buf: Default::default(),
        }
    }

    /// The state to save; `None` in the middle of a block (save only after
    /// a multiple of 64 bytes).
    pub fn state(&self) -> Option<Md5State> {
        self.buf.is_empty().then_some(self.st)
    }

    pub fn update(&mut self, data: &[u8]) {
        self.st.len += data.len() as u64;
        let words = &mut self.st.words;
        self.buf.feed(data, |blocks| {
            for b in blocks.chunks_exact(64) {
                md5_block(words, b);
            }
        });
    }

    /// The digest, as `md5sum` prints it (32 lowercase hex digits).
    pub fn hex(mut self) -> String {
        let tail = self.buf.padding(self.st.len, false);
        self.update(&tail);
        debug_assert!(self.buf.is_empty());
        self.st
            .words
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from dpkg 1.21.23 (Debian 12) on a package with a conffile,
    // a binary, a doc file and a symlink: binary and conffile appended to,
    // doc removed, another executable chmod 644 (dpkg does not see it).
    const DPKG: &str = "??5?????? c /etc/teleport/t.conf\n??5??????   /usr/bin/teleport\nmissing     /usr/share/doc/tp/README\n";
    // Then the binary removed too, and the conffile.
    const DPKG2: &str = "missing   c /etc/teleport/t.conf\nmissing     /usr/bin/teleport\nmissing     /usr/share/doc/tp/README\n";
    // Captured from rpm 4.18.0: same changes, plus the symlink replaced
    // by a file.
    const RPM: &str = "S.5....T.  c /etc/tp/t.conf\n.M.......    /opt/tp/helper\nSM5....T.    /usr/bin/helperlink\nmissing     /usr/bin/teleport\nmissing   d /usr/share/doc/tp/README\n";

    fn changed(digest: bool, size: bool, mode: bool) -> FileFault {
        FileFault::Changed {
            digest,
            size,
            mode,
            owner: false,
            link: false,
            unverified: false,
        }
    }

    #[test]
    fn dpkg_lines() {
        let v = parse_dpkg_verify(DPKG).unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].attr, Some('c'));
        assert_eq!(v[0].path, PathBuf::from("/etc/teleport/t.conf"));
        assert_eq!(v[1].attr, None);
        assert_eq!(v[1].fault, Some(changed(true, false, false)));
        assert_eq!(v[2].fault, Some(FileFault::Missing));
        let p = executable_problems(v, |_| false);
        assert_eq!(
            p,
            vec![FileProblem {
                path: "/usr/bin/teleport".into(),
                what: changed(true, false, false)
            }]
        );
        let p = executable_problems(parse_dpkg_verify(DPKG2).unwrap(), |_| false);
        assert_eq!(
            p,
            vec![FileProblem {
                path: "/usr/bin/teleport".into(),
                what: FileFault::Missing
            }]
        );
        assert_eq!(p[0].to_string(), "/usr/bin/teleport: missing");
        assert!(parse_dpkg_verify("").unwrap().is_empty());
    }

    #[test]
    fn dpkg_errors_and_spaces() {
        let v = parse_dpkg_verify(
            "missing   c /etc/x (Permission denied)\n??5??????   /opt/my app/bin/x y\n",
        )
        .unwrap();
        assert_eq!(v[0].path, PathBuf::from("/etc/x"));
        assert_eq!(v[1].path, PathBuf::from("/opt/my app/bin/x y"));
        assert!(in_bin_dir(&v[1].path));
    }

    #[test]
    fn dpkg_output_is_parsed_strictly() {
        for bad in [
            "??5??????  /usr/bin/x",    // attribute column missing
            "??5?????? x /usr/bin/x",   // unknown attribute
            "??X??????   /usr/bin/x",   // unknown result
            "5????????   /usr/bin/x",   // result out of place
            "??5??????   usr/bin/x",    // relative path
            "missing /usr/bin/x",       // short padding
            "dpkg: warning: something", // anything else
            "??5",
        ] {
            assert!(parse_dpkg_verify(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rpm_lines() {
        let v = parse_rpm_verify(RPM).unwrap();
        assert_eq!(v.len(), 5);
        assert_eq!(v[0].attr, Some('c'));
        assert_eq!(v[0].fault, Some(changed(true, true, false)));
        assert_eq!(v[1].fault, Some(changed(false, false, true)));
        assert_eq!(v[2].fault, Some(changed(true, true, true)));
        assert_eq!(v[3].fault, Some(FileFault::Missing));
        assert_eq!(v[4].attr, Some('d'));
        let p = executable_problems(v, |p| p == Path::new("/opt/tp/helper"));
        let paths: Vec<_> = p.iter().map(|x| x.path.display().to_string()).collect();
        assert_eq!(
            paths,
            ["/opt/tp/helper", "/usr/bin/helperlink", "/usr/bin/teleport"]
        );
        assert_eq!(p[0].to_string(), "/opt/tp/helper: changed (mode)");
        assert_eq!(
            p[1].to_string(),
            "/usr/bin/helperlink: changed (size, content, mode)"
        );
    }

    #[test]
    fn rpm_mtime_only_and_unverified() {
        let v =
            parse_rpm_verify(".......T.    /usr/bin/teleport\n..?......    /usr/bin/x\n").unwrap();
        assert_eq!(v[0].fault, None);
        assert!(!v[0].counts());
        assert!(matches!(
            v[1].fault,
            Some(FileFault::Changed {
                unverified: true,
                digest: false,
                ..
            })
        ));
        let v = parse_rpm_verify("....L....    /usr/bin/t\n.....UG..    /usr/sbin/u\n").unwrap();
        assert!(v[0].fault.unwrap().content_changed());
        assert!(matches!(
            v[1].fault,
            Some(FileFault::Changed { owner: true, .. })
        ));
        assert!(!v[1].fault.unwrap().content_changed());
    }

    #[test]
    fn rpm_output_is_parsed_strictly() {
        for bad in [
            "S.5....T. c /etc/x",         // one space only
            "S.5....T.  x /usr/bin/x",    // unknown attribute
            "5.S....T.    /usr/bin/x",    // letters out of place
            "package x is not installed", // not a result line
            "Unsatisfied dependencies for x-1-1.x86_64:",
            "missing     relative",
        ] {
            assert!(parse_rpm_verify(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bin_directories() {
        for yes in [
            "/usr/bin/teleport",
            "/usr/local/sbin/x",
            "/opt/teleport/system/bin/tbot",
            "/bin/sh",
        ] {
            assert!(in_bin_dir(Path::new(yes)), "{yes}");
        }
        for no in [
            "/usr/lib/binx/y",
            "/etc/bin",
            "/usr/share/doc/bin.txt",
            "/bin",
        ] {
            assert!(!in_bin_dir(Path::new(no)), "{no}");
        }
    }

    #[test]
    fn rpm_modes() {
        let out = "100644 /etc/tp/t.conf\n100755 /opt/tp/helper\n120777 /usr/bin/helperlink\n100755 /usr/bin/teleport\n40755 /usr/lib/x\n";
        assert_eq!(
            rpm_executables(out),
            vec![
                PathBuf::from("/opt/tp/helper"),
                PathBuf::from("/usr/bin/teleport")
            ]
        );
    }

    #[test]
    fn md5_known_answers_and_resumption() {
        let md5 = |d: &[u8]| {
            let mut h = Md5::default();
            h.update(d);
            h.hex()
        };
        assert_eq!(md5(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            md5(b"The quick brown fox jumps over the lazy dog"),
            "9e107d9d372bb6826bd81d3542a419d6"
        );
        let a = vec![b'a'; 1_000_000];
        assert_eq!(md5(&a), "7707d6ae4e027c70eea2a935c2296f21");
        // fed in odd pieces, and saved and resumed between blocks
        let mut h = Md5::default();
        h.update(&a[..7]);
        assert_eq!(h.state(), None, "mid-block");
        h.update(&a[7..640]);
        let saved = h.state().unwrap();
        let mut h = Md5::resume(saved);
        for c in a[640..].chunks(1000) {
            h.update(c);
        }
        assert_eq!(h.hex(), "7707d6ae4e027c70eea2a935c2296f21");
        for n in [55, 56, 63, 64, 65, 119, 120] {
            let d = vec![b'x'; n];
            let out = std::process::Command::new("md5sum")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .and_then(|mut c| {
                    use std::io::Write;
                    c.stdin.take().unwrap().write_all(&d)?;
                    c.wait_with_output()
                });
            if let Ok(o) = out {
                let s = String::from_utf8_lossy(&o.stdout);
                assert_eq!(md5(&d), s.split(' ').next().unwrap(), "{n} bytes");
            }
        }
    }

    /// `cargo test --release -p teleport-upgrade-backends --lib md5_speed -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn md5_speed() {
        let data: Vec<u8> = (0..64u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let t = std::time::Instant::now();
        let mut h = Md5::default();
        h.update(&data);
        let d = h.hex();
        let s = t.elapsed().as_secs_f64();
        println!("md5: {:.0} MB/s ({d})", data.len() as f64 / s / 1e6);
    }
}
