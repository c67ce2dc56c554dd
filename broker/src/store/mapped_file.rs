//! Memory-mapped files: the one module of the crate that contains `unsafe`.
//!
//! Two kinds of mapping live here, both built on memmap2:
//!
//! * [`MappedFile`]: an append-only segment (CommitLog, ConsumeQueue). One writer appends under an
//!   internal lock; readers share the file through an `Arc` and read only what was published.
//! * [`MappedRegion`]: a fixed-size random-access file (IndexFile), borrowed mutably for writes; the
//!   owner guards it with a lock, so Rust's borrow rules do the rest.
//!
//! # Contract (why the `unsafe` blocks are sound)
//!
//! 1. The store root is held under an exclusive lock file for the life of the process, so no other
//!    process of ours writes these files (see `store::lock`).
//! 2. Files are created at full size with block reservation (`fallocate`), never as sparse files, so
//!    a store into the mapping cannot fault for want of disk space.
//! 3. A mapped file is never truncated while mapped. It may be unlinked while mapped: the mapping
//!    stays valid until the last `Arc` is dropped.
//! 4. [`MappedFile`] uses `MmapRaw`: no `&`/`&mut` to the whole map ever exists. The single writer
//!    (holding `writer`) copies into `[wrote..]` with `ptr::copy_nonoverlapping`, then publishes the
//!    new length with `Release`. Readers `Acquire`-load `wrote` and form `&[u8]` only below it, a
//!    range no one writes again while the map is shared (recovery rewrites only under `&mut self`).
//! 5. Any msync/fsync error is reported to the caller, which poisons the store.
#![allow(unsafe_code, reason = "memmap2 mappings; the contract is in the module docs")]

use std::fs::{File, OpenOptions};
use std::io;
use std::ops::{Deref, DerefMut};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use memmap2::{MmapMut, MmapOptions, MmapRaw};

/// Pages are flushed in whole pages; `msync` wants a page-aligned start.
const PAGE_BYTES: usize = 4096;
/// Zeros written and synced at a time by a paced background fill.
pub const PACED_FILL_CHUNK_BYTES: u64 = 4 << 20;

/// How appends reach the page cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMode {
    /// Copy into the mapping: cheapest per append; syncs pay for write-protecting the pages.
    Map,
    /// `pwrite` into the file: a syscall per append, but a sync writes only data. Best with
    /// SYNC_FLUSH on a file whose blocks were written once already ([`MappedFile::create_prefilled`]).
    Syscall,
}

/// An append-only memory-mapped segment file.
pub struct MappedFile {
    path: PathBuf,
    write_mode: WriteMode,
    file: File,
    map: MmapRaw,
    /// Offset of the file's first byte in the logical stream (the 20-digit file name).
    start_offset: u64,
    size_bytes: usize,
    /// Bytes published to readers: `[0..wrote)` is immutable while the file is shared.
    wrote: AtomicUsize,
    /// Bytes known to be on disk.
    flushed: AtomicUsize,
    writer: Mutex<()>,
}

impl std::fmt::Debug for MappedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedFile")
            .field("path", &self.path)
            .field("start_offset", &self.start_offset)
            .field("wrote", &self.wrote())
            .finish()
    }
}

impl MappedFile {
    /// Creates a new file of `size_bytes` with its blocks reserved, and maps it.
    ///
    /// # Errors
    /// The file exists already, or the disk has no room (`ENOSPC`), or mapping failed.
    pub fn create(path: &Path, start_offset: u64, size_bytes: usize) -> io::Result<MappedFile> {
        let file = create_reserved(path, size_bytes)?;
        Self::map(path, file, start_offset, size_bytes)
    }

    /// Creates a new file of `size_bytes` by writing zeros through it and syncing, so that its
    /// blocks are allocated and written: later syncs of appended data then carry no metadata.
    /// The file appends with [`WriteMode::Syscall`].
    ///
    /// # Errors
    /// The file exists already, the disk has no room, or a write or the sync failed.
    pub fn create_prefilled(path: &Path, start_offset: u64, size_bytes: usize) -> io::Result<MappedFile> {
        Self::create_prefilled_paced(path, start_offset, size_bytes, &AtomicBool::new(true))
    }

