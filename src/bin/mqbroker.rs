//! `mqbroker -c broker.properties`: loads the configuration, opens and recovers the store, serves
//! RocketMQ's native protocol on `listenPort` (and the VIP port `listenPort - 2`), registers with
//! the name servers, and shuts down cleanly on SIGINT or SIGTERM.
//!
//! `mqbroker --standalone [-c file]` is the single-node development mode: a name server and a
//! broker in one process, the name server on the first `namesrvAddr` entry (127.0.0.1:9876 by
//! default), the store under `./store`, settings from `-c` or else the built-in standalone ones.
//!
//! Both modes serve the HTTP door (`gateway-http`: REST publish/consume, admin, plugins, health,
//! `/metrics`, the web console at `/dashboard/`) on `httpListenPort` (8080; 0 turns it off) and
//! the AMQP 0-9-1 door (`gateway-amqp`) on `amqpListenPort` (5672; 0 turns it off; never on a
//! SLAVE, whose AMQP metadata is a copy of its master's). The program
//! creates the one metrics registry and passes it to the broker and the doors.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use broker::config::BrokerConfig;
use broker::messaging::local::LocalMessaging;
use broker::metrics::{Metrics, Protocol};
use broker::namesrv::{self, NamesrvConfig};
use broker::processor::Broker;
use std::sync::Arc;

const USAGE: &str = "usage: mqbroker -c <broker.properties>
       mqbroker --standalone [-c <broker.properties>]

Starts a broker with the settings in the file (RocketMQ 4.9 keys). With --standalone, also starts
a name server in the same process (on the first namesrvAddr entry, default 127.0.0.1:9876); without
-c it uses the settings of conf/standalone.properties (store under ./store).";

/// The settings of `conf/standalone.properties`, built in so `--standalone` needs no file.
const STANDALONE_PROPERTIES: &str = "brokerClusterName=DefaultCluster
brokerName=broker-a
brokerId=0
brokerRole=ASYNC_MASTER
flushDiskType=ASYNC_FLUSH
namesrvAddr=127.0.0.1:9876
brokerIP1=127.0.0.1
bindAddress=127.0.0.1
listenPort=10911
storePathRootDir=./store
autoCreateTopicEnable=true
autoCreateSubscriptionGroup=true
";

struct Args {
    config: Option<PathBuf>,
    standalone: bool,
}

fn parse_args() -> anyhow::Result<Option<Args>> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args { config: None, standalone: false };
    while let Some(a) = args.next() {
        match a.as_str() {
            "-c" | "--configFile" => parsed.config = Some(PathBuf::from(args.next().context("-c needs a file")?)),
            "--standalone" => parsed.standalone = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => anyhow::bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    if parsed.config.is_none() && !parsed.standalone {
        anyhow::bail!("{USAGE}");
    }
    Ok(Some(parsed))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mqbroker: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let Some(args) = parse_args()? else { return Ok(()) };
    let loaded = match &args.config {
        Some(path) => BrokerConfig::load(path).with_context(|| format!("loading {}", path.display()))?,
        None => BrokerConfig::from_properties_str(STANDALONE_PROPERTIES).context("the built-in standalone settings")?,
    };
    loaded.warn_unknown();
    let config = loaded.config;
    if config.namesrv_addrs.is_empty() && !args.standalone {
        tracing::warn!("namesrvAddr is not set: clients cannot find this broker through a name server");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.runtime_workers())
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async {
        let name_server = match args.standalone {
            true => Some(start_embedded_name_server(&config).await?),
            false => None,
        };
        let metrics = Arc::new(Metrics::new(prometheus::Registry::new()).context("registering the metrics")?);
        let broker = Broker::start_with_metrics(config, metrics.clone()).await?;
        let amqp = start_amqp_door(&broker, &metrics).await?;
        let http = start_http_door(&broker, metrics, amqp.as_ref().map(gateway_amqp::AmqpServer::console)).await?;
        tracing::info!(
            store = %broker.inner.config.store_path_root_dir.display(),
            commit_log_max_offset = broker.inner.store.commit_log_max_offset(),
            "Store open; serving until SIGINT or SIGTERM."
        );
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
        }
        tracing::info!("Shutting down.");
        if let Some(h) = &http {
            h.shutdown();
        }
        if let Some(a) = &amqp {
            // Before the broker persists the offsets: the queues' delivered marks are offsets.
            a.stop().await;
        }
        let result = broker.shutdown().await;
        if let Some(ns) = name_server {
            ns.shutdown();
        }
        result
    })
}

