//! `mqnamesrv [-c namesrv.properties]`: runs a name server (RocketMQ 4.9 protocol) until SIGINT or
//! SIGTERM. Without `-c` every setting has its default (port 9876 on all interfaces).

use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::Arc;

use anyhow::Context;
use broker::namesrv::{self, NamesrvConfig};

const USAGE: &str = "usage: mqnamesrv [-c <namesrv.properties>]\n\n\
Starts a name server. Keys: listenPort (9876), bindAddress (0.0.0.0), kvConfigPath\n\
(~/namesrv/kvConfig.json), orderMessageEnable, brokerExpiredMillis (120000),\n\
scanNotActiveBrokerInterval (10000), serverChannelMaxIdleTimeSeconds (120), httpListenPort\n\
(0 = off; serves /metrics and /livez).";

enum Args {
    Run(Option<PathBuf>),
    Help,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = std::env::args().skip(1);
    let mut config = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "-c" | "--configFile" => config = Some(PathBuf::from(args.next().context("-c needs a file")?)),
            "-h" | "--help" => return Ok(Args::Help),
            other => anyhow::bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    Ok(Args::Run(config))
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
            eprintln!("mqnamesrv: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let config = match parse_args()? {
        Args::Help => {
            println!("{USAGE}");
            return Ok(());
        }
        Args::Run(None) => NamesrvConfig::default(),
        Args::Run(Some(path)) => {
            // The error names its cause already; `with_context` would print the cause twice.
            let loaded = NamesrvConfig::load(&path).map_err(|e| anyhow::anyhow!("loading {}: {e}", path.display()))?;
            loaded.warn_unknown();
            loaded.config
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    rt.block_on(async {
        let kv = config.kv_config_path.clone();
        let (http_port, bind) = (config.http_listen_port, config.bind_address.clone());
        let server = namesrv::start(config).await?;
        tracing::info!(kv_config = %kv.display(), "Name server listening on {}", server.local_addr());
        let _metrics_port = match http_port {
            0 => None,
            port => Some(start_metrics(&server, &bind, port).await?),
        };
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("waiting for SIGINT")?,
            _ = term.recv() => {}
        }
        tracing::info!("Shutting down.");
        server.shutdown();
        anyhow::Ok(())
    })?;
    // Open connections are dropped with the runtime.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(())
}

/// The name server's metrics on its own small HTTP port: brokers and topics known, per cluster.
async fn start_metrics(
    server: &namesrv::NameServer,
    bind: &str,
    port: u16,
) -> anyhow::Result<gateway_http::HttpServer> {
    let registry = prometheus::Registry::new();
    let brokers = prometheus::IntGaugeVec::new(
        prometheus::Opts::new("rocketmq_namesrv_brokers", "Live brokers registered, by cluster."),
        &["cluster"],
    )?;
    let topics = prometheus::IntGauge::new("rocketmq_namesrv_topics", "Topics with a route.")?;
    registry.register(Box::new(brokers.clone()))?;
    registry.register(Box::new(topics.clone()))?;
    let metrics = Arc::new(broker::metrics::Metrics::new(registry)?);
    let processor = Arc::downgrade(server.processor());
    metrics.on_scrape(move || {
        let Some(p) = processor.upgrade() else { return };
        let routes = p.routes();
        let info = routes.cluster_info();
        brokers.reset();
        for (cluster, names) in &info.cluster_addr_table {
            let live: usize =
                names.iter().filter_map(|n| info.broker_addr_table.get(n)).map(|b| b.broker_addrs.len()).sum();
            brokers.with_label_values(&[cluster.as_str()]).set(live as i64);
        }
        topics.set(routes.topics().topic_list.len() as i64);
    });
    let addr = format!("{bind}:{port}");
    let http = gateway_http::serve_metrics(&addr, metrics).await.with_context(|| format!("binding {addr}"))?;
    tracing::info!(addr = %http.local_addr(), "Name server metrics on /metrics");
    Ok(http)
}
