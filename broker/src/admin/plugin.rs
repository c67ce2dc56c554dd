//! `mqadmin plugin deploy|list|describe|bind|unbind|remove|logs`: the Wasm plugin admin codes
//! (`request::PLUGIN_*`, served by `processor::plugins`) from the command line.
//!
//! Every sub-command goes to one broker (`-b host:port`) or to every master of a cluster
//! (`-c name`); a slave follows its master's plugins and refuses changes.

use std::fmt::Write;

use serde_json::{Value, json};

use super::cli::{Args, CliError, Report};
use crate::client::{ClientConfig, MqClient};
use crate::protocol::{request, response};
use crate::remoting::RemotingCommand;

type Result<T> = std::result::Result<T, CliError>;

/// How long `plugin deploy` waits for the broker (it compiles and dry-runs the component).
const DEPLOY_TIMEOUT_MS: u64 = 60_000;
/// Largest parameters file `plugin deploy -F` reads.
const PARAMS_FILE_BYTES_MAX: u64 = 64 * 1024;
/// Largest component file `plugin deploy -f` reads (the broker has its own, smaller limit and
/// says so; this one only keeps the tool from reading anything huge).
const WASM_FILE_BYTES_MAX: u64 = 15 * 1024 * 1024;

/// Runs `plugin <verb>` (`name` is `"plugin deploy"`, ...).
pub async fn execute(name: &str, args: &Args) -> Result<Report> {
    let client = MqClient::new(ClientConfig::from_env_or(args.namesrv.as_deref()));
    let targets = targets(&client, args).await?;
    let verb = name.strip_prefix("plugin ").unwrap_or(name);
    let mut text = String::new();
    let mut all = serde_json::Map::new();
    let many = targets.len() > 1;
    for addr in &targets {
        let (t, j) = match verb {
            "deploy" => deploy(&client, addr, args).await?,
            "list" => list(&client, addr).await?,
            "describe" => describe(&client, addr, args).await?,
            "bind" => bind(&client, addr, args, true).await?,
            "unbind" => bind(&client, addr, args, false).await?,
            "remove" => remove(&client, addr, args).await?,
            "logs" => logs(&client, addr, args).await?,
            other => return Err(CliError::Usage(format!("unknown command \"plugin {other}\""))),
        };
        if many {
            let _ = writeln!(text, "============{addr}============");
        }
        text.push_str(&t);
        all.insert(addr.clone(), j);
    }
    let json = if many { Value::Object(all) } else { all.into_iter().next().map(|(_, v)| v).unwrap_or(Value::Null) };
    Ok(Report { text, json })
}

/// `-b addr`, or every master of `-c cluster`.
async fn targets(client: &MqClient, args: &Args) -> Result<Vec<String>> {
    if let Some(b) = args.get('b') {
        return Ok(vec![b.to_owned()]);
    }
    let Some(cluster) = args.get('c') else {
        return Err(CliError::Usage("one of -b <brokerAddr> or -c <clusterName> is required".into()));
    };
    let (_, resp) = client.invoke_namesrv(client.request(request::GET_BROKER_CLUSTER_INFO)).await?;
    if resp.code != response::SUCCESS {
        return Err(CliError::Failed(format!("name server: {}", resp.remark.as_deref().unwrap_or(""))));
    }
    let info: crate::protocol::body::ClusterInfo = crate::protocol::body::parse(&resp.body)
        .map_err(|e| CliError::Failed(format!("malformed cluster info: {e}")))?;
    let names = info
        .cluster_addr_table
        .get(cluster)
        .ok_or_else(|| CliError::NotFound(format!("cluster {cluster:?} not found in the name server")))?;
    let mut names = names.clone();
    names.sort();
    let addrs: Vec<String> = names
        .iter()
        .filter_map(|n| info.broker_addr_table.get(n).and_then(|bd| bd.broker_addrs.get(&0)).cloned())
        .collect();
    if addrs.is_empty() {
        return Err(CliError::NotFound(format!("cluster {cluster:?} has no master")));
    }
    Ok(addrs)
}

