//! The wasmtime side of the plugin host: one engine (component model, no async concurrency
//! support), a 1 ms epoch ticker for call deadlines, compiled components cached on disk,
//! `InstancePre` per plugin version, a small pool of live instances, and the calls themselves.
//! No wasmtime type leaves this file.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker, ResourceAny, types::ComponentItem};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits};

use super::limits::*;
use super::stats::{PluginLog, Stats, TrapKind};
use super::{Needs, PluginInfo, Role};

mod bindings {
    wasmtime::component::bindgen!({ world: "host-view", path: "../wit" });
}

use bindings::exports::rocketmq::plugin::{filter, router, transaction_checker as checker};
use bindings::rocketmq::plugin::types::{self as wit, MsgBatch};

/// The interface names a component exports for each role (any 0.1.x).
const FILTER_EXPORT: &str = "rocketmq:plugin/filter@0.1";
const ROUTER_EXPORT: &str = "rocketmq:plugin/router@0.1";
const CHECKER_EXPORT: &str = "rocketmq:plugin/transaction-checker@0.1";
const HOST_IMPORT: &str = "rocketmq:plugin/host@0.1";

/// What a failed call was.
#[derive(Debug, Clone)]
pub(super) enum CallError {
    /// The guest trapped (the instance is dropped).
    Trap(TrapKind, String),
    /// The plugin returned an error value.
    Plugin(String),
    /// The host could not run it (instantiation, pool exhausted).
    Host(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Trap(k, m) => write!(f, "trap ({}): {m}", k.name()),
            CallError::Plugin(m) => write!(f, "plugin error: {m}"),
            CallError::Host(m) => write!(f, "host error: {m}"),
        }
    }
}

/// Per-store state: the memory cap and the plugin's log and counters.
pub(super) struct Ctx {
    limits: Limits,
    log: Arc<PluginLog>,
    stats: Arc<Stats>,
}

/// The store's caps, plus the size its linear memory has grown to (the recycling rule reads it).
struct Limits {
    caps: StoreLimits,
    memory_bytes: usize,
}

impl wasmtime::ResourceLimiter for Limits {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = self.caps.memory_growing(current, desired, maximum)?;
        if allowed {
            self.memory_bytes = self.memory_bytes.max(desired);
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.caps.memory_grow_failed(error)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.caps.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.caps.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.caps.instances()
    }

    fn tables(&self) -> usize {
        self.caps.tables()
    }

    fn memories(&self) -> usize {
        self.caps.memories()
    }
}

impl bindings::rocketmq::plugin::types::Host for Ctx {}

impl bindings::rocketmq::plugin::host::Host for Ctx {
    fn log(&mut self, lvl: wit::Level, msg: String) {
        let level = match lvl {
            wit::Level::Trace => "trace",
            wit::Level::Debug => "debug",
            wit::Level::Info => "info",
            wit::Level::Warn => "warn",
            wit::Level::Error => "error",
        };
        self.log.plugin_line(level, &msg);
    }

    fn counter_add(&mut self, name: String, delta: u64) {
        self.stats.custom_add(&name, delta);
    }

    fn now_millis(&mut self) -> u64 {
        crate::store::now_ms().max(0) as u64
    }
}

/// The engine and linker shared by every plugin.
pub(super) struct Host {
    engine: Engine,
    linker: Linker<Ctx>,
}

