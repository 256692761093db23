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

#[path = "migration.rs"]
mod migration;
#[path = "needrestart.rs"]
mod needrestart;
#[path = "versionlock.rs"]
mod versionlock;

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
}

impl Row {
    pub const ALL: [Row; 9] = [
        Row::DebianApt,
        Row::RpmDnf,
        Row::SuseZypper,
        Row::DebianCron,
        Row::MigrateApt,
        Row::MigrateDnf,
        Row::MigrateZypper,
        Row::Debian11Apt,
        Row::Debian13Apt,
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
        }
    }

    pub fn image(self) -> Image {
        match self {
            Row::DebianApt | Row::DebianCron | Row::MigrateApt => Image::Debian,
            Row::RpmDnf | Row::MigrateDnf => Image::Dnf,
            Row::SuseZypper | Row::MigrateZypper => Image::Zypper,
            Row::Debian11Apt => Image::Debian11,
            Row::Debian13Apt => Image::Debian13,
        }
    }

    fn pm(self) -> Pm {
        match self {
            Row::DebianApt
            | Row::DebianCron
            | Row::MigrateApt
            | Row::Debian11Apt
            | Row::Debian13Apt => Pm::Apt,
            Row::RpmDnf | Row::MigrateDnf => Pm::Dnf,
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
    TornDown,
}

impl Scenario {
    pub const ALL: [Scenario; 36] = [
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
            Scenario::PinWithoutLibgpgme => "no libgpgme on the host: runs; trusted-keys refused naming libgpgme.so.11 (exit 3)",
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
// Package managers, driven inside the container

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pm {
    Apt,
    Dnf,
    Zypper,
}

const APT_KEYRING: &str = "/usr/share/keyrings/teleport-archive-keyring.asc";
const RPM_KEY: &str = "/etc/pki/rpm-gpg/RPM-GPG-KEY-teleport";

impl Pm {
    fn repo_file(self) -> &'static str {
        match self {
            Pm::Apt => "/etc/apt/sources.list.d/teleport.list",
            Pm::Dnf => "/etc/yum.repos.d/teleport.repo",
            Pm::Zypper => "/etc/zypp/repos.d/teleport.repo",
        }
    }

    /// The `installer` file, or `None` to let the updater detect it (apt on
    /// Debian's os-release: detection is exercised in the apt rows). The
    /// rpm images are Debian underneath, so their os-release says Debian:
    /// they name their package manager, as the README documents.
    fn installer(self) -> Option<&'static str> {
        match self {
            Pm::Apt => None,
            Pm::Dnf => Some("dnf"),
            Pm::Zypper => Some("zypper"),
        }
    }

    /// Teleport's repository as its docs set it up, served on loopback.
    fn configure(self, c: &Container, fx: &Fixtures, url: &str) -> Result<(), String> {
        let key = std::fs::read(&fx.key_asc).map_err(|e| e.to_string())?;
        match self {
            Pm::Apt => {
                c.write(APT_KEYRING, key)?;
                c.write(
                    self.repo_file(),
                    format!("deb [signed-by={APT_KEYRING}] {url} {APT_SUITE} {APT_COMPONENT}\n"),
                )
            }
            Pm::Dnf | Pm::Zypper => {
                c.write(RPM_KEY, key)?;
                let mut settings = vec![
                    ("gpgcheck", "1"),
                    ("repo_gpgcheck", "1"),
                    ("gpgkey", "file:///etc/pki/rpm-gpg/RPM-GPG-KEY-teleport"),
                ];
                if self == Pm::Zypper {
                    // zypper never imports a key itself: the release key is
                    // imported beforehand, as Teleport's docs do.
                    settings.extend([("autorefresh", "0"), ("pkg_gpgcheck", "1")]);
                    c.ok(&["rpm", "--import", RPM_KEY])?;
                }
                c.write(
                    self.repo_file(),
                    testkit::rpm::RpmRepo::repo_file("teleport", url, &settings),
                )
            }
        }
    }

    fn run_all(c: &Container, cmds: &[&[&str]]) -> Result<(), String> {
        for cmd in cmds {
            c.ok(cmd)?;
        }
        Ok(())
    }

    fn install_agent(self, c: &Container, version: &str) -> Result<(), String> {
        match self {
            Pm::Apt => Pm::run_all(
                c,
                &[
                    &["apt-get", "update", "-q"],
                    &[
                        "apt-get",
                        "install",
                        "-y",
                        "-q",
                        &format!("{AGENT}={version}"),
                    ],
                ],
            ),
            Pm::Dnf => Pm::run_all(
                c,
                &[&["dnf", "-y", "install", &format!("{AGENT}-{version}")]],
            ),
            Pm::Zypper => Pm::run_all(
                c,
                &[
                    &["zypper", "-n", "refresh"],
                    &["zypper", "-n", "install", &format!("{AGENT}={version}")],
                ],
            ),
        }
    }

    fn install_updater(self, c: &Container) -> Result<(), String> {
        match self {
            Pm::Apt => Pm::run_all(c, &[&["apt-get", "install", "-y", "-q", UPDATER]]),
            Pm::Dnf => Pm::run_all(c, &[&["dnf", "-y", "install", UPDATER]]),
            Pm::Zypper => Pm::run_all(c, &[&["zypper", "-n", "install", UPDATER]]),
        }
    }

    /// What an operator's routine upgrade of the whole host runs.
    fn routine_upgrade(self, c: &Container) -> Result<(), String> {
        match self {
            Pm::Apt => Pm::run_all(
                c,
                &[
                    &["apt-get", "update", "-q"],
                    &["apt-get", "upgrade", "-y", "-q"],
                ],
            ),
            Pm::Dnf => Pm::run_all(c, &[&["dnf", "-y", "upgrade", "--refresh"]]),
            Pm::Zypper => Pm::run_all(
                c,
                &[&["zypper", "-n", "refresh"], &["zypper", "-n", "update"]],
            ),
        }
    }

    fn remove_updater(self, c: &Container) -> Result<(), String> {
        match self {
            Pm::Apt => Pm::run_all(c, &[&["apt-get", "remove", "-y", "-q", UPDATER]]),
            Pm::Dnf => Pm::run_all(c, &[&["dnf", "-y", "remove", UPDATER]]),
            Pm::Zypper => Pm::run_all(c, &[&["zypper", "-n", "remove", UPDATER]]),
        }
    }

    /// The installed upstream version of `pkg` (no Debian revision, no rpm
    /// release), from the package database.
    fn installed(self, c: &Container, pkg: &str) -> Result<Option<String>, String> {
        match self {
            Pm::Apt => {
                let o = c.exec(&["dpkg-query", "-W", "-f=${db:Status-Abbrev}|${Version}", pkg])?;
                Ok(o.stdout
                    .split_once('|')
                    // "ii " or "hi " (held): the second letter is the state.
                    .filter(|(status, _)| status.as_bytes().get(1) == Some(&b'i'))
                    // Without the epoch (the updater's 1:), as rpm's %{VERSION}.
                    .map(|(_, v)| {
                        let v = v.trim();
                        v.split_once(':').map_or(v, |x| x.1).to_string()
                    }))
            }
            Pm::Dnf | Pm::Zypper => {
                let o = c.exec(&["rpm", "-q", "--qf", "%{VERSION}", pkg])?;
                Ok(o.ok().then(|| o.stdout.trim().to_string()))
            }
        }
    }

    /// Is the agent held (apt-mark hold; dnf exclude=/versionlock; zypper
    /// lock)?
    fn held(self, c: &Container) -> Result<bool, String> {
        Ok(match self {
            Pm::Apt => c
                .ok(&["apt-mark", "showhold"])?
                .lines()
                .any(|l| l.trim() == AGENT),
            Pm::Dnf => {
                let repo = c.read(self.repo_file()).unwrap_or_default();
                let excluded = repo
                    .lines()
                    .filter_map(|l| l.split_once('='))
                    .any(|(k, v)| {
                        k.trim() == "exclude" && v.split([' ', ',']).any(|w| w.trim() == AGENT)
                    });
                let locked = c
                    .exec(&["dnf", "-q", "-C", "versionlock", "list"])
                    .map(|o| o.ok() && o.stdout.contains(AGENT))
                    .unwrap_or(false);
                excluded || locked
            }
            Pm::Zypper => c.ok(&["zypper", "-n", "locks"])?.contains(AGENT),
        })
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

struct Sut<'a> {
    c: &'a Container,
    pm: Pm,
    vs: &'a VersionServer,
    /// The agent versions each recorded start must show, in order.
    expected_starts: Vec<String>,
    /// Updates made (each one restart), for state.json's updates_total.
    updates: usize,
}

/// The connection probe (the agent program, unpatched) and its files.
const PROBE: &str = "/usr/local/bin/agent-probe";
const PROBE_OUT: &str = "/run/agent-probe.out";
const PROBE_GO: &str = "/run/agent-probe.go";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl<'a> Sut<'a> {
    fn config(&self, name: &str, value: &str) -> Result<(), String> {
        self.c
            .write(&format!("{CONFIG_DIR}/{name}"), format!("{value}\n"))
    }

    /// The agent's schedule file (written by the test, as the agent would):
    /// one window open now, one tomorrow.
    fn schedule_in_window(&self) -> Result<(), String> {
        let n = now();
        self.config(
            "schedule",
            &format!(
                "# generated by teleport\n{} {}\n{} {}",
                n - 600,
                n + 3000,
                n + 86400,
                n + 90000
            ),
        )
    }

    /// Windows only in the future.
    fn schedule_outside_window(&self) -> Result<(), String> {
        let n = now();
        self.config(
            "schedule",
            &format!(
                "# generated by teleport\n{} {}\n{} {}",
                n + 3600,
                n + 7200,
                n + 86400,
                n + 90000
            ),
        )
    }

    fn agent_version(&self) -> Result<Option<String>, String> {
        self.pm.installed(self.c, AGENT)
    }

    fn expect_agent(&self, version: &str) -> Result<(), String> {
        match self.agent_version()? {
            Some(v) if v == version => Ok(()),
            other => Err(format!(
                "{AGENT} is {other:?}, expected {version}{}",
                self.diagnostics()
            )),
        }
    }

    fn starts(&self) -> Result<Vec<Start>, String> {
        parse_starts(&self.c.read(START_LOG).unwrap_or_default())
    }

    /// The start log must show exactly the expected starts (waiting a
    /// little for the last one: `Type=exec` returns before the script has
    /// written its line), and the running agent (when it runs) is the last
    /// one started.
    fn check_starts(&self) -> Result<String, String> {
        let want = &self.expected_starts;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut starts = self.starts()?;
        while starts.len() < want.len() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            starts = self.starts()?;
        }
        // Anything that restarts the agent a second time would show by now.
        std::thread::sleep(Duration::from_millis(500));
        starts = self.starts()?;
        let got: Vec<&str> = starts.iter().map(|s| s.version.as_str()).collect();
        if got != want.iter().map(String::as_str).collect::<Vec<_>>() {
            return Err(format!(
                "the agent's start log shows starts {got:?}, expected {want:?}\n--- journal of {AGENT_UNIT}\n{}",
                self.c
                    .ok(&["journalctl", "--no-pager", "-n", "40", "-u", AGENT_UNIT])
                    .unwrap_or_else(|e| e)
            ));
        }
        let mut pids: Vec<u32> = starts.iter().map(|s| s.pid).collect();
        pids.sort();
        pids.dedup();
        if pids.len() != starts.len() {
            return Err(format!("start log pids are not distinct: {starts:?}"));
        }
        let running = self.show(AGENT_UNIT, "ActiveState")? == "active";
        if let Some(last) = starts.last().filter(|_| running) {
            // After a graceful reload the old process exits once it has
            // drained its connections; systemd then reads the new main PID
            // from the PID file.
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut main_pid = self.show(AGENT_UNIT, "MainPID")?;
            while main_pid != last.pid.to_string() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
                main_pid = self.show(AGENT_UNIT, "MainPID")?;
            }
            if main_pid != last.pid.to_string() {
                return Err(format!(
                    "teleport.service's MainPID is {main_pid}, but the last start was pid {}",
                    last.pid
                ));
            }
        }
        Ok(format!("{} starts: {}", starts.len(), got.join(" -> ")))
    }

    /// `systemctl is-enabled` and `is-active` of the updater's timer.
    fn timer_state(&self) -> Result<(String, String), String> {
        let ask = |verb: &str| -> Result<String, String> {
            Ok(self
                .c
                .exec(&["systemctl", verb, TIMER])?
                .stdout
                .trim()
                .to_string())
        };
        Ok((ask("is-enabled")?, ask("is-active")?))
    }

    fn show(&self, unit: &str, prop: &str) -> Result<String, String> {
        Ok(self
            .c
            .ok(&["systemctl", "show", unit, "-p", prop, "--value"])?
            .trim()
            .to_string())
    }

    fn journal(&self) -> String {
        self.c
            .exec(&[
                "journalctl",
                "-u",
                SERVICE,
                "--no-pager",
                "-o",
                "cat",
                "-n",
                "40",
            ])
            .map(|o| o.stdout)
            .unwrap_or_default()
    }

    fn state(&self) -> Result<serde_json::Value, String> {
        let text = self.c.read(STATE_FILE).ok_or(format!("no {STATE_FILE}"))?;
        serde_json::from_str(&text).map_err(|e| format!("{STATE_FILE}: {e}"))
    }

    /// The last run's field, as a string.
    fn last_run(&self, field: &str) -> Result<String, String> {
        let s = self.state()?;
        Ok(match &s["last_run"][field] {
            serde_json::Value::String(v) => v.clone(),
            serde_json::Value::Null => String::new(),
            v => v.to_string(),
        })
    }

    fn diagnostics(&self) -> String {
        format!(
            "\n--- state.json\n{}\n--- journal of {SERVICE}\n{}",
            self.c.read(STATE_FILE).unwrap_or_default(),
            self.journal()
        )
    }

    /// Let the real timer start the service once: a test drop-in makes it
    /// fire 2 s after it is restarted (instead of 9 min plus up to 3 min of
    /// random delay); removed again once the run is over. Returns the run's
    /// `Result` and exit status as systemd recorded them.
    fn fire_timer(&self) -> Result<(String, String), String> {
        let c = self.c;
        let before = self.show(SERVICE, "ExecMainStartTimestampMonotonic")?;
        let triggered_before = self.show(TIMER, "LastTriggerUSecMonotonic")?;
        c.write(
            TIMER_DROPIN,
            "# Container matrix test only.\n[Timer]\nOnActiveSec=\nOnActiveSec=2s\nRandomizedDelaySec=0\nAccuracySec=1s\n",
        )?;
        c.ok(&["systemctl", "daemon-reload"])?;
        c.ok(&["systemctl", "restart", TIMER])?;
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let started = self.show(SERVICE, "ExecMainStartTimestampMonotonic")?;
            let exited = self.show(SERVICE, "ExecMainExitTimestampMonotonic")?;
            let state = self.show(SERVICE, "ActiveState")?;
            let n = |v: &str| v.parse::<u64>().unwrap_or(0);
            if started != before
                && n(&exited) >= n(&started)
                && (state == "inactive" || state == "failed")
            {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{TIMER} did not run {SERVICE} within 180 s (state {state}){}",
                    self.diagnostics()
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        c.remove(TIMER_DROPIN)?;
        c.ok(&["systemctl", "daemon-reload"])?;
        if self.show(TIMER, "LastTriggerUSecMonotonic")? == triggered_before {
            return Err(format!("{TIMER} records no new trigger"));
        }
        Ok((
            self.show(SERVICE, "Result")?,
            self.show(SERVICE, "ExecMainStatus")?,
        ))
    }

    /// After a run that updated to [`BROKEN`], which never became healthy:
    /// the run (systemd's `result`, exit `status`) ended in exit 6, the
    /// agent is `back_to` again, held and running, state.json counts
    /// `rollbacks` and names the failed target, and the start log since
    /// `seen` entries shows the broken version at least `min_broken` times
    /// (a crash loop after a restart: systemd restarting it; once after a
    /// reload: the new process that never took over), then `back_to`
    /// (started by the rollback, and maybe once before by systemd's own
    /// restart once its files were back). The journal's rollback line names
    /// `why`.
    #[allow(clippy::too_many_arguments)]
    fn expect_rolled_back(
        &mut self,
        result: &str,
        status: &str,
        seen: usize,
        back_to: &str,
        rollbacks: u64,
        min_broken: usize,
        why: &str,
    ) -> Result<String, String> {
        if result != "exit-code" || status != "6" {
            return Err(format!(
                "{SERVICE} ended with Result={result}, status {status}; expected exit-code, 6 (rolled back){}",
                self.diagnostics()
            ));
        }
        self.expect_agent(back_to)?;
        if !self.pm.held(self.c)? {
            return Err(format!("{AGENT} is not held after the rollback"));
        }
        if self.show(AGENT_UNIT, "ActiveState")? != "active" {
            return Err(format!(
                "{AGENT_UNIT} is not active after the rollback{}",
                self.diagnostics()
            ));
        }
        let st = self.state()?;
        let (result, failed, total) = (
            self.last_run("result")?,
            st["failed_target"]["version"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            st["rollbacks_total"].as_u64().unwrap_or(0),
        );
        if result != "rolled-back" || failed != BROKEN || total != rollbacks {
            return Err(format!(
                "state.json: last result {result:?}, failed_target {failed:?}, rollbacks_total {total}; expected rolled-back, {BROKEN}, {rollbacks}{}",
                self.diagnostics()
            ));
        }
        let starts = self.starts()?;
        let new: Vec<&Start> = starts.iter().skip(seen).collect();
        let broken = new.iter().take_while(|s| s.version == BROKEN).count();
        let back = new
            .iter()
            .skip(broken)
            .filter(|s| s.version == back_to)
            .count();
        if broken < min_broken || back < 1 || broken + back != new.len() {
            return Err(format!(
                "the start log since the run shows {:?}; expected {BROKEN} at least {min_broken} time(s), then {back_to}",
                new.iter().map(|s| s.version.as_str()).collect::<Vec<_>>()
            ));
        }
        if let Some(s) = new
            .iter()
            .find(|s| s.via == Via::Start && s.upgrader != "unit")
        {
            return Err(format!(
                "a start ran with TELEPORT_EXT_UPGRADER={}",
                s.upgrader
            ));
        }
        self.expected_starts = starts.iter().map(|s| s.version.clone()).collect();
        let now = self.check_starts()?;
        let journal = self.journal();
        let line = journal
            .lines()
            .rev()
            .find(|l| l.contains("did not become healthy") && l.contains("rolling back"))
            .ok_or_else(|| format!("the journal has no rollback line:\n{journal}"))?;
        if !line.contains(why) {
            return Err(format!(
                "the rollback line does not say {why:?}: {}",
                line.trim()
            ));
        }
        Ok(format!(
            "exit 6; {BROKEN} started {broken} time(s), {back_to} back ({now}); journal: {}",
            line.trim()
        ))
    }

    /// Make the agent fail once (stopped, then started with a runtime
    /// drop-in whose pre-start step fails, without automatic restart), then
    /// take the drop-in away: the
    /// unit stays `failed`, as after a crash that systemd gave up on.
    fn fail_agent(&self) -> Result<(), String> {
        let c = self.c;
        let dropin = "/run/systemd/system/teleport.service.d/zz-matrix-fail.conf";
        c.write(dropin, "[Service]\nExecStartPre=/bin/false\nRestart=no\n")?;
        c.ok(&["systemctl", "daemon-reload"])?;
        c.ok(&["systemctl", "stop", AGENT_UNIT])?;
        let _ = c.exec(&["systemctl", "start", AGENT_UNIT])?;
        c.remove(dropin)?;
        c.ok(&["systemctl", "daemon-reload"])?;
        let state = self.show(AGENT_UNIT, "ActiveState")?;
        if state != "failed" {
            return Err(format!("could not make {AGENT_UNIT} fail: it is {state}"));
        }
        Ok(())
    }

    /// `systemctl start teleport-upgrade.service`, whatever its result:
    /// systemd's `Result` and the exit status.
    fn run_service(&self) -> Result<(String, String), String> {
        self.c
            .exec_timeout(&["systemctl", "start", SERVICE], Duration::from_secs(300))?;
        Ok((
            self.show(SERVICE, "Result")?,
            self.show(SERVICE, "ExecMainStatus")?,
        ))
    }

    /// `systemctl start teleport-upgrade.service` (a oneshot: returns when
    /// the run is over); the run must succeed and ask the version server.
    fn start_service(&self) -> Result<(), String> {
        let hits = self.vs.version_hits();
        let o = self
            .c
            .exec_timeout(&["systemctl", "start", SERVICE], Duration::from_secs(300))?;
        let result = self.show(SERVICE, "Result")?;
        if !o.ok() || result != "success" {
            return Err(format!(
                "systemctl start {SERVICE}: exit {:?}, Result={result}\n{}{}",
                o.code,
                o.tail(5),
                self.diagnostics()
            ));
        }
        if self.vs.version_hits() <= hits {
            return Err("the run did not ask the version server".into());
        }
        Ok(())
    }

    /// After an update to `version`: installed, held, restarted exactly
    /// once more, decided for `reason`.
    fn expect_update(&mut self, version: &str, reason: &str) -> Result<String, String> {
        self.expect_agent(version)?;
        if !self.pm.held(self.c)? {
            return Err(format!("{AGENT} is not held after the update"));
        }
        let decision = self.last_run("decision")?;
        let detail = self.last_run("detail")?;
        if decision != "update" || !detail.contains(reason) {
            return Err(format!(
                "the last run decided {decision:?} ({detail:?}), expected an update for {reason:?}"
            ));
        }
        self.expected_starts.push(version.to_string());
        self.updates += 1;
        let starts = self.check_starts()?;
        let mut all = self.starts()?;
        let last = all.pop().unwrap();
        // A process started by a graceful reload inherits the environment
        // of the one it replaces; one started by systemd gets the drop-in's.
        let want = match last.via {
            Via::Start => "unit".to_string(),
            Via::Reload => all.last().map(|s| s.upgrader.clone()).unwrap_or_default(),
        };
        if last.upgrader != want {
            return Err(format!(
                "the new agent ({:?}) ran with TELEPORT_EXT_UPGRADER={}, expected {want}",
                last.via, last.upgrader
            ));
        }
        Ok(format!("{detail}; held; {starts}"))
    }

    /// The cron job of the installed cron file, run as cron runs it.
    fn run_cron_line(&self) -> Result<crate::nspawn::Out, String> {
        let text = self.c.read(CRON_FILE).ok_or(format!("no {CRON_FILE}"))?;
        let job = crate::cron::parse(&text)?;
        if job.user != "root" {
            return Err(format!("the cron job runs as {}, expected root", job.user));
        }
        let mut argv: Vec<String> = vec!["/usr/bin/env".into(), "-i".into()];
        argv.extend(
            job.environment()
                .into_iter()
                .map(|(k, v)| format!("{k}={v}")),
        );
        argv.extend([job.shell(), "-c".into(), job.command.clone()]);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        self.c.exec_raw(&argv)
    }

    /// A window update to 15.4.3 with the agent unit changed by a drop-in
    /// (`name`, `dropin`) so that it cannot reload: the updater restarts it
    /// with try-restart instead (a start by systemd) and its journal line
    /// says why (`reason`).
    fn update_with_reload_fallback(
        &mut self,
        name: &str,
        dropin: &str,
        reason: &str,
    ) -> Result<String, String> {
        let c = self.c;
        let path = format!("/etc/systemd/system/teleport.service.d/zz-matrix-{name}.conf");
        c.write(&path, dropin)?;
        c.ok(&["systemctl", "daemon-reload"])?;
        self.schedule_in_window()?;
        self.vs.set("15.4.3", false);
        let run = self.start_service();
        c.remove(&path)?;
        c.ok(&["systemctl", "daemon-reload"])?;
        run?;
        let d = self.expect_update("15.4.3", "inside the maintenance window")?;
        if self.last_via()? != Via::Start {
            return Err(format!(
                "15.4.3 was not restarted by systemd{}",
                self.diagnostics()
            ));
        }
        let journal = self.journal();
        let line = journal
            .lines()
            .rev()
            .find(|l| l.contains("cannot reload teleport.service"))
            .ok_or_else(|| format!("the journal does not say why it did not reload:\n{journal}"))?;
        if !line.contains(reason) {
            return Err(format!("the fallback line does not say {reason:?}: {line}"));
        }
        Ok(format!("{d}; journal: {}", line.trim()))
    }

    /// A first check that sees `version` below the installed agent: the
    /// run waits and records it (no flapping: a lower target is installed
    /// only when a second check, `unhealthy-interval` later, still sees
    /// it). `unhealthy-interval` is set to 0 so that the next check
    /// confirms it; `done_sighting` puts the default back.
    fn sight_lower(&mut self, version: &str) -> Result<String, String> {
        let installed = self.agent_version()?;
        self.config("unhealthy-interval", "0")?;
        self.schedule_in_window()?;
        self.vs.set(version, false);
        self.start_service()?;
        let (decision, detail) = (self.last_run("decision")?, self.last_run("detail")?);
        let recorded = self.state()?["lower_target"]["version"].clone();
        if self.agent_version()? != installed
            || decision != "wait"
            || !detail.contains("below the installed version")
            || recorded != version
        {
            return Err(format!(
                "the first check of the lower target {version} did not wait (decision {decision}: {detail}; recorded {recorded}){}",
                self.diagnostics()
            ));
        }
        Ok(format!("first check of {version}: waited, recorded"))
    }

    fn done_sighting(&self) -> Result<(), String> {
        // The default again (the updater reads it at the start of a run).
        self.c.remove(&format!("{CONFIG_DIR}/unhealthy-interval"))
    }

    /// How the agent's last process came to run.
    fn last_via(&self) -> Result<Via, String> {
        self.starts()?
            .pop()
            .map(|s| s.via)
            .ok_or_else(|| "the start log is empty".to_string())
    }

    /// A client holding one connection to the agent open (its own transient
    /// unit, outside the agent's cgroup), having asked its version once.
    fn start_probe(&self, fx: &Fixtures) -> Result<String, String> {
        let c = self.c;
        let bytes = std::fs::read(&fx.agent_program).map_err(|e| e.to_string())?;
        c.write_mode(PROBE, bytes, 0o755)?;
        let _ = c.remove(PROBE_OUT);
        let _ = c.remove(PROBE_GO);
        c.ok(&[
            "systemd-run",
            "--unit=agent-probe",
            "--collect",
            "--quiet",
            PROBE,
            "probe",
            PROBE_OUT,
            PROBE_GO,
        ])?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(v) = self.probe_lines().remove("before") {
                return Ok(v);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the probe did not connect: {:?}",
                    c.read(PROBE_OUT).unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Let the probe ask again, on its open connection and on a new one;
    /// its answers (`before`, `after`, `new`).
    fn finish_probe(&self) -> Result<BTreeMap<String, String>, String> {
        self.c.write(PROBE_GO, "")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let lines = self.probe_lines();
            if lines.contains_key("done") || lines.contains_key("timeout") {
                return Ok(lines);
            }
            if Instant::now() > deadline {
                return Err(format!("the probe did not finish: {lines:?}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn probe_lines(&self) -> BTreeMap<String, String> {
        self.c
            .read(PROBE_OUT)
            .unwrap_or_default()
            .lines()
            .map(|l| match l.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (l.to_string(), String::new()),
            })
            .collect()
    }

    /// The random 0-299 s delay of the cron line is pinned to 0: a `shuf`
    /// that prints 0 in /usr/local/bin, which comes first on the cron
    /// file's own PATH. Everything else of the line runs unchanged.
    fn pin_cron_jitter(&self) -> Result<(), String> {
        self.c.write_mode(
            "/usr/local/bin/shuf",
            "#!/bin/sh\n# Container matrix: the cron line's random delay, pinned to 0 s.\necho 0\n",
            0o755,
        )
    }
}

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

fn systemd_row(
    rec: &mut Recorder,
    row: Row,
    c: &Container,
    fx: &Fixtures,
    repo: &mut Repo,
    vs: &VersionServer,
) -> Result<(), String> {
    let pm = row.pm();
    let mut sut = Sut {
        c,
        pm,
        vs,
        expected_starts: Vec::new(),
        updates: 0,
    };
    let url = repo.url();
    rec.step(Scenario::AgentUp, || setup_agent(&mut sut, fx, &url, true))?;

    if pm != Pm::Apt {
        rec.step(Scenario::RpmAsBuilt, || {
            // Resolution only: nothing is installed.
            let inside = "/var/tmp/teleport-ent-updater-as-built.rpm";
            let bytes = std::fs::read(&fx.updater.rpm).map_err(|e| e.to_string())?;
            c.write(inside, bytes)?;
            let argv: &[&str] = match pm {
                Pm::Dnf => &[
                    "dnf",
                    "-y",
                    "--disablerepo=*",
                    "--setopt=tsflags=test",
                    "install",
                    inside,
                ],
                _ => &["zypper", "-n", "install", "--dry-run", inside],
            };
            let o = c.exec(argv)?;
            c.remove(inside)?;
            if !o.ok() {
                return Err(format!(
                    "{} refuses {} (exit {:?}):\n{}",
                    argv[0],
                    fx.updater.rpm.file_name().unwrap().to_string_lossy(),
                    o.code,
                    o.tail(6)
                ));
            }
            Ok(format!("{} resolves and test-installs it", argv[0]))
        })?;
    }

    rec.step(Scenario::UpdaterInstalled, || {
        let agent_pid = sut.show(AGENT_UNIT, "MainPID")?;
        pm.install_updater(c)?;
        let v = pm.installed(c, UPDATER)?;
        if v.as_deref() != Some(fx.updater.version.as_str()) {
            return Err(format!(
                "{UPDATER} is {v:?}, expected {}",
                fx.updater.version
            ));
        }
        let (enabled, active) = sut.timer_state()?;
        if enabled != "enabled" || active != "active" {
            return Err(format!(
                "{TIMER} is {enabled}/{active} after the install, expected enabled/active"
            ));
        }
        if sut.show(SERVICE, "ExecMainStartTimestampMonotonic")? != "0" {
            return Err(format!("{SERVICE} already ran at install time"));
        }
        if sut.show(AGENT_UNIT, "MainPID")? != agent_pid {
            return Err("installing the updater restarted the agent".into());
        }
        let starts = sut.check_starts()?;
        Ok(format!(
            "{UPDATER} {} installed; {TIMER} {enabled}, {active}; {starts}",
            fx.updater.version
        ))
    })?;

    // The operator's configuration (the agent writes the schedule). The
    // post-update health check watches the real teleport.service through
    // systemd; a healthy update's wait is 3 s of stability whatever the
    // timeout, which bounds only the waits of the broken versions: 15 s
    // leaves room for a graceful reload's takeover on a loaded machine (at
    // 9 s, with load 25 on 2 cores, a new process once took longer).
    sut.config("endpoint", &vs.endpoint())?;
    sut.config("insecure", "yes")?;
    sut.config("health-timeout", "15")?;
    if let Some(installer) = pm.installer() {
        sut.config("installer", installer)?;
    }

    if row == Row::Debian11Apt {
        rec.step(Scenario::PinWithoutLibgpgme, || {
            let o = c.exec(&["dpkg-query", "-W", "-f=${db:Status-Abbrev}", "libgpgme11"])?;
            if o.stdout.starts_with("ii") {
                return Err("libgpgme11 is installed in this image: nothing is shown".into());
            }
            // Inside a window: dry-run decides an update and audits trust
            // (changing nothing).
            sut.schedule_in_window()?;
            vs.set("15.4.3", false);
            let plain = c.exec(&["/usr/sbin/teleport-upgrade", "dry-run"])?;
            if !plain.ok() {
                return Err(format!("dry-run without libgpgme failed (exit {:?}):\n{}", plain.code, plain.tail(8)));
            }
            sut.config("trusted-keys", "# the release key\nA1B2C3D4E5F60718293A4B5C6D7E8F9012345678")?;
            let pinned = c.exec(&["/usr/sbin/teleport-upgrade", "dry-run"])?;
            c.remove(&format!("{CONFIG_DIR}/trusted-keys"))?;
            if pinned.code != Some(3) || !pinned.stderr.contains("libgpgme.so.11") {
                return Err(format!(
                    "with trusted-keys and no libgpgme: exit {:?}, expected 3 naming libgpgme.so.11:\n{}",
                    pinned.code,
                    pinned.tail(8)
                ));
            }
            sut.expect_agent("15.4.2")?;
            let line = pinned.stderr.lines().find(|l| l.contains("libgpgme.so.11")).unwrap_or("").trim().to_string();
            Ok(format!("dry-run exit 0 without libgpgme; with trusted-keys: exit 3: {line}"))
        })?;
    }

    rec.step(Scenario::TimerFires, || {
        sut.schedule_in_window()?;
        vs.set("15.4.3", false);
        let before = sut.start_probe(fx)?;
        if before != "15.4.2" {
            return Err(format!("the probe's first answer is {before:?}, expected 15.4.2"));
        }
        let restarts = sut.show(AGENT_UNIT, "NRestarts")?;
        let (result, _) = sut.fire_timer()?;
        if result != "success" {
            return Err(format!(
                "{SERVICE} ran but ended with Result={result}{}",
                sut.diagnostics()
            ));
        }
        // The run is over: the new version took over while the connection
        // stayed open to the old process.
        let answers = sut.finish_probe()?;
        let (after, new) = (
            answers.get("after").cloned().unwrap_or_default(),
            answers.get("new").cloned().unwrap_or_default(),
        );
        if after != "15.4.2" || new != "15.4.3" {
            return Err(format!(
                "the probe got {answers:?}: expected the open connection served by 15.4.2 (after=15.4.2) and a new one by 15.4.3 (new=15.4.3){}",
                sut.diagnostics()
            ));
        }
        let d = sut.expect_update("15.4.3", "inside the maintenance window")?;
        if sut.last_via()? != Via::Reload {
            return Err(format!("15.4.3 was not started by a reload{}", sut.diagnostics()));
        }
        if sut.show(AGENT_UNIT, "NRestarts")? != restarts {
            return Err("systemd counted a restart".into());
        }
        if !sut.journal().contains("reloading the agent (graceful restart") {
            return Err(format!("the journal shows no reload{}", sut.diagnostics()));
        }
        Ok(format!(
            "timer triggered the service; systemctl reload; the open connection answered 15.4.2 after the update, a new one 15.4.3; NRestarts {restarts}; {d}"
        ))
    })?;

    rec.step(Scenario::OutsideWindow, || {
        sut.schedule_outside_window()?;
        vs.set("16.0.0", false);
        sut.start_service()?;
        sut.expect_agent("15.4.3")?;
        let decision = sut.last_run("decision")?;
        if decision != "wait" {
            return Err(format!(
                "decided {decision:?}, expected wait{}",
                sut.diagnostics()
            ));
        }
        let starts = sut.check_starts()?;
        Ok(format!("decision wait; still 15.4.3; {starts}"))
    })?;

    rec.step(Scenario::Critical, || {
        vs.set("16.0.0", true);
        sut.start_service()?;
        let d = sut.expect_update("16.0.0", "critical")?;
        if sut.last_via()? != Via::Start {
            return Err(format!(
                "a critical update reloaded the agent{}",
                sut.diagnostics()
            ));
        }
        Ok(format!("restarted by systemd (not a reload); {d}"))
    })?;

    rec.step(Scenario::Rollback, || {
        // The lower target is seen by a first check (no change), then
        // installed by the second. An agent unit without ExecReload= (an
        // operator's drop-in clears it): CanReload=no.
        let first = sut.sight_lower("15.4.3")?;
        let d = sut.update_with_reload_fallback(
            "no-reload",
            "[Service]\nExecReload=\n",
            "CanReload=no",
        );
        sut.done_sighting()?;
        Ok(format!("{first}; second check: {}", d?))
    })?;

    rec.step(Scenario::BrokenRolledBack, || {
        sut.schedule_in_window()?;
        vs.set(BROKEN, false);
        let seen = sut.starts()?.len();
        let (result, status) = sut.fire_timer()?;
        let d = sut.expect_rolled_back(
            &result,
            &status,
            seen,
            "15.4.3",
            1,
            1,
            "no new process took over",
        )?;
        let reloaded = sut
            .starts()?
            .iter()
            .skip(seen)
            .any(|s| s.version == BROKEN && s.via == Via::Reload);
        if !reloaded {
            return Err(format!(
                "{BROKEN} was not started by a reload{}",
                sut.diagnostics()
            ));
        }
        Ok(d)
    })?;

    rec.step(Scenario::BrokenNotRetried, || {
        let agent_pid = sut.show(AGENT_UNIT, "MainPID")?;
        let (result, status) = sut.fire_timer()?;
        if result != "success" {
            return Err(format!(
                "{SERVICE} ended with Result={result}, status {status}{}",
                sut.diagnostics()
            ));
        }
        let (decision, detail) = (sut.last_run("decision")?, sut.last_run("detail")?);
        if decision != "wait" || !detail.contains("rolled back") {
            return Err(format!(
                "decided {decision:?} ({detail:?}), expected a wait for the failed target{}",
                sut.diagnostics()
            ));
        }
        sut.expect_agent("15.4.3")?;
        if sut.show(AGENT_UNIT, "MainPID")? != agent_pid {
            return Err("the agent was restarted".into());
        }
        let starts = sut.check_starts()?;
        Ok(format!("{detail}; {starts}"))
    })?;

    if row == Row::RpmDnf {
        rec.step(Scenario::Yum, || {
            if c.exists("/usr/bin/yum") {
                return Err("the image already has /usr/bin/yum".into());
            }
            c.ok(&["ln", "-s", "dnf", "/usr/bin/yum"])?;
            sut.config("installer", "yum")?;
            vs.set("16.0.0", false);
            sut.start_service()?;
            let installer = sut.last_run("installer")?;
            if installer != "yum" {
                return Err(format!(
                    "the run used installer {installer:?}, expected yum"
                ));
            }
            let journal = sut.journal();
            if !journal
                .lines()
                .any(|l| l.contains("yum -y") && l.contains("install"))
            {
                return Err(format!(
                    "the journal shows no `yum ... install` command:\n{journal}"
                ));
            }
            let d = sut.expect_update("16.0.0", "inside the maintenance window")?;
            sut.config("installer", "dnf")?;
            Ok(format!("ran yum (-> dnf); {d}"))
        })?;
    }

    rec.step(Scenario::StoppedLeftStopped, || {
        c.ok(&["systemctl", "stop", AGENT_UNIT])?;
        // A lower target: installed on the second check that sees it.
        sut.sight_lower("15.4.2")?;
        sut.schedule_in_window()?;
        vs.set("15.4.2", false);
        sut.start_service()?;
        sut.done_sighting()?;
        sut.expect_agent("15.4.2")?;
        if !pm.held(c)? {
            return Err(format!("{AGENT} is not held after the update"));
        }
        sut.updates += 1;
        let state = sut.show(AGENT_UNIT, "ActiveState")?;
        if state != "inactive" {
            return Err(format!(
                "{AGENT_UNIT} is {state}: the update started a stopped agent"
            ));
        }
        let starts = sut.check_starts()?;
        let journal = sut.journal();
        if !journal
            .contains("not restarting teleport.service: it was not running before the update")
        {
            return Err(format!(
                "the journal does not say why the agent was not restarted:\n{journal}"
            ));
        }
        if journal
            .lines()
            .rev()
            .take(10)
            .any(|l| l.contains("waiting for the agent to be healthy"))
        {
            return Err(format!(
                "the run waited for a stopped agent to be healthy:\n{journal}"
            ));
        }
        Ok(format!(
            "15.4.2 installed and held; {AGENT_UNIT} stays inactive; {starts}"
        ))
    })?;

    rec.step(Scenario::FailedBrokenRolledBack, || {
        sut.fail_agent()?;
        vs.set(BROKEN, true);
        let seen = sut.starts()?.len();
        let (result, status) = sut.run_service()?;
        sut.expect_rolled_back(&result, &status, seen, "15.4.2", 2, 2, "restart loop")
    })?;

    rec.step(Scenario::FailedStarted, || {
        sut.fail_agent()?;
        vs.set("16.0.0", true);
        sut.start_service()?;
        let d = sut.expect_update("16.0.0", "critical")?;
        if sut.show(AGENT_UNIT, "ActiveState")? != "active" {
            return Err(format!(
                "{AGENT_UNIT} is not active after the update{}",
                sut.diagnostics()
            ));
        }
        let journal = sut.journal();
        if !journal.contains("systemctl reset-failed teleport.service") {
            return Err(format!(
                "the journal shows no reset-failed before the start:\n{journal}"
            ));
        }
        if !journal.contains("the agent is healthy") {
            return Err(format!("the journal shows no health verdict:\n{journal}"));
        }
        Ok(format!("reset-failed + restart; {d}"))
    })?;

    if row == Row::DebianApt {
        rec.step(Scenario::UnhealthyRecovered, || {
        // The shortest re-check the configuration accepts (the defaults are
        // 300 s each).
        const DELAY: u64 = 60;
        sut.config("recheck-delay", &DELAY.to_string())?;
        sut.config("unhealthy-interval", "45")?;
        sut.schedule_outside_window()?;
        vs.set("15.4.3", false);
        let t0 = Instant::now();
        sut.fail_agent()?;
        // The next timer run (fired at once here): the first sighting.
        let (result, _) = sut.fire_timer()?;
        let first = t0.elapsed();
        let (decision, detail) = (sut.last_run("decision")?, sut.last_run("detail")?);
        if result != "success" || decision != "wait" || !detail.contains("unhealthy") {
            return Err(format!(
                "the first run: Result={result}, decided {decision:?} ({detail:?}); expected a wait marking the agent unhealthy{}",
                sut.diagnostics()
            ));
        }
        let timer = "teleport-upgrade-recheck.timer";
        if sut.show(timer, "ActiveState")? != "active" {
            return Err(format!("no re-check: {timer} is not active{}", sut.diagnostics()));
        }
        // The re-check: the second sighting, the update, the agent started.
        let deadline = Instant::now() + Duration::from_secs(DELAY + 180);
        let running = loop {
            let last = sut.starts()?.pop();
            if let Some(last) = last.filter(|s| s.version == "15.4.3") {
                if sut.show(AGENT_UNIT, "MainPID")? == last.pid.to_string() {
                    break t0.elapsed();
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "15.4.3 is not running {} s after the failure{}",
                    t0.elapsed().as_secs(),
                    sut.diagnostics()
                ));
            }
            std::thread::sleep(Duration::from_millis(250));
        };
        // Let the re-check's run finish before anything else.
        let deadline = Instant::now() + Duration::from_secs(120);
        while sut.show(SERVICE, "ActiveState")? != "inactive" {
            if Instant::now() > deadline {
                return Err(format!("the re-check's run does not end{}", sut.diagnostics()));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        c.remove(&format!("{CONFIG_DIR}/recheck-delay"))?;
        c.remove(&format!("{CONFIG_DIR}/unhealthy-interval"))?;
        let d = sut.expect_update("15.4.3", "unhealthy")?;
        if sut.show(SERVICE, "Result")? != "success" {
            return Err(format!("the re-check's run failed{}", sut.diagnostics()));
        }
        if sut.last_via()? != Via::Start {
            return Err("an unhealthy update reloaded instead of restarting".into());
        }
        let after_first = running.saturating_sub(first);
        if after_first > Duration::from_secs(DELAY + 60) {
            return Err(format!(
                "15.4.3 ran {:.1} s after the first run, re-check delay {DELAY} s",
                after_first.as_secs_f64()
            ));
        }
        Ok(format!(
            "measured: unit failed at 0 s; first run over at {:.1} s (marked, re-check in {DELAY} s); 15.4.3 running at {:.1} s ({:.1} s after the first run); {d}",
            first.as_secs_f64(),
            running.as_secs_f64(),
            after_first.as_secs_f64()
        ))
    })?;
    }

    if row == Row::DebianApt {
        rec.step(Scenario::HealthUnknown, || {
            // systemd keeps running (/run/systemd/system is there), but in
            // this mount namespace systemctl reaches neither its private
            // socket nor the system bus.
            let masked = |argv: &[&str]| {
                let mut v = vec![
                    "unshare",
                    "-m",
                    "--propagation",
                    "private",
                    "sh",
                    "-c",
                    "mount --bind /dev/null /run/systemd/private && mount --bind /dev/null /run/dbus/system_bus_socket && exec \"$@\"",
                    "masked",
                ];
                v.extend_from_slice(argv);
                c.exec(&v)
            };
            let plain = masked(&["systemctl", "is-active", AGENT_UNIT])?;
            if plain.ok() || plain.stdout.trim() == "active" {
                return Err(format!(
                    "masking the sockets did not stop systemctl: {}",
                    plain.tail(3)
                ));
            }
            let st = masked(&["/usr/sbin/teleport-upgrade", "status", "--json"])?;
            let json: serde_json::Value = serde_json::from_str(&st.stdout)
                .map_err(|e| format!("status --json: {e}: {}", st.tail(5)))?;
            let state = json["health"]["service_state"].as_str().unwrap_or("");
            if state != "unknown" {
                return Err(format!(
                    "status says the agent's service is {state:?}, expected unknown"
                ));
            }
            // A lower target: installed on the second check that sees it
            // (the first one made with systemd reachable).
            sut.sight_lower("15.4.2")?;
            sut.schedule_in_window()?;
            vs.set("15.4.2", false);
            let pid = sut.show(AGENT_UNIT, "MainPID")?;
            let seen = sut.starts()?.len();
            let run = masked(&["/usr/sbin/teleport-upgrade", "run"])?;
            sut.done_sighting()?;
            if !run.ok() {
                return Err(format!(
                    "the run exited {:?}:\n{}",
                    run.code,
                    run.tail(10)
                ));
            }
            sut.expect_agent("15.4.2")?;
            if !pm.held(c)? {
                return Err(format!("{AGENT} is not held after the update"));
            }
            let detail = sut.last_run("detail")?;
            if !detail.contains("could not be verified") {
                return Err(format!(
                    "last_run.detail {detail:?} does not say the update is unverified"
                ));
            }
            if sut.show(AGENT_UNIT, "MainPID")? != pid || sut.starts()?.len() != seen {
                return Err("the agent was restarted although its state was unknown".into());
            }
            sut.updates += 1;
            let counted = sut.state()?["updates_total"].as_u64().unwrap_or(0);
            // The restart and the health check wait in the plan.
            if !c.exists(PLAN_FILE) {
                return Err(format!("no {PLAN_FILE}: the deferred restart is lost"));
            }
            let st = c.exec(&["/usr/sbin/teleport-upgrade", "status", "--json"])?;
            let json: serde_json::Value = serde_json::from_str(&st.stdout)
                .map_err(|e| format!("status --json: {e}: {}", st.tail(5)))?;
            if json["unfinished_plan"].is_null() {
                return Err("status does not show the unfinished plan".into());
            }
            // Still no systemd: deferred again, not counted again.
            let again = masked(&["/usr/sbin/teleport-upgrade", "run"])?;
            if !again.ok() || !c.exists(PLAN_FILE) || sut.starts()?.len() != seen {
                return Err(format!(
                    "a second run without systemd: exit {:?}, plan left: {}:\n{}",
                    again.code,
                    c.exists(PLAN_FILE),
                    again.tail(8)
                ));
            }
            // systemd answers again: the next run restarts and checks it.
            sut.start_service()?;
            if c.exists(PLAN_FILE) {
                return Err(format!("{PLAN_FILE} is left{}", sut.diagnostics()));
            }
            let journal = sut.journal();
            if !journal.contains("an earlier run left a plan unfinished")
                || !journal.contains("the agent is healthy")
            {
                return Err(format!("the next run did not finish the restart and check:\n{journal}"));
            }
            sut.expected_starts.push("15.4.2".into());
            let starts = sut.check_starts()?;
            let total = sut.state()?["updates_total"].as_u64().unwrap_or(0);
            if total != counted {
                return Err(format!(
                    "updates_total {counted} after the update, {total} after finishing its plan: counted twice"
                ));
            }
            Ok(format!(
                "`systemctl is-active` fails there (exit {:?}); status: unknown; run exit 0, 15.4.2 held, agent not restarted, restart+verify left in plan.json ({detail}); again without systemd: still left; with systemd: restarted, healthy, plan closed, counted once; {starts}",
                plain.code
            ))
        })?;
    }

    if row == Row::DebianApt {
        rec.step(Scenario::ReloadFails, || {
            // The unit can reload (CanReload=yes), but its reload command
            // fails: `systemctl reload` exits non-zero.
            sut.update_with_reload_fallback(
                "reload-fails",
                "[Service]\nExecReload=\nExecReload=/bin/false\n",
                "`systemctl reload teleport.service` failed",
            )
        })?;
        rec.step(Scenario::Needrestart, || {
            needrestart::needrestart_scenario(&mut sut)
        })?;
    }

    rec.step(Scenario::RestartOnce, || {
        let starts = sut.check_starts()?;
        let updates = sut.updates;
        let total = sut.state()?["updates_total"].as_u64().unwrap_or(0);
        if total != updates as u64 {
            return Err(format!(
                "state.json counts {total} updates, the test made {updates}"
            ));
        }
        // Not a pass criterion: what the updater warned about, for the reader.
        let journal = c
            .exec(&["journalctl", "-u", SERVICE, "--no-pager", "-o", "cat"])?
            .stdout;
        let warnings: Vec<&str> = journal
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains("ERROR"))
            .collect();
        Ok(format!(
            "{updates} updates, {starts}; the updater's journal has {} warning/error line(s){}",
            warnings.len(),
            warnings
                .first()
                .map(|w| format!(", first: {}", w.trim()))
                .unwrap_or_default()
        ))
    })?;

    rec.step(Scenario::StopDuringInstall, || {
        // Rows whose agent is at 16.0.0 by now: 15.4.5 is a lower target,
        // installed on the second check that sees it.
        if sut.agent_version()?.as_deref().is_some_and(|v| below(SLOW, v)) {
            sut.sight_lower(SLOW)?;
        }
        sut.schedule_in_window()?;
        vs.set(SLOW, false);
        c.ok(&["systemctl", "start", "--no-block", SERVICE])?;
        let deadline = Instant::now() + Duration::from_secs(180);
        while !c.exists(SLOW_STARTED) {
            if Instant::now() > deadline {
                return Err(format!("the slow postinst never started{}", sut.diagnostics()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // What systemd does on stop, shutdown or a start timeout: SIGTERM
        // to the updater only (KillMode=mixed).
        let o = c.exec_timeout(&["systemctl", "stop", SERVICE], Duration::from_secs(180))?;
        if !o.ok() {
            return Err(format!("systemctl stop {SERVICE}: {}", o.tail(5)));
        }
        if !c.exists(SLOW_DONE) {
            return Err(format!(
                "the package manager was cut short: the postinst did not finish{}",
                sut.diagnostics()
            ));
        }
        let status = sut.show(SERVICE, "ExecMainStatus")?;
        if status != "8" {
            return Err(format!(
                "the stopped run exited {status}, expected 8{}",
                sut.diagnostics()
            ));
        }
        sut.expect_agent(SLOW)?;
        sut.done_sighting()?;
        if !pm.held(c)? {
            return Err(format!("{AGENT} is not held after the stopped run"));
        }
        if sut.last_run("result")? != "interrupted" {
            return Err(format!("last_run.result is not interrupted{}", sut.diagnostics()));
        }
        if !c.exists(PLAN_FILE) {
            return Err(format!("no {PLAN_FILE}: the rest of the plan is lost"));
        }
        sut.schedule_outside_window()?;
        let (result, status) = sut.fire_timer()?;
        if result != "success" {
            return Err(format!(
                "the next timer run ended with Result={result}, status {status}{}",
                sut.diagnostics()
            ));
        }
        if c.exists(PLAN_FILE) {
            return Err(format!("{PLAN_FILE} is left after the next run{}", sut.diagnostics()));
        }
        if !sut.journal().contains("an earlier run left a plan unfinished") {
            return Err(format!("the next run did not resume the plan{}", sut.diagnostics()));
        }
        sut.expect_agent(SLOW)?;
        if !pm.held(c)? {
            return Err(format!("{AGENT} is not held after the next run"));
        }
        // The resumed plan restarted the agent once (the stopped run did not).
        sut.expected_starts.push(SLOW.to_string());
        sut.updates += 1;
        let starts = sut.check_starts()?;
        Ok(format!(
            "postinst ran to its end; exit 8, held, plan left; the timer's run finished it; {starts}"
        ))
    })?;

    if row == Row::RpmDnf {
        versionlock::versionlock_scenarios(rec, &mut sut, vs)?;
    }

    if row == Row::DebianApt {
        rec.step(Scenario::CronNoopUnderSystemd, || {
            sut.pin_cron_jitter()?;
            let before = c.read(STATE_FILE);
            let hits = vs.version_hits();
            let o = sut.run_cron_line()?;
            if !o.ok() {
                return Err(format!(
                    "the cron line failed (exit {:?})\n{}",
                    o.code,
                    o.tail(10)
                ));
            }
            if c.read(STATE_FILE) != before || vs.version_hits() != hits {
                return Err("the cron line ran the updater although systemd runs".into());
            }
            c.remove("/usr/local/bin/shuf")?;
            Ok("exit 0, no run (state.json and version server untouched)".into())
        })?;
    }

    rec.step(Scenario::UpdaterUpgraded, || {
        let agent_before = sut.agent_version()?.unwrap_or_default();
        let agent_pid = sut.show(AGENT_UNIT, "MainPID")?;
        let timer_since = sut.show(TIMER, "ActiveEnterTimestampMonotonic")?;
        repo.publish_next_updater(fx)?;
        pm.routine_upgrade(c)?;
        let v = pm.installed(c, UPDATER)?;
        if v.as_deref() != Some(fx.updater_next.version.as_str()) {
            return Err(format!(
                "{UPDATER} is {v:?} after the upgrade, expected {}",
                fx.updater_next.version
            ));
        }
        // 16.0.1 is in the repository: only the hold keeps the agent.
        sut.expect_agent(&agent_before)?;
        if sut.show(AGENT_UNIT, "MainPID")? != agent_pid {
            return Err("upgrading the updater restarted the agent".into());
        }
        let starts = sut.check_starts()?;
        let (enabled, active) = sut.timer_state()?;
        if enabled != "enabled" || active != "active" {
            return Err(format!("{TIMER} is {enabled}/{active} after the upgrade"));
        }
        let restarted = sut.show(TIMER, "ActiveEnterTimestampMonotonic")? != timer_since;
        Ok(format!(
            "{UPDATER} {} -> {}; {AGENT} stays {agent_before} (16.0.1 offered); timer {}; {starts}",
            fx.updater.version,
            fx.updater_next.version,
            if restarted {
                "restarted"
            } else {
                "kept running"
            }
        ))
    })?;

    rec.step(Scenario::UpdaterRemoved, || {
        let agent_before = sut.agent_version()?.unwrap_or_default();
        let agent_pid = sut.show(AGENT_UNIT, "MainPID")?;
        pm.remove_updater(c)?;
        if let Some(v) = pm.installed(c, UPDATER)? {
            return Err(format!("{UPDATER} {v} is still installed"));
        }
        sut.expect_agent(&agent_before)?;
        if sut.show(AGENT_UNIT, "ActiveState")? != "active"
            || sut.show(AGENT_UNIT, "MainPID")? != agent_pid
        {
            return Err("removing the updater stopped or restarted the agent".into());
        }
        let starts = sut.check_starts()?;
        for f in ["endpoint", "insecure", "schedule"] {
            if !c.exists(&format!("{CONFIG_DIR}/{f}")) {
                return Err(format!("{CONFIG_DIR}/{f} is gone"));
            }
        }
        if c.exists("/usr/sbin/teleport-upgrade") {
            return Err("/usr/sbin/teleport-upgrade is still there".into());
        }
        let timer_load = sut.show(TIMER, "LoadState")?;
        let timer_active = sut.show(TIMER, "ActiveState")?;
        if timer_load != "not-found" || timer_active != "inactive" {
            return Err(format!(
                "{TIMER} is {timer_load}/{timer_active} after the removal"
            ));
        }
        Ok(format!(
            "{AGENT} {agent_before} running on (same pid); {CONFIG_DIR} kept; timer gone; {starts}"
        ))
    })?;
    Ok(())
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
