//! Helpers: start the real programs with a throw-away store and watch their logs; a name server
//! plus broker `Cluster` on free loopback ports for the client tests.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a program may take to come up (a shared 2-core machine, debug builds).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running program (`mqbroker`, `mqnamesrv`) with its stderr lines collected; killed on drop.
pub struct Process {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

/// The broker program; `BrokerProcess::start` runs `mqbroker -c <config>`.
pub type BrokerProcess = Process;

/// Writes `broker.properties` into `dir` with the store under `dir/store`, plus `extra` lines.
/// The HTTP and AMQP doors are off (`httpListenPort=0`, `amqpListenPort=0`) unless `extra` sets a
/// port: several brokers run at once on this machine and the defaults 8080 and 5672 would collide
/// (the last of duplicate keys wins).
pub fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("broker.properties");
    let text = format!(
        "brokerClusterName=TestCluster\nbrokerName=broker-test\nbrokerId=0\nbrokerRole=ASYNC_MASTER\n\
         flushDiskType=ASYNC_FLUSH\nstorePathRootDir={}\nmappedFileSizeCommitLog=8388608\n\
         maxHashSlotNum=1000\nmaxIndexNum=4000\nhttpListenPort=0\namqpListenPort=0\n{extra}\n",
        dir.join("store").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

impl Process {
    /// Starts `mqbroker -c config`.
    pub fn start(config: &Path) -> Process {
        Process::spawn(env!("CARGO_BIN_EXE_mqbroker"), config)
    }

    /// Starts `mqnamesrv -c config`.
    pub fn start_namesrv(config: &Path) -> Process {
        Process::spawn(env!("CARGO_BIN_EXE_mqnamesrv"), config)
    }

    /// Runs `program -c config`. For debugging, `IT_RUST_LOG` sets the programs' `RUST_LOG`
    /// (default `info`) and `IT_ECHO_LOGS=1` copies their log lines to the test's stderr.
    fn spawn(program: &str, config: &Path) -> Process {
        let echo = std::env::var_os("IT_ECHO_LOGS")
            .is_some()
            .then(|| Path::new(program).file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()));
        let mut child = Command::new(program)
            .arg("-c")
            .arg(config)
            .env("RUST_LOG", std::env::var("IT_RUST_LOG").unwrap_or_else(|_| "info".to_string()))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e}"));
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(name) = &echo {
                    eprintln!("[{name}] {line}");
                }
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Process { child, lines, seen: Vec::new() }
    }

    /// Waits for a log line containing `needle`; panics with everything seen after `timeout` or
    /// when the program ends first.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("no log line with {needle:?} within {timeout:?}; saw:\n{}", self.seen.join("\n"))
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().ok();
                    panic!("the program ended ({status:?}) before logging {needle:?}; saw:\n{}", self.seen.join("\n"))
                }
            }
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let ok = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().unwrap();
        assert!(ok.success());
        self.child.wait().unwrap()
    }

    /// Collects the remaining log lines after the process ended.
    pub fn drain(&mut self) -> String {
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(l);
        }
        self.seen.join("\n")
    }

    /// The last `n` log lines, taking whatever arrived so far without waiting.
    pub fn tail(&mut self, n: usize) -> String {
        while let Ok(l) = self.lines.try_recv() {
            self.seen.push(l);
        }
        let from = self.seen.len().saturating_sub(n);
        self.seen[from..].join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Ports handed out in this test process, so parallel tests never pick the same one.
static PORTS_TAKEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// Whether `port` can be bound on every interface right now.
fn bindable(port: u16) -> bool {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).is_ok()
}

/// A port `P` such that `P + d` is free for every `d` in `offsets` (below the ephemeral range,
/// so outgoing connections do not take it meanwhile).
pub fn free_port_with(offsets: &[i32]) -> u16 {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos() ^ (std::process::id() << 8);
    let mut taken = PORTS_TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    let taken = taken.get_or_insert_with(HashSet::new);
    for _ in 0..10_000 {
        let n = seed.wrapping_add(SEQ.fetch_add(1, Ordering::Relaxed).wrapping_mul(7919));
        let port = 20_000 + (n % 12_000) as i32;
        let ports: Vec<u16> = offsets.iter().map(|d| (port + d) as u16).collect();
        if ports.iter().all(|p| !taken.contains(p) && bindable(*p)) {
            taken.extend(ports);
            return port as u16;
        }
    }
    panic!("no free port found");
}

/// A free port for a name server.
pub fn free_port() -> u16 {
    free_port_with(&[0])
}

/// A free broker `listenPort` P: P, the VIP port P-2 and the HA port P+1 are all free.
pub fn free_broker_port() -> u16 {
    free_port_with(&[-2, -1, 0, 1])
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
fn wait_listening(process: &mut Process, port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into(), Duration::from_millis(500))
            .is_ok()
        {
            return;
        }
        if let Ok(Some(status)) = process.child.try_wait() {
            panic!("the program exited ({status}) before listening on {port}:\n{}", process.drain());
        }
        if Instant::now() > deadline {
            panic!("nothing listens on {port} after {timeout:?}:\n{}", process.tail(100));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One name server and one broker registered with it, each on free loopback ports, with the
/// store in a temporary directory. Dropping it kills both.
pub struct Cluster {
    pub broker: Process,
    #[allow(dead_code, reason = "held so the name server lives as long as the cluster")]
    pub namesrv: Process,
    /// `127.0.0.1:<port>` of the name server, as clients take it.
    pub namesrv_addr: String,
    /// `127.0.0.1:<listenPort>` of the broker.
    #[allow(dead_code, reason = "for tests that talk to the broker directly (mqadmin)")]
    pub broker_addr: String,
    pub broker_config: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts the name server, then the broker with `broker_extra` appended to its properties,
    /// and waits until the broker logged `Broker started` (it registered with the name server).
    pub fn start(broker_extra: &str) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let namesrv_port = free_port();
        let namesrv_config = dir.path().join("namesrv.properties");
        let kv = dir.path().join("kvConfig.json");
        std::fs::write(&namesrv_config, format!("listenPort={namesrv_port}\nkvConfigPath={}\n", kv.display())).unwrap();
        let mut namesrv = Process::start_namesrv(&namesrv_config);
        wait_listening(&mut namesrv, namesrv_port, START_TIMEOUT);
        let namesrv_addr = format!("127.0.0.1:{namesrv_port}");

        let broker_port = free_broker_port();
        let extra =
            format!("listenPort={broker_port}\nnamesrvAddr={namesrv_addr}\nbrokerIP1=127.0.0.1\n{broker_extra}");
        let broker_config = write_config(dir.path(), &extra);
        let mut broker = Process::start(&broker_config);
        broker.wait_for("Broker started", START_TIMEOUT);
        Cluster { broker, namesrv, namesrv_addr, broker_addr: format!("127.0.0.1:{broker_port}"), broker_config, dir }
    }

    /// The broker's store directory (`storePathRootDir`).
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// Stops the broker with SIGTERM (asserting a clean exit), starts it again on the same
    /// configuration and store, and waits until it is registered again.
    pub fn restart_broker(&mut self) {
        let status = self.broker.terminate();
        assert!(status.success(), "clean exit on SIGTERM: {status:?}\n{}", self.broker.drain());
        self.broker = Process::start(&self.broker_config);
        self.broker.wait_for("Broker started", START_TIMEOUT);
    }
}
