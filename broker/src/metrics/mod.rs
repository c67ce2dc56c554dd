//! Prometheus metrics: one [`Metrics`] built on a `prometheus::Registry` that the program creates
//! and passes down (nothing here installs a global registry).
//!
//! Names follow RocketMQ 5 where they are well formed (`rocketmq_messages_in_total`), Prometheus
//! conventions otherwise: base units (`_seconds`, `_bytes`), `_total` on counters, bounded labels.
//! Every data-plane family has a `protocol` label (`remoting`, `http`, `amqp`). Topic and group
//! labels are capped at [`LABEL_VALUES_MAX`] distinct values per kind; later ones are counted
//! under [`OTHER_LABEL`]. Message ids, receipt handles and client addresses are never labels.
//!
//! Gauges that describe state (consumer lag, store size, HA lag) are refreshed just before a scrape
//! by the closures registered with [`Metrics::on_scrape`]; other subsystems (HA, plugins, the
//! gateways) plug in there or through the families below, e.g. [`Metrics::set_ha_lag`].
//!
//! | family | type | labels |
//! |---|---|---|
//! | `rocketmq_messages_in_total`, `rocketmq_messages_out_total` | counter | `topic, protocol` |
//! | `rocketmq_throughput_in_bytes_total`, `rocketmq_throughput_out_bytes_total` | counter | `topic, protocol` |
//! | `rocketmq_send_duration_seconds`, `rocketmq_pull_duration_seconds` | histogram | `protocol` |
//! | `rocketmq_requests_total` | counter | `protocol, request_code, response_code` |
//! | `rocketmq_rpc_duration_seconds` | histogram | `protocol, request_code` |
//! | `rocketmq_pop_requests_total` | counter | `protocol, result` |
//! | `rocketmq_receipt_handle_errors_total` | counter | `protocol, reason` |
//! | `rocketmq_send_to_dlq_messages_total` | counter | `consumer_group` |
//! | `rocketmq_consumer_lag_messages`, `rocketmq_consumer_inflight_messages` | gauge | `topic, consumer_group` |
//! | `rocketmq_storage_size_bytes` | gauge | `storage_type` |
//! | `rocketmq_storage_disk_usage_ratio` | gauge | |
//! | `rocketmq_storage_flush_seconds_total`, `rocketmq_storage_flushes_total` | counter | |
//! | `rocketmq_ha_replica_lag_bytes` | gauge | `replica` |
//! | `rocketmq_connections` | gauge | `protocol` |
//! | `http_server_request_duration_seconds` | histogram | `http_request_method, http_route, http_response_status_code` |
//! | `rocketmq_plugin_invocations_total` | counter | `plugin, role` |
//! | `rocketmq_plugin_messages_total` | counter | `plugin, role, result` (`in`, `passed`) |
//! | `rocketmq_plugin_failures_total` | counter | `plugin, role, kind` (`error`, `trap_deadline`, ...) |
//! | `rocketmq_plugin_invocation_duration_seconds` | histogram | `plugin, role` |
//! | `rocketmq_amqp_*` (the AMQP door's, registered by `gateway-amqp` through [`Metrics::registry`]) | | `vhost`, ... |
//!
//! The plugin host keeps its own totals (`mqadmin plugin describe` shows them); the broker's
//! scrape hook copies them in with [`Metrics::set_plugin_totals`]. HA lag is set the same way
//! ([`Metrics::set_ha_lag`] after [`Metrics::reset_ha_lag`]).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Distinct values a topic or group label takes before further ones become [`OTHER_LABEL`].
pub const LABEL_VALUES_MAX: usize = 10_000;
/// The label value that stands for every topic or group past [`LABEL_VALUES_MAX`].
pub const OTHER_LABEL: &str = "__other__";
/// Latency buckets, seconds: 0.1 ms to 10 s.
const LATENCY_BUCKETS_SECONDS: &[f64] =
    &[0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];
/// Long polls can last the whole `wait_ms`: buckets up to 60 s.
const POLL_BUCKETS_SECONDS: &[f64] = &[0.001, 0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0];

/// Which door a request came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Remoting,
    Http,
    Amqp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Remoting => "remoting",
            Protocol::Http => "http",
            Protocol::Amqp => "amqp",
        }
    }
}

/// A set of label values capped at [`LABEL_VALUES_MAX`].
#[derive(Default)]
struct LabelCap {
    seen: Mutex<HashSet<String>>,
}

