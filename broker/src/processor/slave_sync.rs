//! A slave's metadata follows its master: every [`SYNC_INTERVAL_MS`] it asks the master (the
//! `masterAddr` the name server announced) for its topic table (GET_ALL_TOPIC_CONFIG), consumer
//! offsets (GET_ALL_CONSUMER_OFFSET), delay offsets (GET_ALL_DELAY_OFFSET) and subscription
//! groups (GET_ALL_SUBSCRIPTIONGROUP_CONFIG), and takes them as 4.9.4's `SlaveSynchronize` does:
//! topics and groups replaced when they differ, offsets merged key by key. The Wasm plugins and
//! their bindings follow too (PLUGIN_SNAPSHOT, ours): the slave sends a digest of what it has, and
//! the master answers with its whole plugin set only when the digests differ.
//!
//! So does the AMQP door's durable metadata (exchanges, queues, bindings), the file
//! [`AMQP_METADATA_FILE`] in the store's `config` directory (AMQP_METADATA_SNAPSHOT, ours): the
//! slave sends the SHA-256 of its copy, the master answers with the bytes of its own file only
//! when they differ, and the slave replaces its copy atomically. The broker treats the file as
//! opaque bytes (at most [`AMQP_METADATA_BYTES_MAX`]). A SLAVE does not run the AMQP door (see
//! `mqbroker`): the copy is what the door loads once the broker is restarted as a master (an
//! operator's promotion), so queues, exchanges and bindings are there, with the queues' topics
//! and offsets copied above.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::BrokerInner;
use crate::plugin::Plugins;
use crate::protocol::body::{self, TopicConfigSerializeWrapper};
use crate::protocol::{request, response};
use crate::remoting::RemotingCommand;
use crate::store::metadata::{ConsumerOffsets, DelayOffsets, SubscriptionGroupTable, write_atomically};

/// How often a slave copies its master's metadata (4.9.4: 10 s).
pub const SYNC_INTERVAL_MS: u64 = 10_000;
/// How long one metadata request to the master may take.
pub const SYNC_REQUEST_TIMEOUT_MS: u64 = 3_000;
/// The AMQP door's metadata file in `<store>/config` (`gateway_amqp::model::METADATA_FILE`; the
/// door checks that the two agree).
pub const AMQP_METADATA_FILE: &str = "amqp.json";
/// The largest AMQP metadata file a master sends or a slave takes (below the 16 MiB frame).
pub const AMQP_METADATA_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Runs the sync loop until the task is aborted. The first round runs as soon as the master is
/// known.
pub async fn run(broker: Arc<BrokerInner>) {
    let mut synced_once = false;
    loop {
        let master = broker.master_addr.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let wait = match master {
            Some(addr) => {
                match sync_once(&broker, &addr).await {
                    Ok(()) if !synced_once => {
                        tracing::info!(master = %addr, "Metadata copied from the master");
                        synced_once = true;
                    }
                    Ok(()) => {}
                    Err(e) => tracing::warn!(master = %addr, error = %e, "Copying metadata from the master failed"),
                }
                SYNC_INTERVAL_MS
            }
            None => 1_000,
        };
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
}

/// One round: the four tables, the plugins and the AMQP metadata from `master`.
///
/// # Errors
/// A request failed or a body did not parse; what was taken before stays.
pub async fn sync_once(broker: &BrokerInner, master: &str) -> Result<(), String> {
    let topics: TopicConfigSerializeWrapper = fetch(broker, master, request::GET_ALL_TOPIC_CONFIG).await?;
    if broker.topics.replace_all(topics.topic_config_table) {
        tracing::info!(master, "Topic table updated from the master");
    }

    let offsets: ConsumerOffsets = fetch(broker, master, request::GET_ALL_CONSUMER_OFFSET).await?;
    {
        let mut mine = broker.meta.consumer_offsets();
        for (key, queues) in offsets.offset_table {
            mine.offset_table.insert(key, queues);
        }
    }
    broker.persist_offsets_now();

    let delay: DelayOffsets = fetch(broker, master, request::GET_ALL_DELAY_OFFSET).await?;
    let changed = {
        let mut mine = broker.meta.delay_offsets();
        let changed = *mine != delay;
        *mine = delay;
        changed
    };
    if changed {
        super::delay::persist(broker);
    }

    let groups: SubscriptionGroupTable = fetch(broker, master, request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG).await?;
    if broker.groups.replace_all(groups.subscription_group_table) {
        tracing::info!(master, "Subscription groups updated from the master");
    }

    sync_plugins(broker, master).await?;
    sync_amqp_metadata(broker, master).await
}

/// Where this broker keeps the AMQP door's metadata file.
fn amqp_metadata_path(broker: &BrokerInner) -> PathBuf {
    broker.config.store_path_root_dir.join("config").join(AMQP_METADATA_FILE)
}

/// The SHA-256 (hex) of `bytes`.
fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Asks the master for a digest-compared snapshot (`code`): its bytes when they differ from
/// what `digest` names, `None` when they are the same (or the master has none).
async fn snapshot_if_changed(
    broker: &BrokerInner,
    master: &str,
    code: i32,
    digest: String,
    what: &str,
) -> Result<Option<bytes::Bytes>, String> {
    let request = RemotingCommand::request(code).with_field("digest", digest);
    let timeout = Duration::from_millis(SYNC_REQUEST_TIMEOUT_MS);
    let answer = broker.client.invoke(master, request, timeout).await.map_err(|e| format!("{what}: {e}"))?;
    if answer.code != response::SUCCESS {
        return Err(format!("{what} from {master}: code {} {:?}", answer.code, answer.remark));
    }
    Ok((!answer.body.is_empty()).then_some(answer.body))
}

/// Replaces this broker's AMQP metadata file with the master's when they differ.
async fn sync_amqp_metadata(broker: &BrokerInner, master: &str) -> Result<(), String> {
    let path = amqp_metadata_path(broker);
    let mine = match std::fs::read(&path) {
        Ok(bytes) => sha256_hex(&bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("reading {}: {e}", path.display())),
    };
    let Some(body) =
        snapshot_if_changed(broker, master, request::AMQP_METADATA_SNAPSHOT, mine, "AMQP metadata").await?
    else {
        return Ok(());
    };
    if body.len() > AMQP_METADATA_BYTES_MAX {
        return Err(format!("AMQP metadata from {master}: {} bytes, more than {AMQP_METADATA_BYTES_MAX}", body.len()));
    }
    write_atomically(&path, &body).map_err(|e| format!("AMQP metadata from {master}: {e}"))?;
    tracing::info!(master, "AMQP metadata updated from the master");
    Ok(())
}

/// AMQP_METADATA_SNAPSHOT on a master: the bytes of its AMQP metadata file when the asker's
/// `digest` differs; nothing when equal or when there is no file.
pub fn amqp_metadata_snapshot(broker: &BrokerInner, req: &RemotingCommand) -> RemotingCommand {
    let path = amqp_metadata_path(broker);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return RemotingCommand::response(response::SUCCESS);
        }
        Err(e) => {
            return RemotingCommand::error(response::SYSTEM_ERROR, format!("reading {}: {e}", path.display()));
        }
    };
    if bytes.len() > AMQP_METADATA_BYTES_MAX {
        return RemotingCommand::error(
            response::SYSTEM_ERROR,
            format!("{} has {} bytes, more than {AMQP_METADATA_BYTES_MAX}", path.display(), bytes.len()),
        );
    }
    let digest = sha256_hex(&bytes);
    let mut answer = RemotingCommand::response(response::SUCCESS).with_field("digest", digest.as_str());
    if req.ext_fields.get("digest") != Some(digest.as_str()) {
        answer.body = bytes.into();
    }
    answer
}

