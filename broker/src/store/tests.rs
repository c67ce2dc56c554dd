//! Behaviour tests of the store facade: appends and reads, recovery from damage, retention,
//! a full disk and a failing disk.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::format::{self, Scanned};
use super::*;

fn config(root: &Path) -> StoreConfig {
    let mut c = StoreConfig::new(root);
    c.commit_log_file_bytes = 64 * 1024;
    c.consume_queue_file_bytes = 20 * 50;
    c.index_hash_slots = 101;
    c.index_entries_max = 400;
    c.clean_resource_interval_ms = 3_600_000;
    c.flush_interval_commit_log_ms = 10;
    c.flush_interval_consume_queue_ms = 10;
    c
}

fn msg(topic: &str, queue_id: u32, body: &[u8], tags: &str, keys: &str) -> MessageInput {
    let mut props = vec![];
    if !tags.is_empty() {
        props.push((format::PROPERTY_TAGS, tags));
    }
    if !keys.is_empty() {
        props.push((format::PROPERTY_KEYS, keys));
    }
    MessageInput {
        topic: topic.into(),
        queue_id,
        flag: 0,
        body: body.to_vec(),
        properties: format::encode_properties(props),
        sys_flag: 0,
        born_timestamp: now_ms(),
        born_host: "127.0.0.1:40000".parse::<SocketAddr>().unwrap(),
        store_host: "127.0.0.1:10911".parse::<SocketAddr>().unwrap(),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
    }
}

fn body_of(record: &[u8]) -> Vec<u8> {
    match format::scan_record(record, true) {
        Scanned::Record(r) => r.body.to_vec(),
        other => panic!("not a record: {other:?}"),
    }
}

fn read_all(store: &MessageStore, topic: &str, queue_id: u32) -> Vec<Vec<u8>> {
    let mut out = vec![];
    let mut offset = store.min_offset(topic, queue_id);
    loop {
        let r = store.get_messages(topic, queue_id, offset, 32, 1 << 20, None);
        if r.status != GetStatus::Found {
            break;
        }
        out.extend(r.messages.iter().map(|m| body_of(m)));
        offset = r.next_begin_offset;
    }
    out
}

/// Compares message bodies without printing kilobytes of bytes on failure.
#[track_caller]
fn assert_bodies(got: &[Vec<u8>], want: &[Vec<u8>], what: &str) {
    let first_diff = got.iter().zip(want).position(|(g, w)| g != w);
    assert!(
        got.len() == want.len() && first_diff.is_none(),
        "{what}: got {} bodies, want {}, first difference at {first_diff:?}",
        got.len(),
        want.len()
    );
}

fn body(i: usize) -> Vec<u8> {
    format!("message-{i:06}-").repeat(20).into_bytes()
}

#[test]
fn append_read_roll_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    for i in 0..500 {
        let r = store.put_message(msg("T", (i % 2) as u32, &body(i), "TagA", &format!("k{i}"))).unwrap();
        assert_eq!(r.status, PutStatus::Ok);
        assert_eq!(r.appended.messages[0].queue_offset, (i / 2) as u64);
    }
    assert!(store.wait_dispatched(Duration::from_secs(5)));
    assert!(store.commit_log_files().len() > 3, "rolled over several files");
    assert_eq!(store.max_offset("T", 0), 250);
    let q0 = read_all(&store, "T", 0);
    assert_bodies(&q0, &(0..500).step_by(2).map(body).collect::<Vec<_>>(), "queue 0");
    drop(store);

    let store = MessageStore::open(config(dir.path())).unwrap();
    assert!(!dir.path().join("abort").exists() || store.dispatched_offset() > 0);
    assert_bodies(&read_all(&store, "T", 1), &(1..500).step_by(2).map(body).collect::<Vec<_>>(), "queue 1");
    let r = store.put_message(msg("T", 0, b"after", "", "")).unwrap();
    assert_eq!(r.appended.messages[0].queue_offset, 250, "queue offsets continue after reopen");
}

