//! dpkg's package database read in process: `<admindir>/status`, the
//! documented deb822 format (dpkg(1), deb-control(5)), one paragraph per
//! package with `Package`, `Status: <want> <flag> <status>`, `Version` and
//! `Architecture`.
//!
//! Saves the `dpkg-query` processes a no-op run would otherwise fork (each a
//! few milliseconds, growing with the size of the database). It is used only
//! when the database is at rest: when dpkg's journal (`<admindir>/updates/`)
//! holds entries not yet folded into `status` (a dpkg killed mid-run, or
//! running now), `status` alone is not the truth, and the caller asks
//! `dpkg-query`, which applies the journal.
//!
//! **Read once, or not at all** ([`entries`]): a run asks several questions
//! of the agent's entries (installed version, held?, an interrupted
//! transaction?), and `status` is 0.5-4 MB on a real server. The file is
//! read and scanned at most once per run per package and per state of the
//! database: the agent's paragraphs are found by a substring search (no
//! parse of the other packages), and only they are kept, in memory with the
//! `stat` of `status` and of `updates/` they were read under. Across runs,
//! [`persist`] writes that to [`RECORD`]; a later run whose `stat` of
//! `status` and `updates/` (inode, size, modification and status-change
//! times in nanoseconds) matches the record uses the recorded entries and
//! reads nothing.
//!
//! Why that is safe: dpkg never rewrites `status` in place, it writes
//! `status-new` and renames it over `status`, so every change is a new
//! inode with new times; every journal entry dpkg adds or removes in
//! `updates/` changes that directory's modification time. The one window a
//! coarse timestamp leaves (a change within the same clock tick as the
//! `stat` that was recorded) is closed the way git closes its "racy" index
//! entries: a state whose times are less than [`RACY_SECS`] old when it
//! would be recorded is not recorded, so the next run reads the file.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::System;

/// The record of the agent's entries, as the target system sees it.
pub const RECORD: &str = "/var/lib/teleport-upgrade/dpkg-status.txt";

/// A state younger than this (seconds) is not recorded (see the module
/// documentation).
pub const RACY_SECS: i64 = 2;

/// One package as `status` records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `install`, `hold`, `deinstall`, `purge`, `unknown`.
    pub want: String,
    /// `ok` or `reinstreq`.
    pub flag: String,
    /// `installed`, `half-configured`, `unpacked`, `half-installed`,
    /// `triggers-awaited`, `triggers-pending`, `config-files`,
    /// `not-installed`.
    pub status: String,
    pub version: Option<String>,
    pub architecture: Option<String>,
}

impl Entry {
    /// The two first letters of `dpkg-query`'s `${db:Status-Abbrev}`.
    pub fn abbrev(&self) -> String {
        let w = match self.want.as_str() {
            "install" => 'i',
            "hold" => 'h',
            "deinstall" => 'r',
            "purge" => 'p',
            _ => 'u',
        };
        let s = match self.status.as_str() {
            "installed" => 'i',
            "half-configured" => 'F',
            "unpacked" => 'U',
            "half-installed" => 'H',
            "triggers-awaited" => 'W',
            "triggers-pending" => 't',
            "config-files" => 'c',
            _ => 'n',
        };
        format!("{w}{s}")
    }
}

/// Whether dpkg's journal holds entries not yet folded into `status`.
pub fn journal_pending(admindir: &Path) -> bool {
    match std::fs::read_dir(admindir.join("updates")) {
        Ok(rd) => rd.flatten().any(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            // journal entries are numbered; `tmp.i` is a partial write
            !n.is_empty() && (n.bytes().all(|b| b.is_ascii_digit()) || n.starts_with("tmp"))
        }),
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
    }
}

/// The entries of `pkg` (one per architecture) in the text of a `status`
/// file. Strict where it matters: a paragraph of `pkg` without a
/// well-formed `Status` is an error, not a guess.
///
/// Only `pkg`'s paragraphs are parsed: they are found by searching for a
/// line `Package: <pkg>` (a substring search over the text, no per-line
/// work for the other packages).
pub fn find(text: &str, pkg: &str) -> Result<Vec<Entry>, String> {
    let needle = format!("Package: {pkg}");
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find(&needle) {
        let at = from + i;
        from = at + needle.len();
        let line_start = at == 0 || text.as_bytes()[at - 1] == b'\n';
        let line_end = text[from..]
            .split('\n')
            .next()
            .is_some_and(|rest| rest.trim().is_empty());
        if !line_start || !line_end {
            continue; // another package's name, or a continuation line
        }
        let start = text[..at].rfind("\n\n").map_or(0, |j| j + 2);
        let end = text[at..].find("\n\n").map_or(text.len(), |j| at + j);
        if let Some(e) = paragraph(&text[start..end], pkg)? {
            out.push(e);
        }
        from = end;
    }
    Ok(out)
}