impl LabelCap {
    /// `value` itself while fewer than the cap have been seen, else [`OTHER_LABEL`].
    fn bound<'a>(&self, value: &'a str) -> &'a str {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(value) {
            return value;
        }
        if seen.len() < LABEL_VALUES_MAX {
            seen.insert(value.to_owned());
            return value;
        }
        OTHER_LABEL
    }
}

type Refresher = Box<dyn Fn() + Send + Sync>;

/// Every metric family of one process, registered in one registry.
pub struct Metrics {
    registry: Registry,
    topics: LabelCap,
    groups: LabelCap,
    refreshers: Mutex<Vec<Refresher>>,
    messages_in: IntCounterVec,
    messages_out: IntCounterVec,
    bytes_in: IntCounterVec,
    bytes_out: IntCounterVec,
    send_duration: HistogramVec,
    pull_duration: HistogramVec,
    requests: IntCounterVec,
    rpc_duration: HistogramVec,
    pop_requests: IntCounterVec,
    receipt_errors: IntCounterVec,
    dlq_messages: IntCounterVec,
    /// `rocketmq_consumer_lag_messages{topic, consumer_group}`; reset and refilled per scrape.
    pub consumer_lag: IntGaugeVec,
    /// `rocketmq_consumer_inflight_messages{topic, consumer_group}`: popped, not yet acknowledged.
    pub consumer_inflight: IntGaugeVec,
    /// `rocketmq_storage_size_bytes{storage_type}`.
    pub storage_size: IntGaugeVec,
    /// `rocketmq_storage_disk_usage_ratio`, 0 to 1.
    pub disk_usage: Gauge,
    flush_seconds: prometheus::Counter,
    flushes: IntCounter,
    ha_lag: IntGaugeVec,
    /// `rocketmq_connections{protocol}`: open client connections per door.
    pub connections: IntGaugeVec,
    http_duration: HistogramVec,
    plugin_invocations: IntCounterVec,
    plugin_messages: IntCounterVec,
    plugin_failures: IntCounterVec,
    plugin_latency: PluginLatency,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntGaugeVec> {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

fn histogram_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> prometheus::Result<HistogramVec> {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets.to_vec()), labels)?;
    registry.register(Box::new(h.clone()))?;
    Ok(h)
}

