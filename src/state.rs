//! The small state file (`/var/lib/teleport-upgrade/state.json`): what the
//! last run observed, decided and achieved. Written atomically.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use backends::System;

pub const STATE_FILE: &str = "/var/lib/teleport-upgrade/state.json";

/// The state directory's default; v1's `TELEPORT_UPGRADE_STATE` moves it.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/teleport-upgrade";
pub const ENV_STATE: &str = "TELEPORT_UPGRADE_STATE";

/// The state directory (as a host path): `$TELEPORT_UPGRADE_STATE` when it
/// is an absolute path (as v1 reads it), else the default.
pub fn dir(system: &System) -> PathBuf {
    match std::env::var(ENV_STATE) {
        Ok(d) if d.starts_with('/') && !d.split('/').any(|s| s == "..") => system.path(d),
        _ => system.path(DEFAULT_STATE_DIR),
    }
}

/// The unhealthy marker of the shipped v1 updater (`<state dir>/state-unhealthy`):
/// on a host migrating from v1 it counts as this updater's marker.
pub fn v1_marker(system: &System) -> PathBuf {
    dir(system).join("state-unhealthy")
}

/// An enum of words, stored as the word (so the JSON schema keeps its
/// strings), with `Other` for a word this version does not know (a state
/// file written by another version is still read).
macro_rules! words {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $w:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(from = "String", into = "String")]
        pub enum $name {
            $($(#[$vm])* $v,)*
            /// A word this version does not know.
            Other(String),
        }

        impl $name {
            /// Every known value, in order.
            pub const ALL: &'static [$name] = &[$($name::$v,)*];

            /// The word.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$v => $w,)*
                    $name::Other(s) => s,
                }
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                match s.as_str() {
                    $($w => $name::$v,)*
                    _ => $name::Other(s),
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name::from(s.to_string())
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.as_str().to_string()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

words! {
    /// How a run ended (the exit code's word; metrics label values).
    RunResult {
        Ok = "ok",
        NoTarget = "no-target",
        /// Exit 1 for want of a FleetLock slot (not a version server
        /// problem: told apart in status and the metrics).
        NoSlot = "no-slot",
        /// Exit 1: the rollout of the target is halted on its failure
        /// rate (`fleet-halt-rate`); nothing was changed.
        RolloutHalted = "rollout-halted",
        ConfigError = "config-error",
        Refused = "refused",
        UpdateFailed = "update-failed",
        /// Exit 4 because the repository does not offer the target yet (a
        /// lagging mirror): told apart from a failed update.
        WaitingForMirror = "waiting-for-mirror",
        /// Exit 4 because the package does not fit in the free space where
        /// it goes: refused before the download, nothing changed.
        NoSpace = "no-space",
        RolledBack = "rolled-back",
        RollbackFailed = "rollback-failed",
        Locked = "locked",
        Interrupted = "interrupted",
    }
}

#[allow(clippy::derivable_impls)] // the enum is made by `words!`
impl Default for RunResult {
    fn default() -> Self {
        RunResult::Ok
    }
}

impl From<crate::error::Exit> for RunResult {
    fn from(e: crate::error::Exit) -> Self {
        use crate::error::Exit as E;
        match e {
            E::Ok => RunResult::Ok,
            E::NoTarget => RunResult::NoTarget,
            E::Usage => RunResult::ConfigError,
            E::Refused => RunResult::Refused,
            E::UpdateFailed => RunResult::UpdateFailed,
            E::Locked => RunResult::Locked,
            E::RolledBack => RunResult::RolledBack,
            E::RollbackFailed => RunResult::RollbackFailed,
            E::Interrupted => RunResult::Interrupted,
        }
    }
}

words! {
    /// What a run decided.
    Decided {
        StandDown = "stand-down",
        NoTarget = "no-target",
        UpToDate = "up-to-date",
        Update = "update",
        Wait = "wait",
        /// The installed version's executables were reinstalled.
        Repair = "repair",
        /// The run failed finishing a plan an earlier run left.
        Resume = "resume",
    }
}

impl From<&crate::decision::Decision> for Decided {
    fn from(d: &crate::decision::Decision) -> Self {
        Decided::from(d.word())
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct LastRun {
    /// Unix seconds.
    pub time: i64,
    /// run, force or dry-run.
    pub command: String,
    pub package: Option<String>,
    pub installer: Option<String>,
    pub installed_before: Option<String>,
    pub installed_after: Option<String>,
    pub target: Option<String>,
    pub critical: Option<bool>,
    pub schedule: Option<String>,
    /// Whether the run was inside a maintenance window.
    pub in_window: Option<bool>,
    pub unhealthy: Option<String>,
    /// stand-down, no-target, up-to-date, update, wait, repair, resume
    /// (absent when the run failed before deciding).
    pub decision: Option<Decided>,
    pub detail: Option<String>,
    /// ok, no-target, config-error, refused, update-failed, locked,
    /// rolled-back, rollback-failed, interrupted.
    pub result: RunResult,
    pub exit_code: u8,
    /// Why the updated agent was judged unhealthy (then rolled back).
    pub failed_health: Option<String>,
    pub error: Option<String>,
    /// What the run repaired (hold put back, interrupted transaction
    /// finished, executables reinstalled), one line each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub repairs: Vec<String>,
    /// The cluster's version (the proxy's `server_version`), when the
    /// cluster-compatibility guard learned it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_version: Option<String>,
    /// The guard's verdict on the target, as a sentence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_guard: Option<String>,
    /// What the trust audit warned about (settings the command line
    /// neutralises), file and line each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trust_warnings: Vec<String>,
    /// The unfinished plan an earlier run left, abandoned by this run
    /// (what it was, and why a fresh run would not make it now).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abandoned: Option<String>,
    /// The update group asked for, and what the cluster said for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_group: Option<crate::update_group::GroupAnswer>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct State {
    pub schema: u32,
    pub last_run: Option<LastRun>,
    /// Unix seconds of the last run that ended with exit 0.
    pub last_success: Option<i64>,
    /// Unix seconds of the last successful update.
    pub last_update: Option<i64>,
    /// Unix seconds of the last run the version server answered (a long
    /// outage shows here, and `status` warns after a day).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_check: Option<i64>,
    pub updates_total: u64,
    /// Updates rolled back because the agent did not become healthy.
    pub rollbacks_total: u64,
    /// Rollbacks of updates made while the agent was unhealthy (they did
    /// not cure it: the host, not necessarily the release).
    #[serde(default)]
    pub uncured_total: u64,
    /// Runs that did not end with exit 0, by result word.
    pub failures: std::collections::BTreeMap<String, u64>,
    /// The target that failed its health check here and was rolled back;
    /// not retried until the target changes or the update is critical.
    pub failed_target: Option<FailedTarget>,
    /// Set when the state file was found damaged; cleared by the next run
    /// that writes the state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovered: Option<Recovered>,
    /// Repairs made (see [`LastRun::repairs`]).
    pub repairs_total: u64,
    /// Unfinished plans abandoned (see [`LastRun::abandoned`]).
    pub abandoned_total: u64,
    /// The FleetLock slot this host keeps after a rolled-back update (the
    /// fleet's rollout halts once every slot is kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet_lock: Option<crate::fleetlock::Kept>,
    /// The lock server was last told that this id holds no slot of this
    /// group (a release it answered): no start-up release is due.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet_lock_clear: Option<crate::fleetlock::SlotId>,
    /// Requests to the FleetLock server, by operation and result.
    #[serde(default, skip_serializing_if = "LockRequests::is_empty")]
    pub fleet_lock_requests: LockRequests,
    /// A target below the installed version seen by a check and not
    /// installed yet (it is once a check `unhealthy-interval` later still
    /// advertises it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lower_target: Option<crate::decision::LowerSeen>,
    /// Checks whose answer contradicted the lower target an earlier check
    /// saw (proxies that disagree).
    pub disagreements_total: u64,
    /// The last of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_disagreement: Option<Disagreement>,
    /// The fleet's record of the target, as the last run that read or
    /// wrote it saw it (`fleet-report`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet_rollout: Option<Rollout>,
    /// Runs that took no slot because the rollout of their target was
    /// halted on its failure rate.
    #[serde(default)]
    pub rollout_halts_total: u64,
    /// The target the repository does not offer yet, while runs wait for
    /// the mirror (`mirror-wait`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_wait: Option<MirrorWait>,
    /// Runs that found the target not offered by the repository.
    #[serde(default)]
    pub mirror_waits_total: u64,
    /// Writes to the fleet's record, by result (`ok`, `failed`: this
    /// host's update added as such; `error`: it could not be added).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub fleet_report_writes: std::collections::BTreeMap<String, u64>,
}

/// The fleet's record of a target in a group, as a run saw it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Rollout {
    /// Unix seconds.
    pub time: i64,
    pub group: String,
    pub target: String,
    pub ok: u64,
    pub failed: u64,
    /// `fleet-halt-rate`, percent (text: "2.5").
    pub halt_rate: String,
    pub min_sample: u64,
    /// The decision halted on it.
    pub halted: bool,
    /// The record could not be read or written: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A target the repository did not offer yet (a lagging mirror), and
/// since when runs have found it so.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MirrorWait {
    pub target: String,
    /// Unix seconds of the first run that found it not offered.
    pub since: i64,
}

/// The version server's answers disagreed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Disagreement {
    /// Unix seconds.
    pub time: i64,
    /// What, as a sentence.
    pub what: String,
}

/// Requests to the FleetLock server: operation (`take`, `release`) ->
/// result (`ok`, or the error's word: `full`, `conflict`, ...) -> count.
pub type LockRequests = std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>>;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct FailedTarget {
    pub version: String,
    /// Unix seconds.
    pub time: i64,
    pub why: String,
    /// The attempt that failed was a critical update: a critical target
    /// is then not tried again either (it would restart a host the update
    /// does not help every run, outside any window).
    #[serde(default)]
    pub critical: bool,
}

pub fn path(system: &System) -> PathBuf {
    dir(system).join("state.json")
}

/// A state file that could not be used as it was: kept aside, with what
/// could be recovered from it. Recorded in the state written next, so
/// `status` reports it until a later run clears it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Recovered {
    /// Unix seconds.
    pub time: i64,
    /// Why the file could not be used.
    pub why: String,
    /// Where the damaged file was moved (as the target system sees it, or
    /// the host path under `--root`).
    pub kept_as: Option<String>,
    /// The rolled-back target the damaged file still held.
    pub failed_target: Option<String>,
    /// The file could not be searched whole (too large, unreadable): no
    /// rolled-back target found does not mean there was none.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

impl Recovered {
    /// One line for `status` and the log.
    pub fn describe(&self) -> String {
        format!(
            "the state file could not be used ({}){}; {}",
            self.why,
            self.kept_as
                .as_ref()
                .map(|k| format!(", kept as {k}"))
                .unwrap_or_default(),
            match (&self.failed_target, self.partial) {
                (Some(v), _) => format!("the rolled-back target {v} was recovered from it"),
                (None, false) => "no rolled-back target was recorded in it".into(),
                (None, true) => "whether it recorded a rolled-back target could not be told (it could not be searched whole)".into(),
            }
        )
    }
}

/// The schema this build writes; newer files are read field by field.
pub const SCHEMA: u32 = 1;

/// What reading the state file gave.
enum Read {
    Absent,
    Good(State),
    /// Unusable: why, and what could be recovered.
    Bad(String, State),
    /// Unusable and not searched whole: why, and what could be recovered.
    Partial(String, State),
}

/// The most of an oversized state file searched for its rolled-back target
/// (read in slices: memory stays bounded).
const SEARCH_CAP: u64 = 256 * 1024 * 1024;

/// Search an oversized regular file for its last `"failed_target"` object,
/// in slices (memory stays bounded). Also says whether the file was
/// searched whole.
fn salvage_large(path: &Path) -> (State, bool) {
    use std::io::{Read as _, Seek, SeekFrom};
    const KEY: &[u8] = b"\"failed_target\"";
    const SLICE: usize = 64 * 1024;
    let Ok(mut f) = std::fs::File::open(path) else {
        return (State::default(), false);
    };
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        return (State::default(), false);
    }
    let (mut offset, mut last, mut carry) = (0u64, None, Vec::new());
    let mut buf = vec![0u8; SLICE];
    let whole = loop {
        if offset >= SEARCH_CAP {
            break false;
        }
        let n = match f.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => n,
            Err(_) => break false,
        };
        let start = offset - carry.len() as u64;
        carry.extend_from_slice(&buf[..n]);
        if let Some(at) = carry.windows(KEY.len()).rposition(|w| w == KEY) {
            last = Some(start + at as u64);
        }
        offset += n as u64;
        let keep = carry.len().min(KEY.len() - 1);
        carry.drain(..carry.len() - keep);
    };
    let mut st = State::default();
    if let Some(at) = last {
        let mut tail = Vec::new();
        if f.seek(SeekFrom::Start(at)).is_ok()
            && (&mut f).take(SLICE as u64).read_to_end(&mut tail).is_ok()
        {
            st = salvage(&tail);
        }
    }
    (st, whole)
}

fn read(path: &Path) -> Read {
    let bytes = match crate::fsread::read_bounded(path, crate::fsread::STATE_CAP) {
        Ok(None) => return Read::Absent,
        Ok(Some(b)) => b,
        Err(e @ crate::fsread::ReadError::TooLarge(_)) => {
            let (st, whole) = salvage_large(path);
            return if whole && st.failed_target.is_none() {
                Read::Bad(e.to_string(), st)
            } else {
                Read::Partial(e.to_string(), st)
            };
        }
        Err(e) => return Read::Partial(e.to_string(), State::default()),
    };
    match serde_json::from_slice::<State>(&bytes) {
        Ok(st) if st.schema <= SCHEMA => Read::Good(st),
        Ok(st) => Read::Bad(
            format!("schema {} is newer than this updater's {SCHEMA}", st.schema),
            salvage(&bytes),
        ),
        Err(e) => Read::Bad(format!("not a valid state file: {e}"), salvage(&bytes)),
    }
}

/// Recover what parses from a damaged or foreign state file, field by
/// field; above all the rolled-back target, which must never be silently
/// forgotten (it would be retried, and fail again, every run).
fn salvage(bytes: &[u8]) -> State {
    let mut st = State::default();
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(bytes) {
        macro_rules! field {
            ($name:ident) => {
                if let Some(v) = map.get(stringify!($name)) {
                    if let Ok(x) = serde_json::from_value(v.clone()) {
                        st.$name = x;
                    }
                }
            };
        }
        field!(last_run);
        field!(last_success);
        field!(last_update);
        field!(updates_total);
        field!(rollbacks_total);
        field!(failures);
        field!(failed_target);
        return st;
    }
    // Not JSON at all (truncated, overwritten): look for the failed target's
    // object itself.
    let key = b"\"failed_target\"";
    if let Some(at) = bytes.windows(key.len()).position(|w| w == key) {
        let rest = &bytes[at + key.len()..];
        let rest = rest
            .iter()
            .position(|b| *b == b':')
            .map(|i| &rest[i + 1..])
            .unwrap_or(&[]);
        let whole = serde_json::Deserializer::from_slice(rest)
            .into_iter::<FailedTarget>()
            .next()
            .and_then(Result::ok);
        // A torn object: its first key is the version.
        let torn = || {
            let key = b"\"version\"";
            let at = rest.windows(key.len()).position(|w| w == key)?;
            let after = &rest[at + key.len()..];
            let colon = after.iter().position(|b| *b == b':')?;
            let version = serde_json::Deserializer::from_slice(&after[colon + 1..])
                .into_iter::<String>()
                .next()?
                .ok()?;
            Some(FailedTarget {
                version,
                why: "recovered from a damaged state file".into(),
                ..Default::default()
            })
        };
        if let Some(ft) = whole.or_else(torn) {
            if !ft.version.is_empty() {
                st.failed_target = Some(ft);
            }
        }
    }
    st
}

static RECOVERED_NOW: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Forget an earlier run's recovery note: the run that recovered a damaged
/// file keeps it (so `status` shows it afterwards); the next run drops it.
pub fn clear_old_recovery(st: &mut State) {
    if !RECOVERED_NOW.load(std::sync::atomic::Ordering::Relaxed) {
        st.recovered = None;
    }
}

/// Read the state for a run. A file that cannot be used is moved aside
/// (`state.json.corrupt-<unix time>`), what parses of it is kept, and the
/// result is written back at once so that later reads in the same run (and
/// `status`) see it.
pub fn load(path: &Path) -> State {
    let (why, mut st, partial) = match read(path) {
        Read::Absent => return State::default(),
        Read::Good(st) => return st,
        Read::Bad(why, st) => (why, st, false),
        Read::Partial(why, st) => (why, st, true),
    };
    {
        {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            let aside = path.with_file_name(format!(
                "{}.corrupt-{now}",
                path.file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("state.json")
            ));
            let kept_as = match std::fs::rename(path, &aside) {
                Ok(()) => Some(aside.display().to_string()),
                Err(e) => {
                    tracing::warn!(file = %path.display(), "cannot move the damaged state file aside: {e}");
                    None
                }
            };
            RECOVERED_NOW.store(true, std::sync::atomic::Ordering::Relaxed);
            st.recovered = Some(Recovered {
                time: now,
                why,
                kept_as,
                failed_target: st.failed_target.as_ref().map(|f| f.version.clone()),
                partial,
            });
            let note = st.recovered.as_ref().unwrap().describe();
            tracing::warn!(file = %path.display(), "{note}");
            if let Err(e) = save(path, &st) {
                tracing::warn!(file = %path.display(), "cannot write the recovered state file: {e}");
            }
            st
        }
    }
}

/// Read the state without changing anything (for `status`): a damaged
/// file gives what could be recovered and a problem to report.
pub fn peek(path: &Path) -> (State, Option<String>) {
    match read(path) {
        Read::Absent => (State::default(), None),
        Read::Good(st) => {
            let note = st.recovered.as_ref().map(Recovered::describe);
            (st, note)
        }
        r @ (Read::Bad(..) | Read::Partial(..)) => {
            let (why, st, partial) = match r {
                Read::Bad(w, s) => (w, s, false),
                Read::Partial(w, s) => (w, s, true),
                _ => unreachable!(),
            };
            let r = Recovered {
                partial,
                why,
                failed_target: st.failed_target.as_ref().map(|f| f.version.clone()),
                ..Default::default()
            };
            (
                st,
                Some(format!("{} (the next run moves it aside)", r.describe())),
            )
        }
    }
}

pub use backends::write_atomic;

/// The fields every run rewrites (when it ran, what it decided, when the
/// version server last answered): nothing depends on them surviving a
/// crash.
const VOLATILE: &[&str] = &["last_run", "last_success", "last_check"];

/// `v` without its [`VOLATILE`] fields.
fn durable_part(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(m) = v.as_object_mut() {
        for k in VOLATILE {
            m.remove(*k);
        }
    }
    v
}

/// Write the state atomically (a temporary file renamed over it). With
/// fsync of the file and its directory when anything but the
/// [`VOLATILE`] fields differs from the file on disk (a rolled-back
/// target, a kept FleetLock slot, the counters); without, when only those
/// changed, as on every no-op: a crash then leaves the previous file (the
/// rename not yet on disk) or, on the common filesystems, which flush a
/// file's data before a rename over another (ext4's `auto_da_alloc`, XFS,
/// btrfs), the new one; at worst a damaged file, which [`load`] salvages.
/// Either way what matters survives, and a no-op does not wait for the
/// disk twice.
pub fn save(path: &Path, state: &State) -> std::io::Result<()> {
    let mut s = state.clone();
    s.schema = 1;
    let value = serde_json::to_value(&s).expect("state serializes");
    let mut bytes = serde_json::to_vec_pretty(&value).expect("state serializes");
    bytes.push(b'\n');
    let on_disk = crate::fsread::read_bounded(path, crate::fsread::STATE_CAP)
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    if on_disk.is_some_and(|old| durable_part(old) == durable_part(value)) {
        write_unsynced(path, &bytes)
    } else {
        write_atomic(path, &bytes)
    }
}

/// A temporary file (mode 0644) renamed over `path`, without fsync.
pub(crate) fn write_unsynced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests;
