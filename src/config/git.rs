//! Git and pull-request settings: the flags plus what GitHub's environment
//! says (token, server, API URL).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::git::{Author, GitSettings};
use crate::secret::Secret;

/// The flags the git settings come from.
pub(super) struct GitFlags {
    pub work_dir: PathBuf,
    pub push: bool,
    pub pr: bool,
    pub author: Author,
}

impl GitFlags {
    pub fn from_cli(cli: &super::flags::Cli, env: &HashMap<String, String>) -> Self {
        GitFlags {
            work_dir: cli
                .work_dir
                .clone()
                .unwrap_or_else(|| super::home_dir(env).join(".buildd").join("workspaces")),
            push: !cli.no_push,
            pr: !cli.no_push && !cli.no_pr,
            author: cli.git_author.clone().unwrap_or_default(),
        }
    }
}

/// Git settings from the flags and the GitHub environment variables; a
/// relative work dir is taken from `cwd`, where the agent started.
pub(super) fn resolve(
    flags: GitFlags,
    cwd: &Path,
    server: &str,
    env: &HashMap<String, String>,
) -> GitSettings {
    let var = |k: &str| {
        env.get(k)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let token = var("GITHUB_TOKEN")
        .or_else(|| var("GH_TOKEN"))
        .map(Secret::new);
    let work_dir = if flags.work_dir.is_absolute() {
        flags.work_dir
    } else {
        cwd.join(flags.work_dir)
    };
    GitSettings {
        work_dir,
        cwd: cwd.to_path_buf(),
        push: flags.push,
        pr: flags.pr,
        author: flags.author,
        token,
        server_url: var("GITHUB_SERVER_URL")
            .map(|u| u.trim_end_matches('/').to_string())
            .unwrap_or_else(|| "https://github.com".into()),
        api_url: var("GITHUB_API_URL").unwrap_or_else(|| "https://api.github.com".into()),
        buildd_server: server.to_string(),
        parent_env: env.iter().map(|(k, v)| (k.into(), v.into())).collect(),
    }
}