impl Metrics {
    /// Registers every family in `registry`.
    ///
    /// # Errors
    ///
    /// A family of the same name is already registered there.
    pub fn new(registry: Registry) -> prometheus::Result<Metrics> {
        let r = &registry;
        let flush_seconds = prometheus::Counter::new(
            "rocketmq_storage_flush_seconds_total",
            "Time spent syncing the CommitLog to disk.",
        )?;
        r.register(Box::new(flush_seconds.clone()))?;
        let flushes = IntCounter::new("rocketmq_storage_flushes_total", "CommitLog sync rounds completed.")?;
        r.register(Box::new(flushes.clone()))?;
        let disk_usage =
            Gauge::new("rocketmq_storage_disk_usage_ratio", "Used fraction of the file system holding the CommitLog.")?;
        r.register(Box::new(disk_usage.clone()))?;
        Ok(Metrics {
            messages_in: counter_vec(r, "rocketmq_messages_in_total", "Messages stored.", &["topic", "protocol"])?,
            messages_out: counter_vec(
                r,
                "rocketmq_messages_out_total",
                "Messages delivered to consumers.",
                &["topic", "protocol"],
            )?,
            bytes_in: counter_vec(
                r,
                "rocketmq_throughput_in_bytes_total",
                "Message body bytes stored.",
                &["topic", "protocol"],
            )?,
            bytes_out: counter_vec(
                r,
                "rocketmq_throughput_out_bytes_total",
                "Message bytes delivered to consumers.",
                &["topic", "protocol"],
            )?,
            send_duration: histogram_vec(
                r,
                "rocketmq_send_duration_seconds",
                "Time from a send request to its answer.",
                &["protocol"],
                LATENCY_BUCKETS_SECONDS,
            )?,
            pull_duration: histogram_vec(
                r,
                "rocketmq_pull_duration_seconds",
                "Time from a pull or receive request to its answer, long-poll waits included.",
                &["protocol"],
                POLL_BUCKETS_SECONDS,
            )?,
            requests: counter_vec(
                r,
                "rocketmq_requests_total",
                "Requests answered, by request code and response code.",
                &["protocol", "request_code", "response_code"],
            )?,
            rpc_duration: histogram_vec(
                r,
                "rocketmq_rpc_duration_seconds",
                "Time to answer a request, by request code.",
                &["protocol", "request_code"],
                POLL_BUCKETS_SECONDS,
            )?,
            pop_requests: counter_vec(
                r,
                "rocketmq_pop_requests_total",
                "Pop (receive) requests by outcome.",
                &["protocol", "result"],
            )?,
            receipt_errors: counter_vec(
                r,
                "rocketmq_receipt_handle_errors_total",
                "Acknowledgements refused because of their receipt handle.",
                &["protocol", "reason"],
            )?,
            dlq_messages: counter_vec(
                r,
                "rocketmq_send_to_dlq_messages_total",
                "Messages moved to a dead-letter queue.",
                &["consumer_group"],
            )?,
            consumer_lag: gauge_vec(
                r,
                "rocketmq_consumer_lag_messages",
                "Messages not yet consumed by a group (committed offset to max offset).",
                &["topic", "consumer_group"],
            )?,
            consumer_inflight: gauge_vec(
                r,
                "rocketmq_consumer_inflight_messages",
                "Messages received by a group and not yet acknowledged.",
                &["topic", "consumer_group"],
            )?,
            storage_size: gauge_vec(
                r,
                "rocketmq_storage_size_bytes",
                "Bytes held by the store, by kind of file.",
                &["storage_type"],
            )?,
            disk_usage,
            flush_seconds,
            flushes,
            ha_lag: gauge_vec(
                r,
                "rocketmq_ha_replica_lag_bytes",
                "CommitLog bytes a replica is behind its master.",
                &["replica"],
            )?,
            connections: gauge_vec(r, "rocketmq_connections", "Open client connections.", &["protocol"])?,
            http_duration: histogram_vec(
                r,
                "http_server_request_duration_seconds",
                "Time to answer an HTTP request, by route template.",
                &["http_request_method", "http_route", "http_response_status_code"],
                POLL_BUCKETS_SECONDS,
            )?,
            plugin_invocations: counter_vec(
                r,
                "rocketmq_plugin_invocations_total",
                "Plugin calls.",
                &["plugin", "role"],
            )?,
            plugin_messages: counter_vec(
                r,
                "rocketmq_plugin_messages_total",
                "Messages handed to a plugin (in) and let through or routed by it (passed).",
                &["plugin", "role", "result"],
            )?,
            plugin_failures: counter_vec(
                r,
                "rocketmq_plugin_failures_total",
                "Plugin calls that failed, by kind (error, trap_*, deadline, quarantine).",
                &["plugin", "role", "kind"],
            )?,
            plugin_latency: {
                let c = PluginLatency::new()?;
                r.register(Box::new(c.clone()))?;
                c
            },
            topics: LabelCap::default(),
            groups: LabelCap::default(),
            refreshers: Mutex::new(Vec::new()),
            registry,
        })
    }

