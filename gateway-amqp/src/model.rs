//! Exchanges, bindings and routing (default, direct, fanout, topic, headers; exchange-to-exchange
//! bindings; alternate exchanges), per virtual host, and the metadata file `amqp.json` that keeps
//! the durable ones.
//!
//! Each virtual host ([`Vhost`]) is its own namespace of exchanges and queues. Routing happens
//! once, at publish: [`Vhost::route`] turns an exchange, a routing key and the headers into the
//! set of queues, following exchange-to-exchange bindings with a visited set (so a cycle ends) and
//! the `alternate-exchange` argument when nothing matched.
//!
//! In `amqp.json` the top-level `exchanges` and `queues` are those of vhost `/` (the file's shape
//! before there were other vhosts, so older files still load); every other vhost is an entry of
//! `vhosts` with its own `exchanges` and `queues`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use amq_protocol::types::{AMQPValue, FieldTable};
use serde::{Deserialize, Serialize};

use crate::error::Fail;
use crate::queue::QueueHandle;

/// The metadata file's name in the store's config directory (a slave broker copies its master's,
/// by the same name: `broker::processor::slave_sync::AMQP_METADATA_FILE`).
pub const METADATA_FILE: &str = "amqp.json";
/// Exchange-to-exchange hops followed when routing one message.
pub const ROUTE_HOPS_MAX: usize = 64;

/// An exchange type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Direct,
    Fanout,
    Topic,
    Headers,
}

impl Kind {
    /// `None` for a type this broker does not know (answered with 503, as RabbitMQ does).
    pub fn parse(name: &str) -> Option<Kind> {
        match name {
            "direct" => Some(Kind::Direct),
            "fanout" => Some(Kind::Fanout),
            "topic" => Some(Kind::Topic),
            "headers" => Some(Kind::Headers),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Direct => "direct",
            Kind::Fanout => "fanout",
            Kind::Topic => "topic",
            Kind::Headers => "headers",
        }
    }
}

/// Where a binding leads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "name", rename_all = "lowercase")]
pub enum Dest {
    Queue(String),
    Exchange(String),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Binding {
    pub dest: Dest,
    #[serde(rename = "routingKey")]
    pub key: String,
    #[serde(default)]
    pub arguments: FieldTable,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Exchange {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: Kind,
    pub durable: bool,
    #[serde(rename = "autoDelete")]
    pub auto_delete: bool,
    pub internal: bool,
    #[serde(default)]
    pub arguments: FieldTable,
    #[serde(default)]
    pub bindings: Vec<Binding>,
}

impl Exchange {
    pub fn new(name: &str, kind: Kind, durable: bool) -> Exchange {
        Exchange {
            name: name.to_owned(),
            kind,
            durable,
            auto_delete: false,
            internal: false,
            arguments: FieldTable::default(),
            bindings: Vec::new(),
        }
    }

    fn alternate(&self) -> Option<String> {
        match self.arguments.inner().get("alternate-exchange") {
            Some(v) => value_text(v),
            None => None,
        }
    }
}

/// A durable queue as `amqp.json` keeps it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueueRecord {
    pub name: String,
    /// The RocketMQ topic holding the queue's messages.
    pub topic: String,
    #[serde(rename = "autoDelete")]
    pub auto_delete: bool,
    #[serde(default)]
    pub arguments: FieldTable,
}

/// The file's shape: vhost `/` at the top level, the other vhosts in `vhosts`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct MetadataFile {
    pub version: u32,
    pub exchanges: Vec<Exchange>,
    pub queues: Vec<QueueRecord>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vhosts: Vec<VhostRecord>,
}

/// A vhost other than `/` as `amqp.json` keeps it.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct VhostRecord {
    pub name: String,
    pub exchanges: Vec<Exchange>,
    pub queues: Vec<QueueRecord>,
}

/// The exchanges and queues of one virtual host.
pub struct Vhost {
    pub name: String,
    pub exchanges: HashMap<String, Exchange>,
    pub queues: HashMap<String, Arc<QueueHandle>>,
}

/// Every virtual host's exchanges and queues.
pub struct Model {
    pub vhosts: HashMap<String, Vhost>,
    path: PathBuf,
}

