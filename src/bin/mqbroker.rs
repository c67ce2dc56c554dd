//! `mqbroker -c broker.properties`: loads the configuration, opens and recovers the store, serves
//! RocketMQ's native protocol on `listenPort` (and the VIP port `listenPort - 2`), registers with
//! the name servers, and shuts down cleanly on SIGINT or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use broker::config::BrokerConfig;
use broker::processor::Broker;

const USAGE: &str =
    "usage: mqbroker -c <broker.properties>\n\nStarts a broker with the settings in the file (RocketMQ 4.9 keys).";

fn parse_args() -> anyhow::Result<Option<PathBuf>> {
    let mut args = std::env::args().skip(1);
    let mut config = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "-c" | "--configFile" => config = Some(PathBuf::from(args.next().context("-c needs a file")?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => anyhow::bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    config.map(Some).context(USAGE)
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
    let Some(path) = parse_args()? else { return Ok(()) };
    let loaded = BrokerConfig::load(&path).with_context(|| format!("loading {}", path.display()))?;
    loaded.warn_unknown();
    let config = loaded.config;
    if config.namesrv_addrs.is_empty() {
        tracing::warn!("namesrvAddr is not set: clients cannot find this broker through a name server");
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    rt.block_on(async {
        let broker = Broker::start(config).await?;
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
        broker.shutdown().await
    })
}
