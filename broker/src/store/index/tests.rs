//! Tests of the IndexFile: byte layout, lookups, rollover, reopen, recovery, retention, corruption.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::*;
use crate::store::format::{TRANSACTION_COMMIT_TYPE, TRANSACTION_PREPARED_TYPE, encode_properties};

const T0: i64 = 1_700_000_000_123;
const ALL: (i64, i64) = (0, i64::MAX);

/// Java's `String.hashCode()` written out: `h = 31 * h + c` over UTF-16 units, 32-bit wrap.
fn java_hash_code(s: &str) -> i32 {
    let mut h: i32 = 0;
    for unit in s.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    h
}

/// `IndexFile.indexKeyHashMethod`: `Math.abs(hashCode)`, and 0 when that stays negative.
fn java_index_hash(s: &str) -> i32 {
    let h = java_hash_code(s).wrapping_abs();
    if h < 0 { 0 } else { h }
}

/// Owned parts of a test record.
struct Msg {
    topic: String,
    properties: String,
    offset: u64,
    store_timestamp: i64,
    sys_flag: i32,
}

impl Msg {
    fn new(topic: &str, keys: Option<&str>, uniq: Option<&str>, offset: u64, store_timestamp: i64) -> Msg {
        let mut pairs = Vec::new();
        if let Some(k) = keys {
            pairs.push((PROPERTY_KEYS, k));
        }
        if let Some(u) = uniq {
            pairs.push((PROPERTY_UNIQ_KEY, u));
        }
        pairs.push(("TAGS", "tag"));
        Msg { topic: topic.into(), properties: encode_properties(pairs), offset, store_timestamp, sys_flag: 0 }
    }

    fn sys_flag(mut self, sys_flag: i32) -> Msg {
        self.sys_flag = sys_flag;
        self
    }

    fn record(&self) -> StoredRecord<'_> {
        let host: SocketAddr = "127.0.0.1:10911".parse().unwrap();
        StoredRecord {
            total_size: 200,
            body_crc: 0,
            queue_id: 0,
            flag: 0,
            queue_offset: 0,
            physical_offset: self.offset,
            sys_flag: self.sys_flag,
            born_timestamp: self.store_timestamp - 1,
            born_host: host,
            store_timestamp: self.store_timestamp,
            store_host: host,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body: b"body",
            topic: &self.topic,
            properties: &self.properties,
        }
    }
}

fn add(index: &IndexService, msg: &Msg) {
    index.add(&msg.record()).unwrap();
}

fn query(index: &IndexService, key: &str) -> Vec<u64> {
    index.query("TopicA", key, 100, ALL.0, ALL.1)
}

