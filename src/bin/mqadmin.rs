//! `mqadmin <command> [-n namesrv] [--json] ...`: RocketMQ's admin tool with its sub-command names
//! and flags (`mqadmin help` lists them). Prints RocketMQ-style tables, or JSON with `--json`;
//! exits 0 on success, 1 on a server or connection failure, 2 on a usage error, 3 when nothing
//! was found. The name server comes from `-n` or `NAMESRV_ADDR`.

use std::process::ExitCode;

fn main() -> ExitCode {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .init();
    }
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mqadmin: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(broker::admin::run(argv));
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
