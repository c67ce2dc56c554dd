//! Namespaced key/value settings (Java: `KVConfigManager`), kept in memory and written to
//! `kvConfigPath` after every change as `{"configTable":{"<namespace>":{"<key>":"<value>"}}}`.
//!
//! Writing is atomic: the whole table goes to `<file>.tmp`, which is fsynced and renamed over
//! `<file>`, then the directory is fsynced, so a crash leaves the old or the new table. Java writes
//! a `.tmp` and a `.bak` and syncs nothing. Writers are serialised and each writes the table as it
//! is when its turn comes, so the file never goes back to an older table.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use serde::{Deserialize, Serialize};

use super::Error;

/// Largest `kvConfig.json` read at start: 64 MiB, checked before reading.
pub const KV_CONFIG_FILE_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// The KV namespace whose entries are order-topic configs (`NamesrvUtil.NAMESPACE_ORDER_TOPIC_CONFIG`).
pub const NAMESPACE_ORDER_TOPIC_CONFIG: &str = "ORDER_TOPIC_CONFIG";

type Table = BTreeMap<String, BTreeMap<String, String>>;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KvFile {
    #[serde(default)]
    config_table: BTreeMap<String, BTreeMap<String, Option<String>>>,
}

/// The KV settings and the file they persist to.
#[derive(Debug)]
pub struct KvConfig {
    path: PathBuf,
    table: RwLock<Table>,
    persisting: Mutex<()>,
}

impl KvConfig {
    /// Loads `path`; a missing or empty file is an empty table.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be read, [`Error::KvCorrupt`] if it is larger than
    /// [`KV_CONFIG_FILE_BYTES_MAX`] or not a KV config.
    pub fn load(path: impl Into<PathBuf>) -> Result<KvConfig, Error> {
        let path = path.into();
        let table = read_table(&path)?;
        if !table.is_empty() {
            tracing::info!(file = %path.display(), namespaces = table.len(), "loaded the KV config");
        }
        Ok(KvConfig { path, table: RwLock::new(table), persisting: Mutex::new(()) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sets `key` in `namespace` (in memory; call [`KvConfig::persist`] after).
    pub fn put(&self, namespace: &str, key: &str, value: &str) {
        let prev = self
            .table
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(namespace.to_owned())
            .or_default()
            .insert(key.to_owned(), value.to_owned());
        tracing::info!(namespace, key, value, updated = prev.is_some(), "KV config put");
    }

    pub fn get(&self, namespace: &str, key: &str) -> Option<String> {
        self.table.read().unwrap_or_else(|e| e.into_inner()).get(namespace)?.get(key).cloned()
    }

    /// Removes `key` from `namespace` (in memory); the namespace stays, possibly empty, as in Java.
    pub fn delete(&self, namespace: &str, key: &str) -> Option<String> {
        let value = self.table.write().unwrap_or_else(|e| e.into_inner()).get_mut(namespace)?.remove(key);
        tracing::info!(namespace, key, value = ?value, "KV config deleted");
        value
    }

    /// Every entry of `namespace`, or `None` if it was never created.
    pub fn namespace(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        self.table.read().unwrap_or_else(|e| e.into_inner()).get(namespace).cloned()
    }

    /// Writes the table to the file (blocking: fsyncs).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the file whose write, sync or rename failed.
    pub fn persist(&self) -> Result<(), Error> {
        let _turn = self.persisting.lock().unwrap_or_else(|e| e.into_inner());
        let bytes = {
            let table = self.table.read().unwrap_or_else(|e| e.into_inner());
            let file = KvFile {
                config_table: table
                    .iter()
                    .map(|(ns, kv)| (ns.clone(), kv.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect()))
                    .collect(),
            };
            crate::protocol::body::to_json(&file)
        };
        write_atomically(&self.path, &bytes)
    }
}

fn read_table(path: &Path) -> Result<Table, Error> {
    let io_error = |source| Error::Io { path: path.to_owned(), source };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Table::new()),
        Err(e) => return Err(io_error(e)),
    };
    let mut bytes = Vec::new();
    file.take(KV_CONFIG_FILE_BYTES_MAX + 1).read_to_end(&mut bytes).map_err(io_error)?;
    if bytes.len() as u64 > KV_CONFIG_FILE_BYTES_MAX {
        return Err(Error::KvCorrupt {
            path: path.to_owned(),
            reason: format!("larger than the limit of {KV_CONFIG_FILE_BYTES_MAX} bytes"),
        });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Table::new());
    }
    let file: KvFile =
        crate::protocol::body::parse(&bytes).map_err(|reason| Error::KvCorrupt { path: path.to_owned(), reason })?;
    Ok(file
        .config_table
        .into_iter()
        .map(|(ns, kv)| (ns, kv.into_iter().filter_map(|(k, v)| Some((k, v?))).collect()))
        .collect())
}

/// `<path>.tmp`, fsync, rename over `path`, fsync the directory.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let io_error = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let mut file = File::create(&tmp).map_err(io_error(&tmp))?;
    file.write_all(bytes).map_err(io_error(&tmp))?;
    file.sync_all().map_err(io_error(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_error(path))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_error(dir))
}
