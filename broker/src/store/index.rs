//! IndexFile: lookup of messages by key and unique key, in RocketMQ 4.9.4's on-disk layout.
//!
//! Files live in `<root>/index/`, named by their creation time in local time
//! (`yyyyMMddHHmmssSSS`), and are `40 + slots * 4 + entries * 20` bytes long. All integers are
//! big-endian.
//!
//! | part    | offset                         | layout                                                              |
//! |---------|--------------------------------|---------------------------------------------------------------------|
//! | header  | 0                              | beginTimestamp i64, endTimestamp i64, beginPhyOffset i64, endPhyOffset i64, hashSlotCount i32, indexCount i32 |
//! | slot i  | `40 + i * 4`                   | number of the newest entry of the slot, 0 = empty                   |
//! | entry n | `40 + slots * 4 + n * 20`      | keyHash i32, CommitLog offset i64, seconds since beginTimestamp i32, previous entry of the chain i32 |
//!
//! The key of a message is `topic + "#" + key` for its `UNIQ_KEY` and each space-separated `KEYS`
//! value; its hash is [`index_key_hash`] and its slot `hash % slots`. `indexCount` is the number of
//! the next entry to write (entry 0 is never used), `hashSlotCount` the number of slots in use.
//! A file is full when `indexCount >= entries`; the next file starts where the last one ended.
//!
//! `endPhyOffset` is the CommitLog offset of the last record indexed: the dispatcher re-delivers
//! records after a restart, and those at or below it are skipped. Recovery ([`IndexService::reset_end`])
//! lowers it below the CommitLog's valid end, so that records written again from there are indexed.
//!
//! Everything read from a file is range-checked: a corrupt slot or chain ends a lookup early, never
//! in a panic. A lookup compares only hashes and times; the caller checks the real key.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{Local, NaiveDateTime, TimeDelta};

use super::error::{Error, Result};
use super::format::{
    PROPERTY_KEYS, PROPERTY_UNIQ_KEY, StoredRecord, TRANSACTION_ROLLBACK_TYPE, index_key_hash, property,
};
use super::mapped_file::MappedRegion;

/// Bytes of the file header.
pub const HEADER_BYTES: usize = 40;
/// Bytes of one hash slot.
pub const SLOT_BYTES: usize = 4;
/// Bytes of one entry.
pub const ENTRY_BYTES: usize = 20;
const _: () = assert!(HEADER_BYTES == 8 + 8 + 8 + 8 + 4 + 4);
const _: () = assert!(ENTRY_BYTES == 4 + 8 + 4 + 4);

/// Separator of the values of the `KEYS` property.
const KEY_SEPARATOR: char = ' ';
/// Characters of a file name, `yyyyMMddHHmmssSSS`.
const FILE_NAME_CHARS: usize = 17;
const FILE_NAME_FORMAT: &str = "%Y%m%d%H%M%S%3f";

/// Bytes of an index file with `slots` hash slots and room for `entries_max` entries (entry 0
/// included), or `None` when that overflows.
pub fn file_bytes(slots: usize, entries_max: usize) -> Option<usize> {
    let slots_bytes = slots.checked_mul(SLOT_BYTES)?;
    let entries_bytes = entries_max.checked_mul(ENTRY_BYTES)?;
    HEADER_BYTES.checked_add(slots_bytes)?.checked_add(entries_bytes)
}

/// The 40-byte file header, as numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Header {
    begin_timestamp: i64,
    end_timestamp: i64,
    begin_phy_offset: i64,
    end_phy_offset: i64,
    hash_slot_count: i32,
    /// Number of the next entry to write; at least 1.
    index_count: i32,
}

impl Header {
    /// A header of a file nothing was ever written to.
    const EMPTY: Header = Header {
        begin_timestamp: 0,
        end_timestamp: 0,
        begin_phy_offset: 0,
        end_phy_offset: 0,
        hash_slot_count: 0,
        index_count: 1,
    };

    fn encode(&self) -> [u8; HEADER_BYTES] {
        let mut b = [0u8; HEADER_BYTES];
        b[0..8].copy_from_slice(&self.begin_timestamp.to_be_bytes());
        b[8..16].copy_from_slice(&self.end_timestamp.to_be_bytes());
        b[16..24].copy_from_slice(&self.begin_phy_offset.to_be_bytes());
        b[24..32].copy_from_slice(&self.end_phy_offset.to_be_bytes());
        b[32..36].copy_from_slice(&self.hash_slot_count.to_be_bytes());
        b[36..40].copy_from_slice(&self.index_count.to_be_bytes());
        b
    }

