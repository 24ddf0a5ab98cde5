//! Which agent binary the integration tests run.

use std::path::PathBuf;

/// This build's binary, or the one `BUILDD_TEST_AGENT_BIN` names: another build
/// of the same source, such as the static musl binary (`scripts/static-check`
/// runs the whole suite against it).
pub fn agent_binary() -> PathBuf {
    std::env::var_os("BUILDD_TEST_AGENT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_buildd-agent")))
}
