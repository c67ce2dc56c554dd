//! Flushing the CommitLog: group commit for SYNC_FLUSH, the interval flusher for ASYNC_FLUSH.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Shared state between appenders waiting for durability and the flusher thread.
#[derive(Default)]
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    requested_cv: Condvar,
    flushed_cv: Condvar,
}

#[derive(Default)]
struct State {
    requested: u64,
    flushed: u64,
    failed: bool,
}

/// How a wait for durability ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Durable {
    Yes,
    TimedOut,
    Failed,
}

impl GroupCommit {
    pub(crate) fn new(flushed: u64) -> GroupCommit {
        GroupCommit { state: Mutex::new(State { requested: flushed, flushed, failed: false }), ..Default::default() }
    }

    /// Asks for `end` to become durable and waits until it is, the flush fails, or `timeout`.
    pub(crate) fn wait_durable(&self, end: u64, timeout: Duration) -> Durable {
        let deadline = Instant::now() + timeout;
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.requested < end {
            s.requested = end;
            self.requested_cv.notify_one();
        }
        loop {
            if s.failed {
                return Durable::Failed;
            }
            if s.flushed >= end {
                return Durable::Yes;
            }
            let now = Instant::now();
            if now >= deadline {
                return Durable::TimedOut;
            }
            s = self.flushed_cv.wait_timeout(s, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Flusher: waits up to `idle` for a request beyond what is flushed; returns the target.
    pub(crate) fn next_request(&self, idle: Duration) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.requested <= s.flushed {
            s = self.requested_cv.wait_timeout(s, idle).unwrap_or_else(|p| p.into_inner()).0;
        }
        (s.requested > s.flushed).then_some(s.requested)
    }

    /// Flusher: everything below `offset` is durable now.
    pub(crate) fn flushed(&self, offset: u64) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.flushed = s.flushed.max(offset);
        self.flushed_cv.notify_all();
    }

    /// Flusher: the sync failed; every waiter, now and later, is refused.
    pub(crate) fn fail(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.failed = true;
        self.flushed_cv.notify_all();
    }

    /// Wakes the flusher (shutdown).
    pub(crate) fn wake(&self) {
        self.requested_cv.notify_all();
    }
}
