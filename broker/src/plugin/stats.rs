//! Per-plugin counters, the call latency histogram, the health state (quarantine with backoff)
//! and the plugin's log buffer.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::limits::*;

/// Why a call trapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrapKind {
    /// The epoch deadline passed (an endless loop, or just too slow).
    Deadline,
    /// The memory cap refused a grow.
    Memory,
    /// `unreachable`: a Rust panic or abort.
    Panic,
    Stack,
    Other,
}

impl TrapKind {
    pub fn name(self) -> &'static str {
        match self {
            TrapKind::Deadline => "deadline",
            TrapKind::Memory => "memory",
            TrapKind::Panic => "panic",
            TrapKind::Stack => "stack",
            TrapKind::Other => "other",
        }
    }
}

/// Upper bounds (µs) of the latency histogram's buckets; the last bucket is everything above.
pub const LATENCY_BUCKETS_US: [u64; 12] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 10_000, 100_000];

/// Counters of one plugin (kept across version swaps).
#[derive(Default)]
pub struct Stats {
    pub calls: AtomicU64,
    pub messages_in: AtomicU64,
    pub messages_passed: AtomicU64,
    /// Per-message errors and whole-call error values.
    pub errors: AtomicU64,
    pub traps_deadline: AtomicU64,
    pub traps_memory: AtomicU64,
    pub traps_panic: AtomicU64,
    pub traps_stack: AtomicU64,
    pub traps_other: AtomicU64,
    pub deadline_hits: AtomicU64,
    pub quarantines: AtomicU64,
    pub recoveries: AtomicU64,
    /// Messages a trap was pinned on (not delivered, not routed, not resolved).
    pub poison_messages: AtomicU64,
    /// Times the failure policy decided instead of the plugin.
    pub fallbacks: AtomicU64,
    pub instances_created: AtomicU64,
    latency: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
    latency_sum_us: AtomicU64,
    custom: Mutex<BTreeMap<String, u64>>,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Stats {
    pub fn call(&self, messages: usize, elapsed: Duration) {
        add(&self.calls, 1);
        add(&self.messages_in, messages as u64);
        let us = elapsed.as_micros().min(u64::MAX as u128) as u64;
        let bucket = LATENCY_BUCKETS_US.iter().position(|b| us <= *b).unwrap_or(LATENCY_BUCKETS_US.len());
        add(&self.latency[bucket], 1);
        add(&self.latency_sum_us, us);
    }

    pub fn passed(&self, n: u64) {
        add(&self.messages_passed, n);
    }

    pub fn error(&self, n: u64) {
        add(&self.errors, n);
    }

    pub fn trap(&self, kind: TrapKind) {
        let c = match kind {
            TrapKind::Deadline => {
                add(&self.deadline_hits, 1);
                &self.traps_deadline
            }
            TrapKind::Memory => &self.traps_memory,
            TrapKind::Panic => &self.traps_panic,
            TrapKind::Stack => &self.traps_stack,
            TrapKind::Other => &self.traps_other,
        };
        add(c, 1);
    }

    pub fn custom_add(&self, name: &str, delta: u64) {
        let mut m = self.custom.lock().unwrap_or_else(|e| e.into_inner());
        let name: String = name.chars().take(CUSTOM_COUNTER_NAME_CHARS_MAX).collect();
        if let Some(v) = m.get_mut(&name) {
            *v = v.saturating_add(delta);
        } else if m.len() < CUSTOM_COUNTERS_MAX {
            m.insert(name, delta);
        }
    }

    pub fn snapshot(&self) -> Counters {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counters {
            calls: g(&self.calls),
            messages_in: g(&self.messages_in),
            messages_passed: g(&self.messages_passed),
            errors: g(&self.errors),
            traps: TrapCounters {
                deadline: g(&self.traps_deadline),
                memory: g(&self.traps_memory),
                panic: g(&self.traps_panic),
                stack: g(&self.traps_stack),
                other: g(&self.traps_other),
            },
            deadline_hits: g(&self.deadline_hits),
            quarantines: g(&self.quarantines),
            recoveries: g(&self.recoveries),
            poison_messages: g(&self.poison_messages),
            fallbacks: g(&self.fallbacks),
            instances_created: g(&self.instances_created),
            latency_us: LATENCY_BUCKETS_US
                .iter()
                .map(|b| b.to_string())
                .chain(std::iter::once("+Inf".to_string()))
                .zip(self.latency.iter().map(g))
                .collect(),
            latency_sum_us: g(&self.latency_sum_us),
            custom: self.custom.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }
}

/// A copy of the counters, as `mqadmin plugin describe` and the metrics read them.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    pub calls: u64,
    pub messages_in: u64,
    pub messages_passed: u64,
    pub errors: u64,
    pub traps: TrapCounters,
    pub deadline_hits: u64,
    pub quarantines: u64,
    pub recoveries: u64,
    pub poison_messages: u64,
    pub fallbacks: u64,
    pub instances_created: u64,
    /// Calls per latency bucket: (upper bound in µs, count), not cumulative.
    pub latency_us: Vec<(String, u64)>,
    pub latency_sum_us: u64,
    pub custom: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct TrapCounters {
    pub deadline: u64,
    pub memory: u64,
    pub panic: u64,
    pub stack: u64,
    pub other: u64,
}

/// Health of one plugin version: healthy, or quarantined until a time (then one probe call).
pub struct Health {
    inner: Mutex<HealthState>,
}

struct HealthState {
    failures: VecDeque<Instant>,
    quarantined_until: Option<Instant>,
    backoff: Duration,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            inner: Mutex::new(HealthState {
                failures: VecDeque::new(),
                quarantined_until: None,
                backoff: Duration::from_millis(QUARANTINE_BACKOFF_MS_MIN),
            }),
        }
    }
}

