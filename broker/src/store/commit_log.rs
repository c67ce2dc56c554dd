//! CommitLog: the append-only sequence of message records in fixed-size mapped segment files.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;

use std::collections::HashMap;

use super::QueueMap;
use super::error::{Error, Result};
use super::faults::Faults;
use super::format::{
    self, END_FILE_MIN_BLANK_BYTES, MessageInput, Placement, TRANSACTION_PREPARED_TYPE, TRANSACTION_ROLLBACK_TYPE,
};
use super::mapped_file::{MappedFile, WriteMode};

/// Suffix of a segment being prepared in the background; recovery deletes leftovers.
pub(crate) const SPARE_SUFFIX: &str = ".alloc";

/// The next segment: being zero-filled, or filled and waiting.
enum Spare {
    /// Being zero-filled; setting the flag makes the filler go at full speed (someone waits).
    Filling(u64, std::thread::JoinHandle<std::io::Result<MappedFile>>, Arc<AtomicBool>),
    Ready(u64, MappedFile),
}

impl Spare {
    fn start(&self) -> u64 {
        match self {
            Spare::Filling(at, ..) | Spare::Ready(at, _) => *at,
        }
    }

    fn finish(self) -> (u64, std::io::Result<MappedFile>) {
        match self {
            Spare::Filling(at, h, hurry) => {
                hurry.store(true, Ordering::Release);
                (at, h.join().unwrap_or_else(|_| Err(std::io::Error::other("allocation thread panicked"))))
            }
            Spare::Ready(at, f) => (at, Ok(f)),
        }
    }
}

/// Where one appended message went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    pub physical_offset: u64,
    pub queue_offset: u64,
    pub record_bytes: u32,
}

/// The result of appending one message or one batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendResult {
    pub messages: Vec<Appended>,
    pub store_timestamp: i64,
    /// CommitLog offset just past the last record: durable once the flush reaches it.
    pub end_offset: u64,
}

struct Writer {
    /// Next queue offset of each `(topic, queue)`.
    queue_offsets: QueueMap<u64>,
    buf: Vec<u8>,
}

pub(crate) struct CommitLog {
    dir: PathBuf,
    file_bytes: usize,
    write_mode: WriteMode,
    /// The next segment, being zero-filled in the background (SYNC_FLUSH only).
    spare: Mutex<Option<Spare>>,
    files: RwLock<Vec<Arc<MappedFile>>>,
    writer: Mutex<Writer>,
    /// End of the published log.
    max_offset: AtomicU64,
    /// Everything below is on disk.
    flushed_offset: AtomicU64,
    /// Store time of the newest appended record, and of the newest flushed one.
    last_store_timestamp: AtomicI64,
    flushed_store_timestamp: AtomicI64,
}

impl CommitLog {
    /// A CommitLog over recovered files (oldest first, write positions set).
    ///
    /// With [`WriteMode::Syscall`] (SYNC_FLUSH) new segments are zero-filled before use, the next
    /// one always in the background, so that each group commit syncs data only.
    pub(crate) fn new(
        dir: &Path,
        file_bytes: usize,
        mut files: Vec<MappedFile>,
        last_store_timestamp: i64,
        write_mode: WriteMode,
    ) -> CommitLog {
        for f in &mut files {
            f.set_write_mode(write_mode);
        }
        let files: Vec<Arc<MappedFile>> = files.into_iter().map(Arc::new).collect();
        let max = files.last().map_or(0, |f| f.start_offset() + f.wrote() as u64);
        let next = files.last().map_or(0, |f| f.start_offset() + file_bytes as u64);
        let log = CommitLog {
            dir: dir.to_path_buf(),
            file_bytes,
            write_mode,
            spare: Mutex::new(None),
            files: RwLock::new(files),
            writer: Mutex::new(Writer { queue_offsets: HashMap::new(), buf: Vec::with_capacity(64 * 1024) }),
            max_offset: AtomicU64::new(max),
            flushed_offset: AtomicU64::new(max),
            last_store_timestamp: AtomicI64::new(last_store_timestamp),
            flushed_store_timestamp: AtomicI64::new(last_store_timestamp),
        };
        if write_mode == WriteMode::Syscall {
            log.prepare_spare(next);
        }
        log
    }

