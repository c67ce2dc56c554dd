//! Delay levels and transactions through a running broker: the schedule service, END_TRANSACTION
//! and the check-back service, driven with remoting requests on loopback.

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::Broker;
use super::delay::{delivery_time, remove_property};
use super::transaction::with_property;
use crate::config::BrokerConfig;
use crate::protocol::Headers;
use crate::protocol::body::{self, HeartbeatData, ProducerData};
use crate::protocol::message_id::decode_offset_msg_id;
use crate::protocol::{request, response};
use crate::remoting::{Client, ClientOptions, FrameDecoder, RemotingCommand};
use crate::store::format::{Scanned, scan_record};
use crate::store::now_ms;

const RPC_TIMEOUT: Duration = Duration::from_secs(5);
const PRODUCER_GROUP: &str = "pg-tx";
const TX_PROPS: &str = "TRAN_MSG\u{1}true\u{2}PGROUP\u{1}pg-tx\u{2}UNIQ_KEY\u{1}7F0000010001000000000000000000AA";

/// A free `listenPort` P whose VIP port (P - 2) and HA port (P + 1) are free too.
fn free_broker_port() -> u16 {
    loop {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        if !(1024..=65000).contains(&port) {
            continue;
        }
        let others_free = [port - 2, port - 1, port + 1].iter().all(|&p| TcpListener::bind(("0.0.0.0", p)).is_ok());
        drop(probe);
        if others_free && TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
}

fn config(dir: &Path, port: u16, extra: &str) -> BrokerConfig {
    let text = format!(
        "brokerClusterName=TestCluster\nbrokerName=broker-test\nbrokerId=0\nbrokerRole=ASYNC_MASTER\n\
         flushDiskType=ASYNC_FLUSH\nbrokerIP1=127.0.0.1\nlistenPort={port}\nstorePathRootDir={}\n\
         mappedFileSizeCommitLog=8388608\nmappedFileSizeConsumeQueue=20000\nmaxHashSlotNum=1000\nmaxIndexNum=4000\n\
         messageDelayLevel=1s 2s 3s\ntransactionCheckInterval=500\ntransactionTimeOut=500\n{extra}\n",
        dir.display()
    );
    BrokerConfig::from_properties_str(&text).unwrap().config
}

/// Starts a broker on `dir`, retrying while an earlier broker on the same store still holds its
/// lock (it is released once the last task of that broker has ended).
async fn start(dir: &Path, extra: &str) -> (Broker, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let port = free_broker_port();
        match Broker::start(config(dir, port, extra)).await {
            Ok(b) => return (b, format!("127.0.0.1:{port}")),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("broker did not start: {e:#}"),
        }
    }
}

fn send_request(topic: &str, properties: &str, sys_flag: i32) -> RemotingCommand {
    RemotingCommand::request(request::SEND_MESSAGE)
        .with_field("producerGroup", PRODUCER_GROUP)
        .with_field("topic", topic)
        .with_field("defaultTopic", "TBW102")
        .with_field("defaultTopicQueueNums", 4)
        .with_field("queueId", 0)
        .with_field("sysFlag", sys_flag)
        .with_field("bornTimestamp", now_ms())
        .with_field("flag", 0)
        .with_field("properties", properties)
        .with_body(b"hello".to_vec())
}

fn pull_request(topic: &str, offset: u64) -> RemotingCommand {
    RemotingCommand::request(request::PULL_MESSAGE)
        .with_field("consumerGroup", "cg-test")
        .with_field("topic", topic)
        .with_field("queueId", 0)
        .with_field("queueOffset", offset)
        .with_field("maxMsgNums", 32)
        .with_field("sysFlag", 4)
        .with_field("commitOffset", 0)
        .with_field("suspendTimeoutMillis", 0)
        .with_field("subscription", "*")
        .with_field("subVersion", 0)
}

/// One message of a pull body.
#[derive(Debug)]
struct Pulled {
    topic: String,
    queue_id: u32,
    queue_offset: u64,
    sys_flag: i32,
    prepared_transaction_offset: i64,
    properties: String,
    body: Vec<u8>,
}

impl Pulled {
    fn property(&self, key: &str) -> Option<&str> {
        crate::protocol::property(&self.properties, key)
    }
}