    /// Decodes and validates a header. An `indexCount` of 0 or less reads as 1, as RocketMQ does
    /// (a file that was never flushed holds 0 there).
    fn decode(b: &[u8], slots: usize, entries_max: usize) -> Result<Header, String> {
        let header = Header {
            begin_timestamp: read_i64(b, 0).ok_or("header truncated")?,
            end_timestamp: read_i64(b, 8).ok_or("header truncated")?,
            begin_phy_offset: read_i64(b, 16).ok_or("header truncated")?,
            end_phy_offset: read_i64(b, 24).ok_or("header truncated")?,
            hash_slot_count: read_i32(b, 32).ok_or("header truncated")?,
            index_count: read_i32(b, 36).ok_or("header truncated")?.max(1),
        };
        if header.begin_timestamp < 0 || header.end_timestamp < 0 {
            return Err(format!("negative timestamp (begin {}, end {})", header.begin_timestamp, header.end_timestamp));
        }
        if header.begin_phy_offset < 0 || header.end_phy_offset < 0 {
            return Err(format!(
                "negative CommitLog offset (begin {}, end {})",
                header.begin_phy_offset, header.end_phy_offset
            ));
        }
        if header.index_count as usize > entries_max {
            return Err(format!("indexCount {} exceeds the {entries_max} entries of the file", header.index_count));
        }
        // Releases before 4.9.4 counted every entry here, not every slot.
        let slot_count_max = slots.max(entries_max);
        if header.hash_slot_count < 0 || header.hash_slot_count as usize > slot_count_max {
            return Err(format!("hashSlotCount {} out of range", header.hash_slot_count));
        }
        Ok(header)
    }
}

/// One entry of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    key_hash: i32,
    phy_offset: i64,
    time_diff_s: i32,
    prev: i32,
}

