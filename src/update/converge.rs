//! Converge what an earlier run left: its journal (an input of the
//! decision, see [`crate::decision::resume`]) and a channel move it did not
//! finish. Whatever the decision, the journal is retired here before this
//! run's plan is executed: superseded by the plan built again, or
//! abandoned (logged, counted, shown in `status`, its FleetLock slot given
//! back).

use std::io::Write;

use backends::{Backend, Source};

use crate::decision::Resume;
use crate::error::AppError;
use crate::run::Env;
use crate::state::LastRun;

use super::execute::{fleet_client, Done};
use super::journal::{self, Journal};

/// The plan an earlier run left unfinished, if any. One that cannot be
/// used is set aside (not by a dry run) and reported as a problem of this
/// run; the run then converges from what it observes.
pub fn unfinished(
    env: &Env,
    dry_run: bool,
    out: &mut dyn Write,
    rec: &mut LastRun,
) -> Option<Journal> {
    let path = journal::path(&env.system);
    let loaded = if dry_run {
        journal::peek(&path)
    } else {
        journal::load(&path)
    };
    match loaded {
        Ok(Some(j)) => {
            let what = j.describe(&env.system);
            tracing::warn!("an earlier run left a plan unfinished: {what}");
            if dry_run {
                let _ = writeln!(out, "unfinished: an earlier run left a plan: {what}");
            }
            Some(j)
        }
        Ok(None) => None,
        Err(e) => {
            tracing::warn!("{e}");
            if dry_run {
                let _ = writeln!(out, "unfinished: {e}");
            }
            rec.abandoned = Some(e);
            None
        }
    }
}

/// Retire the unfinished plan `j`: superseded when this run builds it again
/// (`rebuilt`), otherwise abandoned. A dry run only says which.
pub fn retire(
    env: &Env,
    j: Option<Journal>,
    resume: &Resume,
    rebuilt: bool,
    dry_run: bool,
    out: &mut dyn Write,
    done: &mut Done,
) {
    let Some(j) = j else {
        return;
    };
    let what = j.describe(&env.system);
    let why = match (resume, rebuilt) {
        (Resume::Continue | Resume::Finish | Resume::RollBack, true) => {
            tracing::info!("the unfinished plan is built again: {resume}");
            if dry_run {
                let _ = writeln!(out, "resume:    {resume}");
            }
            done.counted_before = j.counted;
            return;
        }
        (Resume::Abandon { why }, _) => why.clone(),
        _ => "the checks of this run refused to make it again (see below)".to_string(),
    };
    if dry_run {
        let _ = writeln!(
            out,
            "resume:    abandon it once the host is converged: {why}"
        );
        return;
    }
    if let Some((group, id)) = j.slot_taken() {
        give_back(env, &group, &id, done);
    }
    let path = journal::path(&env.system);
    if let Err(e) = journal::remove(&path) {
        tracing::warn!(file = %path.display(), "cannot remove the abandoned plan: {e}");
    }
    tracing::warn!("abandoned the unfinished plan ({what}): {why}");
    // Nothing of it will be rolled back: the package it kept goes too.
    super::kept::drop_kept(&env.system);
    done.abandoned = Some(format!("{what}: {why}"));
}

/// Give back the FleetLock slot an abandoned plan took (best effort).
fn give_back(env: &Env, group: &str, id: &str, done: &mut Done) {
    let r = fleet_client(env, group, id)
        .map_err(|e| e.to_string())
        .and_then(|c| match c {
            None => Ok(()),
            Some(c) => super::execute::lock_call(env, "release", done, || c.release())
                .map_err(|e| e.to_string()),
        });
    match r {
        Ok(()) => {
            tracing::info!(group = %group, "gave back the FleetLock slot of the abandoned plan");
            done.slot_released = true;
            done.clear = Some(crate::fleetlock::SlotId {
                group: group.into(),
                id: id.into(),
            });
        }
        Err(e) => {
            tracing::warn!(group = %group, "cannot give back the FleetLock slot of the abandoned plan: {e}")
        }
    }
}

/// A channel move that an earlier run left unfinished (it was killed
/// between editing the repository definition and keeping or undoing the
/// edit: the backup is still there, and no journal says what to do) is
/// undone first, so this run starts from the operator's file and moves the
/// channel again only if its target needs it. A file edited since that
/// move is left as it is, with its backup, and a warning.
pub fn finish_interrupted_move(
    backend: &dyn Backend,
    source: Source,
    dry_run: bool,
    out: &mut dyn Write,
) -> Result<Source, AppError> {
    use backends::channel::Interrupted;
    match backend
        .interrupted_channel_move(&source)
        .map_err(AppError::from_backend)?
    {
        None => Ok(source),
        Some(Interrupted::Undo(m)) if dry_run => {
            let _ = writeln!(
                out,
                "recover:   an earlier run left a channel move unfinished ({}): would restore {} from {}",
                m.describe(),
                m.file.display(),
                backend.system().display_path(&m.backup)
            );
            Ok(source)
        }
        Some(Interrupted::Undo(m)) => {
            m.restore()
                .and_then(|()| m.remove_backup())
                .map_err(AppError::from_backend)?;
            tracing::warn!(file = %m.file.display(), "an earlier run stopped in the middle of a channel move ({}): restored {} from {}", m.describe(), m.file.display(), backend.system().display_path(&m.backup));
            backend
                .reload_source(&source)
                .map_err(AppError::from_backend)
        }
        Some(Interrupted::Edited { file, backup }) => {
            let msg = format!("{} is left from an unfinished channel move, but {} was edited since: both are left as they are; remove the backup once the definition is right", backend.system().display_path(&backup), file.display());
            tracing::warn!("{msg}");
            if dry_run {
                let _ = writeln!(out, "recover:   {msg}");
            }
            Ok(source)
        }
    }
}