/// The single-node mode's name server: bound to the first `namesrvAddr` entry (default
/// 127.0.0.1:9876), its KV file next to the store.
async fn start_embedded_name_server(config: &BrokerConfig) -> anyhow::Result<namesrv::NameServer> {
    let first = config.namesrv_addrs.first().cloned().unwrap_or_else(|| "127.0.0.1:9876".to_owned());
    let (host, port) =
        first.rsplit_once(':').with_context(|| format!("namesrvAddr entry {first:?} is not host:port"))?;
    let ns_config = NamesrvConfig {
        listen_port: port.parse().with_context(|| format!("namesrvAddr entry {first:?} has no valid port"))?,
        bind_address: host.to_owned(),
        kv_config_path: config.store_path_root_dir.join("namesrv").join("kvConfig.json"),
        ..NamesrvConfig::default()
    };
    let ns = namesrv::start(ns_config).await.context("starting the embedded name server")?;
    tracing::info!(addr = %ns.local_addr(), "Name server listening (single-node mode)");
    Ok(ns)
}

/// The AMQP 0-9-1 door on `amqpListenPort` (on `bindAddress`, every interface by default),
/// unless 0; its metadata (`amqp.json`) next to the broker's other config files. Not on a SLAVE:
/// its `amqp.json` is a copy of its master's (`processor::slave_sync`), loaded when the broker is
/// restarted as a master; a door there would store nothing (a slave refuses messages) and its
/// declares would write a file the next sync replaces.
async fn start_amqp_door(broker: &Broker, metrics: &Metrics) -> anyhow::Result<Option<gateway_amqp::AmqpServer>> {
    let config = &broker.inner.config;
    if config.amqp_listen_port == 0 {
        return Ok(None);
    }
    if !config.broker_role.is_master() {
        tracing::info!(
            port = config.amqp_listen_port,
            "AMQP door not started: the broker is a SLAVE (its AMQP metadata follows the master's)"
        );
        return Ok(None);
    }
    let messaging =
        LocalMessaging::new(broker.inner.clone(), Protocol::Amqp).context("loading the receipt-handle key")?;
    let host = config.bind_address.clone().unwrap_or_else(|| "0.0.0.0".to_owned());
    let addr = format!("{host}:{}", config.amqp_listen_port);
    let settings = gateway_amqp::Settings {
        user: config.amqp_default_user.clone(),
        pass: config.amqp_default_pass.clone(),
        users: config.amqp_users.clone(),
        frame_max_bytes: config.amqp_frame_max_bytes,
        channel_max: config.amqp_channel_max,
        heartbeat_s: config.amqp_heartbeat_s,
        config_dir: config.store_path_root_dir.join("config"),
    };
    let server = gateway_amqp::serve(&addr, Arc::new(messaging), metrics.registry(), settings)
        .await
        .with_context(|| format!("starting the AMQP door on {addr}"))?;
    tracing::info!(addr = %server.local_addr(), "AMQP door listening");
    Ok(Some(server))
}

/// The HTTP door on `httpListenPort` (on `bindAddress`, every interface by default), unless 0;
/// with the AMQP door's read-only view when that door runs (the console's AMQP page).
async fn start_http_door(
    broker: &Broker,
    metrics: Arc<Metrics>,
    amqp: Option<Arc<dyn broker::messaging::console::AmqpConsole>>,
) -> anyhow::Result<Option<gateway_http::HttpServer>> {
    let config = &broker.inner.config;
    if config.http_listen_port == 0 {
        return Ok(None);
    }
    let messaging =
        LocalMessaging::new(broker.inner.clone(), Protocol::Http).context("loading the receipt-handle key")?;
    // The broker's own plugin registry (a second one over the same directory would diverge).
    let plugins: Arc<dyn gateway_http::PluginAdmin> = broker.inner.plugins.clone();
    let host = config.bind_address.clone().unwrap_or_else(|| "0.0.0.0".to_owned());
    let addr = format!("{host}:{}", config.http_listen_port);
    // The console's login (dashboardLogin, dashboardUser, dashboardPasswordHash).
    let login = gateway_http::Login::resolve(
        config.dashboard_login,
        &host,
        config.dashboard_user.as_deref(),
        config.dashboard_password_hash.as_deref(),
    )
    .map_err(anyhow::Error::msg)
    .context("the console's login settings")?;
    if login.required && !login.configured() {
        tracing::warn!(
            hint = gateway_http::auth::CONFIGURE_HINT,
            "The console at /dashboard/ is read-only: login is on and no user is configured."
        );
    }
    let (login_required, user_configured) = (login.required, login.configured());
    let server = gateway_http::serve_with_login(
        &addr,
        Arc::new(messaging),
        metrics,
        Some(plugins),
        amqp,
        gateway_http::Limits::default(),
        login,
    )
    .await
    .with_context(|| format!("starting the HTTP door on {addr}"))?;
    tracing::info!(addr = %server.local_addr(), login_required, user_configured, "HTTP door listening");
    Ok(Some(server))
}
