//! ConsumeQueue: per topic and queue, the index of 20-byte units that point into the CommitLog.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::error::{Error, Result};
use super::faults::Faults;
use super::format::{self, CQ_UNIT_BYTES, CqUnit};
use super::mapped_file::MappedFile;

/// What `put` found at the queue offset of a unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PutOutcome {
    Appended,
    /// The same unit is already there (re-dispatch after recovery).
    AlreadyPresent,
    /// A different unit is there, or units are missing before it: the queue must be rebuilt.
    Inconsistent,
}

pub(crate) struct ConsumeQueue {
    topic: String,
    queue_id: u32,
    dir: PathBuf,
    file_bytes: usize,
    files: RwLock<Vec<Arc<MappedFile>>>,
    /// First queue offset that is not padding (moves up with retention).
    min_offset: AtomicU64,
    /// Next queue offset to be written (the number of units, padding included).
    max_offset: AtomicU64,
}

impl ConsumeQueue {
    /// An empty queue whose files will live in `dir`.
    pub(crate) fn new(topic: &str, queue_id: u32, dir: PathBuf, file_bytes: usize) -> ConsumeQueue {
        ConsumeQueue {
            topic: topic.to_string(),
            queue_id,
            dir,
            file_bytes: file_bytes / CQ_UNIT_BYTES * CQ_UNIT_BYTES,
            files: RwLock::new(Vec::new()),
            min_offset: AtomicU64::new(0),
            max_offset: AtomicU64::new(0),
        }
    }

    /// Opens the queue's files and finds its end: the first never-written unit. Returns the queue
    /// and whether its files look damaged (missing in the middle, wrong size): then it must be
    /// rebuilt from the CommitLog.
    pub(crate) fn open(topic: &str, queue_id: u32, dir: PathBuf, file_bytes: usize) -> Result<(ConsumeQueue, bool)> {
        let cq = ConsumeQueue::new(topic, queue_id, dir, file_bytes);
        let mut names = super::list_offset_files(&cq.dir)?;
        names.sort_unstable();
        let mut damaged = names.is_empty();
        let mut files = Vec::with_capacity(names.len());
        let mut expected = names.first().copied();
        for start in names {
            let path = cq.dir.join(format::offset_file_name(start));
            if Some(start) != expected || start % cq.file_bytes as u64 != 0 {
                damaged = true;
                break;
            }
            match MappedFile::open(&path, start, cq.file_bytes) {
                Ok(f) => files.push(f),
                Err(_) => {
                    damaged = true;
                    break;
                }
            }
            expected = Some(start + cq.file_bytes as u64);
        }
        if damaged {
            drop(files);
            return Ok((cq, true));
        }
        // Every file but the last is full; the last ends at its first empty unit.
        let n = files.len();
        for (i, f) in files.iter_mut().enumerate() {
            let end = if i + 1 < n { f.size_bytes() } else { first_empty_unit(f.recovery_view()) };
            f.set_wrote(end);
        }
        cq.install(files);
        Ok((cq, false))
    }

    fn install(&self, files: Vec<MappedFile>) {
        let files: Vec<Arc<MappedFile>> = files.into_iter().map(Arc::new).collect();
        let max = files.last().map_or(0, |f| (f.start_offset() + f.wrote() as u64) / CQ_UNIT_BYTES as u64);
        *self.files.write().unwrap_or_else(|p| p.into_inner()) = files;
        self.max_offset.store(max, Ordering::Release);
        let min = self.first_real_offset(0);
        self.min_offset.store(min, Ordering::Release);
    }

    pub(crate) fn min_offset(&self) -> u64 {
        self.min_offset.load(Ordering::Acquire)
    }

    pub(crate) fn max_offset(&self) -> u64 {
        self.max_offset.load(Ordering::Acquire)
    }

    pub(crate) fn topic(&self) -> &str {
        &self.topic
    }

    pub(crate) fn queue_id(&self) -> u32 {
        self.queue_id
    }

    /// CommitLog offset just past the record of the last unit, if any.
    pub(crate) fn last_unit_end(&self) -> Option<u64> {
        let max = self.max_offset();
        let u = self.unit(max.checked_sub(1)?)?;
        (!u.is_pad()).then(|| u.physical_offset + u.size.max(0) as u64)
    }

