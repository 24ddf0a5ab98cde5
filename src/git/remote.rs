//! What the claim's `workspace.repo` names: a GitHub `owner/name` or a git URL,
//! and how to tell whether a remote URL points at the same repository.

/// The repository a task works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoSpec {
    /// What git clones and pushes to.
    pub url: String,
    /// `owner` and `name` when the repository lives on the GitHub host (PRs possible).
    pub github: Option<(String, String)>,
}

impl RepoSpec {
    /// Interpret the claim's repo against the GitHub host (`GITHUB_SERVER_URL`).
    pub fn parse(repo: &str, server_url: &str) -> Result<RepoSpec, String> {
        let repo = repo.trim();
        if repo.is_empty() || repo.starts_with('-') || repo.chars().any(char::is_control) {
            return Err(format!("{repo:?} is not a repository"));
        }
        let server = server_url.trim_end_matches('/');
        let plain = |s: &str| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        if let Some((owner, name)) = repo.split_once('/')
            && !repo.contains(':')
            && !repo.starts_with('/')
            && plain(owner)
            && plain(name.trim_end_matches(".git"))
        {
            let name = name.trim_end_matches(".git");
            return Ok(RepoSpec {
                url: format!("{server}/{owner}/{name}.git"),
                github: Some((owner.into(), name.into())),
            });
        }
        // A URL under the GitHub host still gets PRs.
        let norm = normalize_remote(repo);
        let host = normalize_remote(server);
        let github = norm
            .strip_prefix(&format!("{host}/"))
            .and_then(|rest| rest.split_once('/'))
            .filter(|(o, n)| plain(o) && plain(n) && !n.contains('/'))
            .map(|(o, n)| (o.to_string(), n.to_string()));
        Ok(RepoSpec {
            url: repo.to_string(),
            github,
        })
    }
}

/// A comparable form of a remote URL: scheme, credentials, `.git` and trailing
/// slashes dropped; scp-style `git@host:owner/name` becomes `host/owner/name`;
/// local paths become `file://` paths.
pub fn normalize_remote(url: &str) -> String {
    let mut u = url.trim().trim_end_matches('/').to_string();
    if let Some(rest) = u.strip_suffix(".git") {
        u = rest.to_string();
    }
    if u.starts_with('/') {
        return format!("file://{u}");
    }
    if u.starts_with("file://") {
        return u;
    }
    let rest = match u.split_once("://") {
        Some((_, rest)) => rest.to_string(),
        // scp-like: [user@]host:path
        None => match u.split_once(':') {
            Some((host, path)) => format!("{host}/{}", path.trim_start_matches('/')),
            None => u.clone(),
        },
    };
    // Drop credentials and a default port.
    let rest = match rest.split_once('@') {
        Some((creds, after)) if !creds.contains('/') => after.to_string(),
        _ => rest,
    };
    let rest = rest.replacen(":443/", "/", 1).replacen(":22/", "/", 1);
    rest.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_name_maps_to_the_github_host() {
        let r = RepoSpec::parse("acme/web", "https://github.com").unwrap();
        assert_eq!(r.url, "https://github.com/acme/web.git");
        assert_eq!(r.github, Some(("acme".into(), "web".into())));
        let r = RepoSpec::parse("acme/web.git", "https://ghe.corp/").unwrap();
        assert_eq!(r.url, "https://ghe.corp/acme/web.git");
        let r = RepoSpec::parse("https://github.com/acme/web.git", "https://github.com").unwrap();
        assert_eq!(r.github, Some(("acme".into(), "web".into())));
        let r = RepoSpec::parse("/srv/git/web.git", "https://github.com").unwrap();
        assert_eq!((r.url.as_str(), r.github), ("/srv/git/web.git", None));
        assert!(RepoSpec::parse("--upload-pack=x", "https://github.com").is_err());
    }

    #[test]
    fn remote_forms_of_one_repository_compare_equal() {
        let forms = [
            "https://github.com/Acme/Web.git",
            "https://x-access-token:abc@github.com/acme/web",
            "git@github.com:acme/web.git",
            "ssh://git@github.com:22/acme/web.git",
            "https://github.com/acme/web/",
        ];
        for f in forms {
            assert_eq!(normalize_remote(f), "github.com/acme/web", "{f}");
        }
        assert_eq!(normalize_remote("/srv/web.git"), "file:///srv/web");
        assert_eq!(normalize_remote("file:///srv/web.git"), "file:///srv/web");
        assert_ne!(
            normalize_remote("https://github.com/acme/web"),
            normalize_remote("https://github.com/acme/web2")
        );
    }
}