#[test]
fn reads_return_rocketmq_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    for i in 0..10 {
        store.put_message(msg("S", 0, &body(i), if i % 2 == 0 { "TagA" } else { "TagB" }, "")).unwrap();
    }
    assert!(store.wait_dispatched(Duration::from_secs(5)));
    // (topic, queue, offset, expected status, expected next offset)
    let cases = [
        ("S", 0, 0, GetStatus::Found, 4),
        ("S", 0, 10, GetStatus::OffsetOverflowOne, 10),
        ("S", 0, 11, GetStatus::OffsetOverflowBadly, 0),
        ("S", 1, 0, GetStatus::NoMatchedLogicQueue, 0),
        ("Nope", 0, 0, GetStatus::NoMatchedLogicQueue, 0),
    ];
    for (topic, q, offset, status, next) in cases {
        let r = store.get_messages(topic, q, offset, 4, 1 << 20, None);
        assert_eq!((r.status, r.next_begin_offset), (status, next), "{topic}/{q}@{offset}");
    }
    let tag_b = format::tags_code(Some("TagB"));
    let only_b = move |code: i64| code == tag_b;
    let r = store.get_messages("S", 0, 0, 100, 1 << 20, Some(&only_b));
    assert_eq!(r.queue_offsets, vec![1, 3, 5, 7, 9]);
    let r = store.get_messages("S", 0, 0, 100, 1, None);
    assert_eq!(r.messages.len(), 1, "the byte limit stops after the first message");
}

#[test]
fn batch_lookup_by_key_offset_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    let batch: Vec<_> = (0..5).map(|i| msg("B", 2, &body(i), "", &format!("order-{i} shared"))).collect();
    let r = store.put_messages(&batch).unwrap();
    assert_eq!(r.appended.messages.iter().map(|m| m.queue_offset).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
    let t_mid = now_ms() + 5;
    std::thread::sleep(Duration::from_millis(20));
    store.put_message(msg("B", 2, b"late", "", "order-late")).unwrap();
    assert!(store.wait_dispatched(Duration::from_secs(5)));

    let hits = store.query_by_key("B", "order-3", 10, 0, i64::MAX);
    assert_eq!(hits.iter().map(|h| body_of(h)).collect::<Vec<_>>(), vec![body(3)]);
    assert_eq!(store.query_by_key("B", "shared", 10, 0, i64::MAX).len(), 5);
    assert_eq!(store.query_by_key("B", "shared", 2, 0, i64::MAX).len(), 2);
    assert!(store.query_by_key("Other", "shared", 10, 0, i64::MAX).is_empty());

    let phys = r.appended.messages[1].physical_offset;
    assert_eq!(body_of(&store.message_at(phys).unwrap()), body(1));
    assert_eq!(store.offset_by_time("B", 2, 0), 0);
    assert_eq!(store.offset_by_time("B", 2, t_mid), 5);
    assert_eq!(store.offset_by_time("B", 2, i64::MAX), 6);
}

#[test]
fn limits_are_enforced_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.message_bytes_max = 1000;
    let store = MessageStore::open(c).unwrap();
    let e = store.put_message(msg("L", 0, &[1; 1001], "", "")).unwrap_err();
    assert!(matches!(e, Error::MessageTooLarge { bytes: 1001, bytes_max: 1000 }), "{e}");
    assert_eq!(e.to_string(), "message body of 1001 bytes exceeds maxMessageSize 1000");
    let e = store.put_message(msg(&"t".repeat(128), 0, b"x", "", "")).unwrap_err();
    assert!(matches!(e, Error::InvalidMessage(_)), "{e}");
    let e = store.put_messages(&[msg("L", 0, b"x", "", ""), msg("L", 1, b"x", "", "")]).unwrap_err();
    assert!(matches!(e, Error::InvalidMessage(_)), "{e}");
    assert!(store.put_messages(&[]).is_err());
    store.put_message(msg("L", 0, &[1; 1000], "", "")).unwrap();
}