impl Host {
    /// Builds the engine (compiled code cached under `cache_dir`) and starts the epoch ticker.
    pub(super) fn new(cache_dir: &Path) -> Result<Host, String> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.max_wasm_stack(WASM_STACK_BYTES_MAX);
        config.memory_reservation(MEMORY_RESERVATION_BYTES);
        config.memory_guard_size(MEMORY_GUARD_BYTES as u64);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(POOL_INSTANCES_MAX)
            .total_core_instances(POOL_INSTANCES_MAX * CORE_INSTANCES_PER_COMPONENT)
            .total_memories(POOL_INSTANCES_MAX)
            .total_tables(POOL_INSTANCES_MAX * CORE_INSTANCES_PER_COMPONENT)
            .max_memory_size(INSTANCE_MEMORY_BYTES_MAX);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        if std::fs::create_dir_all(cache_dir).is_ok() {
            let mut cc = wasmtime::CacheConfig::new();
            cc.with_directory(cache_dir);
            match wasmtime::Cache::new(cc) {
                Ok(cache) => {
                    config.cache(Some(cache));
                }
                Err(e) => tracing::warn!(error = %e, "plugin compile cache unavailable; compiling every time"),
            }
        }
        let engine = Engine::new(&config).map_err(|e| format!("could not start the Wasm engine: {e}"))?;
        let mut linker = Linker::new(&engine);
        bindings::rocketmq::plugin::host::add_to_linker::<Ctx, HasSelf<Ctx>>(&mut linker, |c| c)
            .map_err(|e| format!("could not link the host interface: {e}"))?;
        bindings::rocketmq::plugin::types::add_to_linker::<Ctx, HasSelf<Ctx>>(&mut linker, |c| c)
            .map_err(|e| format!("could not link the types interface: {e}"))?;
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || {
                while let Some(e) = weak.upgrade() {
                    e.increment_epoch();
                    drop(e);
                    std::thread::sleep(Duration::from_millis(EPOCH_TICK_MS));
                }
            })
            .map_err(|e| format!("could not start the epoch ticker: {e}"))?;
        Ok(Host { engine, linker })
    }

    /// Compiles (or loads from the cache) and checks a component: its role, its imports.
    pub(super) fn load(&self, wasm: &[u8]) -> Result<(Role, Loaded), String> {
        if wasm.len() < 8 || &wasm[..4] != b"\0asm" {
            return Err("not a WebAssembly file (no \\0asm header)".into());
        }
        if wasm[4..8] == [1, 0, 0, 0] {
            return Err("this is a core WebAssembly module, not a component: build the plugin for the \
                        wasm32-wasip2 target (see the README)"
                .into());
        }
        let component =
            Component::new(&self.engine, wasm).map_err(|e| format!("not a valid component: {}", root_cause(&e)))?;
        let ty = component.component_type();
        let mut roles = Vec::new();
        for (name, _) in ty.exports(&self.engine) {
            if name.starts_with(FILTER_EXPORT) {
                roles.push(Role::Filter);
            } else if name.starts_with(ROUTER_EXPORT) {
                roles.push(Role::Router);
            } else if name.starts_with(CHECKER_EXPORT) {
                roles.push(Role::Checker);
            }
        }
        let role = match roles.as_slice() {
            [r] => *r,
            [] => {
                let names: Vec<String> = ty.exports(&self.engine).map(|(n, _)| n.to_string()).collect();
                return Err(format!(
                    "wrong world: the component exports none of rocketmq:plugin/filter, router or \
                     transaction-checker (it exports: {})",
                    if names.is_empty() { "nothing".to_string() } else { names.join(", ") }
                ));
            }
            _ => return Err("the component exports more than one plugin role; a plugin has one".into()),
        };
        for (name, item) in ty.imports(&self.engine) {
            let allowed = name.starts_with(HOST_IMPORT)
                || name.starts_with("rocketmq:plugin/types@0.1")
                || (name.starts_with("wasi:") && matches!(item.ty, ComponentItem::ComponentInstance(_)));
            if !allowed {
                return Err(format!("the component imports `{name}`, which the broker does not provide"));
            }
        }
        let mut linker = self.linker.clone();
        // WASI (what Rust's std imports): linked, but every call traps. No files, no network.
        linker.define_unknown_imports_as_traps(&component).map_err(|e| format!("cannot link: {}", root_cause(&e)))?;
        let pre = linker.instantiate_pre(&component).map_err(|e| format!("cannot link: {}", root_cause(&e)))?;
        let guest = match role {
            Role::Filter => GuestIndices::Filter(filter::GuestIndices::new(&pre).map_err(|e| e.to_string())?),
            Role::Router => GuestIndices::Router(router::GuestIndices::new(&pre).map_err(|e| e.to_string())?),
            Role::Checker => GuestIndices::Checker(checker::GuestIndices::new(&pre).map_err(|e| e.to_string())?),
        };
        Ok((role, Loaded { engine: self.engine.clone(), pre, guest }))
    }
}

fn root_cause(e: &wasmtime::Error) -> String {
    format!("{e:#}")
}

enum GuestIndices {
    Filter(filter::GuestIndices),
    Router(router::GuestIndices),
    Checker(checker::GuestIndices),
}

enum Guest {
    Filter(filter::Guest),
    Router(router::Guest),
    Checker(checker::Guest),
}

/// A compiled, linked plugin version, ready to instantiate.
pub(super) struct Loaded {
    engine: Engine,
    pre: wasmtime::component::InstancePre<Ctx>,
    guest: GuestIndices,
}

/// One live instance: its store, its role's exports, and the resource `create` returned.
pub(super) struct Live {
    store: Store<Ctx>,
    guest: Guest,
    handle: ResourceAny,
    batch: MsgBatch,
    /// The matcher answered `none` (no opinion) to a prefilter: it is not asked again, which
    /// saves a call per batch for filters whose parameters give them nothing to prefilter on.
    prefilter_has_no_opinion: bool,
    /// Calls made on this instance (the recycling rule reads it).
    calls: u32,
}