    /// Starts zero-filling the segment at `start` in the background, paced
    /// ([`MappedFile::create_prefilled_paced`]) so that the group commits' syncs do not queue
    /// behind a gigabyte of zeros; at full speed once an appender needs the file.
    fn prepare_spare(&self, start: u64) {
        let path = self.dir.join(format!("{}{SPARE_SUFFIX}", format::offset_file_name(start)));
        let size = self.file_bytes;
        let _ = std::fs::remove_file(&path);
        let hurry = Arc::new(AtomicBool::new(false));
        let hurry_filler = Arc::clone(&hurry);
        let spawned = std::thread::Builder::new()
            .name("store-allocate".into())
            .spawn(move || MappedFile::create_prefilled_paced(&path, start, size, &hurry_filler));
        if let Ok(handle) = spawned {
            *self.spare.lock().unwrap_or_else(|p| p.into_inner()) = Some(Spare::Filling(start, handle, hurry));
        }
    }

    /// Waits until the background zero-fill of the next segment (if any) has finished.
    pub(crate) fn wait_spare(&self) {
        let mut spare = self.spare.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = spare.take() {
            let (at, made) = s.finish();
            if let Ok(f) = made {
                *spare = Some(Spare::Ready(at, f));
            }
        }
    }

    /// The prepared segment for `start`, if one was being made (waits for it to finish).
    fn take_spare(&self, start: u64) -> Option<MappedFile> {
        let spare = self.spare.lock().unwrap_or_else(|p| p.into_inner()).take()?;
        let (at, made) = spare.finish();
        match made {
            Ok(f) if at == start => Some(f),
            Ok(f) => {
                let p = f.path().to_path_buf();
                drop(f);
                let _ = std::fs::remove_file(p);
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "Preparing the next CommitLog file failed; creating it now.");
                None
            }
        }
    }

    pub(crate) fn set_queue_offsets(&self, offsets: QueueMap<u64>) {
        self.writer.lock().unwrap_or_else(|p| p.into_inner()).queue_offsets = offsets;
    }

    /// End of the published log.
    pub(crate) fn max_offset(&self) -> u64 {
        self.max_offset.load(Ordering::Acquire)
    }

    /// Start of the oldest file still present.
    pub(crate) fn min_offset(&self) -> u64 {
        let files = self.files.read().unwrap_or_else(|p| p.into_inner());
        files.first().map_or(0, |f| f.start_offset())
    }

    pub(crate) fn flushed_offset(&self) -> u64 {
        self.flushed_offset.load(Ordering::Acquire)
    }

    pub(crate) fn flushed_store_timestamp(&self) -> i64 {
        self.flushed_store_timestamp.load(Ordering::Acquire)
    }

    pub(crate) fn file_bytes(&self) -> usize {
        self.file_bytes
    }

    /// Appends a batch of messages for one topic and queue as consecutive records in one file.
    ///
    /// # Errors
    /// `DiskFull` when a new segment cannot be created, `InvalidMessage` for a batch larger than a
    /// segment; nothing is appended then.
    pub(crate) fn append(&self, batch: &[MessageInput], now_ms: i64) -> Result<AppendResult> {
        let Some(first) = batch.first() else {
            return Err(Error::InvalidMessage("empty batch".into()));
        };
        let total: usize = batch.iter().map(MessageInput::record_bytes).sum();
        if total + END_FILE_MIN_BLANK_BYTES > self.file_bytes {
            return Err(Error::InvalidMessage(format!(
                "batch of {total} bytes does not fit in a CommitLog file of {} bytes",
                self.file_bytes
            )));
        }
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut file = self.writable_file(total)?;
        // The store clock never runs backwards within the log.
        let store_timestamp = now_ms.max(self.last_store_timestamp.load(Ordering::Relaxed));
        let base_queue_offset =
            w.queue_offsets.get(first.topic.as_str()).and_then(|q| q.get(&first.queue_id)).copied().unwrap_or(0);
        let Writer { buf, .. } = &mut *w;
        let mut appended = Vec::with_capacity(batch.len());
        loop {
            buf.clear();
            let mut phys = file.start_offset() + file.wrote() as u64;
            let mut queue_offset = base_queue_offset;
            appended.clear();
            for msg in batch {
                let tx = msg.transaction_type();
                let counts = tx != TRANSACTION_PREPARED_TYPE && tx != TRANSACTION_ROLLBACK_TYPE;
                let placement = Placement {
                    queue_offset: if counts { queue_offset } else { 0 },
                    physical_offset: phys,
                    store_timestamp,
                };
                let before = buf.len();
                format::encode_record(msg, placement, buf);
                let len = (buf.len() - before) as u32;
                appended.push(Appended {
                    physical_offset: phys,
                    queue_offset: placement.queue_offset,
                    record_bytes: len,
                });
                phys += u64::from(len);
                if counts {
                    queue_offset += 1;
                }
            }
            if file.append(buf).map_err(Error::io(file.path()))?.is_some() {
                let end = phys;
                match w.queue_offsets.get_mut(first.topic.as_str()) {
                    Some(q) => {
                        q.insert(first.queue_id, queue_offset);
                    }
                    None => {
                        w.queue_offsets.insert(first.topic.clone(), HashMap::from([(first.queue_id, queue_offset)]));
                    }
                }
                self.last_store_timestamp.store(store_timestamp, Ordering::Release);
                self.max_offset.store(end, Ordering::Release);
                return Ok(AppendResult { messages: appended, store_timestamp, end_offset: end });
            }
            // Lost a race with nothing (we hold the writer lock): the file cannot take it; roll.
            file = self.roll(&file)?;
        }
    }

    /// The last file if `record_bytes` (+ the filler reserve) fit in it, else a fresh one after a
    /// filler closes the last.
    fn writable_file(&self, record_bytes: usize) -> Result<Arc<MappedFile>> {
        let last = self.files.read().unwrap_or_else(|p| p.into_inner()).last().cloned();
        match last {
            Some(f) if f.remaining() >= record_bytes + END_FILE_MIN_BLANK_BYTES => Ok(f),
            Some(f) => self.roll(&f),
            None => self.create_file(self.max_offset()),
        }
    }

    /// Closes `full` with a filler (if not closed yet) and creates the next file.
    fn roll(&self, full: &Arc<MappedFile>) -> Result<Arc<MappedFile>> {
        let remaining = full.remaining();
        if remaining > 0 {
            let mut filler = Vec::with_capacity(END_FILE_MIN_BLANK_BYTES);
            format::encode_blank(remaining, &mut filler);
            // Only the filler's 8 bytes are written; the rest of the file stays as it is.
            if full.append(&filler).map_err(Error::io(full.path()))?.is_none() {
                return Err(Error::Corrupt {
                    file: full.path().to_path_buf(),
                    offset: full.wrote() as u64,
                    reason: "no room for the end-of-file filler".into(),
                });
            }
            // Readers treat the file as ended; publish the whole length.
            full.append_at(self.file_bytes, &[]).map_err(Error::io(full.path()))?;
        }
        let next = full.start_offset() + self.file_bytes as u64;
        let file = self.create_file(next)?;
        // Only now may readers step over the filler: the file after it exists.
        self.max_offset.fetch_max(next, Ordering::AcqRel);
        Ok(file)
    }

    fn create_file(&self, start: u64) -> Result<Arc<MappedFile>> {
        let path = self.dir.join(format::offset_file_name(start));
        // Keep headroom so that the units, index entries, checkpoint and offsets of what is
        // already acknowledged can still be written when data writes stop.
        if let Some((free, reserve)) = super::disk::free_and_reserve_bytes(&self.dir) {
            let spare_ready =
                self.spare.lock().unwrap_or_else(|p| p.into_inner()).as_ref().is_some_and(|s| s.start() == start);
            let needed = if spare_ready { 0 } else { self.file_bytes as u64 };
            if free < needed + reserve {
                return Err(Error::DiskFull(format!(
                    "{free} bytes free under {}, a new CommitLog file needs {needed} plus {reserve} kept in reserve",
                    self.dir.display()
                )));
            }
        }
        let file = match self.write_mode {
            WriteMode::Map => MappedFile::create(&path, start, self.file_bytes).map_err(Error::io(&path))?,
            WriteMode::Syscall => {
                let f = match self.take_spare(start) {
                    Some(mut f) => {
                        f.rename(&path).map_err(Error::io(&path))?;
                        f
                    }
                    None => MappedFile::create_prefilled(&path, start, self.file_bytes).map_err(Error::io(&path))?,
                };
                self.prepare_spare(start + self.file_bytes as u64);
                f
            }
        };
        super::sync_dir(&self.dir)?;
        let file = Arc::new(file);
        self.files.write().unwrap_or_else(|p| p.into_inner()).push(Arc::clone(&file));
        Ok(file)
    }

    /// Where a replica's next byte goes: the end of everything written, including a record that a
    /// replication chunk cut in two (written but not yet published to readers).
    pub(crate) fn written_offset(&self) -> u64 {
        let files = self.files.read().unwrap_or_else(|p| p.into_inner());
        files.last().map_or_else(|| self.max_offset(), |f| f.start_offset() + f.wrote() as u64)
    }

    /// Appends bytes copied from a master's CommitLog at exactly `offset` (which must be where this
    /// log ends; an empty log may start at any file boundary), creating files at the master's
    /// boundaries, then publishes every record that is now complete. Returns the new written end.
    ///
    /// # Errors
    /// `ReplicaOffset` when `offset` does not continue the log; `Corrupt` when the bytes are not
    /// records (nothing past the last good record is published then); I/O errors.
    pub(crate) fn append_replica(&self, offset: u64, mut data: &[u8]) -> Result<u64> {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let file_bytes = self.file_bytes as u64;
        let empty = self.files.read().unwrap_or_else(|p| p.into_inner()).is_empty();
        let end = self.written_offset();
        let fits = if empty { offset.is_multiple_of(file_bytes) } else { offset == end };
        if !fits {
            return Err(Error::ReplicaOffset { expected: end, got: offset });
        }
        if empty {
            self.max_offset.store(offset, Ordering::Release);
            self.flushed_offset.store(offset, Ordering::Release);
        }
        let mut at = offset;
        while !data.is_empty() {
            let file = match self.last_file() {
                Some(f) if at < f.start_offset() + file_bytes => f,
                _ => self.create_file(at)?,
            };
            let rel = (at - file.start_offset()) as usize;
            let n = data.len().min(self.file_bytes - rel);
            if !file.append_at(rel, &data[..n]).map_err(Error::io(file.path()))? {
                return Err(Error::ReplicaOffset { expected: file.start_offset() + file.wrote() as u64, got: at });
            }
            at += n as u64;
            data = &data[n..];
        }
        self.publish_replicated()?;
        Ok(at)
    }

    /// Moves the published end over every complete record (and every filler whose next file
    /// exists) that replication has written.
    fn publish_replicated(&self) -> Result<()> {
        let file_bytes = self.file_bytes as u64;
        let mut pos = self.max_offset().max(self.min_offset());
        let mut newest_ts = None;
        let result = loop {
            let Some(file) = self.file_at(pos) else { break Ok(()) };
            let rel = (pos - file.start_offset()) as usize;
            let Some(head) = file.read(rel, 8) else { break Ok(()) };
            let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
            let magic = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
            if magic == format::BLANK_MAGIC {
                let next = file.start_offset() + file_bytes;
                if self.file_at(next).is_none() {
                    break Ok(());
                }
                pos = next;
                continue;
            }
            if magic != format::MESSAGE_MAGIC || size < format::RECORD_FIXED_BYTES_V4 || size > self.file_bytes - rel {
                break Err(Error::Corrupt {
                    file: file.path().to_path_buf(),
                    offset: rel as u64,
                    reason: "replicated bytes are not a record".into(),
                });
            }
            let Some(bytes) = file.read(rel, size) else { break Ok(()) };
            match format::scan_record(bytes, false) {
                format::Scanned::Record(r) => {
                    newest_ts = Some(r.store_timestamp);
                    pos += size as u64;
                }
                _ => {
                    break Err(Error::Corrupt {
                        file: file.path().to_path_buf(),
                        offset: rel as u64,
                        reason: "replicated record does not parse".into(),
                    });
                }
            }
        };
        if let Some(ts) = newest_ts {
            self.last_store_timestamp.fetch_max(ts, Ordering::AcqRel);
        }
        self.max_offset.fetch_max(pos, Ordering::AcqRel);
        result
    }

    /// Up to `bytes_max` published bytes from `offset`, never across a file end: what a master
    /// sends its slave. `None` when no file holds `offset` (deleted, or not written yet).
    pub(crate) fn read_for_transfer(&self, offset: u64, bytes_max: usize) -> Option<Bytes> {
        let file = self.file_at(offset)?;
        let rel = (offset - file.start_offset()) as usize;
        let published = self.max_offset().saturating_sub(offset);
        let in_file = file.wrote().saturating_sub(rel) as u64;
        let n = published.min(in_file).min(bytes_max as u64) as usize;
        if n == 0 {
            return None;
        }
        file.read_shared(rel, n)
    }

    /// Start of the newest file: where a master starts an empty slave (as RocketMQ does).
    pub(crate) fn newest_file_start(&self) -> u64 {
        self.last_file().map_or(0, |f| f.start_offset())
    }

    /// The file holding `offset`.
    pub(crate) fn file_at(&self, offset: u64) -> Option<Arc<MappedFile>> {
        let files = self.files.read().unwrap_or_else(|p| p.into_inner());
        let first = files.first()?.start_offset();
        if offset < first {
            return None;
        }
        let i = ((offset - first) / self.file_bytes as u64) as usize;
        let f = files.get(i)?;
        (f.start_offset() <= offset && offset < f.start_offset() + self.file_bytes as u64).then(|| Arc::clone(f))
    }

    /// The `size` published bytes at `offset`, zero-copy.
    pub(crate) fn read(&self, offset: u64, size: usize) -> Option<Bytes> {
        let file = self.file_at(offset)?;
        file.read_shared((offset - file.start_offset()) as usize, size)
    }

    /// The whole record at `offset` (its length read from its first 4 bytes).
    pub(crate) fn read_record(&self, offset: u64) -> Option<Bytes> {
        let file = self.file_at(offset)?;
        let pos = (offset - file.start_offset()) as usize;
        let len = u32::from_be_bytes(file.read(pos, 4)?.try_into().ok()?) as usize;
        if len < format::RECORD_FIXED_BYTES_V4 {
            return None;
        }
        file.read_shared(pos, len)
    }

    /// msyncs everything published. Returns the flushed offset.
    ///
    /// # Errors
    /// The sync failed (or was made to fail): the store must poison itself.
    pub(crate) fn flush(&self, faults: &Faults) -> Result<u64> {
        let target = self.max_offset();
        let ts = self.last_store_timestamp.load(Ordering::Acquire);
        let flushed = self.flushed_offset();
        if target <= flushed {
            return Ok(flushed);
        }
        let files: Vec<Arc<MappedFile>> = {
            let files = self.files.read().unwrap_or_else(|p| p.into_inner());
            files
                .iter()
                .filter(|f| f.start_offset() + self.file_bytes as u64 > flushed && f.start_offset() < target)
                .cloned()
                .collect()
        };
        for f in &files {
            faults.check_sync().map_err(Error::io(f.path()))?;
            f.flush().map_err(Error::io(f.path()))?;
        }
        self.flushed_offset.fetch_max(target, Ordering::AcqRel);
        self.flushed_store_timestamp.fetch_max(ts, Ordering::AcqRel);
        Ok(target)
    }

    /// Unflushed bytes.
    pub(crate) fn dirty_bytes(&self) -> u64 {
        self.max_offset().saturating_sub(self.flushed_offset())
    }

    /// All files, oldest first.
    /// The file appends go to now.
    pub(crate) fn last_file(&self) -> Option<Arc<MappedFile>> {
        self.files.read().unwrap_or_else(|p| p.into_inner()).last().cloned()
    }

    pub(crate) fn files(&self) -> Vec<Arc<MappedFile>> {
        self.files.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Retention: unlinks the oldest file if `keep` says so; never the newest. Returns the deleted
    /// file's path.
    pub(crate) fn delete_oldest_if(&self, keep: impl Fn(&MappedFile) -> bool) -> Result<Option<PathBuf>> {
        let mut files = self.files.write().unwrap_or_else(|p| p.into_inner());
        if files.len() < 2 || keep(&files[0]) {
            return Ok(None);
        }
        let f = files.remove(0);
        let path = f.path().to_path_buf();
        drop(files);
        // Readers holding the Arc keep the mapping; the name goes now.
        std::fs::remove_file(&path).map_err(Error::io(&path))?;
        Ok(Some(path))
    }
}

impl Drop for CommitLog {
    fn drop(&mut self) {
        // Let a background zero-fill finish rather than leave it writing into a closed store.
        if let Some(spare) = self.spare.lock().unwrap_or_else(|p| p.into_inner()).take()
            && let (_, Ok(f)) = spare.finish()
        {
            let p = f.path().to_path_buf();
            drop(f);
            let _ = std::fs::remove_file(p);
        }
    }
}
