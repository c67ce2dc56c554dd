//! Replication between two real stores: chunks that cut records and cross file ends, wrong
//! offsets refused, and a master and slave talking the HA protocol over loopback TCP.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::store::format::{self, MessageInput};
use crate::store::{MessageStore, StoreConfig, now_ms};

fn config(root: &Path) -> StoreConfig {
    let mut c = StoreConfig::new(root);
    c.commit_log_file_bytes = 64 * 1024;
    c.consume_queue_file_bytes = 20 * 1000;
    c.index_hash_slots = 101;
    c.index_entries_max = 4000;
    c.clean_resource_interval_ms = 3_600_000;
    c.flush_interval_commit_log_ms = 10;
    c.flush_interval_consume_queue_ms = 10;
    c
}

fn msg(i: usize) -> MessageInput {
    let key = format!("k{i}");
    MessageInput {
        topic: "T".into(),
        queue_id: (i % 3) as u32,
        flag: 0,
        body: vec![b'a' + (i % 26) as u8; 300 + i % 700],
        properties: format::encode_properties([(format::PROPERTY_KEYS, key.as_str())]),
        sys_flag: 0,
        born_timestamp: now_ms(),
        born_host: "127.0.0.1:40000".parse::<SocketAddr>().unwrap(),
        store_host: "127.0.0.1:10911".parse::<SocketAddr>().unwrap(),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
    }
}

fn fill(master: &MessageStore, n: usize) {
    for i in 0..n {
        master.put_message(msg(i)).unwrap();
    }
}

/// Every file of `a`'s CommitLog equals `b`'s, byte for byte.
fn assert_same_log(a: &MessageStore, b: &MessageStore) {
    let names = |s: &MessageStore| -> Vec<String> {
        s.commit_log_files().iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect()
    };
    assert_eq!(names(a), names(b));
    for (pa, pb) in a.commit_log_files().iter().zip(b.commit_log_files()) {
        assert!(std::fs::read(pa).unwrap() == std::fs::read(&pb).unwrap(), "{} differs", pa.display());
    }
}

fn read_queue(s: &MessageStore, queue_id: u32) -> Vec<bytes::Bytes> {
    let mut out = Vec::new();
    let mut offset = s.min_offset("T", queue_id);
    loop {
        let r = s.get_messages("T", queue_id, offset, 64, 1 << 20, None);
        if r.messages.is_empty() {
            return out;
        }
        offset = r.next_begin_offset;
        out.extend(r.messages);
    }
}

#[test]
fn chunks_of_any_size_rebuild_an_identical_log_and_queues() {
    for chunk in [1usize, 7, 1000, 32 * 1024] {
        let (dm, ds) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let master = MessageStore::open(config(dm.path())).unwrap();
        let slave = MessageStore::open(config(ds.path())).unwrap();
        // Enough to roll several 64 KiB files, each closed by a filler.
        let n = if chunk == 1 { 150 } else { 400 };
        fill(&master, n);
        let end = master.commit_log_max_offset();
        let mut at = slave.replica_offset();
        assert_eq!(at, 0);
        while at < end {
            let bytes = master.transfer_bytes(at, chunk).expect("bytes at the slave's end");
            at = slave.append_replica(at, &bytes).unwrap();
        }
        assert_eq!(slave.replica_offset(), end);
        assert_eq!(slave.commit_log_max_offset(), end, "chunk {chunk}: every record published");
        // Both dispatchers: the master's queues are the reference, and under load they lag too.
        assert!(slave.wait_dispatched(Duration::from_secs(10)));
        assert!(master.wait_dispatched(Duration::from_secs(10)));
        for q in 0..3 {
            assert_eq!(read_queue(&slave, q), read_queue(&master, q), "chunk {chunk}: queue {q}");
        }
        assert_eq!(slave.query_by_key("T", "k42", 10, 0, i64::MAX).len(), 1, "chunk {chunk}: index");
        master.flush_all().unwrap();
        slave.flush_all().unwrap();
        assert_same_log(&master, &slave);
    }
}

#[test]
fn a_cut_record_stays_unpublished_until_its_rest_arrives() {
    let (dm, ds) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let master = MessageStore::open(config(dm.path())).unwrap();
    let slave = MessageStore::open(config(ds.path())).unwrap();
    fill(&master, 2);
    let first = master.message_at(0).unwrap().len() as u64;
    let all = master.transfer_bytes(0, 1 << 20).unwrap();
    let cut = first as usize + 10;
    slave.append_replica(0, &all[..cut]).unwrap();
    assert_eq!(slave.replica_offset(), cut as u64, "written, cut record included");
    assert_eq!(slave.commit_log_max_offset(), first, "only the whole record is readable");
    slave.append_replica(cut as u64, &all[cut..]).unwrap();
    assert_eq!(slave.commit_log_max_offset(), master.commit_log_max_offset());
}

#[test]
fn data_that_does_not_continue_the_log_is_refused_and_changes_nothing() {
    let (dm, ds) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let master = MessageStore::open(config(dm.path())).unwrap();
    let slave = MessageStore::open(config(ds.path())).unwrap();
    fill(&master, 3);
    let all = master.transfer_bytes(0, 1 << 20).unwrap();
    // An empty slave starts only at a file boundary.
    assert!(matches!(slave.append_replica(100, &all), Err(crate::store::Error::ReplicaOffset { .. })));
    slave.append_replica(0, &all[..50]).unwrap();
    // A gap, or going back, is refused.
    for at in [0u64, 49, 51, 1000] {
        let r = slave.append_replica(at, &all[50..]);
        assert!(matches!(r, Err(crate::store::Error::ReplicaOffset { expected: 50, .. })), "{at}: {r:?}");
    }
    assert_eq!(slave.replica_offset(), 50);
    // Bytes that are not records are not published.
    let (dg, _) = (tempfile::tempdir().unwrap(), ());
    let other = MessageStore::open(config(dg.path())).unwrap();
    let r = other.append_replica(0, &[0x55; 200]);
    assert!(matches!(r, Err(crate::store::Error::Corrupt { .. })), "{r:?}");
    assert_eq!(other.commit_log_max_offset(), 0);
}

