//! How the model's commands are confined: `--sandbox`, `--egress` and the
//! extra paths, against what this machine's kernel can enforce.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::ConfigError;
use super::flags::Cli;
use crate::process::sandbox::{self, Access, HostPaths, Sandbox};

/// The agent-wide sandbox decision and what every task's policy is built from.
#[derive(Debug, Clone)]
pub struct SandboxSettings {
    /// Mode × what the kernel supports, decided once.
    pub sandbox: Sandbox,
    /// The environment values the default path lists depend on.
    pub host: HostPaths,
    /// The operator's extra paths (`--sandbox-read`, `--sandbox-write`).
    pub extra: Vec<(PathBuf, Access)>,
    /// Where each task's private temp dir is made.
    pub temp_root: PathBuf,
}

/// Decide the sandbox. `require` on a machine that cannot confine (or cannot
/// restrict the requested egress) is a configuration error.
pub(super) fn resolve(
    cli: &Cli,
    work_dir: &Path,
    env: &HashMap<String, String>,
) -> Result<SandboxSettings, ConfigError> {
    let sandbox = Sandbox::new(cli.sandbox, sandbox::detect(), cli.egress.clone())
        .map_err(ConfigError::Sandbox)?;
    let extra = cli
        .sandbox_read
        .iter()
        .map(|p| (p.clone(), Access::Read))
        .chain(
            cli.sandbox_write
                .iter()
                .map(|p| (p.clone(), Access::ReadWrite)),
        )
        .collect();
    Ok(SandboxSettings {
        sandbox,
        host: HostPaths::from_lookup(|k| env.get(k).map(Into::into)),
        extra,
        temp_root: work_dir.join("tmp"),
    })
}
