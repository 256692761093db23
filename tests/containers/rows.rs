//! The rows of the matrix and their scenarios.
//!
//! A systemd row (debian-apt, rpm-dnf, suse-zypper) boots one container and
//! walks through the scenarios in order, each starting from the state the
//! previous one left: the agent is installed from the signed loopback
//! repository and started; the updater package is installed through the
//! package manager; the real timer fires the real service for the first
//! update; `systemctl start teleport-upgrade.service` drives the next ones;
//! the updater package is upgraded by a routine upgrade, then removed.
//! The first failing scenario ends the row (the later ones are "not run").
//!
//! The cron row boots nothing: plain systemd-nspawn, no init system, and the
//! line of `/etc/cron.d/teleport-upgrade` is run as cron runs it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use testkit::agent::{parse_starts, Start, Via, START_LOG};

use crate::fixtures::{
    Fixtures, Repo, VersionServer, AGENT, APT_COMPONENT, APT_SUITE, BROKEN, SLOW, SLOW_DONE,
    SLOW_STARTED, UPDATER,
};
use crate::image::{runs_dir, Image};
use crate::nspawn::{Container, Init};

#[path = "rows/dnf5.rs"]
mod dnf5;
#[path = "migration.rs"]
mod migration;
#[path = "needrestart.rs"]
mod needrestart;
#[path = "rows/neighbour.rs"]
mod neighbour;
#[path = "rows/sut.rs"]
mod sut;
#[path = "versionlock.rs"]
mod versionlock;
#[path = "rows/zypper.rs"]
mod zypper;
#[allow(unused_imports)]
use sut::*;
#[path = "rows/systemd.rs"]
mod systemd;
#[allow(unused_imports)]
use systemd::*;
#[path = "rows/pm.rs"]
mod pm;
#[allow(unused_imports)]
use pm::*;
#[path = "rows/systemd_failures.rs"]
mod systemd_failures;
#[allow(unused_imports)]
use systemd_failures::*;

// ---------------------------------------------------------------------------
// Rows, scenarios, results

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Row {
    DebianApt,
    RpmDnf,
    SuseZypper,
    DebianCron,
    /// Teleport's own shell updater installed first, ours over it
    /// (migration.rs).
    MigrateApt,
    MigrateDnf,
    MigrateZypper,
    /// The debian-apt scenarios on Debian 11 and 13, with their own apt.
    Debian11Apt,
    Debian13Apt,
    /// The rpm-dnf scenarios with dnf5 (Debian forky's 5.4.6) as `dnf`.
    Dnf5,
    /// The debian-apt scenarios with the newest apt (Debian forky's 3.3).
    Debian13Apt3,
}

impl Row {
    pub const ALL: [Row; 11] = [
        Row::DebianApt,
        Row::RpmDnf,
        Row::SuseZypper,
        Row::DebianCron,
        Row::MigrateApt,
        Row::MigrateDnf,
        Row::MigrateZypper,
        Row::Debian11Apt,
        Row::Debian13Apt,
        Row::Dnf5,
        Row::Debian13Apt3,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Row::DebianApt => "debian-apt",
            Row::RpmDnf => "rpm-dnf",
            Row::SuseZypper => "suse-zypper",
            Row::DebianCron => "debian-cron",
            Row::MigrateApt => "migrate-apt",
            Row::MigrateDnf => "migrate-dnf",
            Row::MigrateZypper => "migrate-zypper",
            Row::Debian11Apt => "debian11-apt",
            Row::Debian13Apt => "debian13-apt",
            Row::Dnf5 => "dnf5",
            Row::Debian13Apt3 => "debian13-apt3",
        }
    }

    pub fn image(self) -> Image {
        match self {
            Row::DebianApt | Row::DebianCron | Row::MigrateApt => Image::Debian,
            Row::RpmDnf | Row::MigrateDnf => Image::Dnf,
            Row::SuseZypper | Row::MigrateZypper => Image::Zypper,
            Row::Debian11Apt => Image::Debian11,
            Row::Debian13Apt => Image::Debian13,
            Row::Dnf5 => Image::Dnf5,
            Row::Debian13Apt3 => Image::Apt3,
        }
    }

    fn pm(self) -> Pm {
        match self {
            Row::DebianApt
            | Row::DebianCron
            | Row::MigrateApt
            | Row::Debian11Apt
            | Row::Debian13Apt
            | Row::Debian13Apt3 => Pm::Apt,
            Row::RpmDnf | Row::MigrateDnf | Row::Dnf5 => Pm::Dnf,
            Row::SuseZypper | Row::MigrateZypper => Pm::Zypper,
        }
    }

    fn is_migration(self) -> bool {
        matches!(self, Row::MigrateApt | Row::MigrateDnf | Row::MigrateZypper)
    }
}

