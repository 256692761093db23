//! What becomes of a plan an earlier run left unfinished (killed, rebooted,
//! out of disk): an input of the decision like any other, never a way
//! round it.
//!
//! A resumed run may always converge the host without the gates: finish a
//! transaction the package manager left half-done, hold whatever version is
//! installed, put back a repository definition it edited. It never starts
//! or repeats a download or an install that the current decision does not
//! want:
//! - an update whose install is done (the target is installed) is
//!   finished: the pending restart and health check, a rollback if the new
//!   version is unhealthy (an install, through the same gates);
//! - an update not installed yet is continued only when a fresh run, from
//!   the version the update started from, would make the same update now
//!   (same target; window open, unhealthy, critical or forced; installer
//!   and schedule not `nop`); its plan is then built again and goes through
//!   the same gates as a fresh one (trust audit and key pin, cluster guard);
//! - an interrupted rollback is made again, through the same gates.
//!
//! Anything else is abandoned: logged, counted and shown in `status`.

use std::fmt;

use backends::PkgVersion;

use super::{decide_version, stand_down, Decision, Observed};
use crate::target::Target;

/// An unfinished plan, as the decision sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unfinished {
    /// An update from `from` to `to`, going forward. `counted`: the run
    /// that wrote it counted the update already (it installed, then
    /// deferred the restart).
    Update {
        from: PkgVersion,
        to: String,
        counted: bool,
        /// It had taken a FleetLock slot.
        slot: bool,
        /// The names of its steps that are done.
        done: Vec<String>,
    },
    /// The rollback of an update to `to` that did not become healthy
    /// (`why`): `from` is to be put back.
    RollingBack {
        from: PkgVersion,
        to: String,
        why: String,
    },
    /// Anything else (a repair, the undo of a failed update): converged
    /// from what this run observes, then closed.
    Other { what: String },
}

/// What this run does about an unfinished plan.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Resume {
    /// There is none.
    #[default]
    None,
    /// A fresh run would make the same update: its plan is built again.
    Continue,
    /// Its install is done: the plan is built again to restart and check
    /// the new version (and roll it back if it is unhealthy).
    Finish,
    /// The rollback of a failed update is made again.
    RollBack,
    /// Closed once the host is converged; nothing more of it is done.
    Abandon { why: String },
}

impl Resume {
    /// A short word for the log and the record.
    pub fn word(&self) -> &'static str {
        match self {
            Resume::None => "none",
            Resume::Continue => "continue",
            Resume::Finish => "finish",
            Resume::RollBack => "roll-back",
            Resume::Abandon { .. } => "abandon",
        }
    }
}

impl fmt::Display for Resume {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resume::None => f.write_str("no unfinished plan"),
            Resume::Continue => f.write_str(
                "continue it: a fresh run would make the same update now (its plan is built again and passes the same checks)",
            ),
            Resume::Finish => f.write_str(
                "finish it: its install is done; restart and check the new version (a rollback passes the same checks as an update)",
            ),
            Resume::RollBack => f.write_str("finish its rollback (through the same checks as an update)"),
            Resume::Abandon { why } => write!(f, "abandon it once the host is converged: {why}"),
        }
    }
}

/// Judge the unfinished plan of `o`.
pub fn judge(o: &Observed) -> Resume {
    let Some(u) = &o.unfinished else {
        return Resume::None;
    };
    if let Some(d) = stand_down(&o.schedule, o.v2.as_deref()) {
        return Resume::Abandon { why: d.to_string() };
    }
    if o.installer_nop {
        return Resume::Abandon {
            why: "installer is nop: nothing is changed".into(),
        };
    }
    match u {
        Unfinished::Other { what } => Resume::Abandon {
            why: format!("{what}; this run converges the host from what it observes"),
        },
        Unfinished::RollingBack { .. } => Resume::RollBack,
        Unfinished::Update { from, to, .. }
            if PkgVersion::parse(to).is_ok_and(|to| o.installed.same_upstream(&to)) =>
        {
            Resume::Finish
        }
        Unfinished::Update { from, to, .. } => {
            let fresh = decide_version(&Observed {
                installed: from.clone(),
                ..o.clone()
            });
            let same_target = match &o.target {
                Target::Version(t) => {
                    PkgVersion::parse(to).is_ok_and(|to| to.same_upstream(&t.package_version()))
                }
                Target::NoTarget => false,
            };
            match (&fresh.decision, same_target) {
                (Decision::Update { .. }, true) => Resume::Continue,
                (Decision::Update { .. }, false) => Resume::Abandon {
                    why: format!("the target is now {}, not {to}", o.target),
                },
                (d, _) => Resume::Abandon {
                    why: format!("a fresh run from {from} would not update to {to} now ({d})"),
                },
            }
        }
    }
}
