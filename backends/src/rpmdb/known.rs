//! The agent's rows of the rpm database, asked of rpm once per state of the
//! database, and not at all when the record of an earlier run matches: the
//! rpm counterpart of [`crate::dpkg_status`].
//!
//! A no-op asks several questions of the agent's packages (which of the
//! candidates is installed, its version, an interrupted transaction's
//! second instance?); each was an `rpm -q` process (plus `rpm --eval` for
//! the database's location), about 5-15 ms of CPU each. Here one query
//! answers them all: `NAME, [E:]V-R, ARCH, INSTALLTIME` of every installed
//! instance of the names asked, kept in memory with the `stat` of the
//! database directory and of every file in it. Across runs, [`persist`]
//! writes that to [`RECORD`]; a later run whose `stat`s match uses the
//! recorded rows and starts no rpm process.
//!
//! Why that is safe: every backend of rpm's database (sqlite with its
//! write-ahead log, ndb, bdb) writes a file in that directory for every
//! change, which moves that file's modification and status-change times
//! (or, for a new or removed file, the directory's). A change within the
//! clock tick of the recorded `stat` is closed as in `dpkg_status`: a state
//! younger than [`crate::dpkg_status::RACY_SECS`] is not recorded.
//!
//! rpm's default database location (`rpm --eval %{_dbpath}`, a process) is
//! recorded beside, keyed by the `stat` of rpm and of every file rpm reads
//! macros from ([`config_key`]): it changes only with them.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::cmd::Runner;
use crate::dpkg_status::{Stamp, RACY_SECS};
use crate::{Error, Result, System};

/// The record, as the target system sees it.
pub const RECORD: &str = "/var/lib/teleport-upgrade/rpmdb-query.txt";

const MAGIC: &str = "teleport-upgrade rpmdb-query 1";

/// One installed instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub name: String,
    /// `[E:]V-R`, with the epoch only when rpm reports one (`0:` kept as
    /// rpm prints it; callers strip it).
    pub evr: String,
    pub arch: String,
    pub installtime: i64,
}

/// The query's format: one line per installed instance.
pub const QUERYFORMAT: &str =
    "%{NAME}\\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\t%{ARCH}\\t%{INSTALLTIME}\\n";

/// Parse the query's output for `names`: the rows, or what is wrong.
pub fn parse_rows(names: &[&str], out: &str) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    let mut missing = 0;
    for line in out.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let w: Vec<&str> = line.split('\t').collect();
        match w.as_slice() {
            [name, evr, arch, t] if names.contains(name) => rows.push(Row {
                name: name.to_string(),
                evr: evr.to_string(),
                arch: arch.to_string(),
                installtime: t
                    .parse()
                    .map_err(|_| format!("the install time in {line:?}"))?,
            }),
            [one] if one.starts_with("package ") && one.ends_with(" is not installed") => {
                missing += 1
            }
            _ => return Err(format!("unexpected line {line:?}")),
        }
    }
    if rows.is_empty() && missing != names.len() {
        return Err(format!("no answer for {names:?} in {out:?}"));
    }
    Ok(rows)
}

/// What `stat` says of the database directory (`.`) and of every entry
/// in it that holds data, by name.
///
/// A reader (`rpm -q`) changes some files without changing the data:
/// sqlite's shared-memory index of its log (`*-shm`) and bdb's region
/// files (`__db.*`) are rewritten by every open, rpm's lock file
/// (`.rpm.lock`) is only locked, and sqlite, run as root, re-owns its
/// write-ahead log on every open (`fchown`), which moves that file's
/// status-change time only. Those are left out (the log's status-change
/// time too): every write of data still moves the modification time of
/// the log or of the database file it writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbState(Vec<(String, Stamp)>);

/// Whether `name` in the database directory changes when rpm only reads.
fn reader_touched(name: &str) -> bool {
    name == ".rpm.lock" || name.ends_with("-shm") || name.starts_with("__db.")
}

impl DbState {
    /// `None` when the directory cannot be read.
    pub fn of(dir: &Path) -> Option<DbState> {
        let mut v = vec![(".".to_string(), Stamp::of(dir).ok()?)];
        for e in std::fs::read_dir(dir).ok()? {
            let e = e.ok()?;
            let name = e.file_name().to_string_lossy().into_owned();
            if reader_touched(&name) {
                continue;
            }
            let mut st = Stamp::of(&e.path()).ok()?;
            if name.ends_with("-wal") {
                (st.ctime, st.ctime_nsec) = (0, 0);
            }
            v.push((name, st));
        }
        v.sort_by(|a, b| a.0.cmp(&b.0));
        Some(DbState(v))
    }