/// Whether release `a` is below release `b` (`15.4.5` < `16.0.0`).
fn below(a: &str, b: &str) -> bool {
    match (semver::Version::parse(a), semver::Version::parse(b)) {
        (Ok(a), Ok(b)) => a < b,
        _ => false,
    }
}

/// Every scenario, in table order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scenario {
    AgentUp,
    RpmAsBuilt,
    UpdaterInstalled,
    TimerFires,
    OutsideWindow,
    Critical,
    Rollback,
    BrokenRolledBack,
    BrokenNotRetried,
    Yum,
    StoppedLeftStopped,
    FailedBrokenRolledBack,
    FailedStarted,
    UnhealthyRecovered,
    HealthUnknown,
    ReloadFails,
    Needrestart,
    RestartOnce,
    StopDuringInstall,
    CronNoopUnderSystemd,
    UpdaterUpgraded,
    UpdaterRemoved,
    CronAgentInstalled,
    CronUpdaterInstalled,
    CronUpdates,
    MigV1Installed,
    MigOursOver,
    MigTimerRunsOurs,
    MigNewerV1Ignored,
    MigBackToV1,
    MigRemovedThenV1,
    VersionlockHolds,
    VersionlockRepaired,
    VersionlockMoves,
    PinWithoutLibgpgme,
    Dnf5Held,
    Dnf5Unsigned,
    Dnf5PinGpgme2,
    ZypperVarsPinned,
    BusyNeighbour,
    TornDown,
}

