//! What the partition knows of the SPMC, which decides how [`super::stop`] ends it.

use core::sync::atomic::{AtomicU8, Ordering};

/// Nothing known yet.
const UNKNOWN: u8 = 0;
/// An SPMC answered `FFA_VERSION`.
const PRESENT: u8 = 1;
/// Nothing answered `FFA_VERSION`.
const ABSENT: u8 = 2;
/// The partition left start-up (its next FF-A call was the first `FFA_MSG_WAIT`).
const RUNNING: u8 = 3;

static SPMC: AtomicU8 = AtomicU8::new(UNKNOWN);

/// Records whether an SPMC answered `FFA_VERSION`.
pub fn set_present(present: bool) {
    SPMC.store(if present { PRESENT } else { ABSENT }, Ordering::Release);
}

/// Records what an emergency `FFA_VERSION` probe found (a panic or fatal exception before
/// start-up got that far), unless something is already known.
pub fn note(present: bool) {
    let state = if present { PRESENT } else { ABSENT };
    let _ = SPMC.compare_exchange(UNKNOWN, state, Ordering::AcqRel, Ordering::Acquire);
}

/// Records that the partition leaves start-up.
pub fn set_running() {
    SPMC.store(RUNNING, Ordering::Release);
}

/// Whether an SPMC is known to be there (so `FFA_ERROR` is the way to stop).
pub fn present() -> bool {
    matches!(SPMC.load(Ordering::Acquire), PRESENT | RUNNING)
}
