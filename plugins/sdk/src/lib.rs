//! Write broker plugins as plain Rust.
//!
//! A plugin is one type that implements one trait, [`Filter`], [`Router`] or [`Checker`], and one
//! macro call that exports it ([`export_filter!`], [`export_router!`], [`export_checker!`]). The
//! SDK hides the WIT bindings: the batch the broker sends (one byte buffer plus a packed index) is
//! handed to your code one [`Message`] at a time, and your answers are packed back into bitmaps.
//!
//! ```no_run
//! use rocketmq_plugin_sdk::{Filter, Message, Params, export_filter};
//!
//! struct EuOnly;
//!
//! impl Filter for EuOnly {
//!     fn create(_params: &Params) -> Result<Self, String> {
//!         Ok(EuOnly)
//!     }
//!     fn matches(&self, msg: &Message) -> Result<bool, String> {
//!         Ok(msg.property("region") == Some("eu"))
//!     }
//! }
//!
//! export_filter!(EuOnly);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`: the `.wasm` is a component.

use std::collections::BTreeMap;

/// The generated bindings, one module per world. Plugin code does not need them.
#[doc(hidden)]
pub mod bindings {
    pub mod filter {
        wit_bindgen::generate!({
            world: "filter-plugin",
            path: "../../wit",
            pub_export_macro: true,
            export_macro_name: "__export_filter_world",
            default_bindings_module: "rocketmq_plugin_sdk::bindings::filter",
        });
    }
    pub mod router {
        wit_bindgen::generate!({
            world: "router-plugin",
            path: "../../wit",
            pub_export_macro: true,
            export_macro_name: "__export_router_world",
            default_bindings_module: "rocketmq_plugin_sdk::bindings::router",
        });
    }
    pub mod checker {
        wit_bindgen::generate!({
            world: "transaction-checker-plugin",
            path: "../../wit",
            pub_export_macro: true,
            export_macro_name: "__export_checker_world",
            default_bindings_module: "rocketmq_plugin_sdk::bindings::checker",
        });
    }
}

mod adapters;
mod message;
pub mod testing;

pub use adapters::{CheckerAdapter, FilterAdapter, RouterAdapter};
pub use message::{Batch, INDEX_WORDS, Message};

/// Deploy-time parameters (`mqadmin plugin deploy ... -k name=value`).
#[derive(Debug, Clone, Default)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Params {
        Params(pairs.into_iter().collect())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The parameter, or an error naming it.
    pub fn required(&self, name: &str) -> Result<&str, String> {
        self.get(name).ok_or_else(|| format!("missing parameter `{name}`"))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Which message fields the host must copy in. Ask only for what you read: bodies are skipped
/// unless `body` is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    pub topic: bool,
    pub tags: bool,
    pub keys: bool,
    pub properties: bool,
    pub body: bool,
}

impl Needs {
    pub const ALL: Needs = Needs { topic: true, tags: true, keys: true, properties: true, body: true };
    pub const NO_BODY: Needs = Needs { topic: true, tags: true, keys: true, properties: true, body: false };
}

/// A filter: decides which messages a consumer group receives.
pub trait Filter: Sized + 'static {
    /// Name and version shown by `mqadmin plugin describe`.
    const NAME: &'static str = "filter";
    const VERSION: &'static str = "0.1.0";
    const NEEDS: Needs = Needs::ALL;
    /// Most messages per call (the host clamps it to its own limit).
    const MAX_BATCH: u32 = 256;

    /// Builds the filter from its parameters; an error refuses the deployment.
    fn create(params: &Params) -> Result<Self, String>;

    /// A cheap first stage over the tags hash code alone (RocketMQ's `String.hashCode`);
    /// `false` drops the message without reading it. Only called when `HAS_PREFILTER` is true.
    fn prefilter(&self, _tags_code: i64) -> bool {
        true
    }
    const HAS_PREFILTER: bool = false;

    /// Whether this instance prefilters at all (with `HAS_PREFILTER`): `false` tells the broker
    /// that these parameters give nothing to prefilter on, and it stops asking, saving a call
    /// per batch.
    fn prefilters(&self) -> bool {
        Self::HAS_PREFILTER
    }

    /// Deliver this message? An error means "could not evaluate": the message is not delivered,
    /// and the broker counts it.
    fn matches(&self, msg: &Message<'_>) -> Result<bool, String>;
}

