//! `SIGTERM`, `SIGINT` and `SIGHUP` during a run: the signal only sets a
//! flag. The package manager's child runs in its own process group (see
//! `backends::cmd::Runner`), so a terminal's Ctrl-C does not reach it, and
//! the unit's `KillMode=mixed` sends systemd's `SIGTERM` to the updater
//! only. The executor checks the flag at each step boundary: the step in
//! progress (a dpkg or rpm transaction) finishes with its bookkeeping (the
//! hold after an install, the journal, the state file), then the run exits
//! with [`crate::error::Exit::Interrupted`], leaving the rest of the plan in
//! the journal for the next run.

use std::sync::atomic::{AtomicI32, Ordering};

static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: nix::libc::c_int) {
    RECEIVED.store(sig, Ordering::SeqCst);
}

/// Catch the stop signals (once per process; harmless to repeat).
pub fn install() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: the handler only stores into an atomic.
        if let Err(e) = unsafe { sigaction(s, &action) } {
            tracing::warn!("cannot catch {s}: {e}");
        }
    }
}

/// The stop signal received, if any.
pub fn received() -> Option<&'static str> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        s if s == nix::libc::SIGTERM => Some("SIGTERM"),
        s if s == nix::libc::SIGINT => Some("SIGINT"),
        s if s == nix::libc::SIGHUP => Some("SIGHUP"),
        _ => Some("a signal"),
    }
}
