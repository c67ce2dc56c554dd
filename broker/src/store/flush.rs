//! Flushing the CommitLog: group commit for SYNC_FLUSH, the interval flusher for ASYNC_FLUSH.
//!
//! Appenders wait for durability in one of two ways: blocking on a condition variable
//! ([`GroupCommit::wait_durable`]), or handing over a completion that the flusher calls after the
//! round that covers them ([`GroupCommit::on_durable`]), which is what an async caller wants: no
//! thread per waiting append.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// How a wait for durability ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durable {
    Yes,
    TimedOut,
    Failed,
}

/// Called once with the outcome; runs on the flusher thread, so it must be short.
pub type Completion = Box<dyn FnOnce(Durable) + Send>;

struct Pending {
    end: u64,
    deadline: Instant,
    done: Completion,
}

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
    /// Completed flush rounds (for the stats).
    rounds: u64,
    /// Completions in order of end offset.
    pending: VecDeque<Pending>,
    /// Blocking waiters present (skip notify_all when none).
    blocked: usize,
    /// The flusher is waiting for a request (notify it only then: a notify is a syscall).
    flusher_waiting: bool,
    /// Appends that asked for a flush since the last round started, and how many the last round
    /// covered: the flusher waits briefly for as many to come back (group commit delay).
    requests_since_round: usize,
    last_round_requests: usize,
}

/// Longest the flusher waits for appenders released by the previous round to come back.
const GROUP_COMMIT_DELAY_US: u64 = 600;

impl GroupCommit {
    pub(crate) fn new(flushed: u64) -> GroupCommit {
        let state = State { requested: flushed, flushed, ..State::default() };
        GroupCommit { state: Mutex::new(state), ..Default::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks for `end` to become durable and waits until it is, the flush fails, or `timeout`.
    pub(crate) fn wait_durable(&self, end: u64, timeout: Duration) -> Durable {
        let deadline = Instant::now() + timeout;
        let mut s = self.lock();
        self.request(&mut s, end);
        s.blocked += 1;
        let outcome = loop {
            if s.failed {
                break Durable::Failed;
            }
            if s.flushed >= end {
                break Durable::Yes;
            }
            let now = Instant::now();
            if now >= deadline {
                break Durable::TimedOut;
            }
            s = self.flushed_cv.wait_timeout(s, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        };
        s.blocked -= 1;
        outcome
    }

    /// Calls `done` once `end` is durable (at once if it is), the flush fails, or `timeout`
    /// passes (checked by the flusher at least every few milliseconds).
    pub(crate) fn on_durable(&self, end: u64, timeout: Duration, done: Completion) {
        let mut s = self.lock();
        let outcome = if s.failed {
            Some(Durable::Failed)
        } else if s.flushed >= end {
            Some(Durable::Yes)
        } else {
            None
        };
        if let Some(o) = outcome {
            drop(s);
            done(o);
            return;
        }
        let p = Pending { end, deadline: Instant::now() + timeout, done };
        // Appends finish in offset order almost always; keep the queue sorted anyway.
        let at = s.pending.iter().rposition(|q| q.end <= end).map_or(0, |i| i + 1);
        s.pending.insert(at, p);
        self.request(&mut s, end);
    }

    /// Asks for a flush up to `end` without waiting for it (a `WAIT=false` put under SYNC_FLUSH).
    pub(crate) fn request_flush(&self, end: u64) {
        let mut s = self.lock();
        self.request(&mut s, end);
    }

    fn request(&self, s: &mut State, end: u64) {
        if s.flushed < end {
            s.requests_since_round += 1;
        }
        if s.requested < end {
            s.requested = end;
            if s.flusher_waiting && s.requests_since_round >= s.last_round_requests.max(1) {
                s.flusher_waiting = false;
                self.requested_cv.notify_one();
            }
        }
    }

    /// Flusher: waits up to `idle` for a request beyond what is flushed; returns the target.
    /// Completions whose deadline passed are told `TimedOut` first.
    pub(crate) fn next_request(&self, idle: Duration) -> Option<u64> {
        let mut s = self.lock();
        if s.requested <= s.flushed {
            s.flusher_waiting = true;
            s = self.requested_cv.wait_timeout(s, idle).unwrap_or_else(|p| p.into_inner()).0;
            s.flusher_waiting = false;
        }
        // Group commit delay: the appenders the last round released are probably appending
        // again right now; a moment's wait lets one sync cover them all.
        if s.requested > s.flushed && s.requests_since_round < s.last_round_requests {
            let until = Instant::now() + Duration::from_micros(GROUP_COMMIT_DELAY_US);
            while s.requests_since_round < s.last_round_requests {
                let now = Instant::now();
                if now >= until {
                    break;
                }
                s.flusher_waiting = true;
                s = self.requested_cv.wait_timeout(s, until - now).unwrap_or_else(|p| p.into_inner()).0;
                s.flusher_waiting = false;
            }
        }
        s.last_round_requests = s.requests_since_round;
        s.requests_since_round = 0;
        let now = Instant::now();
        let mut expired = Vec::new();
        if s.pending.iter().any(|p| p.deadline <= now) {
            let (late, keep): (VecDeque<_>, VecDeque<_>) = s.pending.drain(..).partition(|p| p.deadline <= now);
            s.pending = keep;
            expired.extend(late);
        }
        let target = (s.requested > s.flushed).then_some(s.requested);
        drop(s);
        for p in expired {
            (p.done)(Durable::TimedOut);
        }
        target
    }

    /// Flusher: everything below `offset` is durable now.
    pub(crate) fn flushed(&self, offset: u64) {
        let mut s = self.lock();
        s.flushed = s.flushed.max(offset);
        s.rounds += 1;
        let n = s.pending.iter().take_while(|p| p.end <= offset).count();
        let ready: Vec<Pending> = s.pending.drain(..n).collect();
        if s.blocked > 0 {
            self.flushed_cv.notify_all();
        }
        drop(s);
        for p in ready {
            (p.done)(Durable::Yes);
        }
    }

    /// Flusher: the sync failed; every waiter, now and later, is refused.
    pub(crate) fn fail(&self) {
        let mut s = self.lock();
        s.failed = true;
        let all: Vec<Pending> = s.pending.drain(..).collect();
        self.flushed_cv.notify_all();
        drop(s);
        for p in all {
            (p.done)(Durable::Failed);
        }
    }

    /// Completed flush rounds.
    pub(crate) fn rounds(&self) -> u64 {
        self.lock().rounds
    }

    /// Wakes the flusher (shutdown).
    pub(crate) fn wake(&self) {
        self.lock().flusher_waiting = false;
        self.requested_cv.notify_all();
    }
}