fn classify(e: &wasmtime::Error) -> CallError {
    let full = root_cause(e);
    let text = match e.downcast_ref::<wasmtime::Trap>() {
        Some(t) => format!("{t}{}", full.lines().nth(1).map(|l| format!(" ({})", l.trim())).unwrap_or_default()),
        None => full.lines().map(str::trim).collect::<Vec<_>>().join(" | "),
    };
    let text: String = text.chars().take(LOG_LINE_CHARS_MAX / 2).collect();
    let kind = match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => TrapKind::Deadline,
        Some(wasmtime::Trap::UnreachableCodeReached) => TrapKind::Panic,
        Some(wasmtime::Trap::StackOverflow) => TrapKind::Stack,
        Some(_) => TrapKind::Other,
        None if full.contains("growing memory") || full.contains("memory") && full.contains("limit") => {
            TrapKind::Memory
        }
        None => TrapKind::Other,
    };
    CallError::Trap(kind, text)
}

fn plugin_error(e: wit::PluginError) -> String {
    match e {
        wit::PluginError::InvalidConfig(m) => format!("invalid configuration: {m}"),
        wit::PluginError::Internal(m) => m,
    }
}

fn needs_of(n: wit::Needs) -> Needs {
    Needs {
        topic: n.contains(wit::Needs::TOPIC),
        tags: n.contains(wit::Needs::TAGS),
        keys: n.contains(wit::Needs::KEYS),
        properties: n.contains(wit::Needs::PROPERTIES),
        body: n.contains(wit::Needs::BODY),
    }
}

impl Loaded {
    /// A fresh instance with its resource created from `params`; also returns the plugin's info.
    pub(super) fn instantiate(
        &self,
        params: &[(String, String)],
        log: &Arc<PluginLog>,
        stats: &Arc<Stats>,
    ) -> Result<(Live, PluginInfo), CallError> {
        let limits = wasmtime::StoreLimitsBuilder::new()
            .memory_size(INSTANCE_MEMORY_BYTES_MAX)
            .instances(CORE_INSTANCES_PER_COMPONENT as usize)
            .tables(CORE_INSTANCES_PER_COMPONENT as usize)
            .memories(MEMORIES_PER_INSTANCE_MAX)
            .trap_on_grow_failure(true)
            .build();
        let limits = Limits { caps: limits, memory_bytes: 0 };
        let mut store = Store::new(&self.engine, Ctx { limits, log: log.clone(), stats: stats.clone() });
        store.limiter(|c| &mut c.limits);
        store.set_epoch_deadline(CREATE_DEADLINE_MS / EPOCH_TICK_MS);
        let instance = self.pre.instantiate(&mut store).map_err(|e| match classify(&e) {
            CallError::Trap(TrapKind::Other, m) => CallError::Host(format!("cannot instantiate: {m}")),
            other => other,
        })?;
        let (guest, handle, info) = match &self.guest {
            GuestIndices::Filter(ix) => {
                let g = ix.load(&mut store, &instance).map_err(|e| CallError::Host(e.to_string()))?;
                let info = g.call_info(&mut store).map_err(|e| classify(&e))?;
                let h = g
                    .matcher()
                    .call_create(&mut store, params)
                    .map_err(|e| classify(&e))?
                    .map_err(|e| CallError::Plugin(plugin_error(e)))?;
                (Guest::Filter(g), h, info)
            }
            GuestIndices::Router(ix) => {
                let g = ix.load(&mut store, &instance).map_err(|e| CallError::Host(e.to_string()))?;
                let info = g.call_info(&mut store).map_err(|e| classify(&e))?;
                let h = g
                    .selector()
                    .call_create(&mut store, params)
                    .map_err(|e| classify(&e))?
                    .map_err(|e| CallError::Plugin(plugin_error(e)))?;
                (Guest::Router(g), h, info)
            }
            GuestIndices::Checker(ix) => {
                let g = ix.load(&mut store, &instance).map_err(|e| CallError::Host(e.to_string()))?;
                let info = g.call_info(&mut store).map_err(|e| classify(&e))?;
                let h = g
                    .checker()
                    .call_create(&mut store, params)
                    .map_err(|e| classify(&e))?
                    .map_err(|e| CallError::Plugin(plugin_error(e)))?;
                (Guest::Checker(g), h, info)
            }
        };
        let info = PluginInfo {
            name: info.name.chars().take(PLUGIN_INFO_CHARS_MAX).collect(),
            version: info.version.chars().take(PLUGIN_INFO_CHARS_MAX).collect(),
            needs: needs_of(info.needs),
            max_batch: info.max_batch.clamp(1, BATCH_MESSAGES_MAX as u32) as usize,
        };
        let batch = MsgBatch { data: Vec::new(), index: Vec::new() };
        Ok((Live { store, guest, handle, batch, prefilter_has_no_opinion: false, calls: 0 }, info))
    }
}

