//! HA (issue 4's acceptance): real clusters of separate `mqnamesrv` and `mqbroker` processes,
//! configured from the `conf/2m-2s-sync` files with only paths, addresses and a smaller CommitLog
//! file size added, each program on its own 127.0.0.x address, driven by the unmodified
//! `rocketmq-client-rust` client and by `mqadmin`/`mqbench`.
//!
//! * [`two_pairs_replicate_and_keep_every_acknowledged_message_through_master_kills`]: both pairs
//!   replicate byte for byte (1); kill -9 of broker-a's master five times under a send load loses no
//!   SEND_OK message (2); a consumer group started while the master is down reads broker-a's
//!   backlog from its slave and continues when the master is back (5).
//! * [`sync_master_without_slave_refuses_send_ok_and_a_returning_slave_catches_up`]: with the slave
//!   killed no send returns SEND_OK (3); 100,000 messages sent meanwhile are caught up after the
//!   slave restarts, with its lag in `mqadmin brokerStatus` (4); bad input on the HA port is
//!   refused without harm (6); the slave follows the master's plugins (issue 5).

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rocketmq_client_rust::SendStatus;

use crate::native::{
    Inbox, Listener, Recorder, Subscription, duplicates, message, serial, start_producer, start_push_consumer,
    with_client,
};
use crate::support::{Process, START_TIMEOUT, free_broker_port, free_port};

/// How many times the first test kills broker-a's master.
const MASTER_KILLS: usize = 5;
/// CommitLog file size of the test brokers (`mappedFileSizeCommitLog`).
const COMMIT_LOG_FILE_BYTES: usize = 16 * 1024 * 1024;

/// One broker of a cluster: its config file, address and process (none while down).
struct Node {
    name: &'static str,
    ip: String,
    port: u16,
    /// The HTTP door (`/metrics`).
    http_port: u16,
    config: PathBuf,
    store: PathBuf,
    process: Option<Process>,
}