    /// [`MappedFile::create_prefilled`] in the background: the zeros go out
    /// [`PACED_FILL_CHUNK_BYTES`] at a time, each synced, then a pause as long as that took. The
    /// disk then serves other syncs (a group commit's) between chunks: one waits behind a few
    /// milliseconds of zeros, not behind the whole file. Once `hurry` is set, no more pauses.
    ///
    /// # Errors
    /// As [`MappedFile::create_prefilled`].
    pub fn create_prefilled_paced(
        path: &Path,
        start_offset: u64,
        size_bytes: usize,
        hurry: &AtomicBool,
    ) -> io::Result<MappedFile> {
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(path)?;
        let filled = file
            .set_len(size_bytes as u64)
            .and_then(|()| {
                let mut at = 0u64;
                while at < size_bytes as u64 {
                    let len = (size_bytes as u64 - at).min(PACED_FILL_CHUNK_BYTES);
                    let began = std::time::Instant::now();
                    zero_by_writing(&file, at, len)?;
                    if !hurry.load(Ordering::Acquire) {
                        file.sync_data()?;
                        std::thread::sleep(began.elapsed());
                    }
                    at += len;
                }
                Ok(())
            })
            .and_then(|()| file.sync_all());
        if let Err(e) = filled {
            drop(file);
            let _ = std::fs::remove_file(path);
            return Err(e);
        }
        let mut f = Self::map(path, file, start_offset, size_bytes)?;
        f.write_mode = WriteMode::Syscall;
        Ok(f)
    }

    /// Chooses how appends are written.
    pub fn set_write_mode(&mut self, mode: WriteMode) {
        self.write_mode = mode;
    }

    /// Renames the file (a prepared spare taking its final name); the mapping is unaffected.
    ///
    /// # Errors
    /// The rename failed.
    pub fn rename(&mut self, to: &Path) -> io::Result<()> {
        std::fs::rename(&self.path, to)?;
        self.path = to.to_path_buf();
        Ok(())
    }