/// The packages a `status` text records unfinished (what `dpkg --audit`
/// lists as half-installed, unpacked, half-configured or awaiting or
/// pending triggers, and those flagged `reinstreq`), by name; `None` when
/// a paragraph has a `Status` that is not three words (dpkg must be
/// asked).
pub fn unfinished(text: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for para in text.split("\n\n") {
        let mut name = None;
        let mut status = None;
        for line in para.lines() {
            if let Some(v) = line.strip_prefix("Package:") {
                name = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Status:") {
                status = Some(v.trim());
            }
        }
        let (Some(name), Some(status)) = (name, status) else {
            continue;
        };
        let words: Vec<&str> = status.split_whitespace().collect();
        let [_, flag, state] = words.as_slice() else {
            return None;
        };
        let done = matches!(*state, "installed" | "config-files" | "not-installed");
        if !done || *flag == "reinstreq" {
            out.push(name.to_string());
        }
    }
    Some(out)
}

/// The entry of one paragraph when it is `pkg`'s.
fn paragraph(para: &str, pkg: &str) -> Result<Option<Entry>, String> {
    let mut name = None;
    let mut status = None;
    let mut version = None;
    let mut arch = None;
    for line in para.lines() {
        if line.starts_with(' ') || line.starts_with('\t') {
            continue; // continuation of a multi-line field
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k {
            "Package" => name = Some(v),
            "Status" => status = Some(v),
            "Version" => version = Some(v),
            "Architecture" => arch = Some(v),
            _ => {}
        }
    }
    if name != Some(pkg) {
        return Ok(None);
    }
    let st = status.ok_or_else(|| format!("the paragraph of {pkg} has no Status field"))?;
    let words: Vec<&str> = st.split_whitespace().collect();
    let [want, flag, status] = words.as_slice() else {
        return Err(format!("the Status of {pkg} is not three words: {st:?}"));
    };
    Ok(Some(Entry {
        want: want.to_string(),
        flag: flag.to_string(),
        status: status.to_string(),
        version: version.map(str::to_string),
        architecture: arch.map(str::to_string),
    }))
}

/// What `stat` says of a file or directory: enough to see that dpkg
/// changed it (the device number is left out: see `integrity_cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub ino: u64,
    pub size: u64,
    pub mtime: i64,
    pub mtime_nsec: i64,
    pub ctime: i64,
    pub ctime_nsec: i64,
}

impl Stamp {
    pub fn of(path: &Path) -> std::io::Result<Stamp> {
        let m = std::fs::symlink_metadata(path)?;
        Ok(Stamp {
            ino: m.ino(),
            size: m.size(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
            ctime: m.ctime(),
            ctime_nsec: m.ctime_nsec(),
        })
    }

    pub(crate) fn words(&self) -> String {
        format!(
            "{} {} {} {} {} {}",
            self.ino, self.size, self.mtime, self.mtime_nsec, self.ctime, self.ctime_nsec
        )
    }

    pub(crate) fn parse(s: &str) -> Option<Stamp> {
        let n: Vec<i64> = s
            .split(' ')
            .map(|w| w.parse().ok())
            .collect::<Option<_>>()?;
        let [ino, size, mtime, mtime_nsec, ctime, ctime_nsec] = n.as_slice() else {
            return None;
        };
        Some(Stamp {
            ino: *ino as u64,
            size: *size as u64,
            mtime: *mtime,
            mtime_nsec: *mtime_nsec,
            ctime: *ctime,
            ctime_nsec: *ctime_nsec,
        })
    }

    fn newest(&self) -> i64 {
        self.mtime.max(self.ctime)
    }
}

/// The state of dpkg's database as `stat` sees it: `status`, and the
/// journal directory `updates/` (`None` when it does not exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbState {
    pub status: Stamp,
    pub updates: Option<Stamp>,
}