    /// Writes the unit for `queue_offset` (dispatcher only).
    ///
    /// # Errors
    /// A new file could not be created.
    pub(crate) fn put(&self, queue_offset: u64, unit: CqUnit) -> Result<PutOutcome> {
        let max = self.max_offset();
        if queue_offset < max {
            return Ok(match self.unit(queue_offset) {
                Some(u) if u == unit => PutOutcome::AlreadyPresent,
                _ if queue_offset < self.min_offset() => PutOutcome::AlreadyPresent,
                _ => PutOutcome::Inconsistent,
            });
        }
        if queue_offset > max {
            let empty = self.files.read().unwrap_or_else(|p| p.into_inner()).is_empty();
            if !empty {
                return Ok(PutOutcome::Inconsistent);
            }
            // A queue that starts mid-stream (its front was deleted): pad from its file's start.
            let file_units = (self.file_bytes / CQ_UNIT_BYTES) as u64;
            let start_unit = queue_offset / file_units * file_units;
            let file = self.create_file(start_unit * CQ_UNIT_BYTES as u64)?;
            let pad = CqUnit::PAD.encode();
            for _ in start_unit..queue_offset {
                file.append(&pad).map_err(Error::io(file.path()))?;
            }
            self.max_offset.store(queue_offset, Ordering::Release);
            self.min_offset.store(queue_offset, Ordering::Release);
        }
        let file = self.writable_file()?;
        if file.append(&unit.encode()).map_err(Error::io(file.path()))?.is_none() {
            return Err(Error::Corrupt {
                file: file.path().to_path_buf(),
                offset: file.wrote() as u64,
                reason: format!("ConsumeQueue {}/{} file full after rolling", self.topic, self.queue_id),
            });
        }
        self.max_offset.store(queue_offset + 1, Ordering::Release);
        Ok(PutOutcome::Appended)
    }

    fn writable_file(&self) -> Result<Arc<MappedFile>> {
        let last = self.files.read().unwrap_or_else(|p| p.into_inner()).last().cloned();
        match last {
            Some(f) if !f.is_full() => Ok(f),
            Some(f) => self.create_file(f.start_offset() + self.file_bytes as u64),
            None => self.create_file(0),
        }
    }

    fn create_file(&self, start: u64) -> Result<Arc<MappedFile>> {
        std::fs::create_dir_all(&self.dir).map_err(Error::io(&self.dir))?;
        let path = self.dir.join(format::offset_file_name(start));
        let file = Arc::new(MappedFile::create(&path, start, self.file_bytes).map_err(Error::io(&path))?);
        super::sync_dir(&self.dir)?;
        self.files.write().unwrap_or_else(|p| p.into_inner()).push(Arc::clone(&file));
        Ok(file)
    }

    fn file_for(&self, queue_offset: u64) -> Option<(Arc<MappedFile>, usize)> {
        let byte = queue_offset.checked_mul(CQ_UNIT_BYTES as u64)?;
        let files = self.files.read().unwrap_or_else(|p| p.into_inner());
        let first = files.first()?.start_offset();
        if byte < first {
            return None;
        }
        let f = files.get(((byte - first) / self.file_bytes as u64) as usize)?;
        Some((Arc::clone(f), (byte - f.start_offset()) as usize))
    }

    /// The unit at `queue_offset`, if written.
    pub(crate) fn unit(&self, queue_offset: u64) -> Option<CqUnit> {
        let (f, pos) = self.file_for(queue_offset)?;
        CqUnit::decode(f.read(pos, CQ_UNIT_BYTES)?)
    }

    /// Up to `max_count` units from `queue_offset`, in order (stops at a file end or the queue end).
    pub(crate) fn units(&self, queue_offset: u64, max_count: usize) -> Vec<CqUnit> {
        let mut out = Vec::new();
        let mut at = queue_offset;
        while out.len() < max_count {
            let Some((f, pos)) = self.file_for(at) else { break };
            let Some(bytes) = f.read_from(pos) else { break };
            if bytes.is_empty() {
                break;
            }
            for chunk in bytes.chunks_exact(CQ_UNIT_BYTES).take(max_count - out.len()) {
                if let Some(u) = CqUnit::decode(chunk) {
                    out.push(u);
                }
            }
            at = queue_offset + out.len() as u64;
        }
        out
    }

    fn first_real_offset(&self, from: u64) -> u64 {
        let max = self.max_offset();
        let first_file = self.files.read().unwrap_or_else(|p| p.into_inner()).first().map_or(0, |f| f.start_offset());
        let mut at = from.max(first_file / CQ_UNIT_BYTES as u64);
        while at < max {
            let batch = self.units(at, 1024);
            if batch.is_empty() {
                break;
            }
            for u in &batch {
                if !u.is_pad() {
                    return at;
                }
                at += 1;
            }
        }
        at
    }