impl Live {
    /// The reusable batch buffers: fill them, then call.
    pub(super) fn batch_buffers(&mut self) -> (&mut Vec<u8>, &mut Vec<u64>) {
        (&mut self.batch.data, &mut self.batch.index)
    }

    /// Whether this instance has served its time: a guest's allocator fragments and its heap
    /// only grows, so a long-lived instance gets slower; a fresh one from the pool is cheap.
    pub(super) fn worn_out(&self) -> bool {
        self.calls >= INSTANCE_CALLS_MAX || self.store.data().limits.memory_bytes > INSTANCE_MEMORY_RECYCLE_BYTES
    }

    fn arm(&mut self, deadline_ms: u64) {
        self.calls = self.calls.saturating_add(1);
        self.store.set_epoch_deadline(deadline_ms.div_ceil(EPOCH_TICK_MS).max(1));
    }

    /// The filter's prefilter over tags hash codes; `None` = no opinion.
    pub(super) fn prefilter(&mut self, codes: &[i64], deadline_ms: u64) -> Result<Option<Vec<u64>>, CallError> {
        if self.prefilter_has_no_opinion {
            return Ok(None);
        }
        self.arm(deadline_ms);
        let Guest::Filter(g) = &self.guest else { return Err(CallError::Host("not a filter".into())) };
        let bits = g.matcher().call_prefilter(&mut self.store, self.handle, codes).map_err(|e| classify(&e))?;
        self.prefilter_has_no_opinion = bits.is_none();
        Ok(bits)
    }

    /// The filter's full match over the batch buffers: (pass bitmap, error bitmap).
    pub(super) fn matches(&mut self, deadline_ms: u64) -> Result<(Vec<u64>, Vec<u64>), CallError> {
        self.arm(deadline_ms);
        let Guest::Filter(g) = &self.guest else { return Err(CallError::Host("not a filter".into())) };
        let v = g
            .matcher()
            .call_matches(&mut self.store, self.handle, &self.batch)
            .map_err(|e| classify(&e))?
            .map_err(|e| CallError::Plugin(plugin_error(e)))?;
        Ok((v.pass, v.errors))
    }

    /// The router over the batch buffers.
    pub(super) fn route(
        &mut self,
        topic: &str,
        write_queues: u32,
        deadline_ms: u64,
    ) -> Result<Vec<super::RouteDecision>, CallError> {
        self.arm(deadline_ms);
        let Guest::Router(g) = &self.guest else { return Err(CallError::Host("not a router".into())) };
        let ctx = router::RouteContext { topic: topic.to_owned(), write_queues };
        let out = g
            .selector()
            .call_route(&mut self.store, self.handle, &ctx, &self.batch)
            .map_err(|e| classify(&e))?
            .map_err(|e| CallError::Plugin(plugin_error(e)))?;
        Ok(out
            .into_iter()
            .map(|d| match d {
                router::Decision::Keep => super::RouteDecision::Keep,
                router::Decision::ToQueue(q) => super::RouteDecision::Queue(q),
                router::Decision::ToTopic((t, q)) => super::RouteDecision::Topic(t, q),
                router::Decision::Reject(why) => super::RouteDecision::Reject(why),
            })
            .collect())
    }

    /// The transaction checker over the batch buffers.
    pub(super) fn check(&mut self, deadline_ms: u64) -> Result<Vec<super::Resolution>, CallError> {
        self.arm(deadline_ms);
        let Guest::Checker(g) = &self.guest else { return Err(CallError::Host("not a checker".into())) };
        let out = g
            .checker()
            .call_check(&mut self.store, self.handle, &self.batch)
            .map_err(|e| classify(&e))?
            .map_err(|e| CallError::Plugin(plugin_error(e)))?;
        Ok(out
            .into_iter()
            .map(|r| match r {
                checker::Resolution::Commit => super::Resolution::Commit,
                checker::Resolution::Rollback => super::Resolution::Rollback,
                checker::Resolution::Unknown => super::Resolution::Unknown,
            })
            .collect())
    }
}

/// Idle live instances of one plugin version.
#[derive(Default)]
pub(super) struct InstancePool {
    idle: Mutex<Vec<Live>>,
}

impl InstancePool {
    pub(super) fn take(&self) -> Option<Live> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    /// Pools `live` again, unless it is worn out or the pool is full (then it is dropped).
    pub(super) fn give_back(&self, live: Live) {
        if live.worn_out() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < POOL_IDLE_PER_PLUGIN_MAX {
            idle.push(live);
        }
    }

    pub(super) fn clear(&self) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}