    /// Maps an existing file. Nothing is published until [`MappedFile::set_wrote`] says so.
    ///
    /// # Errors
    /// The file is missing, its length is not `size_bytes`, or mapping failed.
    pub fn open(path: &Path, start_offset: u64, size_bytes: usize) -> io::Result<MappedFile> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let len = file.metadata()?.len();
        if len != size_bytes as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: length {len}, expected {size_bytes}", path.display()),
            ));
        }
        Self::map(path, file, start_offset, size_bytes)
    }

    fn map(path: &Path, file: File, start_offset: u64, size_bytes: usize) -> io::Result<MappedFile> {
        let map = MmapOptions::new().len(size_bytes).map_raw(&file)?;
        Ok(MappedFile {
            path: path.to_path_buf(),
            write_mode: WriteMode::Map,
            file,
            map,
            start_offset,
            size_bytes,
            wrote: AtomicUsize::new(0),
            flushed: AtomicUsize::new(0),
            writer: Mutex::new(()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn start_offset(&self) -> u64 {
        self.start_offset
    }

    pub fn size_bytes(&self) -> usize {
        self.size_bytes
    }

    /// Bytes published to readers.
    pub fn wrote(&self) -> usize {
        self.wrote.load(Ordering::Acquire)
    }

    /// Bytes known to be durable.
    pub fn flushed(&self) -> usize {
        self.flushed.load(Ordering::Acquire)
    }

    pub fn remaining(&self) -> usize {
        self.size_bytes - self.wrote()
    }

    pub fn is_full(&self) -> bool {
        self.wrote() == self.size_bytes
    }

    /// Whether appends copy into the mapping (and so fault pages in as they go).
    pub fn writes_through_map(&self) -> bool {
        self.write_mode == WriteMode::Map
    }

    /// Brings `[from, from + len)` (clamped to the file) into the page cache and the page tables
    /// ahead of the writer, so an append's copy does not stop to allocate and zero fresh pages
    /// (`MADV_POPULATE_READ`: nothing is dirtied). A kernel without it just returns an error.
    pub fn prefault(&self, from: usize, len: usize) -> io::Result<()> {
        let start = from / PAGE_BYTES * PAGE_BYTES;
        let end = from.saturating_add(len).min(self.size_bytes);
        if start >= end {
            return Ok(());
        }
        self.map.advise_range(memmap2::Advice::PopulateRead, start, end - start)
    }

    /// Appends `data` at the write position and publishes it. Returns the position it was
    /// written at, or `None` (nothing written) when it does not fit.
    ///
    /// The first four bytes are stored last: a record whose length prefix is still zero is one the
    /// process did not finish writing, so a crash mid-append leaves no half record that looks whole.
    ///
    /// # Errors
    /// A `pwrite` failed ([`WriteMode::Syscall`]); nothing was published.
    pub fn append(&self, data: &[u8]) -> io::Result<Option<usize>> {
        let _guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let pos = self.wrote.load(Ordering::Relaxed);
        if data.len() > self.size_bytes - pos {
            return Ok(None);
        }
        let head = data.len().min(4);
        match self.write_mode {
            WriteMode::Map => {
                let base = self.map.as_mut_ptr();
                // SAFETY: `pos + data.len() <= size_bytes` (checked above) keeps both copies inside
                // the map; `[pos..]` is unpublished, so no reader holds a slice over it (contract
                // rule 4), and the writer lock makes us the only writer. The source is a distinct
                // Rust slice.
                unsafe {
                    std::ptr::copy_nonoverlapping(data.as_ptr().add(head), base.add(pos + head), data.len() - head);
                    std::ptr::copy_nonoverlapping(data.as_ptr(), base.add(pos), head);
                }
            }
            // A record inside one page goes in one `pwrite`: the kernel copies a page at a time
            // and stops for a fatal signal only between pages, so a killed process leaves all of
            // it or none. A record across pages keeps the length-last order (two syscalls).
            WriteMode::Syscall if pos % PAGE_BYTES + data.len() <= PAGE_BYTES => {
                self.file.write_all_at(data, pos as u64)?;
            }
            WriteMode::Syscall => {
                self.file.write_all_at(&data[head..], (pos + head) as u64)?;
                self.file.write_all_at(&data[..head], pos as u64)?;
            }
        }
        self.wrote.store(pos + data.len(), Ordering::Release);
        Ok(Some(pos))
    }

    /// Writes `data` at `pos`, which must be the current write position or past it with zeros
    /// between (used to place a record at an exact offset, as a replica does). Publishes up to
    /// `pos + data.len()`. Returns false (nothing written) when `pos` is out of place.
    ///
    /// Always a `pwrite`, whatever the write mode: a replica's chunks are large, so the syscall is
    /// cheap per byte, and whole pages written this way are never zeroed first (a copy into the
    /// mapping faults each fresh page in zeroed, then overwrites it). Readers of the mapping see
    /// the same page cache.
    ///
    /// # Errors
    /// A `pwrite` failed.
    pub fn append_at(&self, pos: usize, data: &[u8]) -> io::Result<bool> {
        let _guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let wrote = self.wrote.load(Ordering::Relaxed);
        if pos < wrote || pos > self.size_bytes || data.len() > self.size_bytes - pos {
            return Ok(false);
        }
        self.file.write_all_at(data, pos as u64)?;
        self.wrote.store(pos + data.len(), Ordering::Release);
        Ok(true)
    }

    /// Reads `len` published bytes at `pos`, or `None` when they are not all published.
    pub fn read(&self, pos: usize, len: usize) -> Option<&[u8]> {
        let wrote = self.wrote.load(Ordering::Acquire);
        if pos > wrote || len > wrote - pos {
            return None;
        }
        // SAFETY: `[pos..pos+len)` is below the published length, so it is inside the map and never
        // written again while `&self` lives (contract rule 4); the map outlives the borrow of self.
        Some(unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(pos), len) })
    }

    /// All published bytes from `pos`.
    pub fn read_from(&self, pos: usize) -> Option<&[u8]> {
        let wrote = self.wrote();
        self.read(pos, wrote.checked_sub(pos)?)
    }

    /// Published bytes as a zero-copy [`Bytes`] that keeps the mapping alive.
    pub fn read_shared(self: &Arc<Self>, pos: usize, len: usize) -> Option<Bytes> {
        self.read(pos, len)?;
        Some(Bytes::from_owner(MappedSlice { file: Arc::clone(self), pos, len }))
    }

    /// The whole file, published or not: only for recovery, which holds the file exclusively.
    pub fn recovery_view(&mut self) -> &[u8] {
        // SAFETY: `&mut self` proves no other borrow of this file exists, so no one writes the map
        // while the slice lives; the range is exactly the mapping.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr(), self.size_bytes) }
    }

    /// Sets the published length after recovery has validated `[0..wrote)`.
    pub fn set_wrote(&mut self, wrote: usize) {
        assert!(wrote <= self.size_bytes, "write position past the end of the file");
        self.wrote.store(wrote, Ordering::Release);
        self.flushed.store(wrote, Ordering::Release);
    }

    /// Zeroes `[from..size)` on disk (a torn or invalid tail) and moves the write position there.
    ///
    /// # Errors
    /// The write or the sync failed.
    pub fn zero_tail(&mut self, from: usize) -> io::Result<()> {
        if from < self.size_bytes {
            zero_range(&self.file, from as u64, (self.size_bytes - from) as u64)?;
            self.file.sync_data()?;
        }
        self.set_wrote(from.min(self.size_bytes));
        Ok(())
    }

    /// Writes every published byte to disk (msync of the dirty range). Returns the flushed length.
    ///
    /// # Errors
    /// msync failed: the caller must treat the data as lost and poison the store.
    pub fn flush(&self) -> io::Result<usize> {
        let wrote = self.wrote();
        let flushed = self.flushed();
        if wrote > flushed {
            match self.write_mode {
                WriteMode::Map => {
                    let start = flushed / PAGE_BYTES * PAGE_BYTES;
                    self.map.flush_range(start, wrote - start)?;
                }
                // Pages written by pwrite are plain page cache: fdatasync writes just those.
                WriteMode::Syscall => self.file.sync_data()?,
            }
            self.flushed.fetch_max(wrote, Ordering::AcqRel);
        }
        Ok(wrote)
    }

    /// Marks the whole file published and flushed without writing (a file known to be full).
    pub fn mark_full(&mut self) {
        self.set_wrote(self.size_bytes);
    }

    /// Last modification time of the file on disk.
    pub fn modified(&self) -> io::Result<std::time::SystemTime> {
        self.file.metadata()?.modified()
    }

    /// Sets the modification time (retention reads it; tests age files with it).
    pub fn set_modified(&self, t: std::time::SystemTime) -> io::Result<()> {
        self.file.set_modified(t)
    }
}

/// A published range of a mapped file, owned: the backing of [`MappedFile::read_shared`].
struct MappedSlice {
    file: Arc<MappedFile>,
    pos: usize,
    len: usize,
}

impl AsRef<[u8]> for MappedSlice {
    fn as_ref(&self) -> &[u8] {
        // Checked published when the slice was made; published bytes stay published.
        self.file.read(self.pos, self.len).unwrap_or(&[])
    }
}

/// A fixed-size mapped file read and written anywhere; the owner serialises access with a lock.
pub struct MappedRegion {
    path: PathBuf,
    file: File,
    map: MmapMut,
}

impl MappedRegion {
    /// Creates a zero-filled file of `size_bytes` with its blocks reserved, and maps it.
    ///
    /// # Errors
    /// The file exists, the disk is full, or mapping failed.
    pub fn create(path: &Path, size_bytes: usize) -> io::Result<MappedRegion> {
        let file = create_reserved(path, size_bytes)?;
        Self::map(path, file, size_bytes)
    }

    /// Maps an existing file of exactly `size_bytes`.
    ///
    /// # Errors
    /// The file is missing, has another length, or mapping failed.
    pub fn open(path: &Path, size_bytes: usize) -> io::Result<MappedRegion> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let len = file.metadata()?.len();
        if len != size_bytes as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: length {len}, expected {size_bytes}", path.display()),
            ));
        }
        Self::map(path, file, size_bytes)
    }

    fn map(path: &Path, file: File, size_bytes: usize) -> io::Result<MappedRegion> {
        // SAFETY: the file is ours under the store lock (rule 1) and never truncated while mapped
        // (rule 3); other processes do not write it, so the `&mut [u8]` view is exclusive.
        let map = unsafe { MmapOptions::new().len(size_bytes).map_mut(&file)? };
        Ok(MappedRegion { path: path.to_path_buf(), file, map })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes dirty pages to disk.
    ///
    /// # Errors
    /// msync failed: the caller must poison the store.
    pub fn flush(&self) -> io::Result<()> {
        self.map.flush()
    }

    /// Length of the file on disk.
    pub fn file_len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
}