#[test]
fn prepared_messages_are_not_dispatched_and_schedule_units_carry_delivery_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    let mut half = msg("Tx", 0, b"half", "", "");
    half.sys_flag = format::TRANSACTION_PREPARED_TYPE;
    let r = store.put_message(half).unwrap();
    assert_eq!(r.appended.messages[0].queue_offset, 0);
    store.put_message(msg("Tx", 0, b"normal", "", "")).unwrap();
    let mut delayed = msg(format::SCHEDULE_TOPIC, 1, b"later", "", "");
    delayed.properties = format::encode_properties([(format::PROPERTY_DELAY, "2")]);
    let r = store.put_message(delayed).unwrap();
    assert!(store.wait_dispatched(Duration::from_secs(5)));
    assert_eq!(read_all(&store, "Tx", 0), vec![b"normal".to_vec()]);
    let unit = store.inner.queue(format::SCHEDULE_TOPIC, 1).unwrap().unit(0).unwrap();
    assert_eq!(unit.tags_code, r.appended.store_timestamp + 5_000);
}

/// Corrupts one byte of a stored body in the tail of the CommitLog: recovery detects it by CRC
/// and truncates there; everything before is intact and new writes continue from there.
#[test]
fn corrupt_byte_in_commit_log_tail_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let mut positions = vec![];
    {
        let store = MessageStore::open(config(dir.path())).unwrap();
        for i in 0..100 {
            positions.push(store.put_message(msg("C", 0, &body(i), "", "")).unwrap().appended.messages[0]);
        }
    }
    let victim = positions[90];
    let file_bytes = config(dir.path()).commit_log_file_bytes as u64;
    let file_start = victim.physical_offset / file_bytes * file_bytes;
    let path = dir.path().join("commitlog").join(format::offset_file_name(file_start));
    let mut bytes = std::fs::read(&path).unwrap();
    let body_at = (victim.physical_offset - file_start) as usize + 84 + 4 + 10;
    bytes[body_at] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();
    std::fs::write(dir.path().join("abort"), b"").unwrap();

    let store = MessageStore::open(config(dir.path())).unwrap();
    assert_eq!(store.commit_log_max_offset(), victim.physical_offset);
    assert_eq!(store.max_offset("C", 0), 90);
    assert_bodies(&read_all(&store, "C", 0), &(0..90).map(body).collect::<Vec<_>>(), "C");
    let after = std::fs::read(&path).unwrap();
    assert!(after[(victim.physical_offset - file_start) as usize..].iter().all(|&b| b == 0), "the tail is zeroed");
    let r = store.put_message(msg("C", 0, b"next", "", "")).unwrap();
    assert_eq!(r.appended.messages[0].queue_offset, 90);
    assert_eq!(r.appended.messages[0].physical_offset, victim.physical_offset);
}

/// A half-written record at the end (as a crash mid-append leaves it) is cut off.
#[test]
fn torn_tail_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let end;
    {
        let store = MessageStore::open(config(dir.path())).unwrap();
        for i in 0..20 {
            store.put_message(msg("Torn", 0, &body(i), "", "")).unwrap();
        }
        end = store.commit_log_max_offset();
    }
    // Write the first 60 bytes of a real record after the end, with its length set.
    let mut rec = vec![];
    format::encode_record(
        &msg("Torn", 0, &body(99), "", ""),
        format::Placement { queue_offset: 20, physical_offset: end, store_timestamp: now_ms() },
        &mut rec,
    );
    let path = dir.path().join("commitlog").join(format::offset_file_name(0));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[end as usize..end as usize + 60].copy_from_slice(&rec[..60]);
    std::fs::write(&path, &bytes).unwrap();
    std::fs::write(dir.path().join("abort"), b"").unwrap();

    let store = MessageStore::open(config(dir.path())).unwrap();
    assert_eq!(store.commit_log_max_offset(), end);
    assert_eq!(read_all(&store, "Torn", 0).len(), 20);
}