    /// Metrics on a registry of their own (tests, and programs that do not scrape).
    pub fn unregistered() -> Arc<Metrics> {
        // Registering fresh families in a fresh registry cannot clash.
        Arc::new(Metrics::new(Registry::new()).unwrap_or_else(|e| panic!("metric families clash: {e}")))
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Runs `f` before every scrape (to set gauges from current state).
    pub fn on_scrape(&self, f: impl Fn() + Send + Sync + 'static) {
        self.refreshers.lock().unwrap_or_else(|e| e.into_inner()).push(Box::new(f));
    }

    /// The Prometheus text exposition of every family, after running the scrape hooks.
    pub fn render(&self) -> String {
        for f in self.refreshers.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            f();
        }
        let mut out = Vec::new();
        // Encoding into a Vec only fails on families with inconsistent label names, which
        // `new` rules out.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "could not encode the metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// A topic label value, capped.
    pub fn topic_label<'a>(&self, topic: &'a str) -> &'a str {
        self.topics.bound(topic)
    }

    /// A consumer group label value, capped.
    pub fn group_label<'a>(&self, group: &'a str) -> &'a str {
        self.groups.bound(group)
    }

    /// `count` messages of `bytes` body bytes stored in `topic`.
    pub fn record_in(&self, protocol: Protocol, topic: &str, count: u64, bytes: u64) {
        let labels = [self.topic_label(topic), protocol.as_str()];
        self.messages_in.with_label_values(&labels).inc_by(count);
        self.bytes_in.with_label_values(&labels).inc_by(bytes);
    }

    /// `count` messages of `bytes` bytes delivered from `topic`.
    pub fn record_out(&self, protocol: Protocol, topic: &str, count: u64, bytes: u64) {
        let labels = [self.topic_label(topic), protocol.as_str()];
        self.messages_out.with_label_values(&labels).inc_by(count);
        self.bytes_out.with_label_values(&labels).inc_by(bytes);
    }

    pub fn observe_send(&self, protocol: Protocol, elapsed: Duration) {
        self.send_duration.with_label_values(&[protocol.as_str()]).observe(elapsed.as_secs_f64());
    }

    pub fn observe_pull(&self, protocol: Protocol, elapsed: Duration) {
        self.pull_duration.with_label_values(&[protocol.as_str()]).observe(elapsed.as_secs_f64());
    }

    /// One answered request; `request_code` must come from a bounded set (the caller maps
    /// unknown codes to one value).
    pub fn record_request(&self, protocol: Protocol, request_code: &str, response_code: &str, elapsed: Duration) {
        self.requests.with_label_values(&[protocol.as_str(), request_code, response_code]).inc();
        self.rpc_duration.with_label_values(&[protocol.as_str(), request_code]).observe(elapsed.as_secs_f64());
    }

    /// A pop/receive request that found messages (`messages`), none (`empty`) or was refused.
    pub fn record_pop(&self, protocol: Protocol, result: &'static str) {
        self.pop_requests.with_label_values(&[protocol.as_str(), result]).inc();
    }

    /// An ack or change refused: `invalid`, `expired` or `wrong_group`.
    pub fn record_receipt_error(&self, protocol: Protocol, reason: &'static str) {
        self.receipt_errors.with_label_values(&[protocol.as_str(), reason]).inc();
    }

    pub fn record_dlq(&self, group: &str) {
        self.dlq_messages.with_label_values(&[self.group_label(group)]).inc();
    }

    /// Adds the CommitLog sync time and rounds since the last call (the store keeps totals).
    pub fn add_flushes(&self, seconds: f64, rounds: u64) {
        if seconds > 0.0 {
            self.flush_seconds.inc_by(seconds);
        }
        self.flushes.inc_by(rounds);
    }

    /// For the HA module: how many bytes `replica` (a bounded replica id, e.g. its broker id) is
    /// behind.
    pub fn set_ha_lag(&self, replica: &str, bytes: i64) {
        self.ha_lag.with_label_values(&[replica]).set(bytes);
    }

    /// For the HA module: forget a replica that disconnected.
    pub fn remove_ha_replica(&self, replica: &str) {
        let _ = self.ha_lag.remove_label_values(&[replica]);
    }

    /// Forgets every replica (a scrape hook then sets the live ones).
    pub fn reset_ha_lag(&self) {
        self.ha_lag.reset();
    }

    /// One HTTP request answered; `route` is the route template, never the raw path. The label
    /// writes path parameters as `:name` (`/v1/topics/:topic/messages`): braces in label values
    /// are valid exposition text but trip some parsers.
    pub fn record_http(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let code = status.to_string();
        let route = route.replace('{', ":").replace('}', "");
        self.http_duration.with_label_values(&[method, route.as_str(), code.as_str()]).observe(elapsed.as_secs_f64());
    }

    /// Copies the plugin host's running totals of `plugin` in `role` (counters only move up:
    /// a total below the exported one, e.g. after a redeploy, leaves it as it is).
    pub fn set_plugin_totals(&self, plugin: &str, role: &str, totals: &PluginTotals) {
        let raise = |c: prometheus::IntCounter, to: u64| {
            let now = c.get();
            if to > now {
                c.inc_by(to - now);
            }
        };
        raise(self.plugin_invocations.with_label_values(&[plugin, role]), totals.calls);
        raise(self.plugin_messages.with_label_values(&[plugin, role, "in"]), totals.messages_in);
        raise(self.plugin_messages.with_label_values(&[plugin, role, "passed"]), totals.messages_passed);
        for (kind, n) in &totals.failures {
            raise(self.plugin_failures.with_label_values(&[plugin, role, kind]), *n);
        }
        let key = (plugin.to_owned(), role.to_owned());
        let mut rows = self.plugin_latency.rows.lock().unwrap_or_else(|e| e.into_inner());
        rows.insert(key, (totals.latency_buckets.clone(), totals.seconds));
    }
}

