//! Crash test: a child process appends with SYNC_FLUSH from several threads and is killed with
//! SIGKILL at a random moment, again and again. After each kill the store is reopened and every
//! message whose append had returned must read back intact; nothing torn may be served; the
//! ConsumeQueues and the index must agree with the CommitLog.
//!
//! The test re-runs its own executable as the child (`CRASH_CHILD_STORE` set). Rounds:
//! `CRASH_ROUNDS` (default 24).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use broker::store::format::{self, Scanned};
use broker::store::{FlushDiskType, GetStatus, MessageInput, MessageStore, StoreConfig};
use rand::{Rng, SeedableRng};

const TOPIC: &str = "CrashTopic";
const WRITERS: u32 = 4;

fn config(root: &Path) -> StoreConfig {
    let mut c = StoreConfig::new(root);
    c.flush_disk_type = FlushDiskType::Sync;
    c.commit_log_file_bytes = 256 * 1024;
    c.consume_queue_file_bytes = 20 * 500;
    c.index_hash_slots = 1009;
    c.index_entries_max = 2000;
    c.flush_interval_consume_queue_ms = 50;
    c
}

/// Body of the message at `queue_offset` of writer `t`'s queue: deterministic, various sizes.
fn expected_body(t: u32, queue_offset: u64) -> Vec<u8> {
    let seed = (u64::from(t) << 40 | queue_offset).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let len = 16 + (seed >> 33) as usize % 3000;
    let mut body = format!("w{t}-q{queue_offset}-").into_bytes();
    body.extend((0..len).map(|i| (seed >> (i % 56)) as u8 ^ i as u8));
    body
}

fn key(t: u32, queue_offset: u64) -> String {
    format!("w{t}-q{queue_offset}")
}

fn message(t: u32, queue_offset: u64) -> MessageInput {
    let k = key(t, queue_offset);
    MessageInput {
        topic: TOPIC.into(),
        queue_id: t,
        flag: 0,
        body: expected_body(t, queue_offset),
        properties: format::encode_properties([("KEYS", k.as_str()), ("TAGS", "crash")]),
        sys_flag: 0,
        born_timestamp: 0,
        born_host: "127.0.0.1:1".parse::<SocketAddr>().unwrap(),
        store_host: "127.0.0.1:10911".parse::<SocketAddr>().unwrap(),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
    }
}

/// The child: appends until killed, printing `ack <writer> <queue offset> <physical offset>`
/// after each append returns.
fn child(root: &str) {
    let store = Arc::new(MessageStore::open(config(Path::new(root))).expect("child opens the store"));
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let threads: Vec<_> = (0..WRITERS)
        .map(|t| {
            let store = Arc::clone(&store);
            let out = Arc::clone(&out);
            std::thread::spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(t) ^ std::process::id() as u64);
                let mut next = store.max_offset(TOPIC, t);
                loop {
                    let n = if rng.random_bool(0.2) { rng.random_range(2..5) } else { 1 };
                    let batch: Vec<_> = (0..n).map(|i| message(t, next + i)).collect();
                    let r = store.put_messages(&batch).expect("append");
                    let mut o = out.lock().unwrap();
                    for m in &r.appended.messages {
                        assert_eq!(m.queue_offset, next, "queue offsets follow the writer's count");
                        writeln!(o, "ack {t} {} {}", m.queue_offset, m.physical_offset).unwrap();
                        next += 1;
                    }
                    o.flush().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

struct Ack {
    writer: u32,
    queue_offset: u64,
    physical_offset: u64,
}

fn run_child_and_kill(exe: &Path, root: &Path, rng: &mut impl Rng) -> Vec<Ack> {
    let mut child = Command::new(exe)
        .env("CRASH_CHILD_STORE", root)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the child");
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut acks = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let f: Vec<&str> = line.split(' ').collect();
            if let ["ack", w, q, p] = f[..]
                && let (Ok(writer), Ok(queue_offset), Ok(physical_offset)) = (w.parse(), q.parse(), p.parse())
            {
                acks.push(Ack { writer, queue_offset, physical_offset });
            }
        }
        acks
    });
    // Let it start (recovery included), then kill at a random moment of appending.
    std::thread::sleep(Duration::from_millis(rng.random_range(80..400)));
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
    reader.join().unwrap()
}

