//! [`PluginAdmin`] on the broker's plugin host: upload, list, describe, remove, bind, unbind.

use broker::plugin::{Binding, PluginError, Plugins, Role};
use serde_json::{Value, json};

use crate::routes::{PluginAdmin, PluginFailure, PluginResult};

fn failure(e: PluginError) -> PluginFailure {
    match e {
        PluginError::NotFound(_) => PluginFailure::NotFound(e.to_string()),
        PluginError::BadRequest(ref m) if m.contains("is bound") => PluginFailure::Conflict(e.to_string()),
        other => PluginFailure::BadRequest(other.to_string()),
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> PluginResult {
    serde_json::to_value(v).map_err(|e| PluginFailure::BadRequest(e.to_string()))
}

/// Lines of a plugin's log one request returns.
const PLUGIN_LOG_LINES: usize = 200;

/// A binding from `{role, group, topic, fail_open}`.
fn binding(name: &str, spec: &Value) -> Result<Binding, PluginFailure> {
    let text = |k: &str| spec.get(k).and_then(Value::as_str).map(str::to_owned);
    let role = text("role")
        .as_deref()
        .and_then(Role::parse)
        .ok_or_else(|| PluginFailure::BadRequest("\"role\" must be filter, router or transaction-checker".into()))?;
    Ok(Binding {
        role,
        plugin: name.to_owned(),
        group: text("group"),
        topic: text("topic"),
        fail_open: spec.get("fail_open").and_then(Value::as_bool).unwrap_or(false),
    })
}

impl PluginAdmin for Plugins {
    fn deploy(&self, name: &str, wasm: &[u8], params: Vec<(String, String)>, role: Option<&str>) -> PluginResult {
        let expect = match role {
            Some(r) => Some(Role::parse(r).ok_or_else(|| PluginFailure::BadRequest(format!("unknown role {r:?}")))?),
            None => None,
        };
        let summary = Plugins::deploy(self, name, wasm, params, expect).map_err(failure)?;
        to_json(&summary)
    }

    fn list(&self) -> PluginResult {
        Ok(json!({"plugins": to_json(&Plugins::list(self))?, "bindings": to_json(&self.bindings())?}))
    }

    fn describe(&self, name: &str) -> PluginResult {
        to_json(&Plugins::describe(self, name).map_err(failure)?)
    }

    fn remove(&self, name: &str) -> PluginResult {
        Plugins::remove(self, name).map_err(failure)?;
        Ok(Value::Null)
    }

    fn bind(&self, name: &str, spec: &Value) -> PluginResult {
        let b = binding(name, spec)?;
        Plugins::bind(self, b.clone()).map_err(failure)?;
        to_json(&b)
    }

    fn logs(&self, name: &str) -> PluginResult {
        Ok(json!({"lines": to_json(&Plugins::logs(self, name, PLUGIN_LOG_LINES).map_err(failure)?)?}))
    }

    fn unbind(&self, name: &str, spec: &Value) -> PluginResult {
        let b = binding(name, spec)?;
        let removed = Plugins::unbind(self, &b).map_err(failure)?;
        if !removed {
            return Err(PluginFailure::NotFound(format!("no such binding of {name}")));
        }
        Ok(Value::Null)
    }
}