impl DbState {
    /// `None` when `status` cannot be `stat`ed.
    pub fn of(admindir: &Path) -> Option<DbState> {
        Some(DbState {
            status: Stamp::of(&admindir.join("status")).ok()?,
            updates: Stamp::of(&admindir.join("updates")).ok(),
        })
    }

    fn newest(&self) -> i64 {
        self.status
            .newest()
            .max(self.updates.map_or(i64::MIN, |u| u.newest()))
    }
}

/// The agent's entries as read under one state of the database.
struct Known {
    admindir: PathBuf,
    pkg: String,
    state: DbState,
    entries: Vec<Entry>,
}

/// What this process has read (or taken from the record): at most a few
/// packages, so a list.
static KNOWN: Mutex<Vec<Known>> = Mutex::new(Vec::new());

thread_local! {
    /// Reads of `status` by this thread (for the tests).
    static READS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// How many times this thread read a `status` file.
pub fn reads_by_this_thread() -> usize {
    READS.with(|r| r.get())
}

fn known(admindir: &Path, pkg: &str, state: &DbState) -> Option<Vec<Entry>> {
    let k = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    k.iter()
        .find(|k| k.admindir == admindir && k.pkg == pkg && k.state == *state)
        .map(|k| k.entries.clone())
}

fn remember(admindir: &Path, pkg: &str, state: DbState, entries: &[Entry]) {
    let mut k = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    k.retain(|k| !(k.admindir == admindir && k.pkg == pkg));
    k.push(Known {
        admindir: admindir.to_path_buf(),
        pkg: pkg.to_string(),
        state,
        entries: entries.to_vec(),
    });
}

/// Forget what this process has read (a new "run", for the tests).
pub fn forget_known() {
    KNOWN.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

/// `pkg`'s entries in `<admindir>/status` (see the module documentation:
/// read at most once per state of the database, and not at all when the
/// record of an earlier run matches). `None` when `status` alone is not the
/// truth (dpkg's journal has pending entries), cannot be read or does not
/// parse: then `dpkg-query` must be asked.
pub fn entries(system: &System, admindir: &Path, pkg: &str) -> Option<Vec<Entry>> {
    entries_of(system, admindir, &[pkg]).and_then(|mut v| v.pop())
}

/// [`entries`] of several packages, with one read of `status` at most
/// (the agent's candidate names, looked up in turn).
pub fn entries_of(system: &System, admindir: &Path, pkgs: &[&str]) -> Option<Vec<Vec<Entry>>> {
    let state = DbState::of(admindir)?;
    let mut out: Vec<Option<Vec<Entry>>> = pkgs
        .iter()
        .map(|pkg| {
            known(admindir, pkg, &state).or_else(|| {
                let e = recorded(system, admindir, pkg, &state)?;
                tracing::debug!("dpkg's database is unchanged since it was recorded: not read");
                remember(admindir, pkg, state, &e);
                Some(e)
            })
        })
        .collect();
    if out.iter().any(Option::is_none) {
        if journal_pending(admindir) {
            tracing::debug!("dpkg's journal has pending entries: asking dpkg-query");
            return None;
        }
        READS.with(|r| r.set(r.get() + 1));
        let text = crate::fsread::read_db_text(admindir.join("status")).ok()?;
        // Kept only when nothing changed while it was read.
        let unchanged = DbState::of(admindir) == Some(state);
        for (pkg, slot) in pkgs.iter().zip(out.iter_mut()).filter(|(_, s)| s.is_none()) {
            let found = match find(&text, pkg) {
                Ok(e) => e,
                Err(e) => {
                    tracing::debug!("dpkg's status file: {e}; asking dpkg-query");
                    return None;
                }
            };
            if unchanged {
                remember(admindir, pkg, state, &found);
            }
            *slot = Some(found);
        }
    }
    out.into_iter().collect()
}

const MAGIC: &str = "teleport-upgrade dpkg-status 1";

fn record_text(admindir: &Path, state: &DbState, known: &[&Known]) -> String {
    let mut t = format!(
        "{MAGIC}\nadmindir {}\nstatus {}\nupdates {}\n",
        admindir.display(),
        state.status.words(),
        state.updates.map_or("none".into(), |u| u.words())
    );
    for k in known {
        t.push_str(&format!("package {} {}\n", k.pkg, k.entries.len()));
        for e in &k.entries {
            t.push_str(&format!(
                "entry {} {} {} {} {}\n",
                e.want,
                e.flag,
                e.status,
                e.version.as_deref().unwrap_or("-"),
                e.architecture.as_deref().unwrap_or("-")
            ));
        }
    }
    t
}

/// The entries of `pkg` in a record text, when it was made under `state`.
fn parse_record(text: &str, admindir: &Path, pkg: &str, state: &DbState) -> Option<Vec<Entry>> {
    let mut lines = text.lines();
    (lines.next()? == MAGIC).then_some(())?;
    (Path::new(lines.next()?.strip_prefix("admindir ")?) == admindir).then_some(())?;
    let status = Stamp::parse(lines.next()?.strip_prefix("status ")?)?;
    let updates = match lines.next()?.strip_prefix("updates ")? {
        "none" => None,
        u => Some(Stamp::parse(u)?),
    };
    (DbState { status, updates } == *state).then_some(())?;
    while let Some(l) = lines.next() {
        let (name, n) = l.strip_prefix("package ")?.split_once(' ')?;
        let n: usize = n.parse().ok()?;
        let mut out = Vec::with_capacity(n.min(8));
        for _ in 0..n {
            let w: Vec<&str> = lines.next()?.strip_prefix("entry ")?.split(' ').collect();
            let [want, flag, status, version, arch] = w.as_slice() else {
                return None;
            };
            let opt = |s: &str| (s != "-").then(|| s.to_string());
            out.push(Entry {
                want: want.to_string(),
                flag: flag.to_string(),
                status: status.to_string(),
                version: opt(version),
                architecture: opt(arch),
            });
        }
        if name == pkg {
            return Some(out);
        }
    }
    None
}

fn recorded(system: &System, admindir: &Path, pkg: &str, state: &DbState) -> Option<Vec<Entry>> {
    let text = crate::fsread::read_to_string(system.path(RECORD)).ok()?;
    parse_record(&text, admindir, pkg, state)
}

/// Record what this process read of dpkg's database under `system`, for
/// the next run (not in a dry run: the caller decides). Nothing is written
/// when the database changed since, when it is younger than [`RACY_SECS`]
/// at `now` (Unix seconds), or when the record already says the same.
pub fn persist(system: &System, now: i64) {
    let admindir = system.path("/var/lib/dpkg");
    let Some(state) = DbState::of(&admindir) else {
        return;
    };
    if state.newest() > now - RACY_SECS {
        tracing::debug!("dpkg's database changed just now: not recorded");
        return;
    }
    let k = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    let current: Vec<&Known> = k
        .iter()
        .filter(|k| k.admindir == admindir && k.state == state)
        .collect();
    if current.is_empty() {
        return;
    }
    let text = record_text(&admindir, &state, &current);
    let path = system.path(RECORD);
    if crate::fsread::read_to_string(&path).is_ok_and(|t| t == text) {
        return;
    }
    if let Err(e) = write_unsynced(&path, text.as_bytes()) {
        tracing::debug!(file = %path.display(), "cannot record dpkg's database state: {e}");
    }
}

/// Write a cache file atomically (a temporary file renamed over it) but
/// without fsync: after a crash it may be empty or absent, which only
/// means the next run reads `status` again.
pub fn write_unsynced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
/// The digests dpkg recorded for `pkg`'s files (`info/<pkg>.md5sums`, or
/// `info/<pkg>:<arch>.md5sums` for a multi-arch package), by absolute
/// path as the target system sees it; empty when there is no such file.
pub fn md5sums(admindir: &Path, pkg: &str) -> std::collections::HashMap<PathBuf, String> {
    let info = admindir.join("info");
    let mut text = crate::fsread::read_db_text(info.join(format!("{pkg}.md5sums"))).ok();
    if text.is_none() {
        let prefix = format!("{pkg}:");
        if let Ok(rd) = std::fs::read_dir(&info) {
            text = rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .find(|n| n.starts_with(&prefix) && n.ends_with(".md5sums"))
                .and_then(|n| crate::fsread::read_db_text(info.join(n)).ok());
        }
    }
    text.unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (sum, path) = l.split_once("  ")?;
            (sum.len() == 32 && sum.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| (Path::new("/").join(path), sum.to_ascii_lowercase()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Package: adduser\nStatus: install ok installed\nPriority: important\nVersion: 3.134\nDescription: add and remove users\n multi-line\n Package: teleport-ent\n\nPackage: teleport-ent\nStatus: hold ok half-configured\nArchitecture: amd64\nVersion: 15.4.3\nDescription: Teleport\n\nPackage: teleport\nStatus: deinstall ok config-files\nVersion: 14.0.0\n";

    /// What `dpkg --audit` would name: the half-configured agent, not the
    /// installed, config-files or a `Package:` inside a description; a
    /// `reinstreq` flag; a malformed `Status` means asking dpkg.
    #[test]
    fn unfinished_packages_as_dpkg_audit_names_them() {
        assert_eq!(unfinished(STATUS), Some(vec!["teleport-ent".to_string()]));
        let more = format!("{STATUS}\nPackage: libfoo\nStatus: install reinstreq installed\n\nPackage: bar\nStatus: install ok triggers-pending\n");
        assert_eq!(
            unfinished(&more),
            Some(vec!["teleport-ent".into(), "libfoo".into(), "bar".into()])
        );
        assert_eq!(unfinished("Package: x\nStatus: install ok\n"), None);
        assert_eq!(unfinished(""), Some(vec![]));
    }

    #[test]
    fn finds_the_package_and_its_state() {
        let e = find(STATUS, "teleport-ent").unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].abbrev(), "hF");
        assert_eq!(e[0].version.as_deref(), Some("15.4.3"));
        assert_eq!(find(STATUS, "teleport").unwrap()[0].abbrev(), "rc");
        assert_eq!(find(STATUS, "adduser").unwrap()[0].abbrev(), "ii");
        assert!(find(STATUS, "nothing").unwrap().is_empty());
        // a continuation line that looks like a field is not one
        assert_eq!(find(STATUS, "teleport-ent").unwrap().len(), 1);
    }

    #[test]
    fn a_broken_status_is_an_error() {
        assert!(find("Package: x\nVersion: 1\n", "x").is_err());
        assert!(find("Package: x\nStatus: install ok\n", "x").is_err());
    }

    /// The reference: every paragraph parsed (what `find` did before).
    fn find_by_parsing_all(text: &str, pkg: &str) -> Result<Vec<Entry>, String> {
        let mut out = Vec::new();
        for para in text.split("\n\n") {
            if let Some(e) = paragraph(para, pkg)? {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// A database of `n` real-size stanzas around the agent's.
    fn database(n: usize, agent_want: &str) -> String {
        let mut t = String::new();
        for i in 0..n {
            t.push_str(&format!(
                "Package: lib{i}-teleport-ent\nStatus: install ok installed\nVersion: 1.{i}\nArchitecture: amd64\nDescription: a library\n mentions\n Package: teleport-ent\n .\n\n"
            ));
            if i == n / 2 {
                t.push_str(&format!("Package: teleport-ent\nStatus: {agent_want} ok installed\nVersion: 15.4.3\nArchitecture: amd64\n\nPackage: teleport-ent\nStatus: deinstall ok config-files\nVersion: 15.4.1\nArchitecture: i386\n\nPackage: teleport-ent-extra\nStatus: install ok installed\nVersion: 1\n\n"));
            }
        }
        t
    }

    #[test]
    fn the_search_finds_what_parsing_every_paragraph_finds() {
        let db = database(300, "hold");
        for pkg in [
            "teleport-ent",
            "teleport-ent-extra",
            "lib7-teleport-ent",
            "teleport",
            "x",
        ] {
            assert_eq!(find(&db, pkg), find_by_parsing_all(&db, pkg), "{pkg}");
        }
        assert_eq!(find(&db, "teleport-ent").unwrap().len(), 2);
        for text in [
            STATUS,
            "Package: x\nVersion: 1\n",
            "Package: x",
            "Package: x \n",
        ] {
            assert_eq!(find(text, "x"), find_by_parsing_all(text, "x"), "{text:?}");
        }
    }

    fn admin(db: &str) -> (tempfile::TempDir, System, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let system = System::rooted(d.path()).unwrap();
        let admindir = system.path("/var/lib/dpkg");
        std::fs::create_dir_all(admindir.join("updates")).unwrap();
        std::fs::write(admindir.join("status"), db).unwrap();
        (d, system, admindir)
    }

    /// As dpkg writes it: a new file renamed over `status`.
    fn rewrite(admindir: &Path, db: &str) {
        std::fs::write(admindir.join("status-new"), db).unwrap();
        std::fs::rename(admindir.join("status-new"), admindir.join("status")).unwrap();
    }

    fn want(system: &System, admindir: &Path) -> String {
        entries(system, admindir, "teleport-ent").unwrap()[0]
            .want
            .clone()
    }

    #[test]
    fn status_is_read_once_per_state_of_the_database() {
        let (_d, sys, admindir) = admin(&database(50, "hold"));
        let before = reads_by_this_thread();
        assert_eq!(want(&sys, &admindir), "hold");
        assert_eq!(want(&sys, &admindir), "hold");
        assert!(entries(&sys, &admindir, "teleport-ent").unwrap()[1].status == "config-files");
        assert_eq!(reads_by_this_thread() - before, 1);
        rewrite(&admindir, &database(50, "install"));
        assert_eq!(want(&sys, &admindir), "install", "a change is seen");
        assert_eq!(reads_by_this_thread() - before, 2);
    }

    #[test]
    fn a_later_run_uses_the_record_until_the_database_changes() {
        let (_d, sys, admindir) = admin(&database(50, "hold"));
        assert_eq!(want(&sys, &admindir), "hold");
        let now = DbState::of(&admindir).unwrap().newest();
        persist(&sys, now);
        assert!(!sys.path(RECORD).exists(), "a state of this second is racy");
        persist(&sys, now + RACY_SECS + 1);
        assert!(sys.path(RECORD).exists());
        // the next run: nothing in memory, the record matches
        forget_known();
        let before = reads_by_this_thread();
        assert_eq!(want(&sys, &admindir), "hold");
        assert_eq!(entries(&sys, &admindir, "teleport-ent").unwrap().len(), 2);
        assert_eq!(reads_by_this_thread(), before, "nothing read");
        // another package is not in the record: read
        assert!(entries(&sys, &admindir, "teleport-ent-extra").is_some());
        assert_eq!(reads_by_this_thread(), before + 1);
        // dpkg changes the database: seen, even with the same size
        forget_known();
        rewrite(&admindir, &database(50, "purge"));
        assert_eq!(want(&sys, &admindir), "purge");
        assert_eq!(reads_by_this_thread(), before + 2);
    }

    #[test]
    fn a_journal_entry_is_seen_through_the_record() {
        let (_d, sys, admindir) = admin(&database(5, "hold"));
        assert_eq!(want(&sys, &admindir), "hold");
        persist(&sys, i64::MAX / 2);
        let state = DbState::of(&admindir).unwrap();
        let text = std::fs::read_to_string(sys.path(RECORD)).unwrap();
        assert!(parse_record(&text, &admindir, "teleport-ent", &state).is_some());
        forget_known();
        std::fs::write(admindir.join("updates/0001"), "Package: teleport-ent\n").unwrap();
        assert_eq!(entries(&sys, &admindir, "teleport-ent"), None);
        // a record of another root or a damaged one is not used
        assert!(parse_record(&text, Path::new("/elsewhere"), "teleport-ent", &state).is_none());
        let cut = &text[..text.len() - 10];
        assert!(parse_record(cut, &admindir, "teleport-ent", &state).is_none());
    }

    #[test]
    fn md5sums_as_dpkg_records_them() {
        let (_d, _sys, admindir) = admin("");
        std::fs::create_dir_all(admindir.join("info")).unwrap();
        assert!(md5sums(&admindir, "teleport-ent").is_empty());
        std::fs::write(
            admindir.join("info/teleport-ent:amd64.md5sums"),
            "d41d8cd98f00b204e9800998ecf8427e  usr/bin/teleport\nnot a line\n0123  usr/bin/short\n",
        )
        .unwrap();
        let m = md5sums(&admindir, "teleport-ent");
        assert_eq!(m.len(), 1);
        assert_eq!(
            m[Path::new("/usr/bin/teleport")],
            "d41d8cd98f00b204e9800998ecf8427e"
        );
    }
}
