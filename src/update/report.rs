//! What a run says about its decision: the log, the record, and the head
//! of `dry-run`'s report.

use std::io::Write;

use crate::decision::{Decision, Outcome, UpdateReason};
use crate::state::{self, LastRun};

use super::observation::Seen;

/// Log and record the stand-down (nothing else is looked at).
pub fn stand_down(d: &Decision, rec: &mut LastRun, dry_run: bool, out: &mut dyn Write) {
    tracing::info!(decision = d.word(), "{d}");
    rec.decision = Some(d.into());
    rec.detail = Some(d.to_string());
    if dry_run {
        let _ = writeln!(out, "decision: {d}");
    }
}

/// Log and record the decision; a dry run prints it.
pub fn decision(
    seen: &Seen,
    o: &Outcome,
    guard_mode: &str,
    rec: &mut LastRun,
    dry_run: bool,
    out: &mut dyn Write,
) {
    let d = &o.decision;
    let installed = &seen.installed;
    let target = &seen.observed.target;
    rec.decision = Some(d.into());
    rec.detail = Some(d.to_string());
    tracing::info!(decision = d.word(), installed = %installed.version, target = %target, "{d}");
    if let Decision::Update {
        reason: UpdateReason::RollBack { failed, .. },
    } = d
    {
        // A rollback that ends well records `failed` as the failed target.
        rec.target = Some(failed.clone());
    }
    if let Some(dmg) = &o.repairs.damaged {
        tracing::warn!(package = %installed.name, "the installed package's executables do not verify: {dmg}; reinstalling {}", installed.version);
        rec.decision = Some(state::Decided::Repair);
        rec.detail = Some(format!("repair: {dmg}"));
    }
    for r in o.repairs.describe() {
        tracing::info!(package = %installed.name, "repair: {r}");
    }
    if let (true, Some(u), Decision::Update { reason }) = (seen.observed.fleet_lock, &o.update, d) {
        match reason {
            UpdateReason::Critical if !u.slot => {
                tracing::warn!("the update is critical: not taking a FleetLock slot")
            }
            UpdateReason::Forced if !u.slot => {
                tracing::warn!("the update is forced: not taking a FleetLock slot")
            }
            _ => {}
        }
    }
    if let Some(u) = &o.update {
        if let (Err(why), Some(_)) = (&u.reload, seen.observed.agent.restart()) {
            tracing::info!("restarting the agent after the update, not reloading it: {why}");
        }
    }
    if let Some(r) = &o.refused {
        tracing::warn!(cluster_guard = guard_mode, "{r}");
    }
    if let Some(h) = &o.halted {
        tracing::warn!("rollout halted: {h}");
        if dry_run {
            let _ = writeln!(out, "rollout halted: {h}");
        }
    }
    if o.hands_off && (o.update.is_some() || !o.repairs.is_empty()) {
        tracing::info!("installer is nop: not changing {}", installed.name);
    }
    if !dry_run {
        return;
    }
    let _ = writeln!(
        out,
        "package:   {} ({})",
        installed.name,
        seen.backend.kind()
    );
    let _ = writeln!(out, "installed: {}", installed.version);
    let _ = writeln!(
        out,
        "target:    {} (critical: {})",
        target,
        if seen.observed.critical { "yes" } else { "no" }
    );
    let _ = writeln!(out, "decision:  {d}");
    for r in o.repairs.describe() {
        let _ = writeln!(out, "repair:    {r}");
    }
    if let Some(g) = &rec.cluster_guard {
        let _ = writeln!(
            out,
            "cluster:   {} ({g}; cluster-guard {guard_mode})",
            rec.cluster_version.as_deref().unwrap_or("unknown")
        );
    }
    if o.hands_off {
        let _ = writeln!(
            out,
            "installer is nop: nothing is changed, the plan is never executed"
        );
    }
}