async fn call(client: &MqClient, addr: &str, cmd: RemotingCommand, timeout_ms: Option<u64>) -> Result<RemotingCommand> {
    let resp = match timeout_ms {
        Some(ms) => client.invoke_broker_timeout(addr, cmd, std::time::Duration::from_millis(ms)).await?,
        None => client.invoke_broker(addr, cmd).await?,
    };
    if resp.code != response::SUCCESS {
        let remark = resp.remark.as_deref().unwrap_or("").to_owned();
        return Err(if remark.starts_with("no plugin named") {
            CliError::NotFound(format!("{addr}: {remark}"))
        } else {
            CliError::Failed(format!("{addr}: {remark} (code {})", resp.code))
        });
    }
    Ok(resp)
}

fn body_json(addr: &str, resp: &RemotingCommand) -> Result<Value> {
    if resp.body.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&resp.body).map_err(|e| CliError::Failed(format!("{addr}: malformed answer: {e}")))
}

fn read_file(path: &str, max: u64, what: &str) -> Result<Vec<u8>> {
    let len = std::fs::metadata(path).map_err(|e| CliError::Usage(format!("{what} {path}: {e}")))?.len();
    if len > max {
        return Err(CliError::Usage(format!("{what} {path} is {len} bytes; at most {max}")));
    }
    std::fs::read(path).map_err(|e| CliError::Usage(format!("{what} {path}: {e}")))
}

/// The deployment's parameters: `-F file` (name=value lines) and/or `-a '{"k":"v"}'`, as the
/// JSON object the broker takes.
fn params(args: &Args) -> Result<serde_json::Map<String, Value>> {
    let mut map = serde_json::Map::new();
    if let Some(path) = args.get('F') {
        let bytes = read_file(path, PARAMS_FILE_BYTES_MAX, "parameters file")?;
        let text = String::from_utf8(bytes).map_err(|_| CliError::Usage(format!("{path} is not UTF-8")))?;
        let pairs = crate::plugin::parse_params(&text).map_err(|e| CliError::Usage(format!("{path}: {e}")))?;
        for (k, v) in pairs {
            map.insert(k, Value::String(v));
        }
    }
    if let Some(a) = args.get('a') {
        let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(a) else {
            return Err(CliError::Usage(format!("-a: {a:?} is not a JSON object of strings")));
        };
        map.extend(obj);
    }
    Ok(map)
}

async fn deploy(client: &MqClient, addr: &str, args: &Args) -> Result<(String, Value)> {
    let name = args.need('p')?;
    let wasm = read_file(args.need('f')?, WASM_FILE_BYTES_MAX, "component")?;
    let params = Value::Object(params(args)?).to_string();
    let mut cmd = client.request(request::PLUGIN_DEPLOY).with_field("name", name).with_field("params", params);
    if let Some(r) = args.get('r') {
        cmd = cmd.with_field("role", r);
    }
    let resp = call(client, addr, cmd.with_body(wasm), Some(DEPLOY_TIMEOUT_MS)).await?;
    let j = body_json(addr, &resp)?;
    let text = format!(
        "deployed {name} version {} ({}, {} bytes) on {addr}\n",
        j["version"],
        j["role"].as_str().unwrap_or("?"),
        j["wasmBytes"]
    );
    Ok((text, j))
}

async fn list(client: &MqClient, addr: &str) -> Result<(String, Value)> {
    let resp = call(client, addr, client.request(request::PLUGIN_LIST), None).await?;
    let j = body_json(addr, &resp)?;
    let mut text = format!("{:<24} {:<20} {:>7} {:>10} {:<11}\n", "#Name", "#Role", "#Ver", "#Bytes", "#State");
    for p in j["plugins"].as_array().into_iter().flatten() {
        let state = if p["quarantined"].as_bool() == Some(true) { "QUARANTINED" } else { "OK" };
        let _ = writeln!(
            text,
            "{:<24} {:<20} {:>7} {:>10} {:<11}",
            p["name"].as_str().unwrap_or(""),
            p["role"].as_str().unwrap_or(""),
            p["version"].to_string(),
            p["wasmBytes"].to_string(),
            state
        );
    }
    let _ = writeln!(text, "\n{:<24} {:<20} {:<24} {:<24}", "#Plugin", "#Role", "#Group", "#Topic");
    for b in j["bindings"].as_array().into_iter().flatten() {
        let fail = if b["failOpen"].as_bool() == Some(true) { " (fail open)" } else { "" };
        let _ = writeln!(
            text,
            "{:<24} {:<20} {:<24} {:<24}{fail}",
            b["plugin"].as_str().unwrap_or(""),
            b["role"].as_str().unwrap_or(""),
            b["group"].as_str().unwrap_or("-"),
            b["topic"].as_str().unwrap_or("-"),
        );
    }
    Ok((text, j))
}