/// Installs the master's plugins and bindings when they differ from this broker's.
async fn sync_plugins(broker: &BrokerInner, master: &str) -> Result<(), String> {
    let digest = plugin_digest(&broker.plugins);
    let Some(body) = snapshot_if_changed(broker, master, request::PLUGIN_SNAPSHOT, digest, "plugin snapshot").await?
    else {
        return Ok(());
    };
    let plugins = Arc::clone(&broker.plugins);
    // Installing compiles components: off the async workers.
    tokio::task::spawn_blocking(move || plugins.install_snapshot(&body))
        .await
        .map_err(|e| format!("plugin snapshot: {e}"))?
        .map_err(|e| format!("plugin snapshot from {master}: {e}"))?;
    tracing::info!(master, "Plugins updated from the master");
    Ok(())
}

/// What identifies a plugin set: names, versions, parameters and bindings (a SHA-256, hex).
pub fn plugin_digest(plugins: &Plugins) -> String {
    use sha2::Digest;
    type Deployed = (String, u64, Vec<(String, String)>);
    let mut deployed: Vec<Deployed> = plugins.list().into_iter().map(|p| (p.name, p.version, p.params)).collect();
    deployed.sort();
    let mut bound: Vec<String> =
        plugins.bindings().iter().map(|b| serde_json::to_string(b).unwrap_or_default()).collect();
    bound.sort();
    let text = serde_json::to_string(&(deployed, bound)).unwrap_or_default();
    sha2::Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// PLUGIN_SNAPSHOT on a master: the plugin set when the asker's `digest` differs, else nothing.
pub fn plugin_snapshot(broker: &BrokerInner, req: &RemotingCommand) -> RemotingCommand {
    let digest = plugin_digest(&broker.plugins);
    let theirs = req.ext_fields.get("digest");
    let mut answer = RemotingCommand::response(response::SUCCESS).with_field("digest", digest.as_str());
    if theirs != Some(digest.as_str()) {
        answer.body = broker.plugins.snapshot().into();
    }
    answer
}

async fn fetch<T: serde::de::DeserializeOwned>(broker: &BrokerInner, master: &str, code: i32) -> Result<T, String> {
    let timeout = Duration::from_millis(SYNC_REQUEST_TIMEOUT_MS);
    let answer = broker
        .client
        .invoke(master, RemotingCommand::request(code), timeout)
        .await
        .map_err(|e| format!("request {code} to {master}: {e}"))?;
    if answer.code != response::SUCCESS {
        return Err(format!("request {code} to {master}: code {} {:?}", answer.code, answer.remark));
    }
    body::parse(&answer.body).map_err(|e| format!("request {code} to {master}: body: {e}"))
}
