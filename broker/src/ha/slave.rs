//! The slave side: connects to the master's HA port, appends what it streams, reports progress.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Mutex as AsyncMutex;

use super::{CHUNK_BYTES_MAX, CHUNK_HEADER_BYTES, CONNECT_TIMEOUT_MS, Error, RECONNECT_DELAY_MS, Result};
use crate::store::MessageStore;

/// The slave's replication settings (from `broker.properties`).
#[derive(Clone, Copy, Debug)]
pub struct SlaveLimits {
    /// `haSendHeartbeatInterval`: the slave reports at least this often.
    pub heartbeat_interval_ms: u64,
    /// `haHousekeepingInterval`: a master silent this long is dropped and reconnected.
    pub housekeeping_interval_ms: u64,
}

/// What `brokerStatus` shows of a slave's replication.
#[derive(Clone, Debug, Default)]
pub struct SlaveStatus {
    /// The master's HA address in use (configured or learned from the name server).
    pub master_ha_addr: Option<String>,
    pub connected: bool,
    /// The CommitLog end this slave has written.
    pub replica_offset: u64,
    /// The newest master offset seen in a chunk header (the master's end, at most).
    pub master_seen_offset: u64,
}

/// The replication slave of one broker.
pub struct Slave {
    store: Arc<MessageStore>,
    limits: SlaveLimits,
    /// `haMasterAddress` from the config: wins over the learned address.
    configured: Option<String>,
    learned: Mutex<Option<String>>,
    connected: AtomicBool,
    master_seen: AtomicU64,
}

impl Slave {
    pub fn new(store: Arc<MessageStore>, limits: SlaveLimits, configured: Option<String>) -> Arc<Slave> {
        Arc::new(Slave {
            store,
            limits,
            configured,
            learned: Mutex::new(None),
            connected: AtomicBool::new(false),
            master_seen: AtomicU64::new(0),
        })
    }

    /// The master's HA address as the name server announced it (`haServerAddr`).
    pub fn set_master_ha_addr(&self, addr: Option<String>) {
        let mut learned = self.learned.lock().unwrap_or_else(|p| p.into_inner());
        if *learned != addr {
            tracing::info!(master = ?addr, "HA: master address from the name server");
            *learned = addr;
        }
    }

