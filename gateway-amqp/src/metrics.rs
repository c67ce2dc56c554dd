//! The door's Prometheus families, shaped after RabbitMQ's `rabbitmq_global_*` and registered on
//! the broker's one registry. Labels are bounded: no exchange or connection names, and queue
//! names only in the two per-queue gauges (shaped after RabbitMQ's `rabbitmq_queue_messages_ready`
//! and `_unacked`), one series per queue, removed when the queue is deleted. Those two are not
//! touched by publishes or deliveries: the door asks each queue's actor for its figures every
//! [`QUEUE_GAUGES_INTERVAL_MS`].
//!
//! | family | type | labels |
//! |---|---|---|
//! | `rocketmq_amqp_connections`, `rocketmq_amqp_channels`, `rocketmq_amqp_consumers` | gauge | |
//! | `rocketmq_amqp_connections_opened_total`, `rocketmq_amqp_connections_closed_total` | counter | |
//! | `rocketmq_amqp_messages_received_total`, `rocketmq_amqp_messages_received_confirm_total` | counter | |
//! | `rocketmq_amqp_messages_confirmed_total`, `rocketmq_amqp_messages_nacked_total` | counter | |
//! | `rocketmq_amqp_messages_routed_total` | counter | `exchange_type` |
//! | `rocketmq_amqp_messages_unroutable_returned_total`, `rocketmq_amqp_messages_unroutable_dropped_total` | counter | `exchange_type` |
//! | `rocketmq_amqp_messages_delivered_total` | counter | `method` (`consume`, `get`), `ack_mode` (`auto`, `manual`) |
//! | `rocketmq_amqp_messages_get_empty_total`, `rocketmq_amqp_messages_redelivered_total`, `rocketmq_amqp_messages_acknowledged_total` | counter | |
//! | `rocketmq_amqp_messages_rejected_total` | counter | `requeue` |
//! | `rocketmq_amqp_channel_errors_total`, `rocketmq_amqp_connection_errors_total` | counter | `reply_code` |
//! | `rocketmq_amqp_auth_failures_total` | counter | `mechanism` |
//! | `rocketmq_amqp_connections_blocked` | gauge | |
//! | `rocketmq_amqp_messages_dead_lettered_total` | counter | `reason` (`rejected`, `expired`, `maxlen`) |
//! | `rocketmq_amqp_queue_messages_ready`, `rocketmq_amqp_queue_messages_unacked` | gauge | `vhost`, `queue` |

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// How often the per-queue gauges are refreshed from the queues' actors.
pub const QUEUE_GAUGES_INTERVAL_MS: u64 = 1_000;

pub struct AmqpMetrics {
    pub connections: IntGauge,
    pub channels: IntGauge,
    pub consumers: IntGauge,
    pub opened: IntCounter,
    pub closed: IntCounter,
    pub received: IntCounter,
    pub received_confirm: IntCounter,
    pub confirmed: IntCounter,
    pub nacked: IntCounter,
    pub routed: IntCounterVec,
    pub returned: IntCounterVec,
    pub dropped: IntCounterVec,
    pub delivered: IntCounterVec,
    pub get_empty: IntCounter,
    pub redelivered: IntCounter,
    pub acknowledged: IntCounter,
    pub rejected: IntCounterVec,
    pub channel_errors: IntCounterVec,
    pub connection_errors: IntCounterVec,
    pub auth_failures: IntCounterVec,
    pub blocked: IntGauge,
    pub dead_lettered: IntCounterVec,
    /// Per queue (`vhost`, `queue`): messages ready for delivery.
    pub queue_ready: IntGaugeVec,
    /// Per queue (`vhost`, `queue`): messages delivered and not yet acknowledged.
    pub queue_unacked: IntGaugeVec,
}