impl Health {
    /// May the plugin be called now? False while quarantined; after the backoff one probe is let
    /// through (the deadline moves on, so concurrent calls keep waiting).
    pub fn admit(&self, now: Instant) -> bool {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match s.quarantined_until {
            None => true,
            Some(t) if now >= t => {
                s.quarantined_until = Some(now + s.backoff);
                true
            }
            Some(_) => false,
        }
    }

    pub fn is_quarantined(&self) -> bool {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).quarantined_until.is_some()
    }

    /// A call succeeded; returns true if this ended a quarantine.
    pub fn success(&self) -> bool {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if s.quarantined_until.take().is_some() {
            s.failures.clear();
            s.backoff = Duration::from_millis(QUARANTINE_BACKOFF_MS_MIN);
            return true;
        }
        false
    }

    /// A batch-level failure; returns Some((entered, backoff)) if it started a quarantine
    /// (`entered`) or extended one (a failed probe).
    pub fn failure(&self, now: Instant) -> Option<(bool, Duration)> {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let window = Duration::from_millis(QUARANTINE_WINDOW_MS);
        while s.failures.front().is_some_and(|t| now.duration_since(*t) > window) {
            s.failures.pop_front();
        }
        s.failures.push_back(now);
        if s.quarantined_until.is_some() {
            // A failed probe: back off further.
            s.backoff = (s.backoff * 2).min(Duration::from_millis(QUARANTINE_BACKOFF_MS_MAX));
            s.quarantined_until = Some(now + s.backoff);
            return Some((false, s.backoff));
        }
        if s.failures.len() >= QUARANTINE_FAILURES {
            s.quarantined_until = Some(now + s.backoff);
            return Some((true, s.backoff));
        }
        None
    }
}

/// One line of a plugin's log.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LogLine {
    pub time_ms: i64,
    pub level: String,
    /// `plugin` for lines the plugin wrote, `host` for what the broker says about it.
    pub source: String,
    pub message: String,
}

/// The per-plugin log: a ring of the last lines, and a rate limit into the broker log.
pub struct PluginLog {
    name: String,
    lines: Mutex<VecDeque<LogLine>>,
    /// (second, lines forwarded in it)
    rate: Mutex<(i64, u32)>,
}

impl PluginLog {
    pub fn new(name: &str) -> PluginLog {
        PluginLog { name: name.to_owned(), lines: Mutex::new(VecDeque::new()), rate: Mutex::new((0, 0)) }
    }

    fn push(&self, level: &str, source: &str, msg: &str) {
        let now = crate::store::now_ms();
        let message: String = msg.chars().take(LOG_LINE_CHARS_MAX).collect();
        let forward = {
            let mut r = self.rate.lock().unwrap_or_else(|e| e.into_inner());
            let sec = now / 1000;
            if r.0 != sec {
                *r = (sec, 0);
            }
            r.1 += 1;
            r.1 <= LOG_LINES_PER_SECOND_MAX || source == "host"
        };
        if forward {
            match level {
                "error" => tracing::error!(plugin = %self.name, source, "{message}"),
                "warn" => tracing::warn!(plugin = %self.name, source, "{message}"),
                "info" => tracing::info!(plugin = %self.name, source, "{message}"),
                _ => tracing::debug!(plugin = %self.name, source, "{message}"),
            }
        }
        let mut l = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if l.len() >= LOG_LINES_MAX {
            l.pop_front();
        }
        l.push_back(LogLine { time_ms: now, level: level.to_owned(), source: source.to_owned(), message });
    }

    /// A line written by the plugin (`host.log`).
    pub fn plugin_line(&self, level: &str, msg: &str) {
        self.push(level, "plugin", msg);
    }

    /// A line the host writes about the plugin (traps, quarantine, deploys).
    pub fn host_line(&self, level: &str, msg: &str) {
        self.push(level, "host", msg);
    }

    pub fn lines(&self, last: usize) -> Vec<LogLine> {
        let l = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        l.iter().skip(l.len().saturating_sub(last)).cloned().collect()
    }
}
