//! Store throughput benchmark: appends 1 KiB messages with ASYNC_FLUSH and SYNC_FLUSH (1, 8 and
//! 64 concurrent appenders), reads them back through the ConsumeQueue, and prints messages per
//! second, MB/s and append latency p50/p99, beside this disk's own sequential write bandwidth
//! and fdatasync latency measured the same way.
//!
//! `cargo bench --bench store_throughput [-- --messages N --dir PATH]`

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker::store::{FlushDiskType, MessageInput, MessageStore, StoreConfig};

const BODY_BYTES: usize = 1024;

struct Args {
    messages: usize,
    dir: PathBuf,
    /// Run only the SYNC_FLUSH cases (for profiling group commit).
    sync_only: bool,
}

fn args() -> Args {
    let mut a = Args { messages: 1_000_000, dir: std::env::temp_dir(), sync_only: false };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--messages" => a.messages = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.messages),
            "--dir" => a.dir = it.next().map(PathBuf::from).unwrap_or(a.dir),
            "--sync-only" => a.sync_only = true,
            _ => {}
        }
    }
    a
}

fn message(queue_id: u32, i: usize) -> MessageInput {
    let mut body = vec![0u8; BODY_BYTES];
    body[..8].copy_from_slice(&(i as u64).to_be_bytes());
    MessageInput {
        topic: "BenchTopic".into(),
        queue_id,
        flag: 0,
        body,
        properties: broker::store::format::encode_properties([("TAGS", "bench"), ("KEYS", "k")]),
        sys_flag: 0,
        born_timestamp: 0,
        born_host: "127.0.0.1:1".parse::<SocketAddr>().unwrap(),
        store_host: "127.0.0.1:10911".parse::<SocketAddr>().unwrap(),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
    }
}

struct Run {
    label: String,
    messages: usize,
    bytes: u64,
    elapsed: Duration,
    latencies_ns: Vec<u64>,
}

impl Run {
    fn print(&mut self) {
        self.latencies_ns.sort_unstable();
        let pct = |p: f64| {
            if self.latencies_ns.is_empty() {
                return 0.0;
            }
            let i = ((self.latencies_ns.len() as f64 * p) as usize).min(self.latencies_ns.len() - 1);
            self.latencies_ns[i] as f64 / 1000.0
        };
        let secs = self.elapsed.as_secs_f64();
        println!(
            "{:<34} {:>10} msgs {:>12.0} msgs/s {:>9.1} MB/s   p50 {:>8.1} us   p99 {:>8.1} us",
            self.label,
            self.messages,
            self.messages as f64 / secs,
            self.bytes as f64 / secs / 1e6,
            pct(0.50),
            pct(0.99)
        );
    }
}

/// Group commit figures of a run: appends per sync and time per sync.
fn print_flush_stats(store: &MessageStore, run: &Run) {
    let rounds = store.commit_log_flush_rounds().max(1);
    println!(
        "{:<34} {:>10.1} appends per flush, {:.0} us per flush",
        "",
        run.messages as f64 / rounds as f64,
        store.commit_log_flush_time().as_micros() as f64 / rounds as f64
    );
}

fn store_config(root: &Path, flush: FlushDiskType) -> StoreConfig {
    let mut c = StoreConfig::new(root);
    c.flush_disk_type = flush;
    c.clean_resource_interval_ms = 3_600_000;
    if std::env::var("BENCH_NO_INDEX").is_ok() {
        c.message_index_enable = false;
    }
    c
}

/// One untimed append: the first segment is created (and with SYNC_FLUSH zero-filled) here;
/// then wait for the background preparation of the next one, to measure the steady state.
fn warm_up(store: &MessageStore) {
    store.put_message(message(999, 0)).expect("warm-up append");
    store.wait_for_segment_preallocation();
}

