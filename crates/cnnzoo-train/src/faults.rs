//! Fault injection for the reliability tests: `CNNZOO_FAULT=ACTION:POINT[@N]` acts at the
//! N-th (default first) pass through a named point of the run.
//!
//! Actions: `kill` ends the process on the spot (an abort: nothing flushed, no destructor run,
//! as `kill -9` leaves it), `enospc` makes the write at that point fail as a full disk does,
//! `term` sends the process SIGTERM (what `timeout`, Docker and Slurm send). Points: `batch`
//! (after an optimiser step), `save:model`, `save:optimizer`, `save:state` (a checkpoint's
//! files written into its temporary folder), `save:swap` (between the two renames),
//! `epoch-end:last`, `epoch-end:best`, `epoch-end:metrics` (each output of an epoch's end
//! committed). Unset, every point is a no-op.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The environment variable that arms a fault.
pub const VAR: &str = "CNNZOO_FAULT";

#[derive(Debug)]
struct Fault {
    action: String,
    point: String,
    nth: usize,
}

fn armed() -> Option<&'static Fault> {
    static FAULT: OnceLock<Option<Fault>> = OnceLock::new();
    FAULT
        .get_or_init(|| {
            let spec = std::env::var(VAR).ok()?;
            let (action, rest) = spec.split_once(':')?;
            let (point, nth) = match rest.rsplit_once('@') {
                Some((p, n)) => (p, n.parse().ok()?),
                None => (rest, 1),
            };
            Some(Fault {
                action: action.to_string(),
                point: point.to_string(),
                nth,
            })
        })
        .as_ref()
}

/// Passes through point `name`: a no-op unless a fault is armed there, in which case the
/// process dies, receives SIGTERM, or gets the error a full disk gives.
pub fn point(name: &str) -> std::io::Result<()> {
    static PASSES: AtomicUsize = AtomicUsize::new(0);
    let Some(fault) = armed().filter(|f| f.point == name) else {
        return Ok(());
    };
    if PASSES.fetch_add(1, Ordering::SeqCst) + 1 != fault.nth {
        return Ok(());
    }
    match fault.action.as_str() {
        "kill" => std::process::abort(),
        "enospc" => Err(std::io::Error::from_raw_os_error(28)),
        "term" => {
            terminate_self();
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(unix)]
fn terminate_self() {
    // SAFETY: raise() has no preconditions; the handler installed by the CLI runs.
    unsafe {
        libc::raise(libc::SIGTERM);
    }
}

#[cfg(not(unix))]
fn terminate_self() {}
