//! The command line: v1's interface (`run`, `dry-run`, `force`, `version`,
//! `status`, `help`) plus `--root`, `--config-dir` and `-v`. The settings
//! and exit codes at the end of `--help` come from their tables
//! ([`crate::reference`]).

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
A lower target is installed too (that is how a fleet is rolled back), once two checks \
`unhealthy-interval` apart advertise it, or at once when critical. A schedule \
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
    after_long_help = crate::reference::help_after(),
    after_help = "Settings, files and exit codes: see --help.",
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

    /// More detail in the logs (-v debug, -vv trace); `dry-run -v` shows
    /// every command line in full, enforcement options included.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
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