impl Entry {
    fn encode(&self) -> [u8; ENTRY_BYTES] {
        let mut b = [0u8; ENTRY_BYTES];
        b[0..4].copy_from_slice(&self.key_hash.to_be_bytes());
        b[4..12].copy_from_slice(&self.phy_offset.to_be_bytes());
        b[12..16].copy_from_slice(&self.time_diff_s.to_be_bytes());
        b[16..20].copy_from_slice(&self.prev.to_be_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<Entry> {
        Some(Entry {
            key_hash: read_i32(b, 0)?,
            phy_offset: read_i64(b, 4)?,
            time_diff_s: read_i32(b, 12)?,
            prev: read_i32(b, 16)?,
        })
    }
}

fn read_i32(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_be_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

fn read_i64(b: &[u8], at: usize) -> Option<i64> {
    Some(i64::from_be_bytes(b.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

/// The sizes shared by every file of a service.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    slots: usize,
    entries_max: usize,
    file_bytes: usize,
}

impl Geometry {
    fn slot_pos(&self, slot: usize) -> usize {
        HEADER_BYTES + slot * SLOT_BYTES
    }

    fn entry_pos(&self, n: usize) -> usize {
        HEADER_BYTES + self.slots * SLOT_BYTES + n * ENTRY_BYTES
    }

    fn slot_of(&self, key_hash: u32) -> usize {
        key_hash as usize % self.slots
    }
}

/// One mapped index file.
struct IndexFile {
    region: MappedRegion,
    /// The header as last written to the mapping.
    header: Header,
    /// Written since the last msync.
    dirty: AtomicBool,
}

impl IndexFile {
    fn path(&self) -> &Path {
        self.region.path()
    }

    fn corrupt(&self, offset: usize, reason: impl Into<String>) -> Error {
        Error::Corrupt { file: self.path().to_path_buf(), offset: offset as u64, reason: reason.into() }
    }

    fn is_full(&self, geo: &Geometry) -> bool {
        self.header.index_count as usize >= geo.entries_max
    }

    /// Entries that still fit.
    fn free_entries(&self, geo: &Geometry) -> usize {
        geo.entries_max.saturating_sub(self.header.index_count as usize)
    }

    /// Copies `bytes` to `pos`, refusing (not panicking on) a range outside the file.
    fn write_at(&mut self, pos: usize, bytes: &[u8], reason: &str) -> Result<()> {
        let Some(end) = pos.checked_add(bytes.len()).filter(|&end| end <= self.region.len()) else {
            return Err(self.corrupt(pos, reason));
        };
        self.region[pos..end].copy_from_slice(bytes);
        self.dirty.store(true, Ordering::Release);
        Ok(())
    }

    fn write_header(&mut self, header: Header) -> Result<()> {
        self.write_at(0, &header.encode(), "no room for the header")?;
        self.header = header;
        Ok(())
    }

    /// The entry number stored in `slot`, if it names a written entry.
    fn slot_value(&self, geo: &Geometry, slot: usize) -> Option<usize> {
        let value = read_i32(&self.region, geo.slot_pos(slot))?;
        self.valid_entry_number(value)
    }

    /// `n` as an entry number when it names a written entry (`1..indexCount`).
    fn valid_entry_number(&self, n: i32) -> Option<usize> {
        (n > 0 && n < self.header.index_count).then_some(n as usize)
    }

    fn entry(&self, geo: &Geometry, n: usize) -> Option<Entry> {
        let pos = geo.entry_pos(n);
        Entry::decode(self.region.get(pos..pos + ENTRY_BYTES)?)
    }

    /// Appends one key; the caller has checked that the file is not full.
    fn put(&mut self, geo: &Geometry, key_hash: u32, phy_offset: u64, store_timestamp: i64) -> Result<()> {
        let n = self.header.index_count as usize;
        if n >= geo.entries_max {
            return Err(self.corrupt(HEADER_BYTES - 4, "put into a full index file"));
        }
        let slot = geo.slot_of(key_hash);
        let prev = self.slot_value(geo, slot);
        let mut header = self.header;
        if header.index_count <= 1 {
            // The first entry of the file fixes where it begins.
            header.begin_timestamp = store_timestamp;
            header.begin_phy_offset = phy_offset as i64;
        }
        let diff_s = if header.begin_timestamp <= 0 {
            0
        } else {
            (store_timestamp.saturating_sub(header.begin_timestamp) / 1000).clamp(0, i64::from(i32::MAX)) as i32
        };
        let entry = Entry {
            key_hash: key_hash as i32,
            phy_offset: phy_offset as i64,
            time_diff_s: diff_s,
            prev: prev.map_or(0, |p| p as i32),
        };
        self.write_at(geo.entry_pos(n), &entry.encode(), "entry past the end of the file")?;
        self.write_at(geo.slot_pos(slot), &(n as i32).to_be_bytes(), "slot past the end of the file")?;
        if prev.is_none() {
            header.hash_slot_count = header.hash_slot_count.saturating_add(1);
        }
        header.index_count += 1;
        header.end_phy_offset = phy_offset as i64;
        header.end_timestamp = store_timestamp;
        self.write_header(header)
    }

    /// Whether the file's time range overlaps `[begin_ms, end_ms]`.
    fn overlaps(&self, begin_ms: i64, end_ms: i64) -> bool {
        let (b, e) = (self.header.begin_timestamp, self.header.end_timestamp);
        let (lo, hi) = (b.min(e), b.max(e));
        begin_ms <= hi && end_ms >= lo
    }

    /// Walks the chain of `key_hash`, newest first, adding matching offsets to `out` up to `max_count`.
    fn select(&self, geo: &Geometry, key_hash: u32, max_count: usize, begin_ms: i64, end_ms: i64, out: &mut Vec<u64>) {
        let Some(mut n) = self.slot_value(geo, geo.slot_of(key_hash)) else { return };
        let mut steps = 0usize;
        while out.len() < max_count {
            steps += 1;
            if steps > geo.entries_max {
                // A chain longer than the file: a cycle in a corrupt file.
                break;
            }
            let Some(entry) = self.entry(geo, n) else { break };
            if entry.time_diff_s < 0 {
                break;
            }
            let time = self.header.begin_timestamp.saturating_add(i64::from(entry.time_diff_s) * 1000);
            if entry.key_hash == key_hash as i32 && (begin_ms..=end_ms).contains(&time) && entry.phy_offset >= 0 {
                out.push(entry.phy_offset as u64);
            }
            // Chains run back in time: once before the range, nothing older can match.
            if time < begin_ms {
                break;
            }
            match self.valid_entry_number(entry.prev) {
                Some(prev) if prev != n => n = prev,
                _ => break,
            }
        }
    }

    /// Empties the file: header and slots zeroed (entries are unreachable and overwritten on reuse).
    fn reset(&mut self, geo: &Geometry, header: Header) -> Result<()> {
        let slots_end = geo.slot_pos(geo.slots);
        if slots_end > self.region.len() {
            return Err(self.corrupt(HEADER_BYTES, "slots past the end of the file"));
        }
        self.region[HEADER_BYTES..slots_end].fill(0);
        self.write_header(header)
    }

    fn flush(&self) -> Result<()> {
        if self.dirty.swap(false, Ordering::AcqRel)
            && let Err(e) = self.region.flush()
        {
            self.dirty.store(true, Ordering::Release);
            return Err(Error::io(self.path())(e));
        }
        Ok(())
    }
}

/// All index files of a store, oldest first; the last one is the one written.
pub struct IndexService {
    dir: PathBuf,
    geo: Geometry,
    files: RwLock<Vec<IndexFile>>,
}

impl std::fmt::Debug for IndexService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexService")
            .field("dir", &self.dir)
            .field("slots", &self.geo.slots)
            .field("entries_max", &self.geo.entries_max)
            .field("files", &self.file_count())
            .finish()
    }
}

impl IndexService {
    /// Opens every index file in `dir` (creating the directory), oldest first, validating each
    /// file's length and header. Files whose names are not 17 digits are ignored.
    ///
    /// # Errors
    /// `hash_slots` is 0 or above `i32::MAX`, `entries_max` below 2 or above `i32::MAX`
    /// ([`Error::Io`] with `InvalidInput`); a file has the wrong length or a bad header
    /// ([`Error::Corrupt`]); the directory or a file cannot be read or mapped.
    pub fn open(dir: &Path, hash_slots: usize, entries_max: usize) -> Result<IndexService> {
        let invalid = |what: String| Error::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, what),
        };
        let i32_max = i32::MAX as usize;
        if hash_slots == 0 || hash_slots > i32_max {
            return Err(invalid(format!("index hash slots {hash_slots} not in 1..={i32_max}")));
        }
        if !(2..=i32_max).contains(&entries_max) {
            return Err(invalid(format!("index entries {entries_max} not in 2..={i32_max}")));
        }
        let file_bytes = file_bytes(hash_slots, entries_max).ok_or_else(|| {
            invalid(format!("index file of {hash_slots} slots and {entries_max} entries is too large"))
        })?;
        let geo = Geometry { slots: hash_slots, entries_max, file_bytes };

        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
        let mut names = Vec::new();
        for dirent in std::fs::read_dir(dir).map_err(Error::io(dir))? {
            let dirent = dirent.map_err(Error::io(dir))?;
            let name = dirent.file_name();
            match name.to_str() {
                Some(n) if is_file_name(n) => names.push(n.to_string()),
                _ => tracing::warn!(file = %dirent.path().display(), "ignoring a file that is not an index file"),
            }
        }
        names.sort();

        let mut files = Vec::with_capacity(names.len());
        for name in names {
            files.push(open_file(&dir.join(name), &geo)?);
        }
        Ok(IndexService { dir: dir.to_path_buf(), geo, files: RwLock::new(files) })
    }

    fn read(&self) -> RwLockReadGuard<'_, Vec<IndexFile>> {
        self.files.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Vec<IndexFile>> {
        self.files.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Indexes one dispatched record under its `UNIQ_KEY` and each of its `KEYS`. Records at or
    /// below the last indexed CommitLog offset are skipped, so re-dispatch is idempotent; rollback
    /// records are not indexed. New files are created when the keys do not fit.
    ///
    /// # Errors
    /// A new file cannot be created ([`Error::DiskFull`] when the disk has no room); nothing of
    /// the record is indexed then.
    pub fn add(&self, record: &StoredRecord<'_>) -> Result<()> {
        if record.transaction_type() == TRANSACTION_ROLLBACK_TYPE {
            return Ok(());
        }
        let keys = record_keys(record);
        if keys.is_empty() {
            return Ok(());
        }
        let geo = self.geo;
        let offset = record.physical_offset;
        let mut files = self.write();
        if let Some(last) = files.last() {
            let end = last.header.end_phy_offset as u64;
            let indexed_any = files.len() > 1 || last.header.index_count > 1;
            if offset < end || (offset == end && indexed_any) {
                return Ok(());
            }
        }

        // Create every file the keys need first, so a failure leaves nothing half indexed.
        let free = files.last().map_or(0, |f| f.free_entries(&geo));
        let files_needed = keys.len().saturating_sub(free).div_ceil(geo.entries_max - 1);
        let mut fresh = Vec::with_capacity(files_needed);
        for _ in 0..files_needed {
            let newest_name = fresh.last().or(files.last()).map(|f: &IndexFile| file_name_of(f.path()));
            match self.create_file(newest_name.as_deref(), files.last().map(|f| f.header)) {
                Ok(f) => fresh.push(f),
                Err(e) => {
                    for f in fresh {
                        let path = f.path().to_path_buf();
                        drop(f);
                        let _ = std::fs::remove_file(&path);
                    }
                    return Err(e);
                }
            }
        }

        let mut fresh = fresh.into_iter();
        for key in keys {
            let full = files.last().is_none_or(|f| f.is_full(&geo));
            if full {
                let Some(mut next) = fresh.next() else {
                    // Unreachable by the count above; refuse rather than overfill a file.
                    return Err(Error::InvalidMessage("index files ran out while adding keys".into()));
                };
                if let Some(prev) = files.last() {
                    next.write_header(continued_header(&prev.header))?;
                }
                files.push(next);
            }
            let Some(file) = files.last_mut() else { continue };
            file.put(&geo, index_key_hash(&key), offset, record.store_timestamp)?;
        }
        Ok(())
    }

    /// Creates a new, empty file named after the local clock, later than `newest_name`, its header
    /// continuing from `prev` (if any).
    fn create_file(&self, newest_name: Option<&str>, prev: Option<Header>) -> Result<IndexFile> {
        let path = self.dir.join(self.fresh_name(newest_name));
        let region = MappedRegion::create(&path, self.geo.file_bytes).map_err(Error::io(&path))?;
        let mut file = IndexFile { region, header: Header::EMPTY, dirty: AtomicBool::new(true) };
        let header = prev.map_or(Header::EMPTY, |p| continued_header(&p));
        if let Err(e) = file.write_header(header) {
            drop(file);
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok(file)
    }

    /// A file name from the local clock that is unused and sorts after `newest_name`, bumped by
    /// 1 ms at a time (files fill in under a millisecond when they are small).
    fn fresh_name(&self, newest_name: Option<&str>) -> String {
        let mut at = Local::now().naive_local();
        // A name that is not a date (not ours) cannot be followed; then only uniqueness counts.
        let newest = newest_name.and_then(|n| Some((n, NaiveDateTime::parse_from_str(n, FILE_NAME_FORMAT).ok()?)));
        if let Some((_, t)) = newest
            && t >= at
        {
            // The clock went back, or files fill faster than it ticks.
            at = t;
        }
        loop {
            let name = at.format(FILE_NAME_FORMAT).to_string();
            let later = newest.is_none_or(|(n, _)| name.as_str() > n);
            if later && !self.dir.join(&name).exists() {
                return name;
            }
            at += TimeDelta::milliseconds(1);
        }
    }

    /// CommitLog offsets of messages whose `topic#key` hash matches, stored within
    /// `[begin_ms, end_ms]`, newest first, at most `max_count`. Hash collisions are possible: the
    /// caller checks the real key.
    pub fn query(&self, topic: &str, key: &str, max_count: usize, begin_ms: i64, end_ms: i64) -> Vec<u64> {
        let mut out = Vec::new();
        if max_count == 0 || begin_ms > end_ms {
            return out;
        }
        let key_hash = index_key_hash(&index_key(topic, key));
        let files = self.read();
        for file in files.iter().rev() {
            if file.overlaps(begin_ms, end_ms) {
                file.select(&self.geo, key_hash, max_count, begin_ms, end_ms, &mut out);
            }
            if out.len() >= max_count || file.header.begin_timestamp < begin_ms {
                break;
            }
        }
        out
    }

    /// Writes every file with unflushed changes to disk.
    ///
    /// # Errors
    /// An msync failed: the caller must poison the store.
    pub fn flush(&self) -> Result<()> {
        let files = self.read();
        for file in files.iter() {
            file.flush()?;
        }
        Ok(())
    }

    /// Store timestamp of the newest indexed record (endTimestamp of the last file), 0 if none.
    pub fn last_timestamp(&self) -> i64 {
        self.read().last().map_or(0, |f| f.header.end_timestamp)
    }

    /// Recovery: the CommitLog's valid data ends at `valid_end`. Deletes the files that begin at
    /// or after it (the only remaining file is emptied instead), and lowers the last file's
    /// endPhyOffset below `valid_end` so that records dispatched again from there are indexed.
    /// Entries that point past `valid_end` may remain; lookups are verified by the caller.
    ///
    /// # Errors
    /// A file could not be removed.
    pub fn reset_end(&self, valid_end: u64) -> Result<()> {
        let geo = self.geo;
        let mut files = self.write();
        while files.len() > 1 && files.last().is_some_and(|f| f.header.begin_phy_offset as u64 >= valid_end) {
            if let Some(file) = files.pop() {
                remove(file)?;
            }
        }
        // The offset of the last record that stays indexed: below `valid_end`, where no record can
        // start since a record is longer than one byte.
        let end_kept = valid_end.saturating_sub(1) as i64;
        let Some(last) = files.last_mut() else { return Ok(()) };
        if last.header.begin_phy_offset as u64 >= valid_end {
            let header = Header { begin_phy_offset: end_kept, end_phy_offset: end_kept, ..Header::EMPTY };
            last.reset(&geo, header)?;
        } else if last.header.end_phy_offset as u64 >= valid_end {
            let header = Header { end_phy_offset: end_kept, ..last.header };
            last.write_header(header)?;
        }
        Ok(())
    }

    /// Retention: deletes the oldest files whose endPhyOffset is below `commit_log_min_offset`,
    /// never the newest. Returns how many were deleted.
    ///
    /// # Errors
    /// A file could not be removed (it is no longer used either way).
    pub fn delete_before(&self, commit_log_min_offset: u64) -> Result<usize> {
        let mut files = self.write();
        let expired = files
            .iter()
            .take(files.len().saturating_sub(1))
            .take_while(|f| (f.header.end_phy_offset as u64) < commit_log_min_offset)
            .count();
        for file in files.drain(..expired) {
            remove(file)?;
        }
        Ok(expired)
    }

    /// Number of files.
    pub fn file_count(&self) -> usize {
        self.read().len()
    }
}

/// The header of a file that follows one whose header is `prev`: it begins where `prev` ended.
fn continued_header(prev: &Header) -> Header {
    Header {
        begin_timestamp: prev.end_timestamp,
        end_timestamp: prev.end_timestamp,
        begin_phy_offset: prev.end_phy_offset,
        end_phy_offset: prev.end_phy_offset,
        ..Header::EMPTY
    }
}

/// `topic#key`, the string an index entry hashes.
fn index_key(topic: &str, key: &str) -> String {
    let mut s = String::with_capacity(topic.len() + 1 + key.len());
    s.push_str(topic);
    s.push('#');
    s.push_str(key);
    s
}

/// The index keys of a record: `UNIQ_KEY`, then each non-empty `KEYS` value.
fn record_keys(record: &StoredRecord<'_>) -> Vec<String> {
    let uniq = property(record.properties, PROPERTY_UNIQ_KEY);
    let keys = property(record.properties, PROPERTY_KEYS)
        .into_iter()
        .flat_map(|k| k.split(KEY_SEPARATOR))
        .filter(|k| !k.is_empty());
    uniq.into_iter().chain(keys).map(|k| index_key(record.topic, k)).collect()
}

fn is_file_name(name: &str) -> bool {
    name.len() == FILE_NAME_CHARS && name.bytes().all(|b| b.is_ascii_digit())
}

fn file_name_of(path: &Path) -> String {
    path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string()
}

/// Opens and validates one file.
fn open_file(path: &Path, geo: &Geometry) -> Result<IndexFile> {
    let len = std::fs::metadata(path).map_err(Error::io(path))?.len();
    if len != geo.file_bytes as u64 {
        return Err(Error::Corrupt {
            file: path.to_path_buf(),
            offset: len,
            reason: format!("length {len}, expected {}", geo.file_bytes),
        });
    }
    let region = MappedRegion::open(path, geo.file_bytes).map_err(Error::io(path))?;
    let header = Header::decode(&region, geo.slots, geo.entries_max).map_err(|reason| Error::Corrupt {
        file: path.to_path_buf(),
        offset: 0,
        reason,
    })?;
    Ok(IndexFile { region, header, dirty: AtomicBool::new(false) })
}

/// Unmaps and deletes a file.
fn remove(file: IndexFile) -> Result<()> {
    let path = file.path().to_path_buf();
    drop(file);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path)(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