fn verify(store: &MessageStore, acks: &[Ack], all_acked: &HashMap<(u32, u64), u64>) -> Result<usize, String> {
    if !store.wait_dispatched(Duration::from_secs(10)) {
        return Err("dispatch did not catch up".into());
    }
    // Every acknowledged message is there, intact, at its offsets.
    for (&(t, q), &phys) in all_acked {
        let r = store.get_messages(TOPIC, t, q, 1, 1 << 20, None);
        if r.status != GetStatus::Found || r.queue_offsets != [q] {
            return Err(format!("acked message w{t} q{q} not found: {:?}", r.status));
        }
        let Scanned::Record(rec) = format::scan_record(&r.messages[0], true) else {
            return Err(format!("acked message w{t} q{q} is not a valid record"));
        };
        if rec.body != expected_body(t, q).as_slice() || rec.physical_offset != phys || rec.queue_offset != q {
            return Err(format!("acked message w{t} q{q} differs from what was written"));
        }
        if store.message_at(phys).as_deref() != Some(&r.messages[0][..]) {
            return Err(format!("lookup by physical offset of w{t} q{q} disagrees with the ConsumeQueue"));
        }
    }
    // Everything the queues serve is whole and is what the writer wrote at that offset.
    let mut stored = 0;
    for t in 0..WRITERS {
        let mut offset = store.min_offset(TOPIC, t);
        let max = store.max_offset(TOPIC, t);
        while offset < max {
            let r = store.get_messages(TOPIC, t, offset, 64, 1 << 22, None);
            if r.status != GetStatus::Found {
                return Err(format!("queue {t} offset {offset} of {max}: {:?}", r.status));
            }
            for (m, &q) in r.messages.iter().zip(&r.queue_offsets) {
                match format::scan_record(m, true) {
                    Scanned::Record(rec)
                        if rec.body == expected_body(t, q).as_slice() && rec.queue_offset == q && rec.queue_id == t => {
                    }
                    other => {
                        return Err(format!(
                            "queue {t} offset {q} serves a bad record: {:?}",
                            std::mem::discriminant(&other)
                        ));
                    }
                }
                stored += 1;
            }
            offset = r.next_begin_offset;
        }
    }
    // The index finds a sample of this round's acknowledged keys.
    for a in acks.iter().rev().take(40) {
        let hits = store.query_by_key(TOPIC, &key(a.writer, a.queue_offset), 4, 0, i64::MAX);
        if hits.len() != 1 {
            return Err(format!("index lookup of {} found {} messages", key(a.writer, a.queue_offset), hits.len()));
        }
    }
    Ok(stored)
}

fn main() {
    if let Ok(root) = std::env::var("CRASH_CHILD_STORE") {
        child(&root);
        return;
    }
    // `cargo test -- <filter>` passes arguments; honour a filter that excludes us.
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    if !args.is_empty() && !args.iter().any(|a| "crash_recovery".contains(a.as_str())) {
        println!("crash_recovery: filtered out");
        return;
    }
    let rounds: usize = std::env::var("CRASH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(24);
    let exe = std::env::current_exe().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let mut rng = rand::rngs::StdRng::seed_from_u64(
        std::env::var("CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
        }),
    );
    let mut all_acked: HashMap<(u32, u64), u64> = HashMap::new();
    let (mut passed, mut failed) = (0, 0);
    let started = Instant::now();
    for round in 1..=rounds {
        let acks = run_child_and_kill(&exe, &root, &mut rng);
        for a in &acks {
            all_acked.insert((a.writer, a.queue_offset), a.physical_offset);
        }
        let opened = Instant::now();
        let store = match MessageStore::open(config(&root)) {
            Ok(s) => s,
            Err(e) => {
                println!("round {round}: reopen failed: {e}");
                failed += 1;
                break;
            }
        };
        let reopen_ms = opened.elapsed().as_millis();
        match verify(&store, &acks, &all_acked) {
            Ok(stored) => {
                passed += 1;
                println!(
                    "round {round}: {} acks this round, {} acked in all, {stored} stored, reopen {reopen_ms} ms: ok",
                    acks.len(),
                    all_acked.len()
                );
            }
            Err(e) => {
                failed += 1;
                println!("round {round}: FAILED: {e}");
            }
        }
        drop(store);
        // Half the rounds leave the abort file as a crash would, so the child starts with a
        // crash recovery too.
        if round % 2 == 0 {
            std::fs::write(root.join("abort"), b"").unwrap();
        }
    }
    println!("crash_recovery: {passed} passed, {failed} failed ({:.1} s)", started.elapsed().as_secs_f64());
    if failed > 0 || passed != rounds {
        std::process::exit(1);
    }
}