/// The exchanges every vhost has: the default one and the `amq.*` ones.
fn predeclared() -> Vec<Exchange> {
    vec![
        Exchange::new("", Kind::Direct, true),
        Exchange::new("amq.direct", Kind::Direct, true),
        Exchange::new("amq.fanout", Kind::Fanout, true),
        Exchange::new("amq.topic", Kind::Topic, true),
        Exchange::new("amq.headers", Kind::Headers, true),
        Exchange::new("amq.match", Kind::Headers, true),
    ]
}

impl Model {
    /// Reads `dir/amqp.json` (a missing file is an empty model). Queues are returned as records;
    /// the caller starts them and adds them with [`Model::queues`].
    ///
    /// # Errors
    ///
    /// The file exists but cannot be read or parsed.
    pub fn load(dir: &Path) -> std::io::Result<(Model, Vec<(String, QueueRecord)>)> {
        let path = dir.join(METADATA_FILE);
        let mut model = Model { vhosts: HashMap::new(), path };
        model.vhost_mut(crate::DEFAULT_VHOST);
        let mut queues = Vec::new();
        match std::fs::read(&model.path) {
            Ok(bytes) => {
                let file: MetadataFile = serde_json::from_slice(&bytes).map_err(|e| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", model.path.display()))
                })?;
                let root = VhostRecord {
                    name: crate::DEFAULT_VHOST.to_owned(),
                    exchanges: file.exchanges,
                    queues: file.queues,
                };
                for v in std::iter::once(root).chain(file.vhosts) {
                    let vhost = model.vhost_mut(&v.name);
                    for e in v.exchanges {
                        vhost.exchanges.insert(e.name.clone(), e);
                    }
                    queues.extend(v.queues.into_iter().map(|q| (v.name.clone(), q)));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok((model, queues))
    }

    /// A vhost, created (with the predeclared exchanges) when it is not there yet.
    pub fn vhost_mut(&mut self, name: &str) -> &mut Vhost {
        self.vhosts.entry(name.to_owned()).or_insert_with(|| Vhost {
            name: name.to_owned(),
            exchanges: predeclared().into_iter().map(|e| (e.name.clone(), e)).collect(),
            queues: HashMap::new(),
        })
    }

    /// A vhost that exists.
    ///
    /// # Errors
    ///
    /// 530 when it does not (a connection only opens a vhost that exists, so this is a bug).
    pub fn vhost(&self, name: &str) -> Result<&Vhost, Fail> {
        self.vhosts.get(name).ok_or_else(|| Fail::new(crate::error::NOT_ALLOWED, format!("vhost '{name}' not found")))
    }

    /// A vhost that exists, to change.
    ///
    /// # Errors
    ///
    /// 530 when it does not.
    pub fn vhost_existing_mut(&mut self, name: &str) -> Result<&mut Vhost, Fail> {
        self.vhosts
            .get_mut(name)
            .ok_or_else(|| Fail::new(crate::error::NOT_ALLOWED, format!("vhost '{name}' not found")))
    }

    /// Writes the durable exchanges, queues and the bindings between durable objects of every
    /// vhost: a temporary file, fsync, rename.
    pub fn save(&self) {
        let mut file = MetadataFile { version: 1, ..MetadataFile::default() };
        let mut names: Vec<&String> = self.vhosts.keys().collect();
        names.sort();
        for name in names {
            let (exchanges, queues) = self.vhosts[name].durable_records();
            if name == crate::DEFAULT_VHOST {
                file.exchanges = exchanges;
                file.queues = queues;
            } else if !exchanges.iter().all(|x| predeclared_name(&x.name) && x.bindings.is_empty())
                || !queues.is_empty()
            {
                file.vhosts.push(VhostRecord { name: name.clone(), exchanges, queues });
            }
        }
        if let Err(e) = write_atomically(&self.path, &file) {
            tracing::error!(path = %self.path.display(), error = %e, "could not write the AMQP metadata");
        }
    }
}

/// Whether `name` is one of the exchanges every vhost has.
fn predeclared_name(name: &str) -> bool {
    name.is_empty() || name.starts_with("amq.")
}

impl Vhost {
    /// The durable exchanges (with the bindings between durable objects) and queues, sorted.
    fn durable_records(&self) -> (Vec<Exchange>, Vec<QueueRecord>) {
        let durable_queue = |name: &str| self.queues.get(name).is_some_and(|q| q.durable);
        let durable_exchange = |name: &str| self.exchanges.get(name).is_some_and(|x| x.durable);
        let mut exchanges: Vec<Exchange> = self
            .exchanges
            .values()
            .filter(|x| x.durable)
            .map(|x| {
                let mut x = x.clone();
                x.bindings.retain(|b| match &b.dest {
                    Dest::Queue(q) => durable_queue(q),
                    Dest::Exchange(e) => durable_exchange(e),
                });
                x
            })
            .collect();
        exchanges.sort_by(|a, b| a.name.cmp(&b.name));
        let mut queues: Vec<QueueRecord> = self
            .queues
            .values()
            .filter(|q| q.durable)
            .map(|q| QueueRecord {
                name: q.name.clone(),
                topic: q.topic.clone(),
                auto_delete: q.auto_delete,
                arguments: q.arguments.clone(),
            })
            .collect();
        queues.sort_by(|a, b| a.name.cmp(&b.name));
        (exchanges, queues)
    }

    /// The queues a message published to `exchange` goes to.
    ///
    /// # Errors
    ///
    /// 404 when the exchange does not exist.
    pub fn route(
        &self,
        exchange: &str,
        key: &str,
        headers: Option<&FieldTable>,
    ) -> Result<Vec<Arc<QueueHandle>>, Fail> {
        let Some(start) = self.exchanges.get(exchange) else {
            return Err(Fail::not_found("exchange", exchange, &self.name));
        };
        let mut out: BTreeSet<String> = BTreeSet::new();
        let mut visited: BTreeSet<String> = BTreeSet::new();
        self.route_from(start, key, headers, &mut out, &mut visited);
        let mut alternate_of = start;
        while out.is_empty() {
            let Some(alt) = alternate_of.alternate() else { break };
            let Some(x) = self.exchanges.get(&alt) else { break };
            if !visited.insert(format!("alt:{alt}")) {
                break;
            }
            self.route_from(x, key, headers, &mut out, &mut visited);
            alternate_of = x;
        }
        Ok(out.iter().filter_map(|q| self.queues.get(q).cloned()).collect())
    }

    fn route_from(
        &self,
        x: &Exchange,
        key: &str,
        headers: Option<&FieldTable>,
        out: &mut BTreeSet<String>,
        visited: &mut BTreeSet<String>,
    ) {
        if !visited.insert(x.name.clone()) || visited.len() > ROUTE_HOPS_MAX {
            return;
        }
        if x.name.is_empty() {
            if self.queues.contains_key(key) {
                out.insert(key.to_owned());
            }
            return;
        }
        for b in &x.bindings {
            let hit = match x.kind {
                Kind::Direct => b.key == key,
                Kind::Fanout => true,
                Kind::Topic => topic_matches(&b.key, key),
                Kind::Headers => headers_match(&b.arguments, headers),
            };
            if !hit {
                continue;
            }
            match &b.dest {
                Dest::Queue(q) => {
                    out.insert(q.clone());
                }
                Dest::Exchange(e) => {
                    if let Some(next) = self.exchanges.get(e) {
                        self.route_from(next, key, headers, out, visited);
                    }
                }
            }
        }
    }

    /// Removes every binding that leads to `dest`; returns whether a durable exchange changed.
    pub fn unbind_all(&mut self, dest: &Dest) -> bool {
        let mut durable_changed = false;
        for x in self.exchanges.values_mut() {
            let before = x.bindings.len();
            x.bindings.retain(|b| &b.dest != dest);
            durable_changed |= x.durable && x.bindings.len() != before;
        }
        durable_changed
    }

    /// Whether any exchange binds to `name` (for `exchange.delete` with `if-unused`).
    pub fn is_destination(&self, name: &str) -> bool {
        let d = Dest::Exchange(name.to_owned());
        self.exchanges.values().any(|x| x.bindings.iter().any(|b| b.dest == d))
    }
}

fn write_atomically(path: &Path, file: &MetadataFile) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let bytes = serde_json::to_vec_pretty(file).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// AMQP topic matching: words split on `.`, `*` is exactly one word, `#` zero or more.
pub fn topic_matches(pattern: &str, key: &str) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    let k: Vec<&str> = key.split('.').collect();
    // Dynamic programming over (pattern words, key words): no recursion depth from input.
    let mut can = vec![vec![false; k.len() + 1]; p.len() + 1];
    can[p.len()][k.len()] = true;
    for i in (0..p.len()).rev() {
        for j in (0..=k.len()).rev() {
            can[i][j] = match p[i] {
                "#" => can[i + 1][j] || (j < k.len() && can[i][j + 1]),
                "*" => j < k.len() && can[i + 1][j + 1],
                w => j < k.len() && k[j] == w && can[i + 1][j + 1],
            };
        }
    }
    can[0][0]
}

/// The headers exchange: `x-match` `all` (default) or `any` (`all-with-x`/`any-with-x` also
/// compare `x-` keys); a binding value of type void matches any value of a present header.
pub fn headers_match(binding: &FieldTable, headers: Option<&FieldTable>) -> bool {
    let args = binding.inner();
    let mode = args.get("x-match").and_then(value_text).unwrap_or_else(|| "all".to_owned());
    let with_x = mode.ends_with("-with-x");
    let any = mode.starts_with("any");
    let empty = BTreeMap::new();
    let headers = headers.map_or(&empty, FieldTable::inner);
    for (k, want) in args {
        if k.as_str() == "x-match" || (!with_x && k.as_str().starts_with("x-")) {
            continue;
        }
        let hit = match headers.get(k.as_str()) {
            None => false,
            Some(_) if matches!(want, AMQPValue::Void) => true,
            Some(got) => values_equal(want, got),
        };
        if any && hit {
            return true;
        }
        if !any && !hit {
            return false;
        }
    }
    !any
}

/// Equality across the string types (short and long) and the integer widths, as clients pick
/// different encodings for the same value.
fn values_equal(a: &AMQPValue, b: &AMQPValue) -> bool {
    if let (Some(x), Some(y)) = (value_text(a), value_text(b)) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (value_int(a), value_int(b)) {
        return x == y;
    }
    a == b
}

/// The queue arguments a redeclare must repeat exactly (RabbitMQ's list for classic queues, plus
/// ours): one present on one side only, or with another value, is an inequivalent argument.
const QUEUE_ARGS_COMPARED: &[&str] = &[
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-single-active-consumer",
    "x-rocketmq-topic",
];

/// The first compared argument a redeclare disagrees on: `(name, received, current)`, each
/// value written as RabbitMQ's message writes it (`none`, or `the value '5000' of type 'long'`).
pub fn queue_args_inequivalence(current: &FieldTable, received: &FieldTable) -> Option<(&'static str, String, String)> {
    let show = |v: Option<&AMQPValue>| match v {
        None => "none".to_owned(),
        Some(v) => {
            let text = value_text(v).or_else(|| value_int(v).map(|i| i.to_string())).unwrap_or_else(|| match v {
                AMQPValue::Boolean(b) => b.to_string(),
                other => format!("{other:?}"),
            });
            format!("the value '{text}' of type '{}'", value_type_name(v))
        }
    };
    QUEUE_ARGS_COMPARED.iter().find_map(|&key| {
        let (have, got) = (current.inner().get(key), received.inner().get(key));
        let same = match (have, got) {
            (None, None) => true,
            (Some(a), Some(b)) => values_equal(a, b),
            _ => false,
        };
        (!same).then(|| (key, show(got), show(have)))
    })
}

/// A field value's type as RabbitMQ names it in error messages.
fn value_type_name(v: &AMQPValue) -> &'static str {
    match v {
        AMQPValue::Boolean(_) => "bool",
        AMQPValue::ShortShortInt(_) => "byte",
        AMQPValue::ShortShortUInt(_) => "unsignedbyte",
        AMQPValue::ShortInt(_) => "short",
        AMQPValue::ShortUInt(_) => "unsignedshort",
        AMQPValue::LongInt(_) => "signedint",
        AMQPValue::LongUInt(_) => "unsignedint",
        AMQPValue::LongLongInt(_) => "long",
        AMQPValue::Float(_) => "float",
        AMQPValue::Double(_) => "double",
        AMQPValue::DecimalValue(_) => "decimal",
        AMQPValue::ShortString(_) | AMQPValue::LongString(_) => "longstr",
        AMQPValue::FieldArray(_) => "array",
        AMQPValue::Timestamp(_) => "timestamp",
        AMQPValue::FieldTable(_) => "table",
        AMQPValue::ByteArray(_) => "bytes",
        AMQPValue::Void => "void",
    }
}