fn append(store: &Arc<MessageStore>, label: &str, appenders: usize, per_appender: usize) -> Run {
    warm_up(store);
    let start = Instant::now();
    let threads: Vec<_> = (0..appenders)
        .map(|t| {
            let store = Arc::clone(store);
            std::thread::spawn(move || {
                let mut lat = Vec::with_capacity(per_appender);
                let mut bytes = 0u64;
                for i in 0..per_appender {
                    let m = message(t as u32, i);
                    let t0 = Instant::now();
                    let r = store.put_message(m).expect("append");
                    lat.push(t0.elapsed().as_nanos() as u64);
                    bytes += u64::from(r.appended.messages[0].record_bytes);
                }
                (lat, bytes)
            })
        })
        .collect();
    let mut run = Run {
        label: label.into(),
        messages: appenders * per_appender,
        bytes: 0,
        elapsed: Duration::ZERO,
        latencies_ns: vec![],
    };
    for t in threads {
        let (lat, bytes) = t.join().unwrap();
        run.latencies_ns.extend(lat);
        run.bytes += bytes;
    }
    run.elapsed = start.elapsed();
    run
}

/// `in_flight` appends kept outstanding by one driver thread, each completed by the flusher's
/// callback: how an async broker (one task per request) uses the store. (Two drivers measured
/// slower on 2 cores: they compete with the flusher and the dispatcher.)
fn append_in_flight(store: &Arc<MessageStore>, label: &str, in_flight: usize, total: usize) -> Run {
    warm_up(store);
    let (tx, rx) = std::sync::mpsc::channel::<(u64, u64)>();
    let start = Instant::now();
    let issue = |i: usize| {
        let tx = tx.clone();
        let t0 = Instant::now();
        store.put_messages_then(&[message((i % in_flight) as u32, i)], move |r| {
            let r = r.expect("append");
            let _ = tx.send((t0.elapsed().as_nanos() as u64, u64::from(r.appended.messages[0].record_bytes)));
        });
    };
    let mut issued = 0;
    while issued < in_flight.min(total) {
        issue(issued);
        issued += 1;
    }
    let mut run = Run {
        label: label.into(),
        messages: total,
        bytes: 0,
        elapsed: Duration::ZERO,
        latencies_ns: Vec::with_capacity(total),
    };
    for _ in 0..total {
        let (lat, bytes) = rx.recv().expect("completion");
        run.latencies_ns.push(lat);
        run.bytes += bytes;
        if issued < total {
            issue(issued);
            issued += 1;
        }
    }
    run.elapsed = start.elapsed();
    run
}

fn read_back(store: &MessageStore, queues: u32) -> Run {
    assert!(store.wait_dispatched(Duration::from_secs(120)));
    let start = Instant::now();
    let (mut n, mut bytes) = (0usize, 0u64);
    let mut lat = vec![];
    for q in 0..queues {
        let mut offset = 0;
        loop {
            let t0 = Instant::now();
            let r = store.get_messages("BenchTopic", q, offset, 32, 256 * 1024, None);
            if r.messages.is_empty() {
                break;
            }
            lat.push(t0.elapsed().as_nanos() as u64);
            for m in &r.messages {
                bytes += m.len() as u64;
                std::hint::black_box(&m[..]);
            }
            n += r.messages.len();
            offset = r.next_begin_offset;
        }
    }
    Run {
        label: "read back via ConsumeQueue (32/call)".into(),
        messages: n,
        bytes,
        elapsed: start.elapsed(),
        latencies_ns: lat,
    }
}

