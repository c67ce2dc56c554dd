//! `mqbroker -c broker.properties`: loads the configuration, opens and recovers the store, and
//! keeps it open until SIGINT or SIGTERM, then shuts it down cleanly.
//!
//! The native remoting door (listenPort), the name server registration and the gateways come with
//! their issues; today the program is the store's host process.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use broker::config::BrokerConfig;
use broker::store::MessageStore;

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
    let store_config = config.store_config();
    let root = store_config.root_dir.clone();
    let store =
        MessageStore::open(store_config).with_context(|| format!("opening the store under {}", root.display()))?;
    tracing::info!(
        cluster = %config.broker_cluster_name,
        broker = %config.broker_name,
        role = %config.broker_role,
        store = %root.display(),
        commit_log_max_offset = store.commit_log_max_offset(),
        "Broker store is open; waiting for SIGINT or SIGTERM."
    );
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    })
    .context("waiting for a signal")?;
    tracing::info!("Shutting down.");
    store.shutdown().context("shutting the store down")?;
    Ok(())
}
