//! Helpers: start the real programs with a throw-away store and watch their logs.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running `mqbroker` process with its stderr lines collected; killed on drop.
pub struct BrokerProcess {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

/// Writes `broker.properties` into `dir` with the store under `dir/store`, plus `extra` lines.
pub fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("broker.properties");
    let text = format!(
        "brokerClusterName=TestCluster\nbrokerName=broker-test\nbrokerId=0\nbrokerRole=ASYNC_MASTER\n\
         flushDiskType=ASYNC_FLUSH\nstorePathRootDir={}\nmappedFileSizeCommitLog=8388608\n\
         maxHashSlotNum=1000\nmaxIndexNum=4000\n{extra}\n",
        dir.join("store").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

impl BrokerProcess {
    pub fn start(config: &Path) -> BrokerProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mqbroker"))
            .arg("-c")
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mqbroker");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        BrokerProcess { child, lines, seen: Vec::new() }
    }

    /// Waits for a log line containing `needle`; panics with everything seen after `timeout`.
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
                Err(_) => panic!("no log line with {needle:?} within {timeout:?}; saw:\n{}", self.seen.join("\n")),
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
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