/// Index file paths in `dir`, oldest first.
fn file_paths(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    paths
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

#[test]
fn java_hash_pins() {
    // Values computed independently (Java semantics by hand); they pin both the helper and the
    // store's hash.
    let cases = [
        ("TopicA#k1", -1_903_240_649, 1_903_240_649),
        ("TopicA#k2", -1_903_240_648, 1_903_240_648),
        ("TopicA#ABCDEF", 1_409_050_868, 1_409_050_868),
        ("", 0, 0),
    ];
    for (key, hash_code, index_hash) in cases {
        assert_eq!(java_hash_code(key), hash_code, "{key}");
        assert_eq!(java_index_hash(key), index_hash, "{key}");
        assert_eq!(index_key_hash(key) as i32, index_hash, "{key}");
    }
}

#[test]
fn encoding_pins_the_byte_layout() {
    const SLOTS: usize = 16;
    const ENTRIES: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let index = IndexService::open(dir.path(), SLOTS, ENTRIES).unwrap();
    let first = Msg::new("TopicA", Some("k1 k2"), Some("ABCDEF"), 4096, T0);
    let second = Msg::new("TopicA", Some("k1"), None, 8192, T0 + 5_500);
    add(&index, &first);
    add(&index, &second);
    index.flush().unwrap();

    let paths = file_paths(dir.path());
    assert_eq!(paths.len(), 1);
    let name = paths[0].file_name().unwrap().to_str().unwrap();
    assert!(name.len() == 17 && name.bytes().all(|b| b.is_ascii_digit()), "{name}");
    let bytes = std::fs::read(&paths[0]).unwrap();
    assert_eq!(bytes.len(), 40 + SLOTS * 4 + ENTRIES * 20);

    // Header.
    assert_eq!(be_i64(&bytes, 0), T0, "beginTimestamp");
    assert_eq!(be_i64(&bytes, 8), T0 + 5_500, "endTimestamp");
    assert_eq!(be_i64(&bytes, 16), 4096, "beginPhyOffset");
    assert_eq!(be_i64(&bytes, 24), 8192, "endPhyOffset");
    assert_eq!(be_i32(&bytes, 32), 3, "hashSlotCount: three slots in use");
    assert_eq!(be_i32(&bytes, 36), 5, "indexCount: entries 1..=4 written");

    // Entries in order: UNIQ_KEY first, then the KEYS values, then the second record.
    // (key, offset, seconds since begin, previous entry in the chain)
    let entries = [
        ("TopicA#ABCDEF", 4096, 0, 0),
        ("TopicA#k1", 4096, 0, 0),
        ("TopicA#k2", 4096, 0, 0),
        ("TopicA#k1", 8192, 5, 2),
    ];
    let entries_at = 40 + SLOTS * 4;
    assert_eq!(&bytes[entries_at..entries_at + 20], &[0u8; 20], "entry 0 is never used");
    for (i, (key, offset, diff, prev)) in entries.into_iter().enumerate() {
        let n = i + 1;
        let at = entries_at + n * 20;
        assert_eq!(be_i32(&bytes, at), java_index_hash(key), "entry {n} keyHash");
        assert_eq!(be_i64(&bytes, at + 4), offset, "entry {n} offset");
        assert_eq!(be_i32(&bytes, at + 12), diff, "entry {n} time diff");
        assert_eq!(be_i32(&bytes, at + 16), prev, "entry {n} prev");
    }
    assert!(bytes[entries_at + 5 * 20..].iter().all(|&b| b == 0), "entries past indexCount untouched");

    // Slots: the newest entry of each key; slot numbers are hash % 16 (4, 9 and 8).
    let slots = [("TopicA#ABCDEF", 4, 1), ("TopicA#k1", 9, 4), ("TopicA#k2", 8, 3)];
    let mut expected_slots = [0i32; SLOTS];
    for (key, slot, entry) in slots {
        assert_eq!(java_index_hash(key) as usize % SLOTS, slot, "{key}");
        expected_slots[slot] = entry;
    }
    for (slot, expected) in expected_slots.iter().enumerate() {
        assert_eq!(be_i32(&bytes, 40 + slot * 4), *expected, "slot {slot}");
    }
    assert_eq!(index.last_timestamp(), T0 + 5_500);
}

#[test]
fn time_diff_is_clamped() {
    let dir = tempfile::tempdir().unwrap();
    let index = IndexService::open(dir.path(), 4, 8).unwrap();
    // A record stored "before" the file began (clock went back) gets diff 0.
    add(&index, &Msg::new("TopicA", Some("a"), None, 100, T0));
    add(&index, &Msg::new("TopicA", Some("b"), None, 200, T0 - 60_000));
    index.flush().unwrap();
    let bytes = std::fs::read(&file_paths(dir.path())[0]).unwrap();
    let entry2 = 40 + 4 * 4 + 2 * 20;
    assert_eq!(be_i32(&bytes, entry2 + 12), 0);
}

#[test]
fn query_by_key_uniq_key_time_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let index = IndexService::open(dir.path(), 64, 64).unwrap();
    add(&index, &Msg::new("TopicA", Some("a b"), Some("U1"), 100, T0));
    add(&index, &Msg::new("TopicA", Some("a"), Some("U2"), 300, T0 + 2_000));
    add(&index, &Msg::new("TopicA", Some(" c  a "), None, 500, T0 + 4_000));
    add(&index, &Msg::new("TopicB", Some("a"), None, 700, T0 + 6_000));
    // Rollback records are not indexed; prepared and commit ones are.
    add(&index, &Msg::new("TopicA", Some("tx"), None, 900, T0 + 6_000).sys_flag(TRANSACTION_ROLLBACK_TYPE));
    add(&index, &Msg::new("TopicA", Some("tx"), None, 1100, T0 + 6_000).sys_flag(TRANSACTION_PREPARED_TYPE));
    add(&index, &Msg::new("TopicA", Some("tx"), None, 1300, T0 + 6_000).sys_flag(TRANSACTION_COMMIT_TYPE));

    /// (topic, key, max_count, begin, end, expected newest first)
    type Case<'a> = (&'a str, &'a str, usize, i64, i64, &'a [u64]);
    let cases: &[Case<'_>] = &[
        ("TopicA", "a", 10, ALL.0, ALL.1, &[500, 300, 100]),
        ("TopicA", "b", 10, ALL.0, ALL.1, &[100]),
        ("TopicA", "c", 10, ALL.0, ALL.1, &[500]),
        ("TopicA", "U1", 10, ALL.0, ALL.1, &[100]),
        ("TopicA", "U2", 10, ALL.0, ALL.1, &[300]),
        ("TopicB", "a", 10, ALL.0, ALL.1, &[700]),
        ("TopicA", "tx", 10, ALL.0, ALL.1, &[1300, 1100]),
        ("TopicA", "a", 2, ALL.0, ALL.1, &[500, 300]),
        ("TopicA", "a", 1, ALL.0, ALL.1, &[500]),
        ("TopicA", "a", 0, ALL.0, ALL.1, &[]),
        ("TopicA", "a", 10, T0 + 1_000, T0 + 3_000, &[300]),
        ("TopicA", "a", 10, T0, T0 + 2_000, &[300, 100]),
        ("TopicA", "a", 10, T0 + 2_000, T0 + 2_000, &[300]),
        ("TopicA", "a", 10, T0 + 7_000, ALL.1, &[]),
        ("TopicA", "a", 10, 0, T0 - 1, &[]),
        ("TopicA", "a", 10, T0 + 3_000, T0 + 1_000, &[]),
        ("TopicA", "", 10, ALL.0, ALL.1, &[]),
        ("TopicA", "missing", 10, ALL.0, ALL.1, &[]),
        ("TopicC", "a", 10, ALL.0, ALL.1, &[]),
    ];
    for &(topic, key, max, begin, end, expected) in cases {
        assert_eq!(index.query(topic, key, max, begin, end), expected, "{topic} {key} {max} [{begin}, {end}]");
    }
    assert_eq!(index.last_timestamp(), T0 + 6_000);
}