impl Node {
    fn addr(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    fn ha_addr(&self) -> SocketAddr {
        format!("{}:{}", self.ip, self.port + 1).parse().unwrap()
    }

    fn start(&mut self) {
        let mut p = Process::start(&self.config);
        p.wait_for("Broker started", START_TIMEOUT);
        self.process = Some(p);
    }

    /// SIGKILL, then reap.
    fn kill9(&mut self) {
        if let Some(mut p) = self.process.take() {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}

/// Name servers and brokers on 127.0.0.x addresses, stores in a temporary directory.
struct HaCluster {
    _dir: tempfile::TempDir,
    _namesrvs: Vec<Process>,
    /// `a;b`, as clients and brokers take it.
    namesrv_addr: String,
    nodes: Vec<Node>,
}

/// The shipped sample `conf/<layout>/<name>.properties`.
fn sample(layout: &str, name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf").join(layout).join(format!("{name}.properties"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn wait_listening(ip: &str, port: u16, process: &mut Process) {
    let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
    let deadline = Instant::now() + START_TIMEOUT;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr}:\n{}", process.tail(50));
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl HaCluster {
    /// Starts `namesrvs` name servers on 127.0.0.{9,10} and the brokers of `conf/<layout>` named
    /// in `brokers`, on 127.0.0.11 onwards (in order), each waiting until registered.
    fn start(layout: &str, namesrvs: usize, brokers: &[&'static str]) -> HaCluster {
        let dir = tempfile::tempdir().unwrap();
        let mut ns_procs = Vec::new();
        let mut ns_addrs = Vec::new();
        for i in 0..namesrvs {
            let ip = format!("127.0.0.{}", 9 + i);
            let port = free_port();
            let config = dir.path().join(format!("namesrv-{i}.properties"));
            let kv = dir.path().join(format!("kv-{i}.json"));
            std::fs::write(&config, format!("listenPort={port}\nbindAddress={ip}\nkvConfigPath={}\n", kv.display()))
                .unwrap();
            let mut p = Process::start_namesrv(&config);
            wait_listening(&ip, port, &mut p);
            ns_procs.push(p);
            ns_addrs.push(format!("{ip}:{port}"));
        }
        let namesrv_addr = ns_addrs.join(";");
        let mut nodes = Vec::new();
        for (i, name) in brokers.iter().enumerate() {
            let ip = format!("127.0.0.{}", 11 + i);
            let port = free_broker_port();
            let http_port = free_port();
            let store = dir.path().join(name);
            // The sample unchanged, plus paths and addresses (the HTTP door too: the samples leave
            // it on its default port, which several brokers on one host cannot share), and 16 MiB
            // CommitLog files: four brokers would reserve 4 GiB of disk with the default 1 GiB,
            // and the larger tests then cross file ends.
            let text = format!(
                "{}\n# --- added by the test: paths, addresses, file size\nstorePathRootDir={}\n\
                 namesrvAddr={namesrv_addr}\nbrokerIP1={ip}\nbindAddress={ip}\nlistenPort={port}\n\
                 httpListenPort={http_port}\namqpListenPort=0\nmappedFileSizeCommitLog={COMMIT_LOG_FILE_BYTES}\n",
                sample(layout, name),
                store.display()
            );
            let config = dir.path().join(format!("{name}.properties"));
            std::fs::write(&config, text).unwrap();
            let mut node = Node { name, ip, port, http_port, config, store, process: None };
            node.start();
            nodes.push(node);
        }
        HaCluster { _dir: dir, _namesrvs: ns_procs, namesrv_addr, nodes }
    }

    fn node(&mut self, name: &str) -> &mut Node {
        self.nodes.iter_mut().find(|n| n.name == name).unwrap_or_else(|| panic!("no broker {name}"))
    }
}

/// Runs `mqadmin` against the cluster's name servers.
fn mqadmin(namesrv: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mqadmin"))
        .args(args)
        .args(["-n", namesrv])
        .env_remove("NAMESRV_ADDR")
        .output()
        .expect("run mqadmin");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// `mqadmin brokerStatus -b addr --json` as a map (empty when the broker does not answer).
fn broker_status(namesrv: &str, addr: &str) -> HashMap<String, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_mqadmin"))
        .args(["brokerStatus", "-b", addr, "--json", "-n", namesrv])
        .env_remove("NAMESRV_ADDR")
        .output()
        .expect("run mqadmin");
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else { return HashMap::new() };
    v.get(addr)
        .and_then(|m| m.as_object())
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect())
        .unwrap_or_default()
}

fn number(status: &HashMap<String, String>, key: &str) -> Option<u64> {
    status.get(key)?.parse().ok()
}

/// Waits until the slave has written everything the master has; returns that offset.
fn wait_replicated(namesrv: &str, master: &str, slave: &str, timeout: Duration) -> u64 {
    let deadline = Instant::now() + timeout;
    loop {
        let m = number(&broker_status(namesrv, master), "commitLogMaxOffset");
        let s = number(&broker_status(namesrv, slave), "haReplicaOffset");
        if let (Some(m), Some(s)) = (m, s)
            && m == s
            && m > 0
        {
            return m;
        }
        assert!(Instant::now() < deadline, "slave {slave} at {s:?} never reached master {master} at {m:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until the master at `addr` counts a connected, reporting slave.
fn wait_slave_connected(namesrv: &str, addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while broker_status(namesrv, addr).get("haConnectedSlaves").map(String::as_str) != Some("1") {
        assert!(Instant::now() < deadline, "no slave connected to {addr}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The first `upto` CommitLog bytes of `store`, file by file (name → bytes).
fn commit_log_prefix(store: &Path, upto: u64) -> Vec<(String, Vec<u8>)> {
    let dir = store.join("commitlog");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.len() == 20 && n.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let start: u64 = name.parse().unwrap();
        if start >= upto {
            continue;
        }
        let mut f = std::fs::File::open(dir.join(&name)).unwrap();
        let len = (f.metadata().unwrap().len()).min(upto - start) as usize;
        let mut buf = vec![0u8; len];
        f.read_exact(&mut buf).unwrap();
        out.push((name, buf));
    }
    out
}

/// Asserts that the slave's CommitLog equals the master's byte for byte up to `upto`.
fn assert_identical(master: &Node, slave: &Node, upto: u64) {
    let m = commit_log_prefix(&master.store, upto);
    let s = commit_log_prefix(&slave.store, upto);
    assert!(!m.is_empty(), "{} has no CommitLog", master.name);
    assert_eq!(
        m.iter().map(|(n, b)| (n, b.len())).collect::<Vec<_>>(),
        s.iter().map(|(n, b)| (n, b.len())).collect::<Vec<_>>(),
        "{} and {} hold different CommitLog files",
        master.name,
        slave.name
    );
    for ((name, mb), (_, sb)) in m.iter().zip(&s) {
        if let Some(at) = mb.iter().zip(sb.iter()).position(|(a, b)| a != b) {
            panic!("{}/{name} and {}/{name} differ at byte {at}", master.name, slave.name);
        }
    }
}

/// Sends recorded by a producer loop: message id → status.
#[derive(Clone, Default)]
struct SendLog(Arc<Mutex<Vec<(String, SendStatus)>>>);

impl SendLog {
    fn acked(&self) -> HashSet<String> {
        let log = self.0.lock().unwrap_or_else(|e| e.into_inner());
        log.iter().filter(|(_, s)| *s == SendStatus::SendOk).map(|(id, _)| id.clone()).collect()
    }
}

#[test]
fn two_pairs_replicate_and_keep_every_acknowledged_message_through_master_kills() {
    let _serial = serial();
    let mut cluster = HaCluster::start("2m-2s-sync", 2, &["broker-a", "broker-a-s", "broker-b", "broker-b-s"]);
    let ns = cluster.namesrv_addr.clone();
    let topic = "TopicHa";
    for master in ["broker-a", "broker-b"] {
        wait_slave_connected(&ns, &cluster.node(master).addr());
    }
    let (code, text) = mqadmin(&ns, &["updateTopic", "-c", "DefaultCluster", "-t", topic, "-r", "4", "-w", "4"]);
    assert_eq!(code, 0, "updateTopic: {text}");
    // Build 5: both name servers route to both pairs, master as brokerId 0 and slave as 1; each
    // slave learnt its master's address from its registration.
    for namesrv in ns.split(';') {
        let (code, text) = mqadmin(namesrv, &["topicRoute", "-t", topic]);
        assert_eq!(code, 0, "topicRoute at {namesrv}: {text}");
        let route: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        for (master, slave) in [("broker-a", "broker-a-s"), ("broker-b", "broker-b-s")] {
            let data = route["brokerDatas"]
                .as_array()
                .and_then(|a| a.iter().find(|d| d["brokerName"] == master))
                .unwrap_or_else(|| panic!("{namesrv} routes {topic} without {master}: {text}"));
            assert_eq!(data["brokerAddrs"]["0"], cluster.node(master).addr().as_str(), "{text}");
            assert_eq!(data["brokerAddrs"]["1"], cluster.node(slave).addr().as_str(), "{text}");
        }
    }
    for (master, slave) in [("broker-a", "broker-a-s"), ("broker-b", "broker-b-s")] {
        let st = broker_status(&ns, &cluster.node(slave).addr());
        assert_eq!(st.get("masterAddr"), Some(&cluster.node(master).addr()), "{slave}: {st:?}");
        let ha = cluster.node(master).ha_addr().to_string();
        assert_eq!(st.get("haMasterAddress"), Some(&ha), "{slave}: {st:?}");
    }

    // 1. Sends spread over both pairs; everything consumed; slaves identical to their masters.
    let phase1 = 2_000;
    let log = SendLog::default();
    let consumed = Inbox::default();
    let mut refused = None;
    with_client(async |rt| {
        let mut producer = start_producer(&rt, &ns, "PG_ha").await;
        let mut by_broker: HashMap<String, usize> = HashMap::new();
        for i in 0..phase1 {
            let body = format!("phase1 {i}");
            let result = producer
                .send(message(topic, Some("T"), &[], body.as_bytes(), &[]))
                .await
                .unwrap_or_else(|e| panic!("send #{i}: {e}"))
                .unwrap_or_else(|| panic!("send #{i}: no result"));
            let broker = result.message_queue.as_ref().map(|q| q.broker_name().to_string()).unwrap_or_default();
            if result.send_status != SendStatus::SendOk {
                // Reported below with the pair's logs.
                refused = Some((i, broker, format!("{result:?}")));
                producer.shutdown().await;
                return;
            }
            *by_broker.entry(broker).or_default() += 1;
            log.0.lock().unwrap().push((result.msg_id.unwrap().to_string(), SendStatus::SendOk));
        }
        assert!(by_broker.len() == 2, "sends went to both pairs: {by_broker:?}");
        let mut consumer = start_push_consumer(
            &rt,
            &ns,
            "CG_ha_1",
            topic,
            Subscription::Tag("*"),
            Listener::Concurrently(Recorder::new(&consumed)),
            |b| b,
        )
        .await;
        let ok = crate::native::eventually(Duration::from_secs(60), || consumed.distinct() >= phase1).await;
        assert!(ok, "consumed {} of {phase1}", consumed.distinct());
        consumer.shutdown().await;
        producer.shutdown().await;
    });
    if let Some((i, broker, result)) = refused {
        let mut logs = String::new();
        for name in [broker.clone(), format!("{broker}-s")] {
            let tail = cluster.node(&name).process.as_mut().map(|p| p.tail(40)).unwrap_or_default();
            logs.push_str(&format!("\n--- {name}:\n{tail}"));
        }
        panic!("send #{i} to {broker} was not SEND_OK: {result}{logs}");
    }
    for (master, slave) in [("broker-a", "broker-a-s"), ("broker-b", "broker-b-s")] {
        let (m_addr, s_addr) = (cluster.node(master).addr(), cluster.node(slave).addr());
        let upto = wait_replicated(&ns, &m_addr, &s_addr, Duration::from_secs(30));
        let m = cluster.nodes.iter().find(|n| n.name == master).unwrap();
        let s = cluster.nodes.iter().find(|n| n.name == slave).unwrap();
        assert_identical(m, s, upto);
        eprintln!("[ha] {slave} is byte-identical to {master} up to offset {upto}");
    }

    // 2 and 5. A send loop; broker-a's master killed -9 and restarted, five times. A second group
    // starts while the master is down and must read broker-a's backlog from the slave.
    let late = Inbox::default();
    let cluster = Mutex::new(cluster);
    with_client(async |rt| {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut producer = start_producer(&rt, &ns, "PG_ha_kill").await;
        let sending = {
            let log = log.clone();
            let stop = stop.clone();
            async move {
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Acquire) {
                    let body = format!("kill-load {i}");
                    i += 1;
                    match producer.send(message(topic, Some("T"), &[], body.as_bytes(), &[])).await {
                        Ok(Some(r)) => {
                            let id = r.msg_id.map(|m| m.to_string()).unwrap_or_default();
                            log.0.lock().unwrap().push((id, r.send_status));
                        }
                        _ => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
                producer.shutdown().await;
            }
        };
        let sender = tokio::spawn(sending);
        let mut late_consumer = None;
        for kill in 0..MASTER_KILLS {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            cluster.lock().unwrap().node("broker-a").kill9();
            eprintln!("[ha] kill #{} of broker-a's master", kill + 1);
            if kill == 0 {
                // Everything acknowledged so far sits on broker-a's slave (SYNC_MASTER).
                let backlog = log.acked().len();
                late_consumer = Some(
                    start_push_consumer(
                        &rt,
                        &ns,
                        "CG_ha_late",
                        topic,
                        Subscription::Tag("*"),
                        Listener::Concurrently(Recorder::new(&late)),
                        |b| b,
                    )
                    .await,
                );
                let ok = crate::native::eventually(Duration::from_secs(60), || late.distinct() >= backlog).await;
                assert!(ok, "while the master is down the late group read {} of {backlog}", late.distinct());
                eprintln!("[ha] with broker-a's master down, the late group read {} messages", late.distinct());
            } else {
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            tokio::task::block_in_place(|| cluster.lock().unwrap().node("broker-a").start());
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.store(true, std::sync::atomic::Ordering::Release);
        sender.await.unwrap();
        let acked = log.acked();
        let ok = crate::native::eventually(Duration::from_secs(90), || {
            let got: HashSet<String> = late.snapshot().into_iter().map(|r| r.id).collect();
            acked.is_subset(&got)
        })
        .await;
        let got: HashSet<String> = late.snapshot().into_iter().map(|r| r.id).collect();
        let missing: Vec<&String> = acked.difference(&got).take(10).collect();
        assert!(ok, "the late group misses {} acknowledged messages, e.g. {missing:?}", acked.difference(&got).count());
        if let Some(mut c) = late_consumer {
            c.shutdown().await;
        }
    });

    // Everything acknowledged is there for a fresh group reading from the first offset.
    let acked = log.acked();
    let fresh = Inbox::default();
    with_client(async |rt| {
        let mut consumer = start_push_consumer(
            &rt,
            &ns,
            "CG_ha_fresh",
            topic,
            Subscription::Tag("*"),
            Listener::Concurrently(Recorder::new(&fresh)),
            |b| b,
        )
        .await;
        let ok = crate::native::eventually(Duration::from_secs(90), || {
            let got: HashSet<String> = fresh.snapshot().into_iter().map(|r| r.id).collect();
            acked.is_subset(&got)
        })
        .await;
        let got: HashSet<String> = fresh.snapshot().into_iter().map(|r| r.id).collect();
        assert!(ok, "a fresh group misses {} of {} acknowledged messages", acked.difference(&got).count(), acked.len());
        consumer.shutdown().await;
    });
    let statuses = {
        let log = log.0.lock().unwrap();
        let mut h: HashMap<String, usize> = HashMap::new();
        for (_, s) in log.iter() {
            *h.entry(format!("{s:?}")).or_default() += 1;
        }
        h
    };
    eprintln!(
        "[ha] {MASTER_KILLS} master kills: {} acknowledged (SEND_OK), all read back; statuses {statuses:?}; \
         duplicates: late group {}, fresh group {}",
        acked.len(),
        duplicates(&late.snapshot()).len(),
        duplicates(&fresh.snapshot()).len()
    );
}

/// Connects to an HA port as a stranger, writes `bytes` and reports whether the master closed the
/// connection (EOF or reset) within 10 s.
fn ha_stranger_is_refused(addr: SocketAddr, bytes: &[u8]) -> bool {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).expect("connect to the HA port");
    s.write_all(bytes).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn sync_master_without_slave_refuses_send_ok_and_a_returning_slave_catches_up() {
    let _serial = serial();
    let mut cluster = HaCluster::start("2m-2s-sync", 1, &["broker-a", "broker-a-s"]);
    let ns = cluster.namesrv_addr.clone();
    let master_addr = cluster.node("broker-a").addr();
    let slave_addr = cluster.node("broker-a-s").addr();
    let topic = "TopicHaSlave";
    wait_slave_connected(&ns, &master_addr);
    let (code, text) = mqadmin(&ns, &["updateTopic", "-c", "DefaultCluster", "-t", topic, "-r", "4", "-w", "4"]);
    assert_eq!(code, 0, "updateTopic: {text}");
    slave_follows_the_masters_plugins(&ns, &master_addr, &slave_addr, topic);
    // Build 2: a SLAVE refuses sends (SERVICE_NOT_AVAILABLE, as 4.9.4's store answers on a slave).
    let refused =
        crate::bad_input::Conn::open(&slave_addr).call(crate::bad_input::send(topic, b"to the slave".to_vec()));
    assert_eq!(refused.code, broker::protocol::response::SERVICE_NOT_AVAILABLE, "{:?}", refused.remark);
    let cluster = Mutex::new(cluster);

    with_client(async |rt| {
        let mut producer = start_producer(&rt, &ns, "PG_ha_slave").await;
        let send = async |i: usize| {
            let body = format!("slave-test {i}");
            producer
                .send(message(topic, None, &[], body.as_bytes(), &[]))
                .await
                .unwrap_or_else(|e| panic!("send #{i}: {e}"))
                .unwrap_or_else(|| panic!("send #{i}: no result"))
                .send_status
        };
        // With the slave connected, sends are acknowledged after replication.
        let deadline = Instant::now() + Duration::from_secs(30);
        while send(0).await != SendStatus::SendOk {
            assert!(Instant::now() < deadline, "no SEND_OK with the slave up");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for i in 0..50 {
            assert_eq!(send(i).await, SendStatus::SendOk, "send #{i} with the slave up");
        }

        // 3. The slave is killed: no send returns SEND_OK while it is down.
        cluster.lock().unwrap().node("broker-a-s").kill9();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for i in 0..20 {
            let s = send(1000 + i).await;
            assert!(
                matches!(s, SendStatus::SlaveNotAvailable | SendStatus::FlushSlaveTimeout),
                "send #{i} with the slave down answered {s:?}"
            );
            *seen.entry(format!("{s:?}")).or_default() += 1;
        }
        eprintln!("[ha] with the slave down: {seen:?}");
        producer.shutdown().await;
    });

    // 4. 100,000 messages arrive while the slave is down (mqbench, batches of 32).
    let bench = Command::new(env!("CARGO_BIN_EXE_mqbench"))
        .args(["producer", "-n", &ns, "-t", topic, "-m", "100000", "-b", "32", "-s", "1024", "-w", "4"])
        .output()
        .expect("run mqbench");
    let bench_out = format!("{}{}", String::from_utf8_lossy(&bench.stdout), String::from_utf8_lossy(&bench.stderr));
    assert!(bench.status.success(), "mqbench: {bench_out}");
    let master_max = number(&broker_status(&ns, &master_addr), "commitLogMaxOffset").unwrap();
    // The master's view of the lag is sampled every millisecond, from before the slave restarts,
    // with GET_BROKER_RUNTIME_INFO (the request behind `mqadmin brokerStatus`): a catch-up takes
    // a fraction of a second, less than starting a few mqadmin processes.
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (sampling, addr) = (Arc::clone(&sampling), master_addr.clone());
        std::thread::spawn(move || {
            let mut conn = crate::bad_input::Conn::open(&addr);
            let mut largest: Option<u64> = None;
            while sampling.load(Ordering::Acquire) {
                let r = conn.call(broker::remoting::RemotingCommand::request(
                    broker::protocol::request::GET_BROKER_RUNTIME_INFO,
                ));
                let lag = serde_json::from_slice::<serde_json::Value>(&r.body)
                    .ok()
                    .and_then(|v| v["table"]["haSlaveLagBytes"].as_str().and_then(|l| l.parse::<u64>().ok()));
                if let Some(l) = lag {
                    largest = Some(largest.unwrap_or(0).max(l));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            largest
        })
    };
    let started = Instant::now();
    tokio_free_restart(&cluster, "broker-a-s");
    let caught_up = loop {
        let s = number(&broker_status(&ns, &slave_addr), "haReplicaOffset").unwrap_or(0);
        if s >= master_max {
            break started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(120), "slave at {s} of {master_max} after 120 s");
        std::thread::sleep(Duration::from_millis(100));
    };
    sampling.store(false, Ordering::Release);
    let max_lag = sampler.join().expect("lag sampler");
    assert!(
        max_lag.is_some_and(|l| l > 0),
        "the master's runtime info shows the returning slave's lag (largest seen: {max_lag:?} bytes)"
    );
    let shown = broker_status(&ns, &master_addr);
    assert!(shown.contains_key("haSlaveLagBytes"), "mqadmin brokerStatus shows haSlaveLagBytes: {shown:?}");
    // The same lag in Prometheus: one series per connected slave on the master, 0 once caught up.
    let (ip, http_port) = {
        let mut c = cluster.lock().unwrap();
        let m = c.node("broker-a");
        (m.ip.clone(), m.http_port)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = http_get(&format!("{ip}:{http_port}"), "/metrics");
        let lags: Vec<&str> = text.lines().filter(|l| l.starts_with("rocketmq_ha_replica_lag_bytes{")).collect();
        if lags.len() == 1 && lags[0].ends_with(" 0") {
            break;
        }
        assert!(Instant::now() < deadline, "master's /metrics HA lag: {lags:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "[ha] slave caught up {master_max} bytes in {caught_up:?} after a restart (largest lag seen in \
         the master's runtime info: {} bytes)",
        max_lag.unwrap_or(0)
    );

    // 6. Bad input on the master's HA port.
    let ha = cluster.lock().unwrap().node("broker-a").ha_addr();
    assert!(ha_stranger_is_refused(ha, &i64::MAX.to_be_bytes()), "an offset beyond the master's end is refused");
    assert!(ha_stranger_is_refused(ha, &(-5i64).to_be_bytes()), "a negative offset is refused");
    assert!(
        ha_stranger_is_refused(ha, &((master_max + 1) as i64).to_be_bytes()),
        "an offset one past the end is refused"
    );
    let mut garbage = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    garbage.extend_from_slice(&[0xFF; 64]);
    assert!(ha_stranger_is_refused(ha, &garbage), "garbage is refused");
    // A stranger that connects and says nothing does not count as a slave; it stays open meanwhile.
    let _silent = TcpStream::connect(ha).unwrap();

    // The real slave and the master are unharmed: SEND_OK again, and identical CommitLogs.
    with_client(async |rt| {
        let mut producer = start_producer(&rt, &ns, "PG_ha_slave_back").await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = producer.send(message(topic, None, &[], b"after", &[])).await.unwrap().unwrap();
            if r.send_status == SendStatus::SendOk {
                break;
            }
            assert!(Instant::now() < deadline, "no SEND_OK after the slave came back: {r:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for i in 0..20 {
            let r = producer.send(message(topic, None, &[], b"after", &[])).await.unwrap().unwrap();
            assert_eq!(r.send_status, SendStatus::SendOk, "send #{i} after the slave is back");
        }
        producer.shutdown().await;
    });
    let upto = wait_replicated(&ns, &master_addr, &slave_addr, Duration::from_secs(30));
    let cluster = cluster.into_inner().unwrap();
    assert_identical(&cluster.nodes[0], &cluster.nodes[1], upto);
    let st = broker_status(&ns, &master_addr);
    assert_eq!(st.get("haConnectedSlaves").map(String::as_str), Some("1"), "only the real slave counts: {st:?}");
}

/// A plugin deployed and bound on the master appears, with its binding, on the slave (issue 5's
/// "the slave follows the master's plugins"); removing it on the master removes it there too.
fn slave_follows_the_masters_plugins(ns: &str, master: &str, slave: &str, topic: &str) {
    let dir = broker::plugin::examples::build().unwrap_or_else(|e| panic!("{e}"));
    let wasm = dir.join("key_router.wasm").display().to_string();
    let on_master = |args: &[&str]| {
        let mut all = vec!["plugin"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-b", master]);
        let (code, text) = mqadmin(ns, &all);
        assert_eq!(code, 0, "mqadmin {all:?}: {text}");
    };
    let slave_list = || {
        let (code, text) = mqadmin(ns, &["plugin", "list", "-b", slave, "--json"]);
        assert_eq!(code, 0, "plugin list on the slave: {text}");
        serde_json::from_str::<serde_json::Value>(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    };
    let wait_for = |what: &str, ok: &dyn Fn(&serde_json::Value) -> bool| {
        // The slave copies its master's metadata every 10 s.
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            let list = slave_list();
            if ok(&list) {
                return;
            }
            assert!(Instant::now() < deadline, "the slave never {what}: {list}");
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    on_master(&["deploy", "-p", "ha_router", "-f", &wasm, "-r", "router"]);
    on_master(&["bind", "-p", "ha_router", "-r", "router", "-t", topic]);
    wait_for("installed the master's router and its binding", &|l| {
        let deployed = l["plugins"].as_array().is_some_and(|a| a.iter().any(|p| p["name"] == "ha_router"));
        let bound = l["bindings"]
            .as_array()
            .is_some_and(|a| a.iter().any(|b| b["plugin"] == "ha_router" && b["topic"] == topic));
        deployed && bound
    });
    on_master(&["unbind", "-r", "router", "-t", topic]);
    on_master(&["remove", "-p", "ha_router"]);
    wait_for("dropped the plugin the master removed", &|l| {
        l["plugins"].as_array().is_some_and(|a| a.is_empty()) && l["bindings"].as_array().is_some_and(|a| a.is_empty())
    });
    eprintln!("[ha] the slave followed the master's plugin deploy, bind, unbind and remove");
}

/// A plain HTTP/1.1 GET, the body.
fn http_get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP answer: {text}"));
    assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
    body.to_owned()
}

fn tokio_free_restart(cluster: &Mutex<HaCluster>, name: &str) {
    cluster.lock().unwrap().node(name).start();
}