    fn newest(&self) -> i64 {
        self.0
            .iter()
            .map(|(_, s)| s.mtime.max(s.ctime))
            .max()
            .unwrap_or(i64::MIN)
    }

    fn text(&self) -> String {
        self.0
            .iter()
            .filter(|(n, _)| !n.contains(char::is_whitespace))
            .map(|(n, s)| format!("state {n} {}\n", s.words()))
            .collect()
    }
}

/// What this process has asked (or taken from the record).
struct Known {
    db: PathBuf,
    names: Vec<String>,
    state: DbState,
    rows: Vec<Row>,
}

static KNOWN: Mutex<Vec<Known>> = Mutex::new(Vec::new());

/// The rows of `names` known under `state` of `db`, from this process's
/// memory or the record.
pub fn known(system: &System, db: &Path, names: &[&str], state: &DbState) -> Option<Vec<Row>> {
    let pick = |k: &Known| -> Vec<Row> {
        k.rows
            .iter()
            .filter(|r| names.contains(&r.name.as_str()))
            .cloned()
            .collect()
    };
    let covers = |k: &Known| {
        k.db == db && k.state == *state && names.iter().all(|n| k.names.iter().any(|m| m == n))
    };
    {
        let k = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = k.iter().find(|k| covers(k)) {
            return Some(pick(k));
        }
    }
    let text = crate::fsread::read_to_string(system.path(RECORD)).ok()?;
    let rec = parse_record(&text)?;
    if !covers(&rec) {
        return None;
    }
    tracing::debug!("rpm's database is unchanged since it was recorded: rpm not asked");
    let rows = pick(&rec);
    remember(rec);
    Some(rows)
}

/// Keep what a query under `state` of `db` answered for `names`.
pub fn remember_rows(db: &Path, names: &[&str], state: DbState, rows: &[Row]) {
    remember(Known {
        db: db.to_path_buf(),
        names: names.iter().map(|n| n.to_string()).collect(),
        state,
        rows: rows.to_vec(),
    });
}

fn remember(k: Known) {
    let mut all = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    all.retain(|o| o.db != k.db);
    all.push(k);
}