#[test]
fn no_keys_no_entries() {
    let dir = tempfile::tempdir().unwrap();
    let index = IndexService::open(dir.path(), 8, 8).unwrap();
    add(&index, &Msg::new("TopicA", None, None, 100, T0));
    add(&index, &Msg::new("TopicA", Some("  "), None, 200, T0));
    assert_eq!(index.file_count(), 0);
    assert_eq!(index.last_timestamp(), 0);
    assert!(query(&index, "").is_empty());
}

#[test]
fn rollover_and_queries_span_files() {
    // 4 entries per file: 3 usable.
    let dir = tempfile::tempdir().unwrap();
    let index = IndexService::open(dir.path(), 8, 4).unwrap();
    for i in 0..5u64 {
        add(&index, &Msg::new("TopicA", Some("k"), None, 100 * (i + 1), T0 + 1_000 * i as i64));
    }
    assert_eq!(index.file_count(), 2);
    assert_eq!(query(&index, "k"), [500, 400, 300, 200, 100]);
    assert_eq!(index.query("TopicA", "k", 4, ALL.0, ALL.1), [500, 400, 300, 200]);
    assert_eq!(index.query("TopicA", "k", 10, T0 + 1_000, T0 + 3_000), [400, 300, 200]);
    assert_eq!(index.query("TopicA", "k", 10, T0, T0), [100]);

    // One record whose keys straddle the second file and fill two more.
    add(&index, &Msg::new("TopicA", Some("x1 x2 x3 x4 x5 x6"), Some("U"), 600, T0 + 5_000));
    assert_eq!(index.file_count(), 4);
    for key in ["x1", "x2", "x3", "x4", "x5", "x6", "U"] {
        assert_eq!(query(&index, key), [600], "{key}");
    }
    assert_eq!(query(&index, "k"), [500, 400, 300, 200, 100]);

    // Names are distinct, ordered as created, and each file begins where the last ended.
    index.flush().unwrap();
    let paths = file_paths(dir.path());
    assert_eq!(paths.len(), 4);
    let headers: Vec<Vec<u8>> = paths.iter().map(|p| std::fs::read(p).unwrap()[..40].to_vec()).collect();
    for pair in headers.windows(2) {
        let (prev, next) = (&pair[0], &pair[1]);
        assert!(be_i64(next, 16) >= be_i64(prev, 24), "beginPhyOffset follows the previous end");
        assert!(be_i64(next, 0) >= be_i64(prev, 8), "beginTimestamp follows the previous end");
    }
    // File 2 holds k@400, k@500, U@600; files 3 and 4 hold x1..x3 and x4..x6.
    let counts: Vec<i32> = headers.iter().map(|h| be_i32(h, 36)).collect();
    assert_eq!(counts, [4, 4, 4, 4]);
    assert_eq!(be_i64(&headers[3], 16), 600);
    assert_eq!(index.last_timestamp(), T0 + 5_000);
}