async fn describe(client: &MqClient, addr: &str, args: &Args) -> Result<(String, Value)> {
    let cmd = client.request(request::PLUGIN_DESCRIBE).with_field("name", args.need('p')?);
    let resp = call(client, addr, cmd, None).await?;
    let j = body_json(addr, &resp)?;
    let s = &j["summary"];
    let mut text = String::new();
    let rows: Vec<(&str, String)> = vec![
        ("Name:", s["name"].as_str().unwrap_or("").to_owned()),
        ("Role:", s["role"].as_str().unwrap_or("").to_owned()),
        ("Version:", s["version"].to_string()),
        (
            "Plugin says:",
            format!("{} {}", s["info"]["name"].as_str().unwrap_or(""), s["info"]["version"].as_str().unwrap_or("")),
        ),
        ("Bytes:", s["wasmBytes"].to_string()),
        ("Deployed:", super::commands::format_time(s["deployedMs"].as_i64().unwrap_or(0))),
        ("Quarantined:", s["quarantined"].to_string()),
        ("Parameters:", s["params"].to_string()),
        ("Bindings:", j["bindings"].to_string()),
    ];
    for (k, v) in rows {
        let _ = writeln!(text, "{k:<16} {v}");
    }
    if let Some(c) = j["counters"].as_object() {
        for (k, v) in c {
            let _ = writeln!(text, "{:<16} {v}", format!("{k}:"));
        }
    }
    Ok((text, j))
}

async fn bind(client: &MqClient, addr: &str, args: &Args, bind: bool) -> Result<(String, Value)> {
    let role = args.need('r')?;
    let (code, what) = if bind { (request::PLUGIN_BIND, "bound") } else { (request::PLUGIN_UNBIND, "unbound") };
    let mut cmd = client.request(code).with_field("role", role);
    if bind {
        cmd = cmd.with_field("name", args.need('p')?).with_field("failOpen", args.has('o'));
    }
    for (flag, field) in [('g', "group"), ('t', "topic")] {
        if let Some(v) = args.get(flag) {
            cmd = cmd.with_field(field, v);
        }
    }
    let resp = call(client, addr, cmd, None).await?;
    let remark = resp.remark.clone().filter(|r| !r.is_empty());
    let text = match &remark {
        Some(r) => format!("{addr}: {r}\n"),
        None => format!("{what} on {addr}\n"),
    };
    Ok((text, json!({"ok": true, "remark": remark})))
}

async fn remove(client: &MqClient, addr: &str, args: &Args) -> Result<(String, Value)> {
    let name = args.need('p')?;
    call(client, addr, client.request(request::PLUGIN_REMOVE).with_field("name", name), None).await?;
    Ok((format!("removed {name} from {addr}\n"), json!({"ok": true})))
}

async fn logs(client: &MqClient, addr: &str, args: &Args) -> Result<(String, Value)> {
    let mut cmd = client.request(request::PLUGIN_LOGS).with_field("name", args.need('p')?);
    if let Some(n) = args.parse::<usize>('l')? {
        cmd = cmd.with_field("last", n);
    }
    let resp = call(client, addr, cmd, None).await?;
    let j = body_json(addr, &resp)?;
    let mut text = String::new();
    for l in j.as_array().into_iter().flatten() {
        let _ = writeln!(
            text,
            "{} {:<5} {:<6} {}",
            super::commands::format_time_ms(l["timeMs"].as_i64().unwrap_or(0)),
            l["level"].as_str().unwrap_or(""),
            l["source"].as_str().unwrap_or(""),
            l["message"].as_str().unwrap_or("")
        );
    }
    Ok((text, j))
}