/// The text of a string value.
pub fn value_text(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        _ => None,
    }
}

/// The value of an integer of any width.
pub fn value_int(v: &AMQPValue) -> Option<i128> {
    match *v {
        AMQPValue::ShortShortInt(x) => Some(x.into()),
        AMQPValue::ShortShortUInt(x) => Some(x.into()),
        AMQPValue::ShortInt(x) => Some(x.into()),
        AMQPValue::ShortUInt(x) => Some(x.into()),
        AMQPValue::LongInt(x) => Some(x.into()),
        AMQPValue::LongUInt(x) => Some(x.into()),
        AMQPValue::LongLongInt(x) => Some(x.into()),
        AMQPValue::Timestamp(x) => Some(x.into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_broker_replicates_this_file() {
        // A slave copies its master's file by this name (`broker::processor::slave_sync`).
        assert_eq!(METADATA_FILE, broker::processor::slave_sync::AMQP_METADATA_FILE);
    }

    #[test]
    fn redeclared_queue_arguments_must_match() {
        let table = |pairs: &[(&str, AMQPValue)]| {
            let mut t = FieldTable::default();
            for (k, v) in pairs {
                t.insert((*k).into(), v.clone());
            }
            t
        };
        let ttl_int = table(&[("x-message-ttl", AMQPValue::LongInt(5000))]);
        let ttl_long = table(&[("x-message-ttl", AMQPValue::LongLongInt(5000))]);
        let ttl_other = table(&[("x-message-ttl", AMQPValue::LongLongInt(6000))]);
        let dlx = table(&[("x-dead-letter-exchange", AMQPValue::LongString("dlx".into()))]);
        let unrelated = table(&[("x-custom", AMQPValue::Boolean(true))]);
        let none = FieldTable::default();
        type Row<'a> = (&'a FieldTable, &'a FieldTable, Option<(&'a str, &'a str, &'a str)>);
        let rows: [Row; 6] = [
            // The same value in another integer width is the same argument.
            (&ttl_int, &ttl_long, None),
            (
                &ttl_int,
                &ttl_other,
                Some(("x-message-ttl", "the value '6000' of type 'long'", "the value '5000' of type 'signedint'")),
            ),
            (&ttl_int, &none, Some(("x-message-ttl", "none", "the value '5000' of type 'signedint'"))),
            (&none, &dlx, Some(("x-dead-letter-exchange", "the value 'dlx' of type 'longstr'", "none"))),
            // Arguments RabbitMQ does not compare are not compared.
            (&none, &unrelated, None),
            (&dlx, &dlx, None),
        ];
        for (current, received, want) in rows {
            let got = queue_args_inequivalence(current, received);
            let got = got.as_ref().map(|(k, r, c)| (*k, r.as_str(), c.as_str()));
            assert_eq!(got, want, "{current:?} then {received:?}");
        }
    }

    #[test]
    fn topic_patterns() {
        let rows = [
            ("a.b.c", "a.b.c", true),
            ("a.*.c", "a.b.c", true),
            ("a.*.c", "a.c", false),
            ("a.#", "a", true),
            ("a.#", "a.b.c", true),
            ("#", "", true),
            ("#.c", "a.b.c", true),
            ("*", "a.b", false),
            ("a.#.c", "a.c", true),
            ("a.#.c", "a.x.y.c", true),
            ("a.#.c", "a.x.y.d", false),
        ];
        for (p, k, want) in rows {
            assert_eq!(topic_matches(p, k), want, "{p} vs {k}");
        }
    }

    #[test]
    fn headers_all_and_any() {
        let table = |pairs: &[(&str, &str)]| {
            let mut t = FieldTable::default();
            for (k, v) in pairs {
                t.insert((*k).into(), AMQPValue::LongString((*v).into()));
            }
            t
        };
        let msg = table(&[("format", "pdf"), ("type", "report")]);
        let rows = [
            (table(&[("x-match", "all"), ("format", "pdf"), ("type", "report")]), true),
            (table(&[("x-match", "all"), ("format", "pdf"), ("type", "log")]), false),
            (table(&[("x-match", "any"), ("format", "zip"), ("type", "report")]), true),
            (table(&[("x-match", "any"), ("format", "zip"), ("type", "log")]), false),
            (table(&[("format", "pdf")]), true),
        ];
        for (binding, want) in rows {
            assert_eq!(headers_match(&binding, Some(&msg)), want, "{binding:?}");
        }
    }
}
