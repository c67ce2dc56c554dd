//! Metrics: the families register in an injected registry, topic labels are capped, and the text
//! exposition carries what was recorded.

use super::*;

#[test]
fn records_show_up_in_the_exposition() {
    let m = Metrics::new(Registry::new()).unwrap();
    m.record_in(Protocol::Http, "orders", 3, 300);
    m.record_out(Protocol::Remoting, "orders", 2, 200);
    m.record_request(Protocol::Remoting, "SEND_MESSAGE", "SUCCESS", Duration::from_millis(2));
    m.set_ha_lag("1", 4096);
    let text = m.render();
    for line in [
        r#"rocketmq_messages_in_total{protocol="http",topic="orders"} 3"#,
        r#"rocketmq_throughput_in_bytes_total{protocol="http",topic="orders"} 300"#,
        r#"rocketmq_messages_out_total{protocol="remoting",topic="orders"} 2"#,
        r#"rocketmq_requests_total{protocol="remoting",request_code="SEND_MESSAGE",response_code="SUCCESS"} 1"#,
        r#"rocketmq_ha_replica_lag_bytes{replica="1"} 4096"#,
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
}

#[test]
fn a_second_set_of_families_in_the_same_registry_is_refused() {
    let registry = Registry::new();
    let _first = Metrics::new(registry.clone()).unwrap();
    assert!(Metrics::new(registry).is_err());
}

#[test]
fn topic_labels_are_capped() {
    let cap = LabelCap::default();
    for i in 0..LABEL_VALUES_MAX {
        assert_eq!(cap.bound(&format!("t{i}")), format!("t{i}"));
    }
    assert_eq!(cap.bound("one-more"), OTHER_LABEL);
    assert_eq!(cap.bound("t7"), "t7", "a value seen before keeps its label");
}

#[test]
fn scrape_hooks_run_before_rendering() {
    let m = Arc::new(Metrics::new(Registry::new()).unwrap());
    let weak = Arc::downgrade(&m);
    m.on_scrape(move || {
        if let Some(m) = weak.upgrade() {
            m.storage_size.with_label_values(&["commitlog"]).set(1234);
        }
    });
    assert!(m.render().contains(r#"rocketmq_storage_size_bytes{storage_type="commitlog"} 1234"#));
}

#[test]
fn plugin_latency_is_a_histogram_built_from_the_hosts_buckets() {
    let m = Metrics::new(Registry::new()).unwrap();
    let totals = PluginTotals {
        calls: 6,
        seconds: 0.000_7,
        latency_buckets: vec![(0.000_01, 3), (0.000_1, 2), (f64::INFINITY, 1)],
        ..PluginTotals::default()
    };
    m.set_plugin_totals("sql", "filter", &totals);
    let text = m.render();
    for line in [
        r#"rocketmq_plugin_invocation_duration_seconds_bucket{plugin="sql",role="filter",le="0.00001"} 3"#,
        r#"rocketmq_plugin_invocation_duration_seconds_bucket{plugin="sql",role="filter",le="0.0001"} 5"#,
        r#"rocketmq_plugin_invocation_duration_seconds_bucket{plugin="sql",role="filter",le="+Inf"} 6"#,
        r#"rocketmq_plugin_invocation_duration_seconds_sum{plugin="sql",role="filter"} 0.0007"#,
        r#"rocketmq_plugin_invocation_duration_seconds_count{plugin="sql",role="filter"} 6"#,
        r#"rocketmq_plugin_invocations_total{plugin="sql",role="filter"} 6"#,
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
}