#[test]
fn reopen_gives_the_same_answers() {
    let dir = tempfile::tempdir().unwrap();
    let msgs: Vec<Msg> = (0..7u64)
        .map(|i| {
            let keys = if i % 2 == 0 { "even all" } else { "odd all" };
            Msg::new("TopicA", Some(keys), Some(&format!("U{i}")), 1000 * i, T0 + 1500 * i as i64)
        })
        .collect();
    let keys = ["even", "odd", "all", "U0", "U3", "U6", "none"];
    let before: Vec<Vec<u64>> = {
        let index = IndexService::open(dir.path(), 8, 6).unwrap();
        for m in &msgs {
            add(&index, m);
        }
        index.flush().unwrap();
        keys.iter().map(|k| query(&index, k)).collect()
    };
    assert_eq!(before[2], [6000, 5000, 4000, 3000, 2000, 1000, 0]);

    let index = IndexService::open(dir.path(), 8, 6).unwrap();
    let after: Vec<Vec<u64>> = keys.iter().map(|k| query(&index, k)).collect();
    assert_eq!(before, after);
    assert_eq!(index.last_timestamp(), T0 + 9_000);
    assert_eq!(index.file_count(), file_paths(dir.path()).len());

    // Re-dispatch after the restart adds nothing; a new record goes on.
    for m in &msgs {
        add(&index, m);
    }
    assert_eq!(query(&index, "all"), [6000, 5000, 4000, 3000, 2000, 1000, 0]);
    add(&index, &Msg::new("TopicA", Some("all"), None, 7000, T0 + 20_000));
    assert_eq!(query(&index, "all")[..2], [7000, 6000]);
}

#[test]
fn re_adding_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let index = IndexService::open(dir.path(), 8, 16).unwrap();
    // The very first record of a store sits at offset 0 and must still be indexed.
    let first = Msg::new("TopicA", Some("a"), Some("U0"), 0, T0);
    add(&index, &first);
    add(&index, &first);
    assert_eq!(query(&index, "a"), [0]);
    let second = Msg::new("TopicA", Some("a"), None, 200, T0 + 1);
    add(&index, &second);
    add(&index, &second);
    add(&index, &first);
    assert_eq!(query(&index, "a"), [200, 0]);
    assert_eq!(query(&index, "U0"), [0]);
    index.flush().unwrap();
    let bytes = std::fs::read(&file_paths(dir.path())[0]).unwrap();
    assert_eq!(be_i32(&bytes, 36), 4, "three entries");
}

