//! `~/.buildd/config.json`, the file the official `buildd login` writes. We
//! read `apiKey` and `builddServer` from it, ignore the rest, never write it,
//! and warn when other users can read it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;

/// The parts of the config file we read.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ConfigFile {
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default)]
    pub buildd_server: Option<String>,
}

/// `BUILDD_CONFIG`, else `~/.buildd/config.json`.
pub fn config_path(env: &HashMap<String, String>) -> PathBuf {
    if let Some(p) = env.get("BUILDD_CONFIG").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    home_dir(env).join(".buildd").join("config.json")
}

/// `$HOME`, else the current directory (a container with no home still works).
pub fn home_dir(env: &HashMap<String, String>) -> PathBuf {
    env.get("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The config file, read as far as it matters: where it is and what it says. An
/// explicit `BUILDD_CONFIG` that does not exist is an error (a typo would otherwise
/// look like "no file"). A file that cannot be read or parsed is an error only when
/// it is `needed` (flags and env vars leave the key or the server to it); otherwise it
/// is a warning, so a stale file does not stop an agent configured another way.
pub(super) fn load(
    env: &HashMap<String, String>,
    needed: bool,
) -> Result<(PathBuf, ConfigFile), ConfigError> {
    let path = config_path(env);
    let explicit = env.get("BUILDD_CONFIG").is_some_and(|p| !p.is_empty());
    if explicit && !path.exists() {
        return Err(ConfigError::MissingConfigFile { path });
    }
    match read_config_file(&path) {
        Ok(file) => Ok((path, file)),
        Err(e) if !needed => {
            let cause = std::error::Error::source(&e)
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            tracing::warn!(
                "ignoring {e}{cause}; the flags and environment already give the key and server"
            );
            Ok((path, ConfigFile::default()))
        }
        Err(e) => Err(e),
    }
}

/// The file's contents; a missing file is an empty one.
pub(super) fn read_config_file(path: &Path) -> Result<ConfigFile, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ConfigFile::default()),
        Err(source) => {
            return Err(ConfigError::ReadFile {
                path: path.into(),
                source,
            });
        }
    };
    warn_if_readable_by_others(path);
    serde_json::from_str(&text).map_err(|source| ConfigError::ParseFile {
        path: path.into(),
        source,
    })
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o044 != 0
    {
        tracing::warn!(
            "{} is readable by other users; it holds your API key (run: chmod 600 {})",
            path.display(),
            path.display()
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}