impl Deref for MappedRegion {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.map
    }
}

impl DerefMut for MappedRegion {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.map
    }
}

/// Creates a new file with `[0..size_bytes)` reserved; nothing is left behind on failure.
fn create_reserved(path: &Path, size_bytes: usize) -> io::Result<File> {
    let file = OpenOptions::new().read(true).write(true).create_new(true).open(path)?;
    if let Err(e) = reserve(&file, size_bytes) {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    Ok(file)
}

/// Reserves the blocks of `[0..size_bytes)`; the file reads back as zeros.
fn reserve(file: &File, size_bytes: usize) -> io::Result<()> {
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, size_bytes as u64) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::OPNOTSUPP) => {
            // A file system without fallocate: write the zeros out so no page is left sparse.
            file.set_len(size_bytes as u64)?;
            zero_by_writing(file, 0, size_bytes as u64)
        }
        Err(e) => Err(e.into()),
    }
}

/// Zeroes a range of a file on disk, keeping its blocks allocated.
fn zero_range(file: &File, from: u64, len: u64) -> io::Result<()> {
    use rustix::fs::FallocateFlags;
    if rustix::fs::fallocate(file, FallocateFlags::ZERO_RANGE | FallocateFlags::KEEP_SIZE, from, len).is_ok() {
        return Ok(());
    }
    // tmpfs and some others lack ZERO_RANGE: punch the range out, then reserve it again.
    if rustix::fs::fallocate(file, FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE, from, len).is_ok() {
        return rustix::fs::fallocate(file, FallocateFlags::empty(), from, len).map_err(Into::into);
    }
    zero_by_writing(file, from, len)
}

fn zero_by_writing(file: &File, from: u64, len: u64) -> io::Result<()> {
    let zeros = vec![0u8; 1 << 20];
    let mut at = from;
    let end = from + len;
    while at < end {
        let n = ((end - at) as usize).min(zeros.len());
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
