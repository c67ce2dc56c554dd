//! Wasm plugins: user code inside the broker, in a sandbox.
//!
//! A plugin is a WebAssembly component (`wit/plugin.wit`, package `rocketmq:plugin@0.1.0`) that
//! exports one role:
//!
//! | role | bound to | consulted | when it fails |
//! |---|---|---|---|
//! | filter | (consumer group, topic) | on every pull of that group, before messages leave | fail closed (default): the pull answers "nothing yet" and the offset does not move past undecided messages; fail open (per binding): deliver unfiltered |
//! | router | topic | on every single send to it | the producer's queue is kept |
//! | transaction checker | producer group | in the check loop, before the producer is asked | `unknown`: the producer is asked as usual |
//!
//! The host (`engine.rs`, the only file that sees wasmtime): one engine without the async
//! concurrency support, compiled code cached on disk under the store root, an `InstancePre` per
//! plugin version and a small pool of live instances, a per-call epoch deadline that grows with
//! the batch, a memory cap per instance. A trap drops the instance (the next call makes a fresh
//! one). A trapping batch is bisected: a trap pinned on one message makes that message "poison"
//! (not delivered, counted, logged, copied to the group's dead-letter topic by the pull path) and
//! spares the rest; failures that are not pinned on one
//! message count towards quarantine (3 within 60 s), during which the failure policy decides
//! without calling the plugin; after the backoff (1 s, doubling to 5 min) one probe call is let
//! through, and a success ends the quarantine.
//!
//! Deployments and bindings persist in `<storePathRootDir>/plugins/` (`registry.json` and the
//! `.wasm` files) and survive restarts; a new version of a deployment replaces the old one
//! atomically (calls in flight finish on the version they started with). [`Plugins::snapshot`]
//! and [`Plugins::install_snapshot`] carry the whole set to a slave.

mod batch;
mod engine;
#[doc(hidden)]
pub mod examples;
pub mod limits;
mod stats;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use batch::{INDEX_WORDS, PluginMessage};
pub use stats::{Counters, LogLine, TrapCounters, TrapKind};

use engine::{CallError, Host, InstancePool, Live, Loaded};
use limits::*;
use stats::{Health, PluginLog, Stats};

/// The plugin host's errors (deploy, bind, the registry files). The remoting processor turns
/// them into SYSTEM_ERROR with this text as the remark.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("no plugin named `{0}` is deployed")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("the component is {bytes} bytes; the limit is {max} bytes")]
    TooLarge { bytes: usize, max: usize },
    #[error("{0}")]
    NotAComponent(String),
    #[error("wrong world: {0}")]
    WrongWorld(String),
    #[error("`create` failed: {0}")]
    CreateFailed(String),
    #[error("{0}")]
    Engine(String),
    #[error("plugin files: {0}")]
    Io(String),
}

pub type Result<T> = std::result::Result<T, PluginError>;

/// A plugin's role: which world it implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Filter,
    Router,
    #[serde(rename = "transaction-checker")]
    Checker,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Filter => "filter",
            Role::Router => "router",
            Role::Checker => "transaction-checker",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s.trim().to_ascii_lowercase().as_str() {
            "filter" => Some(Role::Filter),
            "router" => Some(Role::Router),
            "transaction-checker" | "checker" => Some(Role::Checker),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which message fields a plugin reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Needs {
    pub topic: bool,
    pub tags: bool,
    pub keys: bool,
    pub properties: bool,
    pub body: bool,
}

/// What a plugin says about itself (`info`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub needs: Needs,
    pub max_batch: usize,
}

/// A router's answer for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteDecision {
    Keep,
    Queue(u32),
    Topic(String, Option<u32>),
    Reject(String),
}

/// A transaction checker's answer for one half message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    Commit,
    Rollback,
    Unknown,
}

/// A filter's answer for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Pass,
    Drop,
    /// The plugin traps on this very message (and works on others): not delivered; the broker
    /// keeps a copy in the group's dead-letter topic.
    Poison,
    /// The plugin could not be asked (quarantined, failing): fail closed means "not yet".
    Undecided,
}

/// Where a plugin is attached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Binding {
    pub role: Role,
    pub plugin: String,
    /// Filter: the consumer group; checker: the producer group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Filter and router: the topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Filter only: deliver unfiltered when the plugin fails (default: fail closed).
    #[serde(default)]
    pub fail_open: bool,
}

impl Binding {
    /// The attachment point; one binding per key.
    fn key(&self) -> (Role, String) {
        let g = self.group.as_deref().unwrap_or("");
        let t = self.topic.as_deref().unwrap_or("");
        match self.role {
            Role::Filter => (self.role, format!("{g}@{t}")),
            Role::Router => (self.role, t.to_owned()),
            Role::Checker => (self.role, g.to_owned()),
        }
    }

