//! Builds the example plugins of `plugins/` (for tests and benchmarks): once per process, with
//! `cargo build --release --target wasm32-wasip2`, adding the target with rustup if it is missing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository's `plugins/` workspace.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("plugins")
}

/// Builds every plugin of `plugins/` and returns the directory holding the `.wasm` files
/// (`sql92_filter.wasm`, `json_filter.wasm`, `key_router.wasm`, `property_checker.wasm`,
/// `hostile_filter.wasm`).
pub fn build() -> Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT.get_or_init(build_now).clone()
}

fn build_now() -> Result<PathBuf, String> {
    let ws = workspace();
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).output();
    let has_target = installed.as_ref().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("wasm32-wasip2"));
    if !has_target {
        let st = Command::new("rustup").args(["target", "add", "wasm32-wasip2"]).status();
        if !st.is_ok_and(|s| s.success()) {
            return Err("`rustup target add wasm32-wasip2` failed".into());
        }
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = ws.join("target");
    let out = Command::new(cargo)
        .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
        .arg(ws.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!("building the plugins failed:\n{}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(target_dir.join("wasm32-wasip2").join("release"))
}

/// The bytes of one built plugin, e.g. `read("sql92_filter")`.
pub fn read(name: &str) -> Result<Vec<u8>, String> {
    let path = build()?.join(format!("{name}.wasm"));
    std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
}