impl Scenario {
    pub const ALL: [Scenario; 41] = [
        Scenario::AgentUp,
        Scenario::RpmAsBuilt,
        Scenario::UpdaterInstalled,
        Scenario::TimerFires,
        Scenario::OutsideWindow,
        Scenario::Critical,
        Scenario::Rollback,
        Scenario::BrokenRolledBack,
        Scenario::BrokenNotRetried,
        Scenario::Yum,
        Scenario::StoppedLeftStopped,
        Scenario::FailedBrokenRolledBack,
        Scenario::FailedStarted,
        Scenario::UnhealthyRecovered,
        Scenario::HealthUnknown,
        Scenario::ReloadFails,
        Scenario::Needrestart,
        Scenario::RestartOnce,
        Scenario::StopDuringInstall,
        Scenario::CronNoopUnderSystemd,
        Scenario::UpdaterUpgraded,
        Scenario::UpdaterRemoved,
        Scenario::CronAgentInstalled,
        Scenario::CronUpdaterInstalled,
        Scenario::CronUpdates,
        Scenario::MigV1Installed,
        Scenario::MigOursOver,
        Scenario::MigTimerRunsOurs,
        Scenario::MigNewerV1Ignored,
        Scenario::MigBackToV1,
        Scenario::MigRemovedThenV1,
        Scenario::VersionlockHolds,
        Scenario::VersionlockRepaired,
        Scenario::VersionlockMoves,
        Scenario::PinWithoutLibgpgme,
        Scenario::Dnf5Held,
        Scenario::Dnf5Unsigned,
        Scenario::Dnf5PinGpgme2,
        Scenario::ZypperVarsPinned,
        Scenario::BusyNeighbour,
        Scenario::TornDown,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Scenario::AgentUp => "agent 15.4.2 installed from the signed loopback repo, teleport.service up",
            Scenario::RpmAsBuilt => {
                "updater .rpm exactly as scripts/build-packages builds it: dnf/zypper accept it"
            }
            Scenario::UpdaterInstalled => "updater package installed via the package manager: timer enabled+active, agent untouched",
            Scenario::TimerFires => "the timer fires teleport-upgrade.service: update inside a window (15.4.3), a graceful reload: an open connection is served on by 15.4.2, a new one by 15.4.3",
            Scenario::OutsideWindow => "outside a window: nothing happens (target 16.0.0)",
            Scenario::Critical => "critical update outside the window (16.0.0): a hard restart, not a reload",
            Scenario::Rollback => "fleet rollback to a lower target inside a window (15.4.3), installed on the second check that sees it; the unit has no ExecReload=: try-restart instead, said why",
            Scenario::BrokenRolledBack => "the timer's run updates to 15.4.4 and reloads; 15.4.4 never takes over (the old process serves on): rolled back to 15.4.3, exit 6",
            Scenario::BrokenNotRetried => "the next run, same target 15.4.4 in a window: not retried, agent untouched",
            Scenario::Yum => "installer `yum` (yum -> dnf symlink, as on RHEL 8+): update (16.0.0)",
            Scenario::StoppedLeftStopped => "agent stopped by the operator: updated (15.4.2), left stopped, no health wait",
            Scenario::FailedBrokenRolledBack => "agent failed before; critical 15.4.4 crash-loops: rolled back to 15.4.2, running again",
            Scenario::FailedStarted => "agent failed (crashed) before: critical update (16.0.0) starts it, healthy",
            Scenario::UnhealthyRecovered => "agent fails, target 15.4.3 outside the window: the next run arranges a re-check (60 s); the re-check updates it (measured: failure -> 15.4.3 running)",
            Scenario::HealthUnknown => "systemd runs but systemctl cannot reach it (its sockets masked): status says unknown; an update (15.4.2) installs and holds, leaves restart+verify in the plan; the next run with systemd does them",
            Scenario::ReloadFails => "the agent's ExecReload= fails: the window update (15.4.3) restarts it with try-restart instead, said why",
            Scenario::Needrestart => "Debian's needrestart -r a after the agent's executable is replaced: without the updater's /etc/needrestart/conf.d file it restarts teleport.service; with it, the agent keeps its process (listed as deferred)",
            Scenario::RestartOnce => "agent restarted once per update (start log = 1 + updates + the rollbacks')",
            Scenario::StopDuringInstall => "systemctl stop during a slow install (15.4.5's postinst): the package step finishes, held, exit 8; the next timer run (outside the window) finishes the plan",
            Scenario::CronNoopUnderSystemd => "cron line is a no-op while systemd runs",
            Scenario::UpdaterUpgraded => "routine upgrade: updater upgraded, held agent kept, agent not restarted",
            Scenario::UpdaterRemoved => "updater removed: agent, its service and /etc/teleport-upgrade.d kept",
            Scenario::CronAgentInstalled => {
                "no systemd (no /run/systemd/system): agent 15.4.2 installed from the signed repo"
            }
            Scenario::CronUpdaterInstalled => {
                "no systemd: updater installed via apt, cron file in place, timer enabled on disk only"
            }
            Scenario::CronUpdates => "no systemd: the cron line, run as cron runs it, updates (15.4.3)",
            Scenario::MigV1Installed => "Teleport's shell updater 15.4.3 (arch all, bash, timer wanted by teleport.service) installed",
            Scenario::MigOursOver => "ours installed over it: no v1 drop-in, hook or timer link in effect (systemctl show teleport, list-timers), config kept byte for byte (an edited package too), timer taken over, agent not restarted",
            Scenario::MigTimerRunsOurs => "the timer runs ours (not the bash one): update inside a window (15.4.3)",
            Scenario::MigNewerV1Ignored => "Teleport's updater 15.4.4 in the repo: a routine upgrade keeps ours",
            Scenario::MigRemovedThenV1 => "ours again, then purged (apt) or removed (rpm): the operator's package kept; Teleport's 15.4.4 installed: its drop-in and timer in effect, nothing of ours, the timer runs its updater",
            Scenario::MigBackToV1 => "the way back: Teleport's 15.4.4 installed over ours: no timer link, drop-in, unit or cron file of ours; its drop-in and timer in effect, the timer runs its updater; agent not restarted",
            Scenario::VersionlockHolds => "dnf's versionlock plugin installed: the next update (16.0.0) holds with exactly its versionlock, the old exclude= removed; status held; dnf upgrade keeps it",
            Scenario::VersionlockRepaired => "versionlock deleted by the operator: a plain run outside the window restores it (a repair); dnf upgrade keeps the agent",
            Scenario::VersionlockMoves => "a fleet rollback (15.4.3) and a rolled-back broken update (15.4.4) move the versionlock: one lock, on the installed version",
            Scenario::PinWithoutLibgpgme => "no libgpgme on the host: runs; trusted-keys refused naming libgpgme.so.11 and .so.45 (exit 3)",
            Scenario::Dnf5Held => "dnf5: every update held with dnf5's built-in versionlock of exactly the installed version (one entry in /etc/dnf/versionlock.toml, no exclude=); the commands in dnf5's syntax; dnf upgrade keeps the agent",
            Scenario::Dnf5Unsigned => "dnf5: an unsigned 16.1.0 (critical) is refused by dnf5 under the updater's forced checks (exit 3), nothing changed; with an operator's repos.override.d turning pkg_gpgcheck off, the audit refuses as dnf5 resolves it",
            Scenario::Dnf5PinGpgme2 => "gpgme 2 only (forky's libgpgme.so.45; libgpgme.so.11 moved away): trusted-keys with the release key passes the audit, the keys read by gpgme 2; a wrong pin is refused (exit 3)",
            Scenario::ZypperVarsPinned => "a custom zypper variable (/etc/zypp/vars.d) in gpgkey: the pin judges the file zypper expands it to; another key there: exit 3 naming it, the release key there: the audit passes",
            Scenario::BusyNeighbour => "another transaction of the package manager runs (a neighbour package's 12 s script, installed in a transient unit as apt-daily-upgrade or dnf-automatic run): (apt) the plain dpkg gives up on the lock; the updater's critical update waits, naming the process holding the lock, then goes through; the neighbour's install is undisturbed",
            Scenario::TornDown => "container torn down: no machine, mount or process left",
        }
    }

    /// Does `row` run this scenario?
    pub fn applies(self, row: Row) -> bool {
        use Scenario::*;
        let migration = matches!(
            self,
            MigV1Installed
                | MigOursOver
                | MigTimerRunsOurs
                | MigNewerV1Ignored
                | MigBackToV1
                | MigRemovedThenV1
        );
        if row.is_migration() {
            return migration || matches!(self, AgentUp | TornDown);
        }
        if migration {
            return false;
        }
        if self == PinWithoutLibgpgme {
            return row == Row::Debian11Apt;
        }
        if matches!(self, Dnf5Held | Dnf5Unsigned | Dnf5PinGpgme2) {
            return row == Row::Dnf5;
        }
        if self == ZypperVarsPinned {
            return row == Row::SuseZypper;
        }
        if self == BusyNeighbour {
            return matches!(row, Row::DebianApt | Row::RpmDnf | Row::SuseZypper);
        }
        match row {
            Row::DebianCron => matches!(
                self,
                CronAgentInstalled | CronUpdaterInstalled | CronUpdates | TornDown
            ),
            _ => match self {
                Yum | VersionlockHolds | VersionlockRepaired | VersionlockMoves => {
                    row == Row::RpmDnf
                }
                CronNoopUnderSystemd => row == Row::DebianApt,
                // Backend-independent, and a minute long: one row.
                UnhealthyRecovered | HealthUnknown | ReloadFails => row == Row::DebianApt,
                // Debian 12's needrestart and its perl (.debs of that release).
                Needrestart => row == Row::DebianApt,
                RpmAsBuilt => row.pm() != Pm::Apt,
                CronAgentInstalled | CronUpdaterInstalled | CronUpdates => false,
                _ => true,
            },
        }
    }
}