/// Forget what this process has asked (a new "run", for the tests).
pub fn forget_known() {
    KNOWN.lock().unwrap_or_else(|e| e.into_inner()).clear();
    *DEFAULT_KEY.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

fn parse_record(text: &str) -> Option<Known> {
    let mut lines = text.lines();
    (lines.next()? == MAGIC).then_some(())?;
    let db = PathBuf::from(lines.next()?.strip_prefix("db ")?);
    let names: Vec<String> = lines
        .next()?
        .strip_prefix("names ")?
        .split(' ')
        .map(str::to_string)
        .collect();
    let mut state = Vec::new();
    let mut rows = Vec::new();
    for l in lines {
        if let Some(s) = l.strip_prefix("state ") {
            let (n, w) = s.split_once(' ')?;
            state.push((n.to_string(), Stamp::parse(w)?));
        } else if let Some(r) = l.strip_prefix("row ") {
            let [name, evr, arch, t] = r.split('\t').collect::<Vec<_>>()[..] else {
                return None;
            };
            rows.push(Row {
                name: name.to_string(),
                evr: evr.to_string(),
                arch: arch.to_string(),
                installtime: t.parse().ok()?,
            });
        } else if !l.starts_with("default ") && !l.starts_with("cfg ") {
            return None;
        }
    }
    Some(Known {
        db,
        names,
        state: DbState(state),
        rows,
    })
}

// ------------------------------------------------ rpm's default location

/// Files whose contents decide rpm's default database location (rpm, its
/// rpmrc, and every place its `macrofiles` path reads), as `stat` lines.
pub fn config_key() -> String {
    let host = System::host();
    let mut files: Vec<PathBuf> = [
        "/usr/bin/rpm",
        "/usr/lib/rpm/rpmrc",
        "/etc/rpmrc",
        "/usr/lib/rpm/macros.d",
        "/usr/lib/rpm/platform",
        "/usr/lib/rpm/fileattrs",
        "/etc/rpm",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    files.push(Path::new(crate::RPM_HOME).join(".rpmmacros"));
    files.push(Path::new(crate::RPM_HOME).join(".rpmrc"));
    files.extend(super::macro_files(&host));
    let mut dirs = vec![PathBuf::from("/etc/rpm")];
    if let Ok(rd) = std::fs::read_dir("/usr/lib/rpm/platform") {
        dirs.extend(rd.flatten().map(|e| e.path()));
    }
    for d in dirs {
        if let Ok(rd) = std::fs::read_dir(&d) {
            files.extend(rd.flatten().map(|e| e.path()));
        }
    }
    files.sort();
    files.dedup();
    files
        .iter()
        .map(|f| {
            let s = std::fs::metadata(f).ok().map(|m| {
                format!(
                    "{} {} {} {} {}",
                    m.ino(),
                    m.size(),
                    m.mtime(),
                    m.mtime_nsec(),
                    m.ctime_nsec()
                )
            });
            format!("cfg {} {}\n", f.display(), s.as_deref().unwrap_or("-"))
        })
        .collect()
}

/// rpm's default location and the key it was learnt under, for [`persist`].
static DEFAULT_KEY: Mutex<Option<(String, Option<String>)>> = Mutex::new(None);

/// rpm's default database location as recorded under the current
/// [`config_key`], when it is.
pub fn recorded_default(system: &System, key: &str) -> Option<Option<String>> {
    let text = crate::fsread::read_to_string(system.path(RECORD)).ok()?;
    (text.lines().next()? == MAGIC).then_some(())?;
    let cfg: String = text
        .lines()
        .filter(|l| l.starts_with("cfg "))
        .map(|l| format!("{l}\n"))
        .collect();
    (cfg == key).then_some(())?;
    let d = text.lines().find_map(|l| l.strip_prefix("default "))?;
    Some((d != "-").then(|| d.to_string()))
}

/// Keep rpm's default location learnt under `key` for [`persist`].
pub fn remember_default(key: String, default: Option<String>) {
    *DEFAULT_KEY.lock().unwrap_or_else(|e| e.into_inner()) = Some((key, default));
}

/// Record what this process asked of rpm's database under `system`, for
/// the next run (not in a dry run: the caller decides). Nothing is written
/// when the database changed since, when it is younger than [`RACY_SECS`]
/// at `now` (Unix seconds), or when the record already says the same.
pub fn persist(system: &System, now: i64) {
    let Some((key, default)) = DEFAULT_KEY
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
    else {
        return;
    };
    let k = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    let Some(known) = k
        .iter()
        .find(|k| DbState::of(&k.db).as_ref() == Some(&k.state))
    else {
        return;
    };
    if known.state.newest() > now - RACY_SECS {
        tracing::debug!("rpm's database changed just now: not recorded");
        return;
    }
    let mut text = format!(
        "{MAGIC}\ndb {}\nnames {}\n{}",
        known.db.display(),
        known.names.join(" "),
        known.state.text()
    );
    for r in &known.rows {
        text.push_str(&format!(
            "row {}\t{}\t{}\t{}\n",
            r.name, r.evr, r.arch, r.installtime
        ));
    }
    text.push_str(&format!(
        "default {}\n{key}",
        default.as_deref().unwrap_or("-")
    ));
    let path = system.path(RECORD);
    if crate::fsread::read_to_string(&path).is_ok_and(|t| t == text) {
        return;
    }
    if let Err(e) = crate::dpkg_status::write_unsynced(&path, text.as_bytes()) {
        tracing::debug!(file = %path.display(), "cannot record rpm's database state: {e}");
    }
}

/// The directory of `system`'s rpm database, as the host sees it.
fn db_dir(system: &System, runner: &Runner) -> Option<PathBuf> {
    super::dbpath(system, runner)
        .or_else(|| super::default_dbpath(system, runner))
        .map(|p| system.path(p))
}

/// The state of `system`'s rpm database as text (for keys of answers that
/// depend on what is installed), and its newest time; `None` when it
/// cannot be `stat`ed.
pub fn db_state_text(system: &System, runner: &Runner) -> Option<(String, i64)> {
    let dir = db_dir(system, runner)?;
    let s = DbState::of(&dir)?;
    Some((format!("db {}\n{}", dir.display(), s.text()), s.newest()))
}

/// The rows of `names` (every installed instance of each), from memory or
/// the record when the database's `stat`s match, else from one `rpm -q`.
pub fn rows(system: &System, runner: &Runner, names: &[&str]) -> Result<Vec<Row>> {
    let dir = db_dir(system, runner);
    let state = dir.as_deref().and_then(DbState::of);
    if let (Some(d), Some(s)) = (&dir, &state) {
        if let Some(r) = known(system, d, names, s) {
            return Ok(r);
        }
    }
    let cl = super::rpm(system, runner)
        .args(["-q", "--qf", QUERYFORMAT])
        .args(names.iter().map(|n| n.to_string()));
    let fin = runner.run(&cl)?;
    if !fin.success() && !fin.combined().contains("is not installed") {
        return Err(Error::CommandFailed {
            command: cl.to_string(),
            status: fin.status_text(),
            tail: fin.tail(3),
        });
    }
    let rows = parse_rows(names, &fin.stdout).map_err(|detail| Error::Parse {
        what: "the versions rpm reports".into(),
        detail,
    })?;
    if let (Some(d), Some(s)) = (dir, state) {
        // Kept only when nothing changed while rpm read it, and when the
        // database is at rest (not written within the racy window: a
        // transaction of this run, e.g. an update, then asks rpm again).
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(i64::MAX, |d| d.as_secs() as i64);
        if s.newest() <= now - RACY_SECS && DbState::of(&d).as_ref() == Some(&s) {
            remember_rows(&d, names, s, &rows);
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_the_query() {
        let names = ["teleport-ent-fips", "teleport-ent", "teleport"];
        let out = "package teleport-ent-fips is not installed\nteleport-ent\t15.4.2-1\tx86_64\t100\nteleport-ent\t1:15.4.3-1\tx86_64\t200\npackage teleport is not installed\n";
        let r = parse_rows(&names, out).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!((r[1].evr.as_str(), r[1].installtime), ("1:15.4.3-1", 200));
        let none = "package teleport-ent-fips is not installed\npackage teleport-ent is not installed\npackage teleport is not installed\n";
        assert!(parse_rows(&names, none).unwrap().is_empty());
        // a name not asked, an unparsable time, noise, silence: errors
        assert!(parse_rows(&names, "other\t1-1\tx86_64\t1\n").is_err());
        assert!(parse_rows(&names, "teleport\t1-1\tx86_64\tsoon\n").is_err());
        assert!(parse_rows(&names, "error: rpmdb open failed\n").is_err());
        assert!(parse_rows(&names, "").is_err());
    }

    #[test]
    fn a_read_does_not_change_the_state_a_write_does() {
        let d = tempfile::tempdir().unwrap();
        let f = |n: &str| d.path().join(n);
        std::fs::write(f("rpmdb.sqlite"), b"db").unwrap();
        std::fs::write(f("rpmdb.sqlite-wal"), b"").unwrap();
        std::fs::write(f("rpmdb.sqlite-shm"), b"shm").unwrap();
        std::fs::write(f(".rpm.lock"), b"").unwrap();
        let s0 = DbState::of(d.path()).unwrap();
        // what a reader does: the index and lock rewritten, the log re-owned
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(f("rpmdb.sqlite-shm"), b"shm2").unwrap();
        std::fs::write(f(".rpm.lock"), b"x").unwrap();
        let wal = std::fs::metadata(f("rpmdb.sqlite-wal")).unwrap();
        std::fs::set_permissions(f("rpmdb.sqlite-wal"), wal.permissions()).unwrap();
        assert_eq!(DbState::of(d.path()), Some(s0.clone()));
        // a write to the log
        std::fs::write(f("rpmdb.sqlite-wal"), b"page").unwrap();
        assert_ne!(DbState::of(d.path()), Some(s0));
    }

    #[test]
    fn the_record_round_trips() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("rpmdb.sqlite"), b"db").unwrap();
        let state = DbState::of(d.path()).unwrap();
        let rows = vec![Row {
            name: "teleport-ent".into(),
            evr: "15.4.3-1".into(),
            arch: "x86_64".into(),
            installtime: 7,
        }];
        let mut text = format!(
            "{MAGIC}\ndb {}\nnames teleport-ent-fips teleport-ent teleport\n{}",
            d.path().display(),
            state.text()
        );
        text.push_str(
            "row teleport-ent\t15.4.3-1\tx86_64\t7\ndefault /var/lib/rpm\ncfg /usr/bin/rpm -\n",
        );
        let k = parse_record(&text).unwrap();
        assert_eq!((k.state, k.rows, k.names.len()), (state, rows, 3));
        assert!(parse_record(&text.replace("row teleport-ent\t", "row teleport-ent ")).is_none());
        assert!(parse_record(&text.replacen(MAGIC, "other 1", 1)).is_none());
    }
}
