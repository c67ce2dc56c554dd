//! `mqbroker` as a process: it opens the store from `broker.properties` and serves, refuses a
//! second instance on the same store, rejects bad settings clearly, and shuts down cleanly on SIGTERM.

use std::time::Duration;

use crate::support::{BrokerProcess, free_broker_port, write_config};

/// Config lines that keep a test broker on its own ports, registering nowhere.
fn own_ports(extra: &str) -> String {
    format!("listenPort={}\nbrokerIP1=127.0.0.1\n{extra}", free_broker_port())
}

const START: Duration = Duration::from_secs(30);

#[test]
fn starts_locks_the_store_and_shuts_down_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &own_ports("someUnknownKey=1\nanotherOne=2"));
    let mut broker = BrokerProcess::start(&config);
    broker.wait_for("Store open", START);
    let warning = broker.wait_for("does not know", START);
    assert!(
        warning.contains("anotherOne") && warning.contains("someUnknownKey"),
        "one warning lists them all: {warning}"
    );
    let store = dir.path().join("store");
    assert!(store.join("abort").exists(), "a running store has its abort file");
    assert!(store.join("commitlog").is_dir() && store.join("config").is_dir());

    let mut second = BrokerProcess::start(&config);
    let status = second.child.wait().unwrap();
    let log = second.drain();
    assert!(!status.success(), "a second broker on the same store must fail");
    assert!(log.contains("locked by another process"), "{log}");

    let status = broker.terminate();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}\n{}", broker.drain());
    assert!(!store.join("abort").exists(), "a clean shutdown removes the abort file");

    // The next start recovers as after a clean shutdown.
    let mut again = BrokerProcess::start(&config);
    let line = again.wait_for("Store recovered", START);
    assert!(line.contains("crashed=false"), "{line}");
}

#[test]
fn after_sigkill_the_next_start_recovers_as_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &own_ports(""));
    let mut broker = BrokerProcess::start(&config);
    broker.wait_for("Store open", START);
    broker.child.kill().unwrap();
    broker.child.wait().unwrap();
    let mut again = BrokerProcess::start(&config);
    let line = again.wait_for("Store recovered", START);
    assert!(line.contains("crashed=true"), "{line}");
}

#[test]
fn bad_settings_are_refused_with_the_key_and_the_allowed_values() {
    // (extra properties, text the error must contain)
    let cases = [
        ("flushDiskType=FAST", "flushDiskType"),
        ("brokerRole=LEADER", "brokerRole"),
        ("listenPort=seventy", "listenPort"),
        ("deleteWhen=25", "deleteWhen"),
    ];
    for (extra, needle) in cases {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &own_ports(extra));
        let mut broker = BrokerProcess::start(&config);
        let status = broker.child.wait().unwrap();
        let log = broker.drain();
        assert!(!status.success(), "{extra}: must fail");
        assert!(log.contains(needle) && log.contains("invalid value"), "{extra}: {log}");
    }
    // A SQL92 engine component that cannot be loaded stops the start (not the first SQL92 pull).
    let dir = tempfile::tempdir().unwrap();
    let extra = "sqlFilterEngine=plugin\nsqlFilterPlugin=/nonexistent/sql92_filter.wasm";
    let config = write_config(dir.path(), &own_ports(extra));
    let mut broker = BrokerProcess::start(&config);
    let status = broker.child.wait().unwrap();
    let log = broker.drain();
    assert!(!status.success(), "a missing SQL92 component must stop the start");
    assert!(log.contains("sqlFilterEngine=plugin") && log.contains("/nonexistent/sql92_filter.wasm"), "{log}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mqbroker"))
        .arg("-c")
        .arg("/nonexistent/broker.properties")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/broker.properties"));
}