#[derive(Clone, Debug)]
pub enum Outcome {
    Pass(String),
    Fail(String),
}

impl RowReport {
    /// A row that panicked outside any scenario.
    pub fn panicked(row: Row, message: String, elapsed: Duration) -> RowReport {
        RowReport {
            row,
            results: BTreeMap::new(),
            elapsed,
            error: Some(format!("panicked: {message}")),
        }
    }
}

pub struct RowReport {
    pub row: Row,
    pub results: BTreeMap<Scenario, Outcome>,
    pub elapsed: Duration,
    /// Set when the row stopped outside a scenario (setup).
    pub error: Option<String>,
}

impl RowReport {
    pub fn passed(&self) -> bool {
        self.error.is_none()
            && Scenario::ALL
                .iter()
                .filter(|s| s.applies(self.row))
                .all(|s| matches!(self.results.get(s), Some(Outcome::Pass(_))))
    }
}

struct Recorder {
    results: BTreeMap<Scenario, Outcome>,
    row: Row,
}

impl Recorder {
    /// Run one scenario; a failure is recorded and ends the row.
    fn step(
        &mut self,
        s: Scenario,
        f: impl FnOnce() -> Result<String, String>,
    ) -> Result<(), String> {
        assert!(
            s.applies(self.row),
            "{s:?} is not a scenario of {}",
            self.row.name()
        );
        let t = Instant::now();
        let r = f();
        let secs = t.elapsed().as_secs_f64();
        eprintln!(
            "[{}] {} {} ({secs:.1} s)",
            self.row.name(),
            if r.is_ok() { "PASS" } else { "FAIL" },
            s.title()
        );
        match r {
            Ok(detail) => {
                self.results.insert(s, Outcome::Pass(detail));
                Ok(())
            }
            Err(e) => {
                self.results.insert(s, Outcome::Fail(e.clone()));
                Err(format!("{}: {e}", s.title()))
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The system under test inside one container

const CONFIG_DIR: &str = "/etc/teleport-upgrade.d";
const STATE_FILE: &str = "/var/lib/teleport-upgrade/state.json";
const TIMER: &str = "teleport-upgrade.timer";
const SERVICE: &str = "teleport-upgrade.service";
/// The updater's journal of the plan in progress.
const PLAN_FILE: &str = "/var/lib/teleport-upgrade/plan.json";
const AGENT_UNIT: &str = "teleport.service";
const CRON_FILE: &str = "/etc/cron.d/teleport-upgrade";
const TIMER_DROPIN: &str = "/etc/systemd/system/teleport-upgrade.timer.d/zz-container-matrix.conf";

// ---------------------------------------------------------------------------
// The rows

pub fn run_row(row: Row, fx: &Fixtures, work: &Path) -> RowReport {
    let t = Instant::now();
    let mut rec = Recorder {
        results: BTreeMap::new(),
        row,
    };
    let dir = tempfile::Builder::new()
        .prefix(&format!("{}-", row.name()))
        .tempdir_in(work)
        .expect("row work directory");
    let repo = match row.pm() {
        Pm::Apt => Repo::apt(fx, &dir.path().join("repo")),
        Pm::Dnf | Pm::Zypper => Repo::rpm(fx, &dir.path().join("repo")),
    };
    let vs = VersionServer::start(dir.path());
    let machine = format!("tu-{}", row.name());
    let mut run_dir = None;
    let result = (|| -> Result<(), String> {
        let init = if row == Row::DebianCron {
            Init::None
        } else {
            Init::Systemd
        };
        let c = Container::start(&machine, &row.image().rootfs(), &runs_dir(), init)?;
        run_dir = Some(c.run_dir().to_path_buf());
        let mut repo = repo;
        if row == Row::DebianCron {
            cron_row(&mut rec, &c, fx, &repo, &vs)
        } else if row.is_migration() {
            migration::migration_row(&mut rec, row, &c, fx, &mut repo, &vs, dir.path())
        } else {
            systemd_row(&mut rec, row, &c, fx, &mut repo, &vs)
        }
        // The container is dropped (torn down) here, failure or not.
    })();
    let mut error = None;
    if let Err(e) = result {
        if !rec.results.values().any(|o| matches!(o, Outcome::Fail(_))) {
            error = Some(e);
        }
    }
    if let Some(run_dir) = run_dir {
        let _ = rec.step(Scenario::TornDown, || torn_down(&run_dir));
    }
    RowReport {
        row,
        results: rec.results,
        elapsed: t.elapsed(),
        error,
    }
}

fn torn_down(run_dir: &Path) -> Result<String, String> {
    let needle = run_dir.to_string_lossy().into_owned();
    let procs = crate::nspawn::processes_mentioning(&needle);
    let mounts = crate::nspawn::host_mounts_below(run_dir);
    if !procs.is_empty() || !mounts.is_empty() || run_dir.exists() {
        return Err(format!(
            "left behind: processes {procs:?}, host mounts {mounts:?}, directory exists: {}",
            run_dir.exists()
        ));
    }
    Ok("no process, no mount, run directory removed".into())
}

/// A loopback TCP port nobody listens on or connects from now, from
/// `first` up (below 32768, the kernel's ephemeral ports).
fn free_port(first: u16) -> Result<u16, String> {
    (first..32768)
        .chain(20000..first)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .ok_or_else(|| "no free loopback port in 20000..32768".to_string())
}

fn setup_agent(
    sut: &mut Sut,
    fx: &Fixtures,
    url: &str,
    with_systemd: bool,
) -> Result<String, String> {
    // The containers share the host's loopback: the agent's port is one
    // that is free now, below the kernel's ephemeral range (32768 and up:
    // an outgoing connection's local port there made the agent's bind fail
    // once, and the agent never started), starting from this test
    // process's own (another test process running rows gets another).
    let port = free_port(20000 + (std::process::id() % 10000) as u16)?;
    sut.c
        .write(testkit::agent::PORT_FILE, format!("{port}\n"))?;
    sut.pm.configure(sut.c, fx, url)?;
    sut.pm.install_agent(sut.c, "15.4.2")?;
    sut.expect_agent("15.4.2")?;
    if !with_systemd {
        return Ok(format!(
            "{AGENT} 15.4.2 installed (no systemd: the agent is not started)"
        ));
    }
    sut.c.ok(&["systemctl", "enable", "--now", AGENT_UNIT])?;
    sut.expected_starts.push("15.4.2".into());
    let starts = sut.check_starts()?;
    let first = sut.starts()?.remove(0);
    if first.upgrader != "none" {
        return Err(format!(
            "the agent started with TELEPORT_EXT_UPGRADER={} before the updater was installed",
            first.upgrader
        ));
    }
    Ok(format!("{AGENT} 15.4.2 installed and running ({starts})"))
}

fn cron_row(
    rec: &mut Recorder,
    c: &Container,
    fx: &Fixtures,
    repo: &Repo,
    vs: &VersionServer,
) -> Result<(), String> {
    let mut sut = Sut {
        c,
        pm: Pm::Apt,
        vs,
        expected_starts: Vec::new(),
        updates: 0,
    };
    let url = repo.url();
    rec.step(Scenario::CronAgentInstalled, || {
        if c.exists("/run/systemd/system") {
            return Err("/run/systemd/system exists: systemd runs in this container".into());
        }
        setup_agent(&mut sut, fx, &url, false)
    })?;
    rec.step(Scenario::CronUpdaterInstalled, || {
        Pm::Apt.install_updater(c)?;
        let v = Pm::Apt.installed(c, UPDATER)?;
        if v.as_deref() != Some(fx.updater.version.as_str()) {
            return Err(format!(
                "{UPDATER} is {v:?}, expected {}",
                fx.updater.version
            ));
        }
        let meta =
            std::fs::metadata(c.host_path(CRON_FILE)).map_err(|e| format!("{CRON_FILE}: {e}"))?;
        use std::os::unix::fs::MetadataExt;
        if meta.uid() != 0 || meta.mode() & 0o022 != 0 {
            return Err(format!(
                "{CRON_FILE} must be root's and not group/world-writable for cron to read it"
            ));
        }
        // Without a running systemd the postinst only enables the timer on
        // disk, for a later boot.
        let wants = "/etc/systemd/system/timers.target.wants/teleport-upgrade.timer";
        let target = c.read_link(wants);
        // The unit is in /usr/lib/systemd/system; Debian 12's systemctl
        // finds it through /lib first (the same directory on merged /usr).
        let enabled = [
            "/usr/lib/systemd/system/teleport-upgrade.timer",
            "/lib/systemd/system/teleport-upgrade.timer",
        ];
        if !enabled
            .iter()
            .any(|p| target.as_deref() == Some(Path::new(p)))
        {
            return Err(format!(
                "{wants} is {target:?}: the timer was not enabled on disk"
            ));
        }
        Ok(format!(
            "{UPDATER} {} installed; {CRON_FILE} in place; timer enabled on disk only",
            fx.updater.version
        ))
    })?;
    sut.config("endpoint", &vs.endpoint())?;
    sut.config("insecure", "yes")?;
    rec.step(Scenario::CronUpdates, || {
        sut.schedule_in_window()?;
        vs.set("15.4.3", false);
        sut.pin_cron_jitter()?;
        let hits = vs.version_hits();
        let o = sut.run_cron_line()?;
        if vs.version_hits() <= hits {
            return Err(format!(
                "the cron line did not run the updater (exit {:?})\n{}",
                o.code,
                o.tail(10)
            ));
        }
        sut.expect_agent("15.4.3")?;
        if !Pm::Apt.held(c)? {
            return Err(format!("{AGENT} is not held"));
        }
        let (result, decision, detail) = (
            sut.last_run("result")?,
            sut.last_run("decision")?,
            sut.last_run("detail")?,
        );
        if result != "ok" || decision != "update" {
            return Err(format!("last run: result {result}, decision {decision}"));
        }
        let stderr = o.stderr.lines().next().unwrap_or("").trim().to_string();
        Ok(format!(
            "cron line exit {:?}{}; {detail}; held; no systemd, so no restart",
            o.code,
            if stderr.is_empty() {
                String::new()
            } else {
                format!(" (stderr: {stderr})")
            }
        ))
    })?;
    Ok(())
}