#[test]
fn reset_end_then_re_add() {
    let dir = tempfile::tempdir().unwrap();
    let index = IndexService::open(dir.path(), 8, 4).unwrap();
    // Three entries per file: k@100..300 in the first, k@400 and k@500 in the second.
    for i in 0..5u64 {
        add(&index, &Msg::new("TopicA", Some("k"), None, 100 * (i + 1), T0 + i as i64));
    }
    assert_eq!(index.file_count(), 2);

    // The CommitLog ends at 400: the second file began there and goes.
    index.reset_end(400).unwrap();
    assert_eq!(index.file_count(), 1);
    assert_eq!(file_paths(dir.path()).len(), 1);
    assert_eq!(query(&index, "k"), [300, 200, 100]);
    // Records from the valid end on are indexed again, once; those before are still skipped.
    add(&index, &Msg::new("TopicA", Some("k"), None, 300, T0 + 2));
    add(&index, &Msg::new("TopicA", Some("new"), None, 400, T0 + 10));
    add(&index, &Msg::new("TopicA", Some("new"), None, 400, T0 + 10));
    add(&index, &Msg::new("TopicA", Some("new2"), None, 500, T0 + 11));
    assert_eq!(query(&index, "new"), [400]);
    assert_eq!(query(&index, "k"), [300, 200, 100]);
    assert_eq!(index.file_count(), 2);

    // Lowering inside a file: the stale entry at 500 stays (callers verify), and the record now
    // at 500 is indexed.
    index.reset_end(500).unwrap();
    assert_eq!(index.file_count(), 2);
    add(&index, &Msg::new("TopicA", Some("again"), None, 500, T0 + 20));
    add(&index, &Msg::new("TopicA", Some("again"), None, 500, T0 + 20));
    assert_eq!(query(&index, "again"), [500]);
    assert_eq!(query(&index, "new2"), [500]);

    // Persisted: a reopened index still takes the record at the valid end, once.
    index.reset_end(500).unwrap();
    index.flush().unwrap();
    drop(index);
    let index = IndexService::open(dir.path(), 8, 4).unwrap();
    add(&index, &Msg::new("TopicA", Some("later"), None, 500, T0 + 30));
    add(&index, &Msg::new("TopicA", Some("later"), None, 500, T0 + 30));
    assert_eq!(query(&index, "later"), [500]);
    assert_eq!(index.file_count(), 3);

    // Nothing valid at all: one empty file remains and takes the store's first record again.
    index.reset_end(0).unwrap();
    assert_eq!(index.file_count(), 1);
    assert_eq!(file_paths(dir.path()).len(), 1);
    for key in ["k", "new", "new2", "again", "later"] {
        assert!(query(&index, key).is_empty(), "{key}");
    }
    add(&index, &Msg::new("TopicA", Some("k"), None, 0, T0 + 40));
    add(&index, &Msg::new("TopicA", Some("k"), None, 0, T0 + 40));
    assert_eq!(query(&index, "k"), [0]);
    assert_eq!(index.last_timestamp(), T0 + 40);
}

#[test]
fn reset_end_past_everything_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let index = IndexService::open(dir.path(), 8, 8).unwrap();
    index.reset_end(1000).unwrap();
    assert_eq!(index.file_count(), 0);
    add(&index, &Msg::new("TopicA", Some("k"), None, 100, T0));
    index.reset_end(1000).unwrap();
    add(&index, &Msg::new("TopicA", Some("k"), None, 100, T0));
    assert_eq!(query(&index, "k"), [100]);
}

#[test]
fn delete_before_keeps_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let index = IndexService::open(dir.path(), 8, 3).unwrap();
    // Two entries per file: files end at 200, 400, 600.
    for i in 0..6u64 {
        add(&index, &Msg::new("TopicA", Some("k"), None, 100 * (i + 1), T0 + i as i64));
    }
    assert_eq!(index.file_count(), 3);
    // (min offset, deleted, files left)
    let steps = [(200, 0, 3), (201, 1, 2), (400, 0, 2), (10_000, 1, 1), (10_000, 0, 1)];
    for (min_offset, deleted, left) in steps {
        assert_eq!(index.delete_before(min_offset).unwrap(), deleted, "min {min_offset}");
        assert_eq!(index.file_count(), left, "min {min_offset}");
        assert_eq!(file_paths(dir.path()).len(), left, "min {min_offset}");
    }
    assert_eq!(query(&index, "k"), [600, 500]);
    add(&index, &Msg::new("TopicA", Some("k"), None, 700, T0 + 10));
    assert_eq!(query(&index, "k"), [700, 600, 500]);
}

#[test]
fn invalid_geometry_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (slots, entries) in [(0, 8), (8, 0), (8, 1), (i32::MAX as usize + 1, 8)] {
        let err = IndexService::open(dir.path(), slots, entries).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{slots} {entries}: {err}");
    }
}