/// ConsumeQueue files deleted behind the store's back are rebuilt from the CommitLog.
#[test]
fn deleted_consume_queue_files_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let config = |root: &Path| StoreConfig { consume_queue_file_bytes: 20 * 30, ..config(root) };
    {
        let store = MessageStore::open(config(dir.path())).unwrap();
        for i in 0..300 {
            store.put_message(msg("R", (i % 3) as u32, &body(i), "TagA", "")).unwrap();
        }
    }
    let cq = |q: u32| dir.path().join("consumequeue").join("R").join(q.to_string());
    // Queue 0: a file in the middle (its 100 units span four files of 30). Queue 1: every file.
    // Queue 2 untouched.
    std::fs::remove_file(cq(0).join(format::offset_file_name(600))).unwrap();
    for e in std::fs::read_dir(cq(1)).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let store = MessageStore::open(config(dir.path())).unwrap();
    for q in 0..3u32 {
        let want: Vec<_> = (q as usize..300).step_by(3).map(body).collect();
        assert_bodies(&read_all(&store, "R", q), &want, &format!("queue {q}"));
        assert_eq!(store.max_offset("R", q), 100);
    }
    let unit = store.inner.queue("R", 1).unwrap().unit(5).unwrap();
    assert_eq!(unit.tags_code, format::tags_code(Some("TagA")));
}

/// Retention deletes old CommitLog segments while a reader still holds older offsets: the
/// reader gets OFFSET_TOO_SMALL with the new minimum, never a crash, and bytes it already holds
/// stay readable.
#[test]
fn retention_deletes_expired_segments_and_readers_get_offset_moved() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.file_reserved_time_hours = 1;
    let store = MessageStore::open(c).unwrap();
    for i in 0..1000 {
        store.put_message(msg("Ret", 0, &body(i), "", &format!("key{i}"))).unwrap();
    }
    assert!(store.wait_dispatched(Duration::from_secs(5)));
    let held = store.get_messages("Ret", 0, 0, 4, 1 << 20, None);
    assert_eq!(held.status, GetStatus::Found);
    let files = store.commit_log_files();
    assert!(files.len() >= 5);
    let two_hours_ago = SystemTime::now() - Duration::from_secs(2 * 3600);
    for f in &files[..files.len() - 2] {
        std::fs::File::options().write(true).open(f).unwrap().set_modified(two_hours_ago).unwrap();
    }
    let report = store.delete_expired_now(SystemTime::now()).unwrap();
    assert_eq!(report.commit_log_files_deleted, files.len() - 2);
    assert!(report.consume_queue_files_deleted > 0);
    assert_eq!(store.commit_log_files().len(), 2);

    let min = store.min_offset("Ret", 0);
    assert!(min > 0);
    let r = store.get_messages("Ret", 0, 0, 4, 1 << 20, None);
    assert_eq!((r.status, r.next_begin_offset), (GetStatus::OffsetTooSmall, min));
    let r = store.get_messages("Ret", 0, min, 4, 1 << 20, None);
    assert_eq!(r.status, GetStatus::Found);
    assert_eq!(body_of(&r.messages[0]), body(min as usize));
    // The reader's earlier bytes still read (the mapping lives while held).
    assert_eq!(body_of(&held.messages[0]), body(0));
    assert!(store.query_by_key("Ret", "key1", 5, 0, i64::MAX).is_empty(), "deleted messages are not found");
    assert_eq!(store.query_by_key("Ret", "key999", 5, 0, i64::MAX).len(), 1);
    drop(store);
    let store = MessageStore::open(config(dir.path())).unwrap();
    assert_eq!(store.min_offset("Ret", 0), min, "the minimum survives a restart");
    assert_eq!(read_all(&store, "Ret", 0).len(), 1000 - min as usize);
}

#[test]
fn retention_runs_at_delete_when_hour_only_for_expired_files() {
    use chrono::Timelike;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.file_reserved_time_hours = 1;
    c.delete_when_hours = vec![chrono::Local::now().hour()];
    // An ordinary disk is far below 75% in this test's eyes.
    c.disk_max_used_space_ratio_percent = 95;
    c.disk_space_clean_forcibly_ratio = 0.99;
    c.disk_space_warning_level_ratio = 0.999;
    let store = MessageStore::open(c).unwrap();
    for i in 0..300 {
        store.put_message(msg("W", 0, &body(i), "", "")).unwrap();
    }
    assert!(store.wait_dispatched(Duration::from_secs(5)));
    let files = store.commit_log_files();
    let report = store.run_retention(SystemTime::now()).unwrap();
    assert_eq!(report.commit_log_files_deleted, 0, "nothing expired yet");
    let old = SystemTime::now() - Duration::from_secs(7200);
    std::fs::File::options().write(true).open(&files[0]).unwrap().set_modified(old).unwrap();
    let report = store.run_retention(SystemTime::now()).unwrap();
    assert_eq!(report.commit_log_files_deleted, 1);
    assert_eq!(store.commit_log_files(), files[1..].to_vec());
}

