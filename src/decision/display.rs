//! How a decision reads in the log, `dry-run` and `status`.

use std::fmt;

use super::*;
use crate::schedule::rfc3339;

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::StandDown { by: StandDownBy::Schedule } => f.write_str("stand down: the schedule says nop (Managed Updates v2 manages this host)"),
            Decision::StandDown { by: StandDownBy::V2 { file } } => write!(f, "stand down: Managed Updates v2 (teleport-update) manages this host ({file} is present and enabled)"),
            Decision::NoTarget => f.write_str("nothing to do: the version server advertises no target (none)"),
            Decision::UpToDate => f.write_str("nothing to do: the installed version is the target"),
            Decision::Update { reason } => match reason {
                UpdateReason::Forced => f.write_str("update: forced by the operator"),
                UpdateReason::Critical => f.write_str("update: the version server marks it critical"),
                UpdateReason::InWindow { window } => write!(
                    f,
                    "update: inside the maintenance window {} .. {}",
                    rfc3339(window.start),
                    rfc3339(window.stop)
                ),
                UpdateReason::ClusterGroup { group } => write!(
                    f,
                    "update: the cluster's rollout has reached update group {group} (agent_auto_update)"
                ),
                UpdateReason::Finish => f.write_str(
                    "update: finish the update an earlier run installed (restart and check the agent)",
                ),
                UpdateReason::RollBack { failed, why } => write!(
                    f,
                    "update: put the version before {failed} back ({failed} did not become healthy: {why}; its rollback was interrupted)"
                ),
                UpdateReason::Unhealthy { why } => {
                    write!(f, "update: the agent looks unhealthy on two consecutive runs ({why})")
                }
            },
            Decision::Wait { reason } => match reason {
                WaitReason::OutsideWindow { next: Some(w) } => {
                    write!(f, "wait: outside the maintenance window; next window starts {}", rfc3339(w.start))
                }
                WaitReason::OutsideWindow { next: None } => {
                    f.write_str("wait: outside the maintenance window; no later window is scheduled")
                }
                WaitReason::ClusterGroup { group } => write!(
                    f,
                    "wait: the cluster's rollout has not reached update group {group} yet (agent_auto_update is false)"
                ),
                WaitReason::FirstUnhealthy { why } => write!(
                    f,
                    "wait: the agent looks unhealthy ({why}); marked, and the next run updates if it still is"
                ),
                WaitReason::WindowClosing { window, margin, next } => write!(
                    f,
                    "wait: the maintenance window closes at {}, in less than window-margin ({margin} s): an update started now could restart the agent after it; {}",
                    rfc3339(window.stop),
                    match next {
                        Some(w) => format!("next window starts {}", rfc3339(w.start)),
                        None => "no later window is scheduled".into(),
                    }
                ),
                WaitReason::LowerUnconfirmed { target, since, confirm_at } => write!(
                    f,
                    "wait: the target {target} is below the installed version, first seen {}; it is installed when a check from {} still advertises it (two checks unhealthy-interval apart: answers of proxies that disagree do not flip the agent), or at once when critical",
                    rfc3339(*since),
                    rfc3339(*confirm_at)
                ),
                WaitReason::FailedBefore => f.write_str(
                    "wait: this target failed its health check on this host and was rolled back; it is retried only when the target changes, the update is critical, or with force"
                ),
            },
        }
    }
}