#[test]
fn foreign_names_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"hello").unwrap();
    std::fs::write(dir.path().join("2024"), b"short name").unwrap();
    let index = IndexService::open(dir.path(), 8, 8).unwrap();
    assert_eq!(index.file_count(), 0);
    let missing = dir.path().join("sub").join("index");
    let index = IndexService::open(&missing, 8, 8).unwrap();
    assert_eq!(index.file_count(), 0);
    assert!(missing.is_dir());
}

/// Builds a one-file index with the given records, then lets `corrupt` edit the file's bytes.
fn corrupted(slots: usize, entries: usize, msgs: &[Msg], corrupt: impl FnOnce(&mut Vec<u8>)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let index = IndexService::open(dir.path(), slots, entries).unwrap();
    for m in msgs {
        add(&index, m);
    }
    index.flush().unwrap();
    drop(index);
    let path = file_paths(dir.path()).remove(0);
    let mut bytes = std::fs::read(&path).unwrap();
    corrupt(&mut bytes);
    std::fs::write(&path, &bytes).unwrap();
    dir
}

#[test]
fn corrupt_length_or_header_is_reported() {
    let msgs = [Msg::new("TopicA", Some("k"), None, 100, T0)];
    let put_i32 = |at: usize, v: i32| move |b: &mut Vec<u8>| b[at..at + 4].copy_from_slice(&v.to_be_bytes());
    let put_i64 = |at: usize, v: i64| move |b: &mut Vec<u8>| b[at..at + 8].copy_from_slice(&v.to_be_bytes());
    type Case = (&'static str, Box<dyn FnOnce(&mut Vec<u8>)>);
    let cases: Vec<Case> = vec![
        ("truncated", Box::new(|b: &mut Vec<u8>| b.truncate(100))),
        ("shorter than a header", Box::new(|b: &mut Vec<u8>| b.truncate(10))),
        ("empty", Box::new(|b: &mut Vec<u8>| b.clear())),
        ("longer", Box::new(|b: &mut Vec<u8>| b.extend_from_slice(&[0; 20]))),
        ("indexCount past the entries", Box::new(put_i32(36, 9))),
        ("hashSlotCount negative", Box::new(put_i32(32, -1))),
        ("endPhyOffset negative", Box::new(put_i64(24, -5))),
        ("beginPhyOffset negative", Box::new(put_i64(16, i64::MIN))),
        ("beginTimestamp negative", Box::new(put_i64(0, -1))),
    ];
    for (what, corrupt) in cases {
        let dir = corrupted(8, 8, &msgs, corrupt);
        let err = IndexService::open(dir.path(), 8, 8).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{what}: {err}");
    }
    // A file of another geometry is the wrong length, too.
    let dir = corrupted(8, 8, &msgs, |_| {});
    assert!(matches!(IndexService::open(dir.path(), 16, 8).unwrap_err(), Error::Corrupt { .. }));
    // An indexCount of 0 (never flushed by Java) reads as an empty file.
    let dir = corrupted(8, 8, &msgs, put_i32(36, 0));
    let index = IndexService::open(dir.path(), 8, 8).unwrap();
    assert!(query(&index, "k").is_empty());
}

#[test]
fn corrupt_slots_and_chains_do_not_panic() {
    const SLOTS: usize = 8;
    const ENTRIES: usize = 8;
    let slot_of_k = java_index_hash("TopicA#k") as usize % SLOTS;
    let entry_at = |n: usize| 40 + SLOTS * 4 + n * 20;
    let msgs = [
        Msg::new("TopicA", Some("k"), None, 100, T0),
        Msg::new("TopicA", Some("k"), None, 200, T0 + 1_000),
        Msg::new("TopicA", Some("k"), None, 300, T0 + 2_000),
    ];
    let put = |at: usize, v: i32, b: &mut Vec<u8>| b[at..at + 4].copy_from_slice(&v.to_be_bytes());
    /// (what, corruption, expected answer for "k")
    type Case = (&'static str, Box<dyn FnOnce(&mut Vec<u8>)>, Vec<u64>);
    let cases: Vec<Case> = vec![
        ("intact", Box::new(|_: &mut Vec<u8>| {}), vec![300, 200, 100]),
        ("slot past indexCount", Box::new(move |b: &mut Vec<u8>| put(40 + slot_of_k * 4, 4, b)), vec![]),
        ("slot far past the file", Box::new(move |b: &mut Vec<u8>| put(40 + slot_of_k * 4, i32::MAX, b)), vec![]),
        ("slot negative", Box::new(move |b: &mut Vec<u8>| put(40 + slot_of_k * 4, -3, b)), vec![]),
        ("prev past indexCount", Box::new(move |b: &mut Vec<u8>| put(entry_at(3) + 16, 7, b)), vec![300]),
        ("prev negative", Box::new(move |b: &mut Vec<u8>| put(entry_at(3) + 16, i32::MIN, b)), vec![300]),
        ("prev points at itself", Box::new(move |b: &mut Vec<u8>| put(entry_at(2) + 16, 2, b)), vec![300, 200]),
        ("time diff negative", Box::new(move |b: &mut Vec<u8>| put(entry_at(3) + 12, -1, b)), vec![]),
        ("offset negative", Box::new(move |b: &mut Vec<u8>| b[entry_at(3) + 4] = 0x80), vec![200, 100]),
        ("hash differs", Box::new(move |b: &mut Vec<u8>| put(entry_at(2), 12345, b)), vec![300, 100]),
    ];
    for (what, corrupt, expected) in cases {
        let dir = corrupted(SLOTS, ENTRIES, &msgs, corrupt);
        let index = IndexService::open(dir.path(), SLOTS, ENTRIES).unwrap();
        assert_eq!(query(&index, "k"), expected, "{what}");
        // Writing over a corrupt slot still works and never panics.
        add(&index, &Msg::new("TopicA", Some("k"), None, 400, T0 + 3_000));
        assert_eq!(query(&index, "k").first(), Some(&400), "{what}");
    }
}

#[test]
fn a_cycle_in_the_chain_ends() {
    const SLOTS: usize = 8;
    const ENTRIES: usize = 8;
    let entry_at = |n: usize| 40 + SLOTS * 4 + n * 20;
    let msgs: Vec<Msg> = (1..=3u64).map(|i| Msg::new("TopicA", Some("k"), None, 100 * i, T0)).collect();
    // Entry 1 points back to entry 3, the newest: 3 → 2 → 1 → 3 → ...
    let dir = corrupted(SLOTS, ENTRIES, &msgs, |b| {
        b[entry_at(1) + 16..entry_at(1) + 20].copy_from_slice(&3i32.to_be_bytes())
    });
    let index = IndexService::open(dir.path(), SLOTS, ENTRIES).unwrap();
    let found = index.query("TopicA", "k", usize::MAX, ALL.0, ALL.1);
    assert!(found.len() <= ENTRIES, "{found:?}");
    assert_eq!(found[..3], [300, 200, 100]);
}

#[test]
fn garbage_files_never_panic() {
    const SLOTS: usize = 16;
    const ENTRIES: usize = 32;
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    for round in 0..20 {
        let dir = corrupted(SLOTS, ENTRIES, &[Msg::new("TopicA", Some("k"), None, 100, T0)], |b| {
            // Random slots and entries; a header that passes validation.
            for byte in b[40..].iter_mut() {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                *byte = (seed >> 56) as u8;
            }
            // Small numbers make valid-looking entry numbers likely.
            if round % 2 == 0 {
                for slot in 0..SLOTS {
                    b[40 + slot * 4..40 + slot * 4 + 3].fill(0);
                }
                for n in 0..ENTRIES {
                    let at = 40 + SLOTS * 4 + n * 20 + 16;
                    b[at..at + 3].fill(0);
                }
            }
            b[36..40].copy_from_slice(&(ENTRIES as i32 - 1).to_be_bytes());
        });
        let index = IndexService::open(dir.path(), SLOTS, ENTRIES).unwrap();
        for key in ["k", "a", "b", "c", "d", "e", "f", "g", "h"] {
            let found = index.query("TopicA", key, usize::MAX, ALL.0, ALL.1);
            assert!(found.len() <= ENTRIES, "round {round} {key}");
        }
        // The file is nearly full: the next keys roll over to a new file.
        add(&index, &Msg::new("TopicA", Some("x y z"), None, 1 << 40, T0));
        assert_eq!(query(&index, "z"), [1 << 40]);
    }
}