fn decode_pull(resp: &RemotingCommand) -> Vec<Pulled> {
    match resp.code {
        response::SUCCESS => {}
        response::PULL_NOT_FOUND
        | response::PULL_RETRY_IMMEDIATELY
        | response::PULL_OFFSET_MOVED
        | response::TOPIC_NOT_EXIST => return Vec::new(),
        code => panic!("pull failed: {code} {:?}", resp.remark),
    }
    let mut out = Vec::new();
    let mut at = 0;
    while at < resp.body.len() {
        let Scanned::Record(r) = scan_record(&resp.body[at..], true) else { panic!("bad record in a pull body") };
        at += r.total_size as usize;
        out.push(Pulled {
            topic: r.topic.to_owned(),
            queue_id: r.queue_id,
            queue_offset: r.queue_offset,
            sys_flag: r.sys_flag,
            prepared_transaction_offset: r.prepared_transaction_offset,
            properties: r.properties.to_owned(),
            body: r.body.to_vec(),
        });
    }
    out
}

async fn invoke(client: &Client, addr: &str, req: RemotingCommand) -> RemotingCommand {
    client.invoke(addr, req, RPC_TIMEOUT).await.unwrap()
}

async fn send(client: &Client, addr: &str, topic: &str, properties: &str, sys_flag: i32) -> RemotingCommand {
    let r = invoke(client, addr, send_request(topic, properties, sys_flag)).await;
    assert_eq!(r.code, response::SUCCESS, "send failed: {:?}", r.remark);
    r
}

/// Every message of queue 0 of `topic`.
async fn pull_all(client: &Client, addr: &str, topic: &str) -> Vec<Pulled> {
    decode_pull(&invoke(client, addr, pull_request(topic, 0)).await)
}