fn limits() -> (MasterLimits, SlaveLimits) {
    (
        MasterLimits {
            transfer_batch_bytes: 4096,
            heartbeat_interval_ms: 200,
            housekeeping_interval_ms: 2_000,
            fallbehind_max_bytes: 256 << 20,
        },
        SlaveLimits { heartbeat_interval_ms: 200, housekeeping_interval_ms: 2_000, spin_us: 50 },
    )
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_and_slave_replicate_over_tcp_and_sync_waits_end_as_4_9_4() {
    let (dm, ds) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let master_store = Arc::new(MessageStore::open(config(dm.path())).unwrap());
    let (ml, sl) = limits();
    let master = Master::new(master_store.clone(), ml);
    let listener = Master::bind("127.0.0.1:0").await.unwrap();
    let ha_addr = listener.local_addr().unwrap().to_string();
    let serving = tokio::spawn(master.clone().serve(listener));

    // No slave yet: SLAVE_NOT_AVAILABLE at once.
    fill(&master_store, 50);
    let end = master_store.commit_log_max_offset();
    assert_eq!(master.wait_replicated(end, Duration::from_secs(5)).await, Replicated::SlaveNotAvailable);

    let slave_store = Arc::new(MessageStore::open(config(ds.path())).unwrap());
    let slave = Slave::new(slave_store.clone(), sl, Some(ha_addr.clone()));
    let running = slave.clone().spawn_on_own_thread().unwrap();
    let m = master.clone();
    tokio::task::spawn_blocking(move || {
        wait_until("the slave's first report", || m.slaves().iter().any(|s| s.acked_offset.is_some()))
    })
    .await
    .unwrap();
    assert_eq!(master.wait_replicated(end, Duration::from_secs(20)).await, Replicated::Yes);
    assert!(slave.status().connected);

    // New data is streamed and acknowledged.
    fill(&master_store, 300);
    master.notify_appended();
    let end = master_store.commit_log_max_offset();
    assert_eq!(master.wait_replicated(end, Duration::from_secs(20)).await, Replicated::Yes);
    assert_eq!(master.lag_bytes(), Some(0));
    let s = slave_store.clone();
    tokio::task::spawn_blocking(move || wait_until("slave dispatch", || s.dispatched_offset() == end)).await.unwrap();
    let ms = master_store.clone();
    tokio::task::spawn_blocking(move || wait_until("master dispatch", || ms.dispatched_offset() == end)).await.unwrap();
    for q in 0..3 {
        assert_eq!(read_queue(&slave_store, q), read_queue(&master_store, q));
    }

    // The slave goes away: waits end at once (no slave), and an offset never acknowledged times out
    // while a slave is connected but silent about it.
    running.abort();
    let _ = running.await;
    let m = master.clone();
    tokio::task::spawn_blocking(move || wait_until("the master to drop the slave", || m.slaves().is_empty()))
        .await
        .unwrap();
    fill(&master_store, 1);
    let end = master_store.commit_log_max_offset();
    assert_eq!(master.wait_replicated(end, Duration::from_secs(5)).await, Replicated::SlaveNotAvailable);

    // A stranger claiming more than the master has is refused; one that reports a sane offset
    // but never acknowledges more makes sends time out (FLUSH_SLAVE_TIMEOUT), never succeed.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut liar = tokio::net::TcpStream::connect(&ha_addr).await.unwrap();
    liar.write_all(&(end as i64 + 1).to_be_bytes()).await.unwrap();
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(5), liar.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "the liar is disconnected: {closed:?}");
    let mut lazy = tokio::net::TcpStream::connect(&ha_addr).await.unwrap();
    lazy.write_all(&0i64.to_be_bytes()).await.unwrap();
    let m = master.clone();
    // Counted once its report is read (a connection alone is not a slave).
    tokio::task::spawn_blocking(move || {
        wait_until("the lazy peer's report", || m.slaves().iter().any(|s| s.acked_offset.is_some()))
    })
    .await
    .unwrap();
    let started = Instant::now();
    assert_eq!(master.wait_replicated(end, Duration::from_millis(300)).await, Replicated::TimedOut);
    assert!(started.elapsed() >= Duration::from_millis(300));
    drop(lazy);

    // The slave returns, this time sleeping between bursts without polling, and catches up from
    // where it stopped.
    let slave = Slave::new(slave_store.clone(), SlaveLimits { spin_us: 0, ..sl }, Some(ha_addr.clone()));
    let running = slave.clone().spawn_on_own_thread().unwrap();
    let m = master.clone();
    tokio::task::spawn_blocking(move || {
        wait_until("the slave's return", || m.slaves().iter().any(|s| s.acked_offset.is_some()))
    })
    .await
    .unwrap();
    fill(&master_store, 200);
    master.notify_appended();
    let end = master_store.commit_log_max_offset();
    assert_eq!(master.wait_replicated(end, Duration::from_secs(20)).await, Replicated::Yes);
    running.abort();
    serving.abort();
    master_store.flush_all().unwrap();
    slave_store.flush_all().unwrap();
    assert_same_log(&master_store, &slave_store);
}