    fn master_addr(&self) -> Option<String> {
        self.configured.clone().or_else(|| self.learned.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    pub fn status(&self) -> SlaveStatus {
        SlaveStatus {
            master_ha_addr: self.master_addr(),
            connected: self.connected.load(Ordering::Acquire),
            replica_offset: self.store.replica_offset(),
            master_seen_offset: self.master_seen.load(Ordering::Acquire),
        }
    }

    /// [`Slave::run`] on a thread of its own with a single-threaded runtime, so that a burst
    /// costs one wake-up of one thread (read, append, report) and never pulls in the broker's
    /// other workers. Returns a task of the caller's runtime; aborting (or dropping) it stops the
    /// thread.
    ///
    /// # Errors
    /// The thread or its runtime cannot be created.
    pub fn spawn_on_own_thread(self: Arc<Slave>) -> std::io::Result<tokio::task::JoinHandle<()>> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new().name("ha-slave".into()).spawn(move || {
            runtime.block_on(async move {
                tokio::select! {
                    () = self.run() => {}
                    _ = stop_rx => {}
                }
            });
        })?;
        Ok(tokio::spawn(async move {
            let _stop_when_dropped = stop_tx;
            std::future::pending::<()>().await;
        }))
    }

    /// Connects and replicates until the task is aborted, reconnecting after every failure.
    pub async fn run(self: Arc<Slave>) {
        let mut last_error: Option<String> = None;
        loop {
            if let Some(addr) = self.master_addr() {
                let connect =
                    tokio::time::timeout(Duration::from_millis(CONNECT_TIMEOUT_MS), TcpStream::connect(addr.as_str()))
                        .await;
                match connect {
                    Ok(Ok(stream)) => {
                        tracing::info!(master = %addr, offset = self.store.replica_offset(), "HA: connected to the master");
                        self.connected.store(true, Ordering::Release);
                        let result = self.session(stream).await;
                        self.connected.store(false, Ordering::Release);
                        if let Err(e) = result {
                            tracing::warn!(master = %addr, error = %e, "HA: connection to the master ended");
                        }
                        last_error = None;
                    }
                    Ok(Err(e)) => {
                        let msg = e.to_string();
                        if last_error.as_deref() != Some(msg.as_str()) {
                            tracing::warn!(master = %addr, error = %msg, "HA: cannot connect to the master");
                            last_error = Some(msg);
                        }
                    }
                    Err(_) => tracing::warn!(master = %addr, "HA: connecting to the master timed out"),
                }
            }
            tokio::time::sleep(Duration::from_millis(RECONNECT_DELAY_MS)).await;
        }
    }

    async fn session(&self, stream: TcpStream) -> Result<()> {
        let _ = stream.set_nodelay(true);
        let (reader, writer) = stream.into_split();
        let mut reader = BufReader::with_capacity(256 * 1024, reader);
        // Both the receive loop (after each burst) and the heartbeat write reports; the store's
        // written end is read under this lock, so reports never go back.
        let writer = AsyncMutex::new(writer);
        self.report(&writer).await?;
        let reporting = self.heartbeat_loop(&writer);
        let receiving = async {
            let silent = Duration::from_millis(self.limits.housekeeping_interval_ms.max(1));
            let mut header = [0u8; CHUNK_HEADER_BYTES];
            let mut body = Vec::new();
            // Data applied since the last report.
            let mut unreported = false;
            loop {
                // A timeout ends the session, so losing a half-read header to it is harmless.
                match tokio::time::timeout(silent, reader.read_exact(&mut header)).await {
                    Err(_) => return Err(Error::Silent(self.limits.housekeeping_interval_ms)),
                    Ok(Err(e)) => return Err(e.into()),
                    Ok(Ok(_)) => {}
                }
                let offset = i64::from_be_bytes(header[..8].try_into().unwrap_or([0; 8]));
                let size = i32::from_be_bytes(header[8..].try_into().unwrap_or([0; 4]));
                if size < 0 || size as usize > CHUNK_BYTES_MAX || offset < 0 {
                    return Err(Error::ChunkTooLarge { size: i64::from(size), limit: CHUNK_BYTES_MAX });
                }
                let offset = offset as u64;
                if size > 0 {
                    body.resize(size as usize, 0);
                    match tokio::time::timeout(silent, reader.read_exact(&mut body)).await {
                        Err(_) => return Err(Error::Silent(self.limits.housekeeping_interval_ms)),
                        Ok(Err(e)) => return Err(e.into()),
                        Ok(Ok(_)) => {}
                    }
                    let expected = self.store.replica_offset();
                    let fresh_start = expected == 0 && self.store.commit_log_max_offset() == 0;
                    if offset != expected && !fresh_start {
                        return Err(Error::OffsetMismatch { expected, got: offset });
                    }
                    self.store.append_replica_quiet(offset, &body)?;
                    self.master_seen.fetch_max(offset + size as u64, Ordering::AcqRel);
                    unreported = true;
                } else {
                    self.master_seen.fetch_max(offset, Ordering::AcqRel);
                }
                // Report once everything that already arrived is applied: one report acknowledges
                // a whole burst. Written from here, not by another task: one wake-up less on the
                // SYNC_MASTER path.
                if reader.buffer().is_empty() && unreported {
                    self.report(&writer).await?;
                    self.store.wake_dispatcher();
                    unreported = false;
                }
            }
        };
        tokio::select! {
            r = reporting => r,
            r = receiving => r,
        }
    }

    /// Reports the written end every heartbeat (the master drops a slave silent for longer than
    /// its housekeeping interval).
    async fn heartbeat_loop(&self, writer: &AsyncMutex<OwnedWriteHalf>) -> Result<()> {
        let heartbeat = Duration::from_millis(self.limits.heartbeat_interval_ms.max(1));
        loop {
            tokio::time::sleep(heartbeat).await;
            self.report(writer).await?;
        }
    }

    /// Writes the store's written end as one 8-byte report.
    async fn report(&self, writer: &AsyncMutex<OwnedWriteHalf>) -> Result<()> {
        let mut w = writer.lock().await;
        let offset = self.store.replica_offset();
        w.write_all(&(offset as i64).to_be_bytes()).await?;
        Ok(())
    }
}
