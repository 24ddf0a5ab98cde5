//! Finding the `claude` executable before anything starts.

use std::path::{Path, PathBuf};

use crate::runner::RunError;

/// How to get the CLI when it is missing.
const INSTALL_HINT: &str = "install it with `npm install -g @anthropic-ai/claude-code`, \
     or point --claude-bin (CLAUDE_BIN) at the `claude` executable";

/// Find the `claude` executable: `configured` (a path, or a name looked up on
/// `PATH`), else `claude` on the `PATH` in `env`.
pub(super) fn locate_claude(
    configured: Option<&Path>,
    env: &[(String, String)],
) -> Result<PathBuf, RunError> {
    let path_var = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let wanted = configured.unwrap_or(Path::new("claude"));
    which::which_in(wanted, Some(path_var), cwd).map_err(|err| {
        let where_ = match configured {
            Some(p) => format!("at {} ({err})", p.display()),
            None => "on PATH".to_owned(),
        };
        RunError::Config {
            message: format!("the claude CLI was not found {where_}"),
            hint: Some(INSTALL_HINT.to_owned()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_is_a_config_error_with_install_hint() {
        let err = locate_claude(Some(Path::new("/nonexistent/claude")), &[]).unwrap_err();
        let RunError::Config { message, hint } = err else {
            panic!("{err:?}")
        };
        assert!(message.contains("/nonexistent/claude"));
        let hint = hint.expect("a hint");
        assert!(hint.contains("npm install -g @anthropic-ai/claude-code"));
        assert!(!message.contains("npm install"), "{message}");
        let env = vec![("PATH".to_owned(), "/nonexistent".to_owned())];
        let err = locate_claude(None, &env).unwrap_err();
        assert!(err.to_string().contains("not found on PATH"));
    }
}