    fn check(&self) -> Result<()> {
        let need = |v: &Option<String>, what: &str| match v.as_deref() {
            Some(s) if !s.trim().is_empty() => Ok(()),
            _ => Err(PluginError::BadRequest(format!("a {} binding needs a {what}", self.role))),
        };
        match self.role {
            Role::Filter => need(&self.group, "consumer group").and(need(&self.topic, "topic")),
            Role::Router => need(&self.topic, "topic"),
            Role::Checker => need(&self.group, "producer group"),
        }
    }
}

/// One row of `plugin list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginSummary {
    pub name: String,
    pub role: Role,
    /// The deployment's version: 1 for the first deploy, +1 for each replacement.
    pub version: u64,
    pub wasm_bytes: usize,
    pub deployed_ms: i64,
    pub info: PluginInfo,
    pub params: Vec<(String, String)>,
    pub quarantined: bool,
}

/// `plugin describe`: the summary, its bindings and its counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginDescription {
    pub summary: PluginSummary,
    pub bindings: Vec<Binding>,
    pub counters: Counters,
}

/// A deployed plugin version.
struct Deployed {
    name: String,
    role: Role,
    version: u64,
    params: Vec<(String, String)>,
    deployed_ms: i64,
    wasm_bytes: usize,
    wasm_crc: u32,
    info: PluginInfo,
    loaded: Loaded,
    pool: InstancePool,
    health: Health,
    stats: Arc<Stats>,
    log: Arc<PluginLog>,
    /// When a call last succeeded (Unix ms, 0 = never): a trap is pinned on a single message
    /// only while the plugin is known to work on others.
    last_success_ms: AtomicI64,
}

impl Deployed {
    fn summary(&self) -> PluginSummary {
        PluginSummary {
            name: self.name.clone(),
            role: self.role,
            version: self.version,
            wasm_bytes: self.wasm_bytes,
            deployed_ms: self.deployed_ms,
            info: self.info.clone(),
            params: self.params.clone(),
            quarantined: self.health.is_quarantined(),
        }
    }

    /// Runs `f` on a pooled (or fresh) instance; a trapped instance is dropped, not pooled.
    /// Packs `msg` as a batch of one into an instance's buffers, then runs `call` on it.
    fn with_one<R>(
        &self,
        msg: &PluginMessage<'_>,
        call: impl FnOnce(&mut Live) -> std::result::Result<R, CallError>,
    ) -> std::result::Result<R, CallError> {
        let needs = self.info.needs;
        self.with_instance(|live| {
            let (data, index) = live.batch_buffers();
            data.clear();
            index.clear();
            batch::push(msg, needs, data, index);
            call(live)
        })
    }

    fn with_instance<R>(
        &self,
        f: impl FnOnce(&mut Live) -> std::result::Result<R, CallError>,
    ) -> std::result::Result<R, CallError> {
        let mut live = match self.pool.take() {
            Some(l) => l,
            None => {
                let (l, _) = self.loaded.instantiate(&self.params, &self.log, &self.stats)?;
                self.stats.instances_created.fetch_add(1, Ordering::Relaxed);
                l
            }
        };
        let r = f(&mut live);
        if !matches!(r, Err(CallError::Trap(..))) {
            self.pool.give_back(live);
        }
        r
    }

    fn note_error(&self, e: &CallError) {
        match e {
            CallError::Trap(kind, msg) => {
                self.stats.trap(*kind);
                self.log.host_line("warn", &format!("v{} trapped ({}): {msg}", self.version, kind.name()));
            }
            CallError::Plugin(msg) => {
                self.stats.error(1);
                self.log.host_line("warn", &format!("v{} returned an error: {msg}", self.version));
            }
            CallError::Host(msg) => {
                self.stats.error(1);
                self.log.host_line("error", &format!("v{} could not run: {msg}", self.version));
            }
        }
    }

    /// Records the outcome of one plugin consultation for the health state.
    fn outcome(&self, failed: bool) {
        if failed {
            if let Some((entered, backoff)) = self.health.failure(Instant::now()) {
                if entered {
                    self.stats.quarantines.fetch_add(1, Ordering::Relaxed);
                }
                self.log.host_line(
                    "error",
                    &format!("v{} quarantined for {} ms after repeated failures", self.version, backoff.as_millis()),
                );
            }
        } else if self.health.success() {
            self.stats.recoveries.fetch_add(1, Ordering::Relaxed);
            self.log.host_line("info", &format!("v{} recovered: quarantine lifted", self.version));
        }
    }

    fn deadline_ms(messages: usize) -> u64 {
        CALL_DEADLINE_BASE_MS + (messages as u64 * CALL_DEADLINE_PER_MESSAGE_US).div_ceil(1000)
    }