/// This disk's own figures, measured like `dd bs=1M oflag=direct`-free buffered writes plus a
/// final fdatasync, and a loop of 4 KiB write + fdatasync.
fn disk_baseline(dir: &Path) {
    let path = dir.join("disk-baseline.tmp");
    let f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0x5Au8; 1 << 20];
    let total = 1024usize;
    let start = Instant::now();
    for i in 0..total {
        f.write_all_at(&chunk, (i * chunk.len()) as u64).unwrap();
    }
    f.sync_data().unwrap();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{:<34} {:>10} MiB {:>12.1} MB/s (buffered writes + fdatasync)",
        "disk sequential write",
        total,
        (total * chunk.len()) as f64 / secs / 1e6
    );
    let mut lat = vec![];
    let page = vec![1u8; 4096];
    for i in 0..500 {
        f.write_all_at(&page, (i * 4096) as u64).unwrap();
        let t0 = Instant::now();
        f.sync_data().unwrap();
        lat.push(t0.elapsed().as_nanos() as u64);
    }
    lat.sort_unstable();
    println!(
        "{:<34} {:>10} syncs   p50 {:>8.1} us   p99 {:>8.1} us",
        "disk fdatasync (4 KiB)",
        lat.len(),
        lat[lat.len() / 2] as f64 / 1000.0,
        lat[lat.len() * 99 / 100] as f64 / 1000.0
    );
    drop(f);
    let _ = std::fs::remove_file(path);
}

fn main() {
    let a = args();
    if std::env::args().any(|x| x == "--bench") && std::env::args().any(|x| x == "--list") {
        return;
    }
    let base = tempfile::Builder::new().prefix("store-bench").tempdir_in(&a.dir).expect("bench dir");
    println!("store_throughput: {} byte bodies, store under {}", BODY_BYTES, base.path().display());
    disk_baseline(base.path());

    if !a.sync_only {
        let store =
            Arc::new(MessageStore::open(store_config(&base.path().join("async1"), FlushDiskType::Async)).unwrap());
        append(&store, "ASYNC_FLUSH append, 1 appender", 1, a.messages).print();
        read_back(&store, 1).print();
        drop(store);
        let _ = std::fs::remove_dir_all(base.path().join("async1"));
        let store =
            Arc::new(MessageStore::open(store_config(&base.path().join("async4"), FlushDiskType::Async)).unwrap());
        append(&store, "ASYNC_FLUSH append, 4 appenders", 4, a.messages / 4).print();
        drop(store);
        let _ = std::fs::remove_dir_all(base.path().join("async4"));
    }
    let mut sync_rates = vec![];
    let thread_cases: &[(usize, usize)] =
        if std::env::var("BENCH_IN_FLIGHT_ONLY").is_ok() { &[] } else { &[(1, 2_000), (8, 2_000), (64, 1_000)] };
    for &(appenders, per) in thread_cases {
        let store = Arc::new(
            MessageStore::open(store_config(&base.path().join(format!("sync{appenders}")), FlushDiskType::Sync))
                .unwrap(),
        );
        let mut run = append(&store, &format!("SYNC_FLUSH append, {appenders} appenders"), appenders, per);
        sync_rates.push(run.messages as f64 / run.elapsed.as_secs_f64());
        run.print();
        print_flush_stats(&store, &run);
        drop(store);
        let _ = std::fs::remove_dir_all(base.path().join(format!("sync{appenders}")));
    }
    if sync_rates.len() == 3 {
        println!("SYNC_FLUSH group commit, appender threads: 64 = {:.1}x one", sync_rates[2] / sync_rates[0]);
    }
    let mut rates = vec![];
    for (in_flight, total) in [(1usize, 2_000usize), (8, 16_000), (64, 128_000)] {
        let name = format!("syncq{in_flight}");
        let store = Arc::new(MessageStore::open(store_config(&base.path().join(&name), FlushDiskType::Sync)).unwrap());
        let mut run = append_in_flight(&store, &format!("SYNC_FLUSH append, {in_flight} in flight"), in_flight, total);
        rates.push(run.messages as f64 / run.elapsed.as_secs_f64());
        run.print();
        print_flush_stats(&store, &run);
        drop(store);
        let _ = std::fs::remove_dir_all(base.path().join(&name));
    }
    println!("SYNC_FLUSH group commit, in-flight appends: 64 = {:.1}x one", rates[2] / rates[0]);
    std::io::stdout().flush().unwrap();
}