/// Pulls queue 0 of `topic` until it holds `n` messages, or panics after `timeout`.
async fn wait_for(client: &Client, addr: &str, topic: &str, n: usize, timeout: Duration) -> Vec<Pulled> {
    let deadline = Instant::now() + timeout;
    loop {
        let got = pull_all(client, addr, topic).await;
        if got.len() >= n {
            return got;
        }
        assert!(Instant::now() < deadline, "{topic} holds {} messages after {timeout:?}, expected {n}", got.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One request on a fresh connection that is closed afterwards (so the broker keeps no task for
/// it and can be restarted in this process).
async fn call_once(addr: &str, req: RemotingCommand) -> RemotingCommand {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut out = BytesMut::new();
    req.encode_frame(&mut out);
    stream.write_all(&out).await.unwrap();
    let decoder = FrameDecoder::default();
    let mut buf = BytesMut::new();
    loop {
        if let Some(cmd) = decoder.decode(&mut buf).unwrap() {
            return cmd;
        }
        let n = tokio::time::timeout(RPC_TIMEOUT, stream.read_buf(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "connection closed before the response");
    }
}

/// The (commitLogOffset, tranStateTableOffset) of a half message's send response.
fn half_offsets(send_response: &RemotingCommand) -> (u64, u64) {
    let msg_id = send_response.field("msgId").unwrap();
    let (_, commit_log_offset) = decode_offset_msg_id(msg_id).unwrap();
    let queue_offset: u64 = send_response.required("queueOffset").unwrap();
    (commit_log_offset, queue_offset)
}

fn end_request(commit_log_offset: u64, tran_state_table_offset: u64, state: i32, from_check: bool) -> RemotingCommand {
    RemotingCommand::request(request::END_TRANSACTION)
        .with_field("producerGroup", PRODUCER_GROUP)
        .with_field("tranStateTableOffset", tran_state_table_offset)
        .with_field("commitLogOffset", commit_log_offset)
        .with_field("commitOrRollback", state)
        .with_field("fromTransactionCheck", from_check)
        .with_field("msgId", "7F0000010001000000000000000000AA")
        .with_field("transactionId", "7F0000010001000000000000000000AA")
}

/// A client whose server-to-client requests (CHECK_TRANSACTION_STATE) arrive on the returned
/// channel.
fn client_with_checks() -> (Client, mpsc::UnboundedReceiver<RemotingCommand>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let on_request = Arc::new(move |_addr: &str, cmd: RemotingCommand| {
        let _ = tx.send(cmd);
        None
    });
    (Client::new(ClientOptions { on_request: Some(on_request), ..ClientOptions::default() }), rx)
}

/// Registers the client's connection as a producer of [`PRODUCER_GROUP`].
async fn register_producer(client: &Client, addr: &str) {
    let hb = HeartbeatData {
        client_id: "127.0.0.1@test".into(),
        consumer_data_set: Vec::new(),
        producer_data_set: vec![ProducerData { group_name: PRODUCER_GROUP.into() }],
    };
    let r = invoke(client, addr, RemotingCommand::request(request::HEART_BEAT).with_body(body::to_json(&hb))).await;
    assert_eq!(r.code, response::SUCCESS);
}

async fn next_check(rx: &mut mpsc::UnboundedReceiver<RemotingCommand>, timeout: Duration) -> RemotingCommand {
    let cmd = tokio::time::timeout(timeout, rx.recv()).await.expect("no CHECK_TRANSACTION_STATE in time").unwrap();
    assert_eq!(cmd.code, request::CHECK_TRANSACTION_STATE);
    cmd
}

#[test]
fn delivery_time_far_ahead_is_now() {
    assert_eq!(delivery_time(1_000, 1_500, 1_000), 1_500);
    assert_eq!(delivery_time(1_000, 2_000, 1_000), 2_000);
    assert_eq!(delivery_time(1_000, 2_001, 1_000), 1_000);
    assert_eq!(delivery_time(1_000, 0, 1_000), 0);
}

#[test]
fn property_edits_keep_the_rest() {
    let text = "DELAY\u{1}3\u{2}REAL_TOPIC\u{1}T\u{2}UNIQ_KEY\u{1}AB\u{2}";
    assert_eq!(remove_property(text, "DELAY"), "REAL_TOPIC\u{1}T\u{2}UNIQ_KEY\u{1}AB\u{2}");
    assert_eq!(remove_property(text, "UNIQ_KEY"), "DELAY\u{1}3\u{2}REAL_TOPIC\u{1}T\u{2}");
    assert_eq!(remove_property("A\u{1}1", "A"), "");
    assert_eq!(remove_property("", "A"), "");
    assert_eq!(with_property("A\u{1}1", "B", "2"), "A\u{1}1\u{2}B\u{1}2");
    assert_eq!(with_property("A\u{1}1\u{2}B\u{1}1\u{2}", "B", "2"), "A\u{1}1\u{2}B\u{1}2");
    assert_eq!(with_property("", "B", "2"), "B\u{1}2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_message_arrives_after_its_level() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, addr) = start(dir.path(), "").await;
    let client = Client::default();
    let sent_at = Instant::now();
    send(&client, &addr, "DelayTopic", "DELAY\u{1}1\u{2}UNIQ_KEY\u{1}D1", 0).await;
    assert!(pull_all(&client, &addr, "DelayTopic").await.is_empty(), "delivered before its level");

    let got = wait_for(&client, &addr, "DelayTopic", 1, Duration::from_secs(5)).await;
    assert!(sent_at.elapsed() >= Duration::from_millis(900), "delivered after {:?}", sent_at.elapsed());
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!((m.topic.as_str(), m.queue_id, m.queue_offset), ("DelayTopic", 0, 0));
    assert_eq!(m.property("REAL_TOPIC"), Some("DelayTopic"));
    assert_eq!(m.property("REAL_QID"), Some("0"));
    assert_eq!(m.property("UNIQ_KEY"), Some("D1"));
    assert_eq!(m.property("DELAY"), None);
    assert_eq!(m.body, b"hello");

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(pull_all(&client, &addr, "DelayTopic").await.len(), 1, "delivered twice");
    assert_eq!(broker.inner.meta.delay_offsets().offset(1), Some(1));
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_message_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, addr) = start(dir.path(), "").await;
    // Level 1 (1 s) delivered before the restart; level 3 (3 s) after it.
    for (props, level) in [("DELAY\u{1}1\u{2}UNIQ_KEY\u{1}R1", 1), ("DELAY\u{1}3\u{2}UNIQ_KEY\u{1}R3", 3)] {
        let r = call_once(&addr, send_request("RestartTopic", props, 0)).await;
        assert_eq!(r.code, response::SUCCESS, "send level {level}: {:?}", r.remark);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = decode_pull(&call_once(&addr, pull_request("RestartTopic", 0)).await);
        if got.len() == 1 {
            assert_eq!(got[0].property("UNIQ_KEY"), Some("R1"));
            break;
        }
        assert!(got.is_empty() && Instant::now() < deadline, "got {got:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    broker.shutdown().await.unwrap();
    let persisted = std::fs::read_to_string(dir.path().join("config/delayOffset.json")).unwrap();
    assert!(persisted.replace(char::is_whitespace, "").contains("1:1"), "{persisted}");

    let (broker, addr) = start(dir.path(), "").await;
    let client = Client::default();
    let got = wait_for(&client, &addr, "RestartTopic", 2, Duration::from_secs(8)).await;
    let ids: Vec<_> = got.iter().map(|m| m.property("UNIQ_KEY").unwrap_or("")).collect();
    assert_eq!(ids, ["R1", "R3"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(pull_all(&client, &addr, "RestartTopic").await.len(), 2, "delivered twice");
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_delivers_once_and_rollback_never() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, addr) = start(dir.path(), "").await;
    let client = Client::default();

    // Commit.
    let sent = send(&client, &addr, "TxTopic", TX_PROPS, 0x4).await;
    let (commit_log_offset, queue_offset) = half_offsets(&sent);
    assert!(pull_all(&client, &addr, "TxTopic").await.is_empty(), "a half message is visible");

    let wrong_group = end_request(commit_log_offset, queue_offset, 8, false).with_field("producerGroup", "other");
    let r = invoke(&client, &addr, wrong_group).await;
    assert_eq!((r.code, r.remark.as_deref()), (response::SYSTEM_ERROR, Some("The producer group wrong")));
    let r = invoke(&client, &addr, end_request(commit_log_offset, queue_offset + 7, 8, false)).await;
    assert_eq!(
        (r.code, r.remark.as_deref()),
        (response::SYSTEM_ERROR, Some("The transaction state table offset wrong"))
    );
    assert!(pull_all(&client, &addr, "TxTopic").await.is_empty());

    // Unknown: ignored.
    let r = invoke(&client, &addr, end_request(commit_log_offset, queue_offset, 0, false)).await;
    assert_eq!(r.code, response::SUCCESS);
    assert!(pull_all(&client, &addr, "TxTopic").await.is_empty());

    let r = invoke(&client, &addr, end_request(commit_log_offset, queue_offset, 8, false)).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let got = wait_for(&client, &addr, "TxTopic", 1, Duration::from_secs(3)).await;
    let m = &got[0];
    assert_eq!((m.topic.as_str(), m.queue_id), ("TxTopic", 0));
    assert_eq!(m.sys_flag & 0xC, 0x8, "not a commit");
    assert_eq!(m.prepared_transaction_offset, commit_log_offset as i64);
    assert_eq!(m.property("PGROUP"), Some(PRODUCER_GROUP));

    // A second commit (a late or repeated answer) is acknowledged and ignored.
    let r = invoke(&client, &addr, end_request(commit_log_offset, queue_offset, 8, true)).await;
    assert_eq!(r.code, response::SUCCESS);

    // Rollback.
    let sent = send(&client, &addr, "TxTopic", TX_PROPS, 0x4).await;
    let (rb_commit_log_offset, rb_queue_offset) = half_offsets(&sent);
    let r = invoke(&client, &addr, end_request(rb_commit_log_offset, rb_queue_offset, 12, false)).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let r = invoke(&client, &addr, end_request(rb_commit_log_offset, rb_queue_offset, 8, false)).await;
    assert_eq!(r.code, response::SUCCESS);

    // Both resolved: two op records, no check-back turns anything into a delivery.
    let ops = wait_for(&client, &addr, "RMQ_SYS_TRANS_OP_HALF_TOPIC", 2, Duration::from_secs(3)).await;
    let bodies: Vec<_> = ops.iter().map(|m| String::from_utf8_lossy(&m.body).into_owned()).collect();
    assert_eq!(bodies, [queue_offset.to_string(), rb_queue_offset.to_string()]);
    assert!(ops.iter().all(|m| m.property("TAGS") == Some("d")));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(pull_all(&client, &addr, "TxTopic").await.len(), 1);
    assert_eq!(broker.inner.transactions.status(rb_queue_offset), super::transaction::HalfStatus::Resolved);
    let consumed = broker.inner.meta.consumer_offsets().offset("RMQ_SYS_TRANS_HALF_TOPIC", "CID_RMQ_SYS_TRANS", 0);
    assert_eq!(consumed, Some(rb_queue_offset as i64 + 1));
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_delayed_message_waits_for_its_level() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, addr) = start(dir.path(), "").await;
    let client = Client::default();
    let sent = send(&client, &addr, "TxDelayTopic", &format!("{TX_PROPS}\u{2}DELAY\u{1}1"), 0x4).await;
    let (commit_log_offset, queue_offset) = half_offsets(&sent);
    let committed_at = Instant::now();
    let r = invoke(&client, &addr, end_request(commit_log_offset, queue_offset, 8, false)).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    assert!(pull_all(&client, &addr, "TxDelayTopic").await.is_empty(), "delivered before its level");

    let got = wait_for(&client, &addr, "TxDelayTopic", 1, Duration::from_secs(5)).await;
    assert!(committed_at.elapsed() >= Duration::from_millis(900), "delivered after {:?}", committed_at.elapsed());
    let m = &got[0];
    assert_eq!((m.topic.as_str(), m.queue_id), ("TxDelayTopic", 0));
    assert_eq!(m.sys_flag & 0xC, 0x8, "not a commit");
    assert_eq!(m.property("REAL_TOPIC"), Some("TxDelayTopic"));
    assert_eq!(m.property("DELAY"), None);
    assert_eq!(m.property("TRAN_MSG"), None);
    assert_eq!(m.property("PGROUP"), Some(PRODUCER_GROUP));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(pull_all(&client, &addr, "TxDelayTopic").await.len(), 1, "delivered twice");
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolved_transactions_stay_resolved_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, addr) = start(dir.path(), "transactionCheckInterval=60000").await;
    let mut halves = Vec::new();
    for _ in 0..2 {
        let sent = call_once(&addr, send_request("RestartTxTopic", TX_PROPS, 0x4)).await;
        assert_eq!(sent.code, response::SUCCESS, "{:?}", sent.remark);
        halves.push(half_offsets(&sent));
    }
    let (first_log, first_queue) = halves[0];
    let r = call_once(&addr, end_request(first_log, first_queue, 8, false)).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    broker.shutdown().await.unwrap();

    // No check round ran: the first half message is known resolved from its op record only.
    let (broker, addr) = start(dir.path(), "transactionCheckInterval=60000").await;
    let client = Client::default();
    assert_eq!(pull_all(&client, &addr, "RestartTxTopic").await.len(), 1);
    let r = invoke(&client, &addr, end_request(first_log, first_queue, 8, false)).await;
    assert_eq!(r.code, response::SUCCESS);
    let (second_log, second_queue) = halves[1];
    let r = invoke(&client, &addr, end_request(second_log, second_queue, 8, false)).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let got = wait_for(&client, &addr, "RestartTxTopic", 2, Duration::from_secs(3)).await;
    let prepared: Vec<_> = got.iter().map(|m| m.prepared_transaction_offset).collect();
    assert_eq!(prepared, [first_log as i64, second_log as i64]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pull_all(&client, &addr, "RestartTxTopic").await.len(), 2, "delivered twice");
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_back_commit_delivers_once() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, addr) = start(dir.path(), "").await;
    let (client, mut checks) = client_with_checks();
    register_producer(&client, &addr).await;

    let sent = send(&client, &addr, "CheckTopic", TX_PROPS, 0x4).await;
    let (commit_log_offset, queue_offset) = half_offsets(&sent);
    let r = invoke(&client, &addr, end_request(commit_log_offset, queue_offset, 0, false)).await;
    assert_eq!(r.code, response::SUCCESS);

    let check = next_check(&mut checks, Duration::from_secs(5)).await;
    assert_eq!(check.required::<u64>("commitLogOffset").unwrap(), commit_log_offset);
    assert_eq!(check.required::<u64>("tranStateTableOffset").unwrap(), queue_offset);
    assert_eq!(check.field("msgId"), Some("7F0000010001000000000000000000AA"));
    assert_eq!(check.field("transactionId"), Some("7F0000010001000000000000000000AA"));
    let offset_msg_id = check.field("offsetMsgId").unwrap();
    assert_eq!(decode_offset_msg_id(offset_msg_id).unwrap().1, commit_log_offset);
    let Scanned::Record(rec) = scan_record(&check.body, true) else { panic!("bad CHECK body") };
    assert_eq!((rec.topic, rec.queue_id), ("CheckTopic", 0));
    assert_eq!((rec.physical_offset, rec.queue_offset), (commit_log_offset, queue_offset));
    assert_eq!(rec.property("PGROUP"), Some(PRODUCER_GROUP));
    assert_eq!(rec.property("TRANSACTION_CHECK_TIMES"), Some("1"));
    assert_eq!(rec.body, b"hello");
    assert!(pull_all(&client, &addr, "CheckTopic").await.is_empty());

    // A producer that answers commit to every check, this one and any later one.
    let answer = |check: &RemotingCommand| {
        RemotingCommand::request(request::END_TRANSACTION)
            .with_field("producerGroup", PRODUCER_GROUP)
            .with_field("tranStateTableOffset", check.field("tranStateTableOffset").unwrap())
            .with_field("commitLogOffset", check.field("commitLogOffset").unwrap())
            .with_field("commitOrRollback", 8)
            .with_field("fromTransactionCheck", true)
            .with_field("msgId", check.field("msgId").unwrap())
            .with_field("transactionId", check.field("transactionId").unwrap())
    };
    let r = invoke(&client, &addr, answer(&check)).await;
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let got = wait_for(&client, &addr, "CheckTopic", 1, Duration::from_secs(3)).await;
    assert_eq!(got[0].prepared_transaction_offset, commit_log_offset as i64);

    let until = Instant::now() + Duration::from_millis(2000);
    while let Ok(Some(late)) = tokio::time::timeout_at(until.into(), checks.recv()).await {
        let r = invoke(&client, &addr, answer(&late)).await;
        assert_eq!(r.code, response::SUCCESS);
    }
    assert_eq!(pull_all(&client, &addr, "CheckTopic").await.len(), 1, "delivered more than once");
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_checks_end_in_the_check_max_topic() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, addr) = start(dir.path(), "transactionCheckMax=2").await;
    let (client, mut checks) = client_with_checks();
    register_producer(&client, &addr).await;

    let sent = send(&client, &addr, "MaxTopic", TX_PROPS, 0x4).await;
    let (commit_log_offset, queue_offset) = half_offsets(&sent);
    for n in 1..=2 {
        let check = next_check(&mut checks, Duration::from_secs(5)).await;
        let Scanned::Record(rec) = scan_record(&check.body, true) else { panic!("bad CHECK body") };
        assert_eq!(rec.property("TRANSACTION_CHECK_TIMES"), Some(n.to_string().as_str()));
    }
    let moved = wait_for(&client, &addr, "TRANS_CHECK_MAX_TIME_TOPIC", 1, Duration::from_secs(5)).await;
    assert_eq!(moved[0].property("REAL_TOPIC"), Some("MaxTopic"));
    assert_eq!(moved[0].property("TRANSACTION_CHECK_TIMES"), Some("2"));
    assert!(tokio::time::timeout(Duration::from_millis(1200), checks.recv()).await.is_err(), "checked again");

    // A commit after the discard changes nothing.
    let r = invoke(&client, &addr, end_request(commit_log_offset, queue_offset, 8, true)).await;
    assert_eq!(r.code, response::SUCCESS);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(pull_all(&client, &addr, "MaxTopic").await.is_empty());
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slave_refuses_end_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, addr) = start(dir.path(), "brokerRole=SLAVE\nbrokerId=1").await;
    let client = Client::default();
    let r = invoke(&client, &addr, end_request(0, 0, 8, false)).await;
    assert_eq!(r.code, response::SLAVE_NOT_AVAILABLE);
    broker.shutdown().await.unwrap();
}
