//! The command line: v1's interface (`run`, `dry-run`, `force`, `version`,
//! `status`, `help`) plus `--root`, `--config-dir` and `-v`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

const ABOUT: &str = "Keep this host's Teleport agent on the version its cluster advertises.";

const LONG_ABOUT: &str = "\
Keep this host's Teleport agent on the version its cluster advertises, through \
the system's package manager (apt, dnf/yum or zypper).

Each run asks the version server (the `endpoint` setting: the Teleport proxy, or a \
static server answering /version and /critical) for the target version, and updates \
the agent package to exactly that version, from the Teleport repository only, when:
  - the update is critical, or
  - now is strictly inside a maintenance window of the agent's `schedule` file, or
  - the agent has looked unhealthy on two consecutive runs (the schedule is missing, \
empty, stale or unreadable, or teleport.service has failed).
A lower target is installed too: that is how a fleet is rolled back. A schedule \
of `nop` means another updater manages this host: stand down. After an update the \
package is held so that routine upgrades cannot move it, and the agent is restarted.

The systemd timer `teleport-upgrade.timer` runs `teleport-upgrade run` about every \
30 minutes; you rarely need to run it by hand. Start with `teleport-upgrade status` \
and `teleport-upgrade dry-run`.";

#[derive(Debug, Parser)]
#[command(
    name = "teleport-upgrade",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_long_help = const_format_after(),
    after_help = "Exit codes and configuration files: see --help.",
    propagate_version = true
)]
pub struct Cli {
    /// Act on the system image rooted at DIR as if chrooted there (config,
    /// state, lock and the package database inside DIR; the agent is not
    /// restarted).
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// The configuration directory [default: /etc/teleport-upgrade.d, or
    /// $TELEPORT_UPGRADE_CONFIG].
    #[arg(long, global = true, value_name = "DIR")]
    pub config_dir: Option<PathBuf>,

    /// More detail in the logs (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

const fn const_format_after() -> &'static str {
    concat!(
        "CONFIGURATION (one value per file in /etc/teleport-upgrade.d/, or $TELEPORT_UPGRADE_CONFIG):\n",
        "    endpoint       host[:port]/path of the version server, no scheme\n",
        "    package        teleport, teleport-ent or teleport-ent-fips (default: the one installed)\n",
        "    installer      apt, yum, dnf, zypper or nop (default: detected)\n",
        "    insecure       yes: plain http, for localhost only\n",
        "    debug          yes: verbose logs\n",
        "    schedule       written by the agent: maintenance windows, or nop\n",
        "    mark-unhealthy written by the updater: when a run first saw the agent unhealthy\n",
        "    unhealthy-interval seconds between two unhealthy observations (default 300)\n",
        "    verify-interval most seconds between two full integrity checks (default 86400)\n",
        "    ca-file        extra CA bundle (PEM) for the version server\n",
        "    source-file    the repository definition to use instead of finding it\n",
        "    repository     v1's name for it: apt list name, or yum/zypper repo id\n",
        "    lock-timeout   seconds to wait for the package manager's lock (default 120)\n",
        "    trusted-keys   pinned release key fingerprints, one per line (optional)\n",
        "    metrics-dir    directory for teleport_upgrade.prom, or none\n",
        "    health-timeout seconds to wait for a healthy agent after an update (default 300, 0 off)\n",
        "    diag-addr      host:port of the agent's /readyz (default: diag_addr in /etc/teleport.yaml)\n",
        "    restart-mode   reload (default): a routine update reloads the running agent\n",
        "                   (sessions kept); restart: always restart it\n",
        "    recheck-delay  seconds after a first unhealthy sighting to look again (default 300, 0 off)\n",
        "    cluster-guard  best-effort (default) or required: refuse a target when the cluster's\n",
        "                   version (the proxy's server_version) cannot be learned\n",
        "\n",
        "State: /var/lib/teleport-upgrade, or $TELEPORT_UPGRADE_STATE (v1's state-unhealthy\n",
        "there counts as the unhealthy marker).\n",
        "\n",
        "Logs go to stderr (the journal under systemd: journalctl -u teleport-upgrade).\n",
        "\n",
        "EXIT CODES:\n",
        "    0  nothing to do, waiting for a window, stood down, or updated\n",
        "    1  could not learn the target version from the version server, or no\n",
        "       FleetLock slot (lock server unreachable or all slots taken)\n",
        "    2  usage or configuration error\n",
        "    3  refused: invalid answer from the version server, a target above the\n",
        "       cluster's version or more than one major below it, or a trust failure\n",
        "       (unsigned or wrongly signed repository, weakened verification)\n",
        "    4  the update was attempted and failed (the agent may be unchanged)\n",
        "    5  another teleport-upgrade run holds the lock, or the package manager\n",
        "       stays busy (an earlier transaction still running) past lock-timeout\n",
        "    6  updated, but the agent did not become healthy: rolled back to the\n",
        "       previous version (not retried until the target changes)\n",
        "    7  the agent did not become healthy and the rollback failed too:\n",
        "       the host needs an operator\n",
        "    8  stopped by SIGTERM/SIGINT/SIGHUP at a step boundary (a running\n",
        "       package operation was let finish); the next run finishes the plan\n",
    )
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Decide and, when policy says so, update the agent (what the timer runs).
    Run,
    /// Show the decision and the exact package commands, changing nothing.
    DryRun,
    /// Update now whatever the window and health say (never bypasses
    /// validation, trust checks or a `nop` schedule).
    Force,
    /// Show installed and target versions, windows, health, lock and the
    /// last run.
    Status {
        /// Machine-readable JSON (schema 1).
        #[arg(long)]
        json: bool,
    },
    /// Print this updater's version.
    Version {
        /// Only the version number.
        #[arg(long)]
        raw: bool,
    },
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::EXIT_CODES_HELP;

    #[test]
    fn help_lists_every_exit_code_of_the_error_module() {
        let help = const_format_after();
        for line in EXIT_CODES_HELP.lines() {
            assert!(help.contains(line), "--help lacks {line:?}");
        }
    }
}