fn gauge(r: &Registry, name: &str, help: &str) -> prometheus::Result<IntGauge> {
    let g = IntGauge::new(name, help)?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

fn gauges(r: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntGaugeVec> {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

fn counter(r: &Registry, name: &str, help: &str) -> prometheus::Result<IntCounter> {
    let c = IntCounter::new(name, help)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn counters(r: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

impl AmqpMetrics {
    /// Sets a queue's two gauges.
    pub fn set_queue_depth(&self, vhost: &str, queue: &str, ready: u32, unacked: usize) {
        self.queue_ready.with_label_values(&[vhost, queue]).set(i64::from(ready));
        self.queue_unacked.with_label_values(&[vhost, queue]).set(i64::try_from(unacked).unwrap_or(i64::MAX));
    }

    /// Removes a queue's two series (the queue was deleted).
    pub fn remove_queue_depth(&self, vhost: &str, queue: &str) {
        let _ = self.queue_ready.remove_label_values(&[vhost, queue]);
        let _ = self.queue_unacked.remove_label_values(&[vhost, queue]);
    }

    /// Registers the families in `r`.
    ///
    /// # Errors
    ///
    /// A family of the same name is already registered.
    pub fn new(r: &Registry) -> prometheus::Result<AmqpMetrics> {
        Ok(AmqpMetrics {
            connections: gauge(r, "rocketmq_amqp_connections", "Open AMQP connections.")?,
            channels: gauge(r, "rocketmq_amqp_channels", "Open AMQP channels.")?,
            consumers: gauge(r, "rocketmq_amqp_consumers", "AMQP consumers.")?,
            opened: counter(r, "rocketmq_amqp_connections_opened_total", "AMQP connections opened.")?,
            closed: counter(r, "rocketmq_amqp_connections_closed_total", "AMQP connections closed.")?,
            received: counter(r, "rocketmq_amqp_messages_received_total", "Messages published over AMQP.")?,
            received_confirm: counter(
                r,
                "rocketmq_amqp_messages_received_confirm_total",
                "Messages published on channels in confirm mode.",
            )?,
            confirmed: counter(r, "rocketmq_amqp_messages_confirmed_total", "Publishes confirmed with basic.ack.")?,
            nacked: counter(r, "rocketmq_amqp_messages_nacked_total", "Publishes answered with basic.nack.")?,
            routed: counters(
                r,
                "rocketmq_amqp_messages_routed_total",
                "Publishes routed to at least one queue.",
                &["exchange_type"],
            )?,
            returned: counters(
                r,
                "rocketmq_amqp_messages_unroutable_returned_total",
                "Unroutable mandatory publishes returned.",
                &["exchange_type"],
            )?,
            dropped: counters(
                r,
                "rocketmq_amqp_messages_unroutable_dropped_total",
                "Unroutable publishes dropped.",
                &["exchange_type"],
            )?,
            delivered: counters(
                r,
                "rocketmq_amqp_messages_delivered_total",
                "Messages delivered to AMQP clients.",
                &["method", "ack_mode"],
            )?,
            get_empty: counter(r, "rocketmq_amqp_messages_get_empty_total", "basic.get answered with get-empty.")?,
            redelivered: counter(r, "rocketmq_amqp_messages_redelivered_total", "Deliveries with redelivered set.")?,
            acknowledged: counter(r, "rocketmq_amqp_messages_acknowledged_total", "Deliveries acknowledged.")?,
            rejected: counters(
                r,
                "rocketmq_amqp_messages_rejected_total",
                "Deliveries rejected or nacked.",
                &["requeue"],
            )?,
            channel_errors: counters(
                r,
                "rocketmq_amqp_channel_errors_total",
                "Channels closed by the broker.",
                &["reply_code"],
            )?,
            connection_errors: counters(
                r,
                "rocketmq_amqp_connection_errors_total",
                "Connections closed by the broker with an error.",
                &["reply_code"],
            )?,
            auth_failures: counters(r, "rocketmq_amqp_auth_failures_total", "Refused logins.", &["mechanism"])?,
            blocked: gauge(r, "rocketmq_amqp_connections_blocked", "Connections told connection.blocked.")?,
            dead_lettered: counters(
                r,
                "rocketmq_amqp_messages_dead_lettered_total",
                "Messages sent to a dead-letter exchange.",
                &["reason"],
            )?,
            queue_ready: gauges(
                r,
                "rocketmq_amqp_queue_messages_ready",
                "Messages ready for delivery, per queue.",
                &["vhost", "queue"],
            )?,
            queue_unacked: gauges(
                r,
                "rocketmq_amqp_queue_messages_unacked",
                "Messages delivered and not yet acknowledged, per queue.",
                &["vhost", "queue"],
            )?,
        })
    }
}