    /// One filter call over `msgs` (prefilter, then the full match of the survivors).
    fn filter_call(&self, msgs: &[PluginMessage<'_>]) -> std::result::Result<Vec<Decision>, CallError> {
        let started = Instant::now();
        let needs = self.info.needs;
        let deadline = Self::deadline_ms(msgs.len());
        let r = self.with_instance(|live| {
            let tags: Vec<Option<&str>> = msgs.iter().map(|m| m.tags()).collect();
            let codes: Vec<i64> = tags.iter().map(|t| crate::store::format::tags_code(*t)).collect();
            let pre = live.prefilter(&codes, deadline)?;
            let survivors: Vec<usize> =
                (0..msgs.len()).filter(|&i| pre.as_ref().is_none_or(|p| batch::bit(p, i))).collect();
            let mut out = vec![Decision::Drop; msgs.len()];
            if survivors.is_empty() {
                return Ok(out);
            }
            let (data, index) = live.batch_buffers();
            data.clear();
            index.clear();
            for &i in &survivors {
                batch::push_tagged(&msgs[i], tags[i], codes[i], needs, data, index);
            }
            let (pass, errors) = live.matches(deadline)?;
            let mut bad = 0;
            for (k, &i) in survivors.iter().enumerate() {
                if batch::bit(&errors, k) {
                    bad += 1;
                } else if batch::bit(&pass, k) {
                    out[i] = Decision::Pass;
                }
            }
            if bad > 0 {
                self.stats.error(bad);
            }
            Ok(out)
        });
        self.stats.call(msgs.len(), started.elapsed());
        if r.is_ok() {
            self.last_success_ms.store(crate::store::now_ms(), Ordering::Relaxed);
        }
        r
    }

    /// Filters a range, bisecting on traps: `Err` only when the failure is not pinned on one
    /// message (both halves fail, or the plugin failed without trapping).
    fn filter_range(&self, msgs: &[PluginMessage<'_>]) -> std::result::Result<Vec<Decision>, CallError> {
        let e = match self.filter_call(msgs) {
            Ok(d) => return Ok(d),
            Err(e) => e,
        };
        self.note_error(&e);
        if !matches!(e, CallError::Trap(..)) {
            return Err(e);
        }
        if msgs.len() == 1 {
            // Once more on a fresh instance: a second trap pins it on this message.
            return match self.filter_call(msgs) {
                Ok(d) => Ok(d),
                Err(e2 @ CallError::Trap(..)) => {
                    self.note_error(&e2);
                    let since_ok = crate::store::now_ms() - self.last_success_ms.load(Ordering::Relaxed);
                    if since_ok > QUARANTINE_WINDOW_MS as i64 {
                        // Nothing shows the plugin works on other messages: a plugin failure.
                        return Err(e2);
                    }
                    let m = &msgs[0];
                    self.stats.poison_messages.fetch_add(1, Ordering::Relaxed);
                    self.log.host_line(
                        "error",
                        &format!(
                            "v{} traps on the message at {}:{} offset {}: it is not delivered to the bound group \
                             (a copy goes to the group's dead-letter topic)",
                            self.version, m.topic, m.queue_id, m.queue_offset
                        ),
                    );
                    Ok(vec![Decision::Poison])
                }
                Err(e2) => {
                    self.note_error(&e2);
                    Err(e2)
                }
            };
        }
        let (left, right) = msgs.split_at(msgs.len() / 2);
        let l = self.filter_call(left);
        let r = self.filter_call(right);
        match (l, r) {
            (Err(a), Err(_)) => {
                self.note_error(&a);
                Err(a)
            }
            (Ok(mut a), Err(e)) => {
                self.note_error(&e);
                match self.filter_range(right) {
                    Ok(b) => a.extend(b),
                    Err(_) => a.extend(std::iter::repeat_n(Decision::Undecided, right.len())),
                }
                Ok(a)
            }
            (Err(e), Ok(b)) => {
                self.note_error(&e);
                let mut a = self.filter_range(left).unwrap_or_else(|_| vec![Decision::Undecided; left.len()]);
                a.extend(b);
                Ok(a)
            }
            (Ok(mut a), Ok(b)) => {
                a.extend(b);
                Ok(a)
            }
        }
    }
}

/// The on-disk registry (`registry.json`).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegistryFile {
    plugins: Vec<RegistryEntry>,
    bindings: Vec<Binding>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegistryEntry {
    name: String,
    role: Role,
    version: u64,
    params: Vec<(String, String)>,
    deployed_ms: i64,
    file: String,
    wasm_crc: u32,
}

/// The plugin set and its bindings, as a slave receives it.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Snapshot {
    plugins: Vec<SnapshotPlugin>,
    bindings: Vec<Binding>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SnapshotPlugin {
    name: String,
    version: u64,
    params: Vec<(String, String)>,
    /// The component, hex encoded.
    wasm_hex: String,
}

#[derive(Default)]
struct State {
    plugins: BTreeMap<String, Arc<Deployed>>,
    bindings: BTreeMap<(Role, String), Binding>,
    /// Counters and logs per deployment name, kept across versions.
    stats: BTreeMap<String, (Arc<Stats>, Arc<PluginLog>)>,
}

/// A filter binding resolved for one pull (see [`Plugins::bound_filter`]).
pub struct BoundFilter {
    deployed: Arc<Deployed>,
    fail_open: bool,
}

impl BoundFilter {
    /// Decisions for `msgs`, in order; failures follow the binding's policy: `Undecided` (fail
    /// closed) or `Pass` (fail open).
    pub fn run(&self, msgs: &[PluginMessage<'_>]) -> Vec<Decision> {
        Plugins::run_filter(&self.deployed, self.fail_open, msgs)
    }
}

/// The broker's plugins: deployments, bindings, and the calls the processors make.
pub struct Plugins {
    dir: PathBuf,
    host: OnceLock<std::result::Result<Host, String>>,
    state: RwLock<State>,
    /// Bindings in force: zero means every hook returns at once.
    bound: AtomicUsize,
    /// Serialises deploys and registry writes.
    writer: Mutex<()>,
    /// SQL92 subscriptions run by the SQL92 plugin (`sqlFilterEngine=plugin`).
    sql: SqlEngine,
}

/// The SQL92 engine: the component, read once, and one deployment per distinct expression
/// (created with `expression` as its only parameter), kept for reuse. Not in the registry: it
/// is no deployment of `plugin list`; its log and counters are under [`SQL_ENGINE_NAME`].
#[derive(Default)]
struct SqlEngine {
    /// The component's bytes, or why they could not be read.
    wasm: OnceLock<std::result::Result<Arc<Vec<u8>>, String>>,
    /// By expression: the deployment, or why `create` refused it (not retried on every pull),
    /// with when it was last used; the least recently used goes first when full.
    by_expression: Mutex<HashMap<String, SqlEntry>>,
    /// The clock of `SqlEntry::used`.
    uses: AtomicU64,
    /// Serialises making instance sets, so concurrent first pulls make one.
    creating: Mutex<()>,
}

struct SqlEntry {
    made: std::result::Result<Arc<Deployed>, String>,
    used: u64,
}

/// The expression the SQL92 engine is tried with at start (every message passes it).
const SQL_ENGINE_PROBE_EXPRESSION: &str = "TRUE";

/// The name the SQL92 engine's instances log and count under (`mqadmin plugin logs sql92-engine`).
pub const SQL_ENGINE_NAME: &str = "sql92-engine";

fn valid_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.chars().count() <= PLUGIN_NAME_CHARS_MAX
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(PluginError::BadRequest(format!(
            "plugin name `{name}`: use 1 to {PLUGIN_NAME_CHARS_MAX} of A-Z a-z 0-9 - _"
        )))
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect()
}

/// Reads `k=v` lines (`#` comments), as a `<name>.params` file beside a plugin in `pluginDir`.
pub fn parse_params(text: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(PluginError::BadRequest(format!("parameter `{line}` is not name=value")));
        };
        out.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    Ok(out)
}

impl Plugins {
    /// Opens the registry under `store_root/plugins` (nothing is compiled until a plugin is
    /// there), then deploys the `.wasm` files of `plugin_dir` that are new or changed.
    pub fn open(store_root: &Path, plugin_dir: Option<&Path>) -> Plugins {
        let p = Plugins {
            dir: store_root.join("plugins"),
            host: OnceLock::new(),
            state: RwLock::new(State::default()),
            bound: AtomicUsize::new(0),
            writer: Mutex::new(()),
            sql: SqlEngine::default(),
        };
        p.load_registry();
        if let Some(dir) = plugin_dir {
            p.load_plugin_dir(dir);
        }
        p
    }