/// An fsync failure poisons the store: the append that hit it and every later one is refused;
/// what was acknowledged before is still there after a restart.
#[test]
fn fsync_failure_poisons_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.flush_disk_type = FlushDiskType::Sync;
    let faults = Arc::new(Faults::new());
    let store = MessageStore::open_with_faults(c.clone(), Arc::clone(&faults)).unwrap();
    for i in 0..10 {
        store.put_message(msg("F", 0, &body(i), "", "")).unwrap();
    }
    faults.fail_syncs();
    let e = store.put_message(msg("F", 0, b"doomed", "", "")).unwrap_err();
    assert!(matches!(e, Error::Poisoned), "{e}");
    for _ in 0..3 {
        assert!(matches!(store.put_message(msg("F", 0, b"later", "", "")), Err(Error::Poisoned)));
    }
    assert!(store.is_poisoned());
    assert!(matches!(store.shutdown(), Err(Error::Poisoned)));
    drop(store);
    assert!(dir.path().join("abort").exists(), "a poisoned store does not claim a clean shutdown");
    let store = MessageStore::open(c).unwrap();
    let got = read_all(&store, "F", 0);
    assert_bodies(&got[..10], &(0..10).map(body).collect::<Vec<_>>(), "acknowledged before the failure");
}

/// `WAIT=false` under SYNC_FLUSH: the put is answered PUT_OK without waiting, the flush it
/// asked for still happens (no later put needed), and the message is readable and survives a
/// restart.
#[test]
fn an_unwaited_put_asks_for_the_flush_it_does_not_wait_for() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.flush_disk_type = FlushDiskType::Sync;
    let store = MessageStore::open(c.clone()).unwrap();
    let rounds_before = store.commit_log_flush_rounds();
    let r = store.put_messages_unwaited(&[msg("U", 0, &body(0), "", ""), msg("U", 0, &body(1), "", "")]).unwrap();
    assert_eq!(r.status, PutStatus::Ok);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while store.commit_log_flush_rounds() == rounds_before && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(store.commit_log_flush_rounds() > rounds_before, "the requested flush ran");
    store.shutdown().unwrap();
    drop(store);
    let store = MessageStore::open(c).unwrap();
    assert_bodies(&read_all(&store, "U", 0), &[body(0), body(1)], "after a restart");
}

#[test]
fn async_flush_failure_also_poisons() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::new());
    let store = MessageStore::open_with_faults(config(dir.path()), Arc::clone(&faults)).unwrap();
    store.put_message(msg("A", 0, &body(0), "", "")).unwrap();
    faults.fail_syncs();
    store.put_message(msg("A", 0, &body(1), "", "")).ok();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !store.is_poisoned() && std::time::Instant::now() < deadline {
        let _ = store.put_message(msg("A", 0, &[9; 5000], "", ""));
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(store.is_poisoned());
    assert!(matches!(store.put_message(msg("A", 0, b"x", "", "")), Err(Error::Poisoned)));
}

#[test]
fn sync_flush_group_commit_acknowledges_every_concurrent_append() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.flush_disk_type = FlushDiskType::Sync;
    c.commit_log_file_bytes = 1 << 20;
    let store = Arc::new(MessageStore::open(c).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..100 {
                    let r = store.put_message(msg("G", t, &body(i), "", "")).unwrap();
                    assert_eq!(r.status, PutStatus::Ok);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(store.wait_dispatched(Duration::from_secs(5)));
    for t in 0..8 {
        assert_bodies(&read_all(&store, "G", t), &(0..100).map(body).collect::<Vec<_>>(), "group commit");
    }
}

#[test]
fn a_second_open_of_the_same_root_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _store = MessageStore::open(config(dir.path())).unwrap();
    let e = MessageStore::open(config(dir.path())).err().expect("second open must fail");
    assert!(matches!(e, Error::Locked(_)), "{e}");
}

struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Mounts a tmpfs of `size` (needs root; CI runs as root) on a fresh directory.
fn small_tmpfs(size: &str) -> (tempfile::TempDir, std::path::PathBuf, Unmount) {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(&mnt)
        .status()
        .expect("run mount");
    assert!(status.success(), "this test mounts a {size} tmpfs and needs root");
    let guard = Unmount(mnt.clone());
    (dir, mnt, guard)
}

/// Above diskMaxUsedSpaceRatio expired files go at any hour; above the clean-forcibly ratio
/// unexpired ones go too, oldest first, until usage is back under it; the newest file stays.
#[test]
fn disk_ratios_trigger_early_and_forced_deletion() {
    use chrono::Timelike;
    let (_dir, mnt, _guard) = small_tmpfs("8m");
    std::fs::write(mnt.join("ballast"), vec![1u8; 3 * 1024 * 1024]).unwrap();
    let mut c = config(&mnt.join("store"));
    c.commit_log_file_bytes = 256 * 1024;
    c.message_index_enable = false;
    c.file_reserved_time_hours = 1;
    c.delete_when_hours = vec![(chrono::Local::now().hour() + 12) % 24];
    c.disk_max_used_space_ratio_percent = 30;
    c.disk_space_clean_forcibly_ratio = 0.99;
    c.disk_space_warning_level_ratio = 0.999;
    let store = MessageStore::open(c.clone()).unwrap();
    for i in 0..2500 {
        store.put_message(msg("Disk", 0, &body(i), "", "")).unwrap();
    }
    assert!(store.wait_dispatched(Duration::from_secs(5)));
    let files = store.commit_log_files();
    assert!(files.len() >= 4, "{} files", files.len());
    let used = disk::used_ratio(&mnt).unwrap();
    assert!(used > 0.30 && used < 0.99, "usage {used}");

    // Not the deletion hour, nothing expired: nothing goes even above the ratio.
    assert_eq!(store.run_retention(SystemTime::now()).unwrap().commit_log_files_deleted, 0);
    // One expired file: above diskMaxUsedSpaceRatio it goes now, outside deleteWhen.
    let old = SystemTime::now() - Duration::from_secs(7200);
    std::fs::File::options().write(true).open(&files[0]).unwrap().set_modified(old).unwrap();
    assert_eq!(store.run_retention(SystemTime::now()).unwrap().commit_log_files_deleted, 1);
    drop(store);

    // Forced: above the clean-forcibly ratio unexpired files go, oldest first, while usage stays
    // above it; the newest file is never deleted.
    let before = disk::used_ratio(&mnt).unwrap();
    c.disk_space_clean_forcibly_ratio = before - 0.05;
    let store = MessageStore::open(c).unwrap();
    let report = store.run_retention(SystemTime::now()).unwrap();
    assert!(report.commit_log_files_deleted >= 1, "{report:?}");
    let after = disk::used_ratio(&mnt).unwrap();
    assert!(after <= before - 0.05 || store.commit_log_files().len() == 1, "usage {before} -> {after}");
    let min = store.min_offset("Disk", 0);
    assert!(min > 0);
    assert_eq!(read_all(&store, "Disk", 0).len(), 2500 - min as usize, "what is left reads back");
}

