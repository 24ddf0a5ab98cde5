//! Pull requests through the GitHub REST API (octocrab), against
//! `GITHUB_API_URL` so GitHub Enterprise works.
//!
//! Opening is idempotent: when GitHub answers 422 "A pull request already
//! exists" (a re-run, or a resumed task), the open PR for the branch is looked
//! up and its body updated instead.

use std::time::Duration;

use octocrab::Octocrab;
use octocrab::params::State;

use crate::secret::Secret;

/// What to open.
#[derive(Debug, Clone)]
pub struct PrRequest {
    pub owner: String,
    pub repo: String,
    /// The pushed branch.
    pub head: String,
    /// The branch to merge into.
    pub base: String,
    pub title: String,
    pub body: String,
}

/// The PR that now exists for the branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrInfo {
    pub number: u64,
    pub url: String,
    /// It was there already and was updated.
    pub existed: bool,
}

/// Why the PR could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum GithubError {
    #[error("cannot set up the GitHub client for {url}: {message}")]
    Setup { url: String, message: String },
    #[error("GitHub refused the pull request ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("GitHub says a pull request exists for {head}, but none is open")]
    ExistingNotFound { head: String },
    #[error("the GitHub API call failed: {0}")]
    Other(String),
}

/// How long to wait for GitHub to accept a connection, and for a whole call.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A client for one API base URL and token.
pub struct PullRequests {
    client: Octocrab,
}

impl PullRequests {
    pub fn new(api_url: &str, token: Secret) -> Result<PullRequests, GithubError> {
        let setup = |message: String| GithubError::Setup {
            url: api_url.into(),
            message,
        };
        // Our own reqwest client, so GitHub calls share the agent's TLS set-up and
        // timeouts instead of a second HTTP stack inside octocrab.
        let http = crate::http::client_builder(api_url)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| setup(e.to_string()))?;
        let client = Octocrab::builder()
            .base_uri(api_url)
            .map_err(|e| setup(e.to_string()))?
            .personal_token(token.expose().to_string())
            .build_with_reqwest(http)
            .map_err(|e| setup(e.to_string()))?;
        Ok(PullRequests { client })
    }

    /// Open the PR, or update the body of the one already open for the branch.
    pub async fn open_or_update(&self, req: &PrRequest) -> Result<PrInfo, GithubError> {
        let pulls = self.client.pulls(&req.owner, &req.repo);
        let created = pulls
            .create(&req.title, &req.head, &req.base)
            .body(&req.body)
            .send()
            .await;
        match created {
            Ok(pr) => Ok(info(&pr, false)),
            Err(e) if already_exists(&e) => {
                let head = format!("{}:{}", req.owner, req.head);
                let page = pulls
                    .list()
                    .head(&head)
                    .state(State::Open)
                    .per_page(10)
                    .send()
                    .await
                    .map_err(describe)?;
                let existing = page
                    .items
                    .into_iter()
                    .find(|p| p.head.ref_field == req.head)
                    .ok_or(GithubError::ExistingNotFound { head })?;
                let updated = pulls
                    .update(existing.number)
                    .body(&req.body)
                    .send()
                    .await
                    .map_err(describe)?;
                Ok(info(&updated, true))
            }
            Err(e) => Err(describe(e)),
        }
    }
}

fn info(pr: &octocrab::models::pulls::PullRequest, existed: bool) -> PrInfo {
    PrInfo {
        number: pr.number,
        url: pr
            .html_url
            .as_ref()
            .map_or_else(|| pr.url.clone(), |u| u.to_string()),
        existed,
    }
}

fn already_exists(e: &octocrab::Error) -> bool {
    match e {
        octocrab::Error::GitHub { source, .. } => {
            source.status_code.as_u16() == 422
                && source.errors.iter().flatten().any(|err| {
                    err.get("message")
                        .and_then(|m| m.as_str())
                        .is_some_and(|m| m.contains("already exists"))
                })
        }
        _ => false,
    }
}

fn describe(e: octocrab::Error) -> GithubError {
    match e {
        octocrab::Error::GitHub { source, .. } => {
            let details: Vec<String> = source
                .errors
                .iter()
                .flatten()
                .filter_map(|err| {
                    err.get("message")
                        .and_then(|m| m.as_str())
                        .map(str::to_string)
                })
                .collect();
            let mut message = source.message.clone();
            if !details.is_empty() {
                message = format!("{message}: {}", details.join("; "));
            }
            GithubError::Refused {
                status: source.status_code.as_u16(),
                message,
            }
        }
        other => GithubError::Other(other.to_string()),
    }
}
