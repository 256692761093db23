//! `dry-run`'s report: the plan `run` would execute, step by step, with
//! the commands each step runs (from the backends' own command builders,
//! [`Backend::plan`] and [`Backend::plan_reinstall`]) and what undoes it.

use std::io::Write;

use backends::{Backend, CommandLine, Installed, PkgVersion, Source};

use crate::health::{self, AgentBefore};
use crate::run::Audit;
use crate::verify::Check;

use super::journal::{Journal, Phase};
use super::plan::{Plan, Step};

/// What the report shows besides the plan.
pub struct View<'a> {
    pub backend: &'a dyn Backend,
    pub source: &'a Source,
    pub installed: &'a Installed,
    pub before: AgentBefore,
    pub check: Option<&'a Check>,
    pub audit: Option<&'a Result<Audit, crate::error::AppError>>,
    /// `installer` is `nop`: the plan is shown, never executed.
    pub nop: bool,
    /// The channel move the install may need, described.
    pub channel: Option<String>,
}

/// The commands of the backend's update (or reinstall) sequence, split by
/// step: the first is the refresh; those up to the one naming the version
/// belong to the install (zypper lifts its lock first); the rest are the
/// hold.
fn split(cmds: Vec<CommandLine>, version: &str) -> [Vec<CommandLine>; 3] {
    let mut it = cmds.into_iter();
    let refresh: Vec<_> = it.next().into_iter().collect();
    let rest: Vec<_> = it.collect();
    let at = rest
        .iter()
        .position(|c| c.to_string().contains(version))
        .unwrap_or(0);
    let (install, hold) = rest.split_at((at + 1).min(rest.len()));
    [refresh, install.to_vec(), hold.to_vec()]
}

/// The commands step `s` runs, for the report.
fn commands(v: &View, s: &Step) -> Vec<String> {
    let pkg = &v.installed.name;
    let version = |x: &str| PkgVersion::parse(x).unwrap_or_else(|_| v.installed.version.clone());
    let show = |c: &[CommandLine]| c.iter().map(|c| c.to_string()).collect::<Vec<_>>();
    match s {
        Step::FinishTransaction => {
            vec!["(only when a transaction was interrupted: dpkg --configure -a; rpm -e of the older of two versions)".into()]
        }
        Step::Refresh => {
            let [r, _, _] = split(
                v.backend.plan(v.source, pkg, &v.installed.version),
                v.installed.version.as_str(),
            );
            show(&r)
        }
        Step::Install { to, .. } => {
            let [_, i, _] = split(v.backend.plan(v.source, pkg, &version(to)), to);
            show(&i)
        }
        Step::Reinstall { version: x } => {
            let cmds = v.backend.plan_reinstall(v.source, pkg, &version(x));
            show(&cmds[1.min(cmds.len())..])
        }
        Step::Hold => {
            let x = v.installed.version.as_str();
            let [_, _, h] = split(v.backend.plan(v.source, pkg, &v.installed.version), x);
            let mut out = show(&h);
            out.insert(0, "(when not held already)".into());
            out
        }
        Step::Restart => match v.before.restart() {
            Some(how) => show(&health::restart_commands(how, false)),
            None => vec![format!(
                "(no restart: {} is not running)",
                health::AGENT_UNIT
            )],
        },
        Step::Reload => vec![
            format!("systemctl reload {}", health::AGENT_UNIT),
            format!(
                "(systemctl try-restart {} when it cannot reload or the reload fails)",
                health::AGENT_UNIT
            ),
        ],
        Step::Verify => match v.check {
            Some(c) => vec![format!("wait for {}", c.describe())],
            None => Vec::new(),
        },
        Step::KeepChannel => Vec::new(),
        Step::TakeSlot { .. } => vec!["POST <fleet-lock>/v1/pre-reboot (fleet-lock-protocol: true); no slot: nothing is changed, exit 1".into()],
        Step::ReleaseSlot { .. } => vec!["POST <fleet-lock>/v1/steady-state (fleet-lock-protocol: true)".into()],
    }
}

/// Print `plan` as `run` would execute it.
pub fn print_plan(v: &View, plan: &Plan, out: &mut dyn Write) {
    match v.audit {
        Some(Ok(r)) => {
            let _ = writeln!(out, "trust:     ok ({})", r.checked.join("; "));
        }
        Some(Err(e)) => {
            let _ = writeln!(out, "trust:     REFUSED: {e}");
        }
        None => {}
    }
    if let Some(c) = &v.channel {
        let _ = writeln!(out, "channel:   {c}");
    }
    if v.nop {
        let _ = writeln!(out, "installer is nop: the plan is never executed");
    }
    let _ = writeln!(out, "plan:");
    for (i, s) in plan.steps.iter().enumerate() {
        let _ = writeln!(out, "  {}. {s}", i + 1);
        for c in commands(v, s) {
            let _ = writeln!(out, "       {c}");
        }
        let undo = plan.undo_for_failure(i);
        if !undo.is_empty() {
            let list = undo.iter().map(|u| u.to_string()).collect::<Vec<_>>();
            let _ = writeln!(out, "       on failure: {}", list.join("; "));
        }
    }
    // The old report's summary lines, which tests and operators read.
    let _ = writeln!(out, "would run:");
    for s in &plan.steps {
        for c in commands(v, s) {
            if !c.starts_with('(') && !c.starts_with("wait for") {
                let _ = writeln!(out, "  {c}");
            }
        }
    }
    if let (Some(c), Some(Step::Install { from, .. })) = (
        v.check,
        plan.steps
            .iter()
            .find(|s| matches!(s, Step::Install { .. })),
    ) {
        let _ = writeln!(
            out,
            "then:      wait for {}; otherwise roll back to {from}",
            c.describe()
        );
    }
}

/// What `run` would do about an unfinished plan.
pub fn print_resume(j: &Journal, out: &mut dyn Write) {
    match j.phase {
        Phase::Forward => {
            let _ = writeln!(out, "would finish it first:");
            for s in &j.plan.steps[j.done.min(j.plan.steps.len())..] {
                let _ = writeln!(out, "  {s}");
            }
        }
        Phase::Undoing => {
            let _ = writeln!(out, "would undo it first:");
            let failed = j.failed.unwrap_or(j.done).min(j.plan.steps.len() - 1);
            for u in j.plan.undo_for_failure(failed) {
                let _ = writeln!(out, "  {u}");
            }
        }
    }
}