/// One plugin's running totals, as the plugin host counts them.
#[derive(Clone, Debug, Default)]
pub struct PluginTotals {
    pub calls: u64,
    pub messages_in: u64,
    pub messages_passed: u64,
    /// `(kind, count)`; kinds come from a fixed set (`error`, `trap_deadline`, ...).
    pub failures: Vec<(&'static str, u64)>,
    /// Time spent in calls.
    pub seconds: f64,
    /// Calls per latency bucket: (upper bound in seconds, calls), not cumulative, ascending; the
    /// last bound may be infinite.
    pub latency_buckets: Vec<(f64, u64)>,
}

/// `rocketmq_plugin_invocation_duration_seconds`: a histogram built at scrape time from the
/// plugin host's own buckets (the host counts per call without knowing about Prometheus).
#[derive(Clone)]
struct PluginLatency {
    desc: prometheus::core::Desc,
    /// (plugin, role) → (buckets as in [`PluginTotals::latency_buckets`], sum in seconds).
    rows: Arc<Mutex<std::collections::BTreeMap<(String, String), LatencyRow>>>,
}

/// One plugin's latency buckets (as in [`PluginTotals::latency_buckets`]) and sum in seconds.
type LatencyRow = (Vec<(f64, u64)>, f64);

impl PluginLatency {
    const NAME: &'static str = "rocketmq_plugin_invocation_duration_seconds";

    fn new() -> prometheus::Result<PluginLatency> {
        let desc = prometheus::core::Desc::new(
            Self::NAME.to_owned(),
            "Plugin call latency.".to_owned(),
            vec!["plugin".to_owned(), "role".to_owned()],
            std::collections::HashMap::new(),
        )?;
        Ok(PluginLatency { desc, rows: Arc::default() })
    }
}

impl prometheus::core::Collector for PluginLatency {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        use prometheus::proto::{Bucket, Histogram, LabelPair, Metric, MetricFamily, MetricType};
        let rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        if rows.is_empty() {
            return Vec::new();
        }
        let label = |name: &str, value: &str| {
            let mut l = LabelPair::default();
            l.set_name(name.to_owned());
            l.set_value(value.to_owned());
            l
        };
        let metrics = rows
            .iter()
            .map(|((plugin, role), (buckets, sum))| {
                let mut h = Histogram::default();
                let mut cumulative = 0u64;
                let mut out = Vec::new();
                for (upper, n) in buckets {
                    cumulative += n;
                    // The exposition adds the +Inf bucket from the count itself.
                    if upper.is_finite() {
                        let mut b = Bucket::default();
                        b.set_upper_bound(*upper);
                        b.set_cumulative_count(cumulative);
                        out.push(b);
                    }
                }
                h.set_bucket(out);
                h.set_sample_count(cumulative);
                h.set_sample_sum(*sum);
                let mut m = Metric::default();
                m.set_label(vec![label("plugin", plugin), label("role", role)]);
                m.set_histogram(h);
                m
            })
            .collect();
        let mut family = MetricFamily::default();
        family.set_name(Self::NAME.to_owned());
        family.set_help("Plugin call latency.".to_owned());
        family.set_field_type(MetricType::HISTOGRAM);
        family.set_metric(metrics);
        vec![family]
    }
}

/// The name of a remoting response code for the `response_code` label (`OTHER` for codes outside
/// RocketMQ's table, so the label stays bounded).
pub fn response_name(code: i32) -> &'static str {
    match code {
        0 => "SUCCESS",
        1 => "SYSTEM_ERROR",
        2 => "SYSTEM_BUSY",
        3 => "REQUEST_CODE_NOT_SUPPORTED",
        4 => "TRANSACTION_FAILED",
        10 => "FLUSH_DISK_TIMEOUT",
        11 => "SLAVE_NOT_AVAILABLE",
        12 => "FLUSH_SLAVE_TIMEOUT",
        13 => "MESSAGE_ILLEGAL",
        14 => "SERVICE_NOT_AVAILABLE",
        15 => "VERSION_NOT_SUPPORTED",
        16 => "NO_PERMISSION",
        17 => "TOPIC_NOT_EXIST",
        18 => "TOPIC_EXIST_ALREADY",
        19 => "PULL_NOT_FOUND",
        20 => "PULL_RETRY_IMMEDIATELY",
        21 => "PULL_OFFSET_MOVED",
        22 => "QUERY_NOT_FOUND",
        23 => "SUBSCRIPTION_PARSE_FAILED",
        24 => "SUBSCRIPTION_NOT_EXIST",
        25 => "SUBSCRIPTION_NOT_LATEST",
        26 => "SUBSCRIPTION_GROUP_NOT_EXIST",
        200 => "TRANSACTION_SHOULD_COMMIT",
        201 => "TRANSACTION_SHOULD_ROLLBACK",
        202 => "TRANSACTION_STATE_UNKNOW",
        206 => "CONSUMER_NOT_ONLINE",
        207 => "CONSUME_MSG_TIMEOUT",
        208 => "NO_MESSAGE",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests;