    fn host(&self) -> Result<&Host> {
        self.host
            .get_or_init(|| Host::new(&self.dir.join("cache")))
            .as_ref()
            .map_err(|e| PluginError::Engine(e.clone()))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    fn load_registry(&self) {
        let path = self.dir.join("registry.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot read the plugin registry");
                return;
            }
        };
        let reg: RegistryFile = match serde_json::from_str(&text) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "the plugin registry is not valid JSON; no plugins loaded");
                return;
            }
        };
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        for entry in reg.plugins {
            let file = self.dir.join("wasm").join(&entry.file);
            let loaded = std::fs::read(&file)
                .map_err(|e| PluginError::Io(format!("{}: {e}", file.display())))
                .and_then(|wasm| {
                    self.prepare(&entry.name, &wasm, entry.params.clone(), None, entry.version, entry.deployed_ms)
                });
            match loaded {
                Ok(d) => {
                    self.write().plugins.insert(entry.name.clone(), d);
                }
                Err(e) => tracing::error!(plugin = %entry.name, error = %e, "could not load a deployed plugin"),
            }
        }
        let mut s = self.write();
        for b in reg.bindings {
            if s.plugins.get(&b.plugin).is_some_and(|d| d.role == b.role) {
                s.bindings.insert(b.key(), b);
            }
        }
        self.bound.store(s.bindings.len(), Ordering::Release);
        tracing::info!(plugins = s.plugins.len(), bindings = s.bindings.len(), "plugins loaded");
    }

    fn load_plugin_dir(&self, dir: &Path) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            tracing::warn!(dir = %dir.display(), "pluginDir cannot be read; no plugins loaded from it");
            return;
        };
        let mut files: Vec<PathBuf> =
            rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "wasm")).collect();
        files.sort();
        for path in files {
            let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else { continue };
            let params = match std::fs::read_to_string(path.with_extension("params")) {
                Ok(t) => match parse_params(&t) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::error!(plugin = %name, error = %e, "bad .params file; plugin not loaded");
                        continue;
                    }
                },
                Err(_) => Vec::new(),
            };
            let wasm = match std::fs::read(&path) {
                Ok(w) => w,
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "cannot read plugin");
                    continue;
                }
            };
            let same = self
                .read()
                .plugins
                .get(&name)
                .is_some_and(|d| d.wasm_crc == crc32fast::hash(&wasm) && d.params == params);
            if same {
                continue;
            }
            match self.deploy(&name, &wasm, params, None) {
                Ok(s) => {
                    tracing::info!(plugin = %name, role = %s.role, version = s.version, "plugin deployed from pluginDir")
                }
                Err(e) => tracing::error!(plugin = %name, error = %e, "plugin in pluginDir refused"),
            }
        }
    }

    /// Compiles, checks and dry-runs `create`; nothing is installed.
    fn prepare(
        &self,
        name: &str,
        wasm: &[u8],
        params: Vec<(String, String)>,
        expect: Option<Role>,
        version: u64,
        deployed_ms: i64,
    ) -> Result<Arc<Deployed>> {
        valid_name(name)?;
        if wasm.len() > PLUGIN_WASM_BYTES_MAX {
            return Err(PluginError::TooLarge { bytes: wasm.len(), max: PLUGIN_WASM_BYTES_MAX });
        }
        if params.len() > PARAMS_MAX || params.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>() > PARAMS_BYTES_MAX
        {
            return Err(PluginError::BadRequest(format!(
                "at most {PARAMS_MAX} parameters of {PARAMS_BYTES_MAX} bytes in all"
            )));
        }
        let host = self.host()?;
        let (role, loaded) = host.load(wasm).map_err(|e| match e.strip_prefix("wrong world: ") {
            Some(rest) => PluginError::WrongWorld(rest.to_owned()),
            None => PluginError::NotAComponent(e),
        })?;
        if let Some(want) = expect
            && want != role
        {
            return Err(PluginError::WrongWorld(format!(
                "the component is a {role} (it exports rocketmq:plugin/{role}), not a {want}"
            )));
        }
        let (stats, log) = {
            let mut s = self.write();
            s.stats
                .entry(name.to_owned())
                .or_insert_with(|| (Arc::new(Stats::default()), Arc::new(PluginLog::new(name))))
                .clone()
        };
        let (live, info) = loaded.instantiate(&params, &log, &stats).map_err(|e| match e {
            CallError::Plugin(m) => PluginError::CreateFailed(m),
            other => PluginError::CreateFailed(other.to_string()),
        })?;
        stats.instances_created.fetch_add(1, Ordering::Relaxed);
        let d = Deployed {
            name: name.to_owned(),
            role,
            version,
            params,
            deployed_ms,
            wasm_bytes: wasm.len(),
            wasm_crc: crc32fast::hash(wasm),
            info,
            loaded,
            pool: InstancePool::default(),
            health: Health::default(),
            stats,
            log,
            last_success_ms: AtomicI64::new(0),
        };
        d.pool.give_back(live);
        Ok(Arc::new(d))
    }

    /// Deploys (or replaces) `name`: validates the component (a component, one role, imports the
    /// broker provides, `create` accepts `params`), stores it and swaps it in.
    pub fn deploy(
        &self,
        name: &str,
        wasm: &[u8],
        params: Vec<(String, String)>,
        expect: Option<Role>,
    ) -> Result<PluginSummary> {
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let previous = self.read().plugins.get(name).cloned();
        let version = previous.as_ref().map_or(1, |p| p.version + 1);
        self.deploy_version(name, wasm, params, expect, version, previous)
    }

    fn deploy_version(
        &self,
        name: &str,
        wasm: &[u8],
        params: Vec<(String, String)>,
        expect: Option<Role>,
        version: u64,
        previous: Option<Arc<Deployed>>,
    ) -> Result<PluginSummary> {
        let d = self.prepare(name, wasm, params, expect, version, crate::store::now_ms())?;
        if let Some(p) = &previous
            && p.role != d.role
            && self.read().bindings.values().any(|b| b.plugin == name)
        {
            return Err(PluginError::WrongWorld(format!(
                "`{name}` is a bound {}; this component is a {}: unbind it first or deploy under another name",
                p.role, d.role
            )));
        }
        let file = format!("{name}.v{version}.wasm");
        let wasm_dir = self.dir.join("wasm");
        std::fs::create_dir_all(&wasm_dir).map_err(|e| PluginError::Io(format!("{}: {e}", wasm_dir.display())))?;
        write_atomically(&wasm_dir.join(&file), wasm)?;
        let summary = d.summary();
        d.log.host_line("info", &format!("v{version} deployed ({} bytes)", wasm.len()));
        {
            let mut s = self.write();
            s.plugins.insert(name.to_owned(), d);
        }
        self.persist()?;
        if let Some(p) = previous {
            p.pool.clear();
            let old = wasm_dir.join(format!("{name}.v{}.wasm", p.version));
            if p.version != version {
                let _ = std::fs::remove_file(old);
            }
        }
        Ok(summary)
    }

    /// Removes a deployment (refused while it is bound).
    pub fn remove(&self, name: &str) -> Result<()> {
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let d = {
            let mut s = self.write();
            if let Some(b) = s.bindings.values().find(|b| b.plugin == name) {
                return Err(PluginError::BadRequest(format!(
                    "`{name}` is bound ({}); unbind it first",
                    describe_binding(b)
                )));
            }
            let d = s.plugins.remove(name).ok_or_else(|| PluginError::NotFound(name.to_owned()))?;
            s.stats.remove(name);
            d
        };
        self.persist()?;
        let _ = std::fs::remove_file(self.dir.join("wasm").join(format!("{name}.v{}.wasm", d.version)));
        Ok(())
    }

    /// Binds a deployed plugin (replacing what was bound at the same place).
    pub fn bind(&self, b: Binding) -> Result<()> {
        b.check()?;
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        {
            let mut s = self.write();
            let d = s.plugins.get(&b.plugin).ok_or_else(|| PluginError::NotFound(b.plugin.clone()))?;
            if d.role != b.role {
                return Err(PluginError::WrongWorld(format!(
                    "`{}` is a {}, it cannot be bound as a {}",
                    b.plugin, d.role, b.role
                )));
            }
            d.log.host_line("info", &format!("bound: {}", describe_binding(&b)));
            s.bindings.insert(b.key(), b);
            self.bound.store(s.bindings.len(), Ordering::Release);
        }
        self.persist()
    }

    /// Removes the binding at `b`'s place (its `plugin` is ignored); false if none was there.
    pub fn unbind(&self, b: &Binding) -> Result<bool> {
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let removed = {
            let mut s = self.write();
            let removed = s.bindings.remove(&b.key()).is_some();
            self.bound.store(s.bindings.len(), Ordering::Release);
            removed
        };
        self.persist()?;
        Ok(removed)
    }

    pub fn list(&self) -> Vec<PluginSummary> {
        self.read().plugins.values().map(|d| d.summary()).collect()
    }

    pub fn bindings(&self) -> Vec<Binding> {
        self.read().bindings.values().cloned().collect()
    }

    pub fn describe(&self, name: &str) -> Result<PluginDescription> {
        let s = self.read();
        let d = s.plugins.get(name).ok_or_else(|| PluginError::NotFound(name.to_owned()))?;
        Ok(PluginDescription {
            summary: d.summary(),
            bindings: s.bindings.values().filter(|b| b.plugin == name).cloned().collect(),
            counters: d.stats.snapshot(),
        })
    }

    /// Counters of every deployment, for the metrics endpoint.
    pub fn counters(&self) -> Vec<(String, Role, Counters)> {
        self.read().plugins.values().map(|d| (d.name.clone(), d.role, d.stats.snapshot())).collect()
    }

    /// The last `last` lines of a plugin's log.
    pub fn logs(&self, name: &str, last: usize) -> Result<Vec<LogLine>> {
        let s = self.read();
        let (_, log) = s.stats.get(name).ok_or_else(|| PluginError::NotFound(name.to_owned()))?;
        Ok(log.lines(last))
    }

    fn persist(&self) -> Result<()> {
        let reg = {
            let s = self.read();
            RegistryFile {
                plugins: s
                    .plugins
                    .values()
                    .map(|d| RegistryEntry {
                        name: d.name.clone(),
                        role: d.role,
                        version: d.version,
                        params: d.params.clone(),
                        deployed_ms: d.deployed_ms,
                        file: format!("{}.v{}.wasm", d.name, d.version),
                        wasm_crc: d.wasm_crc,
                    })
                    .collect(),
                bindings: s.bindings.values().cloned().collect(),
            }
        };
        std::fs::create_dir_all(&self.dir).map_err(|e| PluginError::Io(format!("{}: {e}", self.dir.display())))?;
        let text = serde_json::to_vec_pretty(&reg).map_err(|e| PluginError::Io(e.to_string()))?;
        write_atomically(&self.dir.join("registry.json"), &text)
    }

    fn binding_for(&self, role: Role, key: &str) -> Option<(Arc<Deployed>, bool)> {
        if self.bound.load(Ordering::Acquire) == 0 {
            return None;
        }
        let s = self.read();
        let b = s.bindings.get(&(role, key.to_owned()))?;
        let d = s.plugins.get(&b.plugin)?.clone();
        Some((d, b.fail_open))
    }

    /// The filter bound to (group, topic), if any: look it up once per pull, then
    /// [`BoundFilter::run`] it.
    pub fn bound_filter(&self, group: &str, topic: &str) -> Option<BoundFilter> {
        let (deployed, fail_open) = self.binding_for(Role::Filter, &format!("{group}@{topic}"))?;
        Some(BoundFilter { deployed, fail_open })
    }

    /// The bound filter's decisions for `msgs` (in order), or `None` if no filter is bound to
    /// (group, topic). Failures follow the binding's policy: `Undecided` (fail closed) or
    /// `Pass` (fail open).
    pub fn filter(&self, group: &str, topic: &str, msgs: &[PluginMessage<'_>]) -> Option<Vec<Decision>> {
        Some(self.bound_filter(group, topic)?.run(msgs))
    }

    /// SQL92 subscriptions through the SQL92 plugin (`sqlFilterEngine=plugin`): the decisions of
    /// the instance for `expression`, made on first use from the component at `component` (read
    /// once) with the expression as its `create` parameter, then reused. Fails closed as a bound
    /// filter does: `Undecided` for what it could not decide (also when the component cannot be
    /// read or refuses the expression), with the same bisection and quarantine.
    pub fn filter_sql(&self, component: &Path, expression: &str, msgs: &[PluginMessage<'_>]) -> Vec<Decision> {
        match self.sql_deployment(component, expression) {
            Ok(d) => Self::run_filter(&d, false, msgs),
            Err(_) => vec![Decision::Undecided; msgs.len()],
        }
    }

    /// Reads and compiles the SQL92 component and creates it with an expression every message
    /// passes: what would make every SQL92 pull fail shows at start.
    ///
    /// # Errors
    /// The component cannot be read, is not a filter component, or refuses the expression.
    pub fn start_sql_engine(&self, component: &Path) -> std::result::Result<(), String> {
        self.sql_deployment(component, SQL_ENGINE_PROBE_EXPRESSION).map(|_| ())
    }

    fn sql_deployment(&self, component: &Path, expression: &str) -> std::result::Result<Arc<Deployed>, String> {
        let lock = || self.sql.by_expression.lock().unwrap_or_else(|e| e.into_inner());
        let found = |map: &mut HashMap<String, SqlEntry>| {
            let e = map.get_mut(expression)?;
            e.used = self.sql.uses.fetch_add(1, Ordering::Relaxed);
            Some(e.made.clone())
        };
        if let Some(made) = found(&mut lock()) {
            return made;
        }
        let _creating = self.sql.creating.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(made) = found(&mut lock()) {
            return made;
        }
        let wasm = self
            .sql
            .wasm
            .get_or_init(|| {
                std::fs::read(component).map(Arc::new).map_err(|e| {
                    let why = format!("sqlFilterPlugin {}: {e}", component.display());
                    tracing::error!(error = %why, "the SQL92 filter plugin cannot be read; SQL92 pulls deliver nothing");
                    why
                })
            })
            .clone()?;
        let params = vec![("expression".to_owned(), expression.to_owned())];
        let made = self
            .prepare(SQL_ENGINE_NAME, &wasm, params, Some(Role::Filter), 1, crate::store::now_ms())
            .map_err(|e| {
                tracing::error!(expression, error = %e, "the SQL92 filter plugin refused a subscription; it receives nothing");
                e.to_string()
            })
            .inspect(|d| d.log.host_line("info", &format!("engine for SQL92 subscription `{expression}` created")));
        let mut map = lock();
        if map.len() >= SQL_ENGINE_EXPRESSIONS_MAX
            && let Some(evict) = map.iter().min_by_key(|(_, e)| e.used).map(|(k, _)| k.clone())
            && let Some(SqlEntry { made: Ok(old), .. }) = map.remove(&evict)
        {
            old.pool.clear();
        }
        let used = self.sql.uses.fetch_add(1, Ordering::Relaxed);
        map.entry(expression.to_owned()).or_insert(SqlEntry { made, used }).made.clone()
    }

    /// A filter deployment's decisions for `msgs`, failures following `fail_open`.
    fn run_filter(d: &Deployed, fail_open: bool, msgs: &[PluginMessage<'_>]) -> Vec<Decision> {
        let fallback = if fail_open { Decision::Pass } else { Decision::Undecided };
        if msgs.is_empty() {
            return Vec::new();
        }
        if !d.health.admit(Instant::now()) {
            d.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
            return vec![fallback; msgs.len()];
        }
        let mut out = Vec::with_capacity(msgs.len());
        let mut failed = false;
        for chunk in msgs.chunks(d.info.max_batch) {
            if failed {
                out.extend(std::iter::repeat_n(fallback, chunk.len()));
                continue;
            }
            match d.filter_range(chunk) {
                Ok(v) => out.extend(v.into_iter().map(|x| if x == Decision::Undecided { fallback } else { x })),
                Err(_) => {
                    failed = true;
                    d.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
                    out.extend(std::iter::repeat_n(fallback, chunk.len()));
                }
            }
        }
        d.outcome(failed);
        d.stats.passed(out.iter().filter(|x| **x == Decision::Pass).count() as u64);
        out
    }

    /// The router bound to `topic` for one message; `None` if none is bound, or the plugin failed
    /// (then the producer's queue is kept).
    pub fn route(&self, topic: &str, write_queues: u32, msg: &PluginMessage<'_>) -> Option<RouteDecision> {
        let (d, _) = self.binding_for(Role::Router, topic)?;
        if !d.health.admit(Instant::now()) {
            d.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let started = Instant::now();
        let r = d.with_one(msg, |live| live.route(topic, write_queues, Deployed::deadline_ms(1)));
        d.stats.call(1, started.elapsed());
        match r {
            Ok(mut v) if v.len() == 1 => {
                d.outcome(false);
                let decision = v.pop()?;
                if decision != RouteDecision::Keep {
                    d.stats.passed(1);
                }
                Some(decision)
            }
            Ok(v) => {
                d.note_error(&CallError::Plugin(format!("returned {} decisions for 1 message", v.len())));
                d.outcome(true);
                d.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
                None
            }
            Err(e) => {
                d.note_error(&e);
                d.outcome(true);
                d.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// The checker bound to `producer_group` for one half message; `None` if none is bound, and
    /// `Unknown` when it failed (the producer is asked as usual).
    pub fn check(&self, producer_group: &str, msg: &PluginMessage<'_>) -> Option<Resolution> {
        let (d, _) = self.binding_for(Role::Checker, producer_group)?;
        if !d.health.admit(Instant::now()) {
            d.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
            return Some(Resolution::Unknown);
        }
        let started = Instant::now();
        let r = d.with_one(msg, |live| live.check(CHECK_DEADLINE_MS));
        d.stats.call(1, started.elapsed());
        match r {
            Ok(v) if v.len() == 1 => {
                d.outcome(false);
                if v[0] != Resolution::Unknown {
                    d.stats.passed(1);
                }
                Some(v[0])
            }
            other => {
                let e = match other {
                    Err(e) => e,
                    Ok(v) => CallError::Plugin(format!("returned {} resolutions for 1 message", v.len())),
                };
                d.note_error(&e);
                d.outcome(true);
                d.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
                Some(Resolution::Unknown)
            }
        }
    }

    /// The whole plugin set and its bindings, for a slave to install ([`Plugins::install_snapshot`]).
    pub fn snapshot(&self) -> Vec<u8> {
        let s = self.read();
        let snap = Snapshot {
            plugins: s
                .plugins
                .values()
                .filter_map(|d| {
                    let file = self.dir.join("wasm").join(format!("{}.v{}.wasm", d.name, d.version));
                    let wasm = std::fs::read(&file).ok()?;
                    Some(SnapshotPlugin {
                        name: d.name.clone(),
                        version: d.version,
                        params: d.params.clone(),
                        wasm_hex: hex(&wasm),
                    })
                })
                .collect(),
            bindings: s.bindings.values().cloned().collect(),
        };
        serde_json::to_vec(&snap).unwrap_or_default()
    }

    /// Makes this broker's plugins and bindings those of `snapshot` (from a master's
    /// [`Plugins::snapshot`]): deploys what is new or of another version, removes what is gone.
    pub fn install_snapshot(&self, snapshot: &[u8]) -> Result<()> {
        let snap: Snapshot =
            serde_json::from_slice(snapshot).map_err(|e| PluginError::BadRequest(format!("plugin snapshot: {e}")))?;
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        for p in &snap.plugins {
            let current = self.read().plugins.get(&p.name).cloned();
            if current.as_ref().is_some_and(|c| c.version == p.version) {
                continue;
            }
            let wasm = unhex(&p.wasm_hex)
                .ok_or_else(|| PluginError::BadRequest(format!("plugin snapshot: `{}` is not hex", p.name)))?;
            self.deploy_version(&p.name, &wasm, p.params.clone(), None, p.version, current)?;
        }
        {
            let mut s = self.write();
            let keep: Vec<&str> = snap.plugins.iter().map(|p| p.name.as_str()).collect();
            s.plugins.retain(|n, _| keep.contains(&n.as_str()));
            s.bindings = snap
                .bindings
                .into_iter()
                .filter(|b| s.plugins.get(&b.plugin).is_some_and(|d| d.role == b.role))
                .map(|b| (b.key(), b))
                .collect();
            self.bound.store(s.bindings.len(), Ordering::Release);
        }
        self.persist()
    }
}

fn describe_binding(b: &Binding) -> String {
    match b.role {
        Role::Filter => format!(
            "filter on group {} topic {}{}",
            b.group.as_deref().unwrap_or(""),
            b.topic.as_deref().unwrap_or(""),
            if b.fail_open { " (fail open)" } else { "" }
        ),
        Role::Router => format!("router on topic {}", b.topic.as_deref().unwrap_or("")),
        Role::Checker => format!("checker on producer group {}", b.group.as_deref().unwrap_or("")),
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let io = |e: std::io::Error| PluginError::Io(format!("{}: {e}", path.display()));
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