/// Where a router sends one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The queue the producer chose.
    Keep,
    /// This queue of the same topic (modulo its write queue count).
    Queue(u32),
    /// Another (existing) topic, on this queue or on the producer's queue id.
    Topic(String, Option<u32>),
    /// Refuse the send.
    Reject(String),
}

/// The send a router looks at.
#[derive(Debug, Clone)]
pub struct RouteContext {
    pub topic: String,
    pub write_queues: u32,
}

/// A router: chooses the queue or topic of a message on send.
pub trait Router: Sized + 'static {
    const NAME: &'static str = "router";
    const VERSION: &'static str = "0.1.0";
    const NEEDS: Needs = Needs::ALL;
    const MAX_BATCH: u32 = 256;

    fn create(params: &Params) -> Result<Self, String>;
    fn route(&self, ctx: &RouteContext, msg: &Message<'_>) -> Route;
}

/// The outcome of a transaction check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    Commit,
    Rollback,
    /// No decision: the broker asks the producer.
    Unknown,
}

/// A transaction checker: resolves half messages the producer left open.
pub trait Checker: Sized + 'static {
    const NAME: &'static str = "checker";
    const VERSION: &'static str = "0.1.0";
    const NEEDS: Needs = Needs::ALL;
    const MAX_BATCH: u32 = 64;

    fn create(params: &Params) -> Result<Self, String>;
    fn check(&self, msg: &Message<'_>) -> Resolution;
}

/// Log levels for [`log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// A line in the plugin's log (rate-limited by the broker; `mqadmin plugin logs`).
pub fn log(level: Level, msg: &str) {
    use bindings::filter::rocketmq::plugin::host;
    use bindings::filter::rocketmq::plugin::types::Level as L;
    let l = match level {
        Level::Trace => L::Trace,
        Level::Debug => L::Debug,
        Level::Info => L::Info,
        Level::Warn => L::Warn,
        Level::Error => L::Error,
    };
    host::log(l, msg);
}

/// Adds to one of the plugin's own counters.
pub fn counter_add(name: &str, delta: u64) {
    bindings::filter::rocketmq::plugin::host::counter_add(name, delta);
}

/// Wall-clock milliseconds since the Unix epoch (the only clock a plugin has).
pub fn now_millis() -> u64 {
    bindings::filter::rocketmq::plugin::host::now_millis()
}

/// Sends a panic's message to the plugin log instead of stderr (which a plugin does not have), so
/// the host sees a plain `unreachable` trap and the operator sees why in `mqadmin plugin logs`.
pub(crate) fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
            let what = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            log(Level::Error, &format!("panicked{at}: {what}"));
        }));
    });
}

/// Exports a [`Filter`] as the component's `filter` interface.
#[macro_export]
macro_rules! export_filter {
    ($t:ty) => {
        struct __RocketmqFilterPlugin;
        impl $crate::bindings::filter::exports::rocketmq::plugin::filter::Guest for __RocketmqFilterPlugin {
            type Matcher = $crate::FilterAdapter<$t>;
            fn info() -> $crate::bindings::filter::rocketmq::plugin::types::PluginInfo {
                $crate::FilterAdapter::<$t>::info()
            }
        }
        $crate::bindings::filter::__export_filter_world!(__RocketmqFilterPlugin);
    };
}

/// Exports a [`Router`] as the component's `router` interface.
#[macro_export]
macro_rules! export_router {
    ($t:ty) => {
        struct __RocketmqRouterPlugin;
        impl $crate::bindings::router::exports::rocketmq::plugin::router::Guest for __RocketmqRouterPlugin {
            type Selector = $crate::RouterAdapter<$t>;
            fn info() -> $crate::bindings::router::rocketmq::plugin::types::PluginInfo {
                $crate::RouterAdapter::<$t>::info()
            }
        }
        $crate::bindings::router::__export_router_world!(__RocketmqRouterPlugin);
    };
}

/// Exports a [`Checker`] as the component's `transaction-checker` interface.
#[macro_export]
macro_rules! export_checker {
    ($t:ty) => {
        struct __RocketmqCheckerPlugin;
        impl $crate::bindings::checker::exports::rocketmq::plugin::transaction_checker::Guest
            for __RocketmqCheckerPlugin
        {
            type Checker = $crate::CheckerAdapter<$t>;
            fn info() -> $crate::bindings::checker::rocketmq::plugin::types::PluginInfo {
                $crate::CheckerAdapter::<$t>::info()
            }
        }
        $crate::bindings::checker::__export_checker_world!(__RocketmqCheckerPlugin);
    };
}