    /// Recovery: drops every unit that points at or past `valid_end` of the CommitLog.
    pub(crate) fn truncate_to(&self, valid_end: u64) -> Result<()> {
        let max = self.max_offset();
        let min = self.min_offset();
        // Find the first unit whose record does not end within the valid log.
        let mut keep = max;
        while keep > min {
            match self.unit(keep - 1) {
                Some(u) if !u.is_pad() && u.physical_offset + u.size as u64 > valid_end => keep -= 1,
                _ => break,
            }
        }
        if keep == max {
            return Ok(());
        }
        self.rewrite_from(keep)
    }

    /// Cuts the queue at `keep` units: files after are deleted, the tail of the last one zeroed.
    fn rewrite_from(&self, keep: u64) -> Result<()> {
        let mut files = self.files.write().unwrap_or_else(|p| p.into_inner());
        let byte = keep * CQ_UNIT_BYTES as u64;
        let mut kept = Vec::new();
        for f in files.drain(..) {
            if f.start_offset() >= byte && !(byte == 0 && f.start_offset() == 0) {
                std::fs::remove_file(f.path()).map_err(Error::io(f.path()))?;
                continue;
            }
            kept.push(f);
        }
        if let Some(last) = kept.pop() {
            let path = last.path().to_path_buf();
            let start = last.start_offset();
            let mut owned = match Arc::try_unwrap(last) {
                Ok(f) => f,
                Err(_) => MappedFile::open(&path, start, self.file_bytes).map_err(Error::io(&path))?,
            };
            owned.zero_tail((byte - start) as usize).map_err(Error::io(&path))?;
            kept.push(Arc::new(owned));
        }
        *files = kept;
        drop(files);
        self.max_offset.store(keep, Ordering::Release);
        if self.min_offset() > keep {
            self.min_offset.store(keep, Ordering::Release);
        }
        Ok(())
    }

    /// Removes all units and files (before a rebuild).
    pub(crate) fn clear(&self) -> Result<()> {
        let mut files = self.files.write().unwrap_or_else(|p| p.into_inner());
        for f in files.drain(..) {
            std::fs::remove_file(f.path()).map_err(Error::io(f.path()))?;
        }
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        self.max_offset.store(0, Ordering::Release);
        self.min_offset.store(0, Ordering::Release);
        Ok(())
    }

    /// Retention: deletes files whose every unit points below `commit_log_min` (never the last
    /// file), and moves the minimum offset to the first unit still in the CommitLog.
    pub(crate) fn delete_before(&self, commit_log_min: u64) -> Result<usize> {
        let mut deleted = 0;
        loop {
            let mut files = self.files.write().unwrap_or_else(|p| p.into_inner());
            if files.len() < 2 {
                break;
            }
            let f = &files[0];
            let last_pos = f.size_bytes() - CQ_UNIT_BYTES;
            let expired = f
                .read(last_pos, CQ_UNIT_BYTES)
                .and_then(CqUnit::decode)
                .is_some_and(|u| u.physical_offset + (u.size.max(0) as u64) <= commit_log_min);
            if !expired {
                break;
            }
            let f = files.remove(0);
            drop(files);
            std::fs::remove_file(f.path()).map_err(Error::io(f.path()))?;
            deleted += 1;
        }
        // Advance the minimum past units whose records are gone.
        let first_file = self.files.read().unwrap_or_else(|p| p.into_inner()).first().map(|f| f.start_offset());
        let mut at = self.min_offset().max(first_file.unwrap_or(0) / CQ_UNIT_BYTES as u64);
        let max = self.max_offset();
        while at < max {
            match self.unit(at) {
                Some(u) if u.is_pad() || u.physical_offset < commit_log_min => at += 1,
                _ => break,
            }
        }
        self.min_offset.store(at, Ordering::Release);
        Ok(deleted)
    }

    /// msyncs every file with unflushed units.
    pub(crate) fn flush(&self, faults: &Faults) -> Result<()> {
        let files = self.files.read().unwrap_or_else(|p| p.into_inner()).clone();
        for f in files.iter().rev() {
            if f.flushed() >= f.wrote() {
                break;
            }
            faults.check_sync().map_err(Error::io(f.path()))?;
            f.flush().map_err(Error::io(f.path()))?;
        }
        Ok(())
    }
}

/// Byte length of the written prefix: up to the first all-zero unit.
fn first_empty_unit(view: &[u8]) -> usize {
    let mut pos = 0;
    while pos + CQ_UNIT_BYTES <= view.len() {
        if view[pos..pos + CQ_UNIT_BYTES].iter().all(|&b| b == 0) {
            break;
        }
        pos += CQ_UNIT_BYTES;
    }
    pos
}