/// Fills a small tmpfs: writes are refused with DiskFull, what was acknowledged stays readable,
/// and writes resume by themselves once space is freed. Needs root for the mount (CI runs as
/// root).
#[test]
fn full_disk_refuses_writes_then_resumes() {
    let (_dir, mnt, _guard) = small_tmpfs("4m");
    let ballast = mnt.join("ballast");
    std::fs::write(&ballast, vec![1u8; 1536 * 1024]).unwrap();

    let root = mnt.join("store");
    let mut c = config(&root);
    c.commit_log_file_bytes = 256 * 1024;
    // Units for ~2,000 messages in one or two files: the reserve kept for derived files (5 % of
    // this 4 MiB file system) is sized for files of realistic proportions, not for dozens of
    // 1000-byte files that each take a 4 KiB page.
    c.consume_queue_file_bytes = 20 * 2000;
    c.clean_resource_interval_ms = 20;
    c.clean_file_forcibly_enable = false;
    c.message_index_enable = false;
    let store = MessageStore::open(c.clone()).unwrap();
    let mut acked = 0usize;
    let err = loop {
        match store.put_message(msg("D", 0, &body(acked), "", "")) {
            Ok(_) => acked += 1,
            Err(e) => break e,
        }
        assert!(acked < 100_000, "the disk never filled");
    };
    assert!(matches!(err, Error::DiskFull(_)), "{err}");
    assert!(acked > 100);
    assert!(
        store.wait_dispatched(Duration::from_secs(5)),
        "dispatched {} of {}; files {:?}; df {:?}",
        store.dispatched_offset(),
        store.commit_log_max_offset(),
        store.commit_log_files(),
        disk::free_and_reserve_bytes(&mnt)
    );
    assert_bodies(&read_all(&store, "D", 0), &(0..acked).map(body).collect::<Vec<_>>(), "disk full");

    std::fs::remove_file(&ballast).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match store.put_message(msg("D", 0, &body(acked), "", "")) {
            Ok(_) => break,
            Err(Error::DiskFull(_)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("writes did not resume: {e}"),
        }
    }
    acked += 1;
    drop(store);
    let store = MessageStore::open(c).unwrap();
    assert_bodies(&read_all(&store, "D", 0), &(0..acked).map(body).collect::<Vec<_>>(), "disk full");
}

/// The completion path used by async callers: every append is acknowledged once its group
/// commit is on disk, many in flight at once share syncs, and a failed sync refuses them.
#[test]
fn completions_acknowledge_after_group_commit_and_refuse_after_a_failed_sync() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.flush_disk_type = FlushDiskType::Sync;
    c.commit_log_file_bytes = 1 << 20;
    let faults = Arc::new(Faults::new());
    let store = MessageStore::open_with_faults(c, Arc::clone(&faults)).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    for i in 0..200 {
        let tx = tx.clone();
        store.put_messages_then(&[msg("Q", 0, &body(i), "", "")], move |r| tx.send((i, r)).unwrap());
    }
    let mut got: Vec<_> = (0..200).map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap()).collect();
    got.sort_by_key(|(i, _)| *i);
    for (i, r) in &got {
        let r = r.as_ref().unwrap();
        assert_eq!(r.status, PutStatus::Ok);
        assert_eq!(r.appended.messages[0].queue_offset, *i as u64);
    }
    assert!(store.commit_log_flush_rounds() < 200, "in-flight appends share syncs");
    faults.fail_syncs();
    let tx2 = tx.clone();
    store.put_messages_then(&[msg("Q", 0, b"doomed", "", "")], move |r| tx2.send((999, r)).unwrap());
    let (_, r) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(matches!(r, Err(Error::Poisoned)), "{r:?}");
    store.put_messages_then(&[msg("Q", 0, b"later", "", "")], move |r| tx.send((1000, r)).unwrap());
    let (_, r) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(matches!(r, Err(Error::Poisoned)), "{r:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_reader_waits_for_the_dispatch_of_what_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    for round in 0..50usize {
        let r = store.put_message(msg("Own", 0, &body(round), "", "")).unwrap();
        let end = r.appended.end_offset;
        // Answered once the unit is there: the message can be read at once.
        assert!(store.dispatched(end, Duration::from_secs(5)).await, "round {round}");
        assert_eq!(store.max_offset("Own", 0), round as u64 + 1, "round {round}");
    }
    // An offset nothing was written up to is not reached: the wait ends at its deadline.
    let beyond = store.commit_log_max_offset() + 1;
    assert!(!store.dispatched(beyond, Duration::from_millis(50)).await);
}
