//! A strict stand-in for the three GitHub REST routes the agent uses for pull
//! requests: create, list by head branch, update.
//!
//! It checks the token (`Authorization: Bearer …` or `token …`), the JSON the
//! client sends (title, head, base, body; nothing unknown), that the head
//! branch exists in the origin repository when one is attached (GitHub answers
//! 422 otherwise), and answers 422 in GitHub's error shape when an open PR for
//! that head exists. Requests are recorded; mistakes are listed in
//! [`FakeGithub::violations`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{patch, post};
use serde::Serialize;
use serde_json::{Value, json};

/// One request as the fake received it.
#[derive(Debug, Clone, Serialize)]
pub struct GhRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
    pub body: Value,
    pub status: u16,
}

/// A pull request the fake knows.
#[derive(Debug, Clone, Serialize)]
pub struct FakePr {
    pub number: u64,
    pub owner: String,
    pub repo: String,
    pub head: String,
    pub base: String,
    pub title: String,
    pub body: String,
    pub state: String,
}

#[derive(Default)]
struct Inner {
    token: String,
    /// `owner/repo` → bare repository, to check that head branches exist.
    repos: Vec<(String, PathBuf)>,
    prs: Vec<FakePr>,
    requests: Vec<GhRequest>,
    violations: Vec<String>,
    /// Answer the next creates with this status (a GitHub outage).
    fail_create: Option<u16>,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(s: &Shared) -> MutexGuard<'_, Inner> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running fake GitHub API. Dropping it stops the server.
pub struct FakeGithub {
    addr: SocketAddr,
    state: Shared,
    _served: crate::serve::Served,
}

impl FakeGithub {
    /// Start on 127.0.0.1, accepting only `token`.
    pub fn start(token: &str) -> FakeGithub {
        let state: Shared = Arc::new(Mutex::new(Inner {
            token: token.into(),
            ..Default::default()
        }));
        let app = Router::new()
            .route("/repos/{owner}/{repo}/pulls", post(create).get(list))
            .route("/repos/{owner}/{repo}/pulls/{number}", patch(update))
            .fallback(unknown)
            .with_state(state.clone());
        let served = crate::serve::in_thread("127.0.0.1:0", app, "the fake GitHub API");
        FakeGithub {
            addr: served.addr,
            state,
            _served: served,
        }
    }

    /// `http://127.0.0.1:<port>`, for `GITHUB_API_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Check head branches of `owner/repo` PRs against this bare repository.
    pub fn attach_repo(&self, full_name: &str, git_dir: PathBuf) {
        lock(&self.state).repos.push((full_name.into(), git_dir));
    }

    /// Seed an open PR (as if an earlier run had opened it).
    pub fn add_pr(&self, owner: &str, repo: &str, head: &str, base: &str) -> u64 {
        let mut s = lock(&self.state);
        let number = s.prs.len() as u64 + 1;
        s.prs.push(FakePr {
            number,
            owner: owner.into(),
            repo: repo.into(),
            head: head.into(),
            base: base.into(),
            title: "earlier".into(),
            body: "earlier body".into(),
            state: "open".into(),
        });
        number
    }

    /// Answer PR creation with this status from now on.
    pub fn fail_create(&self, status: u16) {
        lock(&self.state).fail_create = Some(status);
    }

    pub fn requests(&self) -> Vec<GhRequest> {
        lock(&self.state).requests.clone()
    }

    pub fn prs(&self) -> Vec<FakePr> {
        lock(&self.state).prs.clone()
    }

    /// What the client got wrong (should be empty).
    pub fn violations(&self) -> Vec<String> {
        lock(&self.state).violations.clone()
    }
}

fn pr_json(base_url: &str, pr: &FakePr) -> Value {
    let api = format!(
        "{base_url}/repos/{}/{}/pulls/{}",
        pr.owner, pr.repo, pr.number
    );
    json!({
        "id": 1000 + pr.number, "node_id": format!("PR_{}", pr.number), "number": pr.number,
        "url": api, "html_url": format!("https://github.example/{}/{}/pull/{}", pr.owner, pr.repo, pr.number),
        "state": pr.state, "locked": false, "title": pr.title, "body": pr.body, "draft": false,
        "head": { "ref": pr.head, "sha": "0000000000000000000000000000000000000001", "label": format!("{}:{}", pr.owner, pr.head) },
        "base": { "ref": pr.base, "sha": "0000000000000000000000000000000000000002", "label": format!("{}:{}", pr.owner, pr.base) },
        "created_at": "2026-11-26T00:00:00Z", "updated_at": "2026-11-26T00:00:00Z"
    })
}

fn error(status: StatusCode, message: &str, errors: Option<Value>) -> Response {
    let mut body = json!({ "message": message, "documentation_url": "https://docs.github.com/rest/pulls/pulls", "status": status.as_u16().to_string() });
    if let Some(e) = errors {
        body["errors"] = e;
    }
    (status, axum::Json(body)).into_response()
}

/// Record the request; check auth. `Err` is the response to send instead.
fn begin(
    s: &mut Inner,
    method: &Method,
    path: String,
    query: String,
    headers: &HeaderMap,
    body: Value,
) -> Result<usize, Box<Response>> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    s.requests.push(GhRequest {
        method: method.to_string(),
        path,
        query,
        authorization: auth.clone(),
        body,
        status: 0,
    });
    let i = s.requests.len() - 1;
    let ok = auth.as_deref().is_some_and(|a| {
        a.strip_prefix("Bearer ")
            .or_else(|| a.strip_prefix("token "))
            .is_some_and(|t| t == s.token)
    });
    if !ok {
        s.violations.push(format!(
            "{} {}: missing or wrong token",
            s.requests[i].method, s.requests[i].path
        ));
        s.requests[i].status = 401;
        return Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "Bad credentials",
            None,
        )));
    }
    Ok(i)
}

fn done(s: &mut Inner, i: usize, r: Response) -> Response {
    s.requests[i].status = r.status().as_u16();
    r
}

async fn create(
    State(state): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let mut s = lock(&state);
    let path = format!("/repos/{owner}/{repo}/pulls");
    let i = match begin(&mut s, &method, path, String::new(), &headers, body.clone()) {
        Ok(i) => i,
        Err(r) => return *r,
    };
    let Some(obj) = body.as_object() else {
        s.violations
            .push("create: body is not a JSON object".into());
        return done(
            &mut s,
            i,
            error(StatusCode::BAD_REQUEST, "Problems parsing JSON", None),
        );
    };
    for k in obj.keys() {
        if ![
            "title",
            "head",
            "base",
            "body",
            "draft",
            "maintainer_can_modify",
        ]
        .contains(&k.as_str())
        {
            s.violations.push(format!("create: unexpected field {k:?}"));
        }
    }
    let field = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
    let (Some(title), Some(head), Some(base), Some(text)) =
        (field("title"), field("head"), field("base"), field("body"))
    else {
        s.violations.push(format!(
            "create: title, head, base and body are all required: {body}"
        ));
        return done(
            &mut s,
            i,
            error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed", None),
        );
    };
    if title.trim().is_empty() || head.is_empty() || base.is_empty() || head == base {
        s.violations.push(format!(
            "create: bad title/head/base {title:?} {head:?} {base:?}"
        ));
        return done(
            &mut s,
            i,
            error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed", None),
        );
    }
    if let Some(code) = s.fail_create {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return done(&mut s, i, error(status, "Server Error", None));
    }
    let full = format!("{owner}/{repo}");
    if let Some((_, dir)) = s.repos.iter().find(|(n, _)| *n == full) {
        for (what, branch) in [("head", &head), ("base", &base)] {
            let exists = std::process::Command::new("git")
                .arg("--git-dir")
                .arg(dir)
                .args([
                    "rev-parse",
                    "--verify",
                    "--quiet",
                    &format!("refs/heads/{branch}"),
                ])
                .output()
                .is_ok_and(|o| o.status.success());
            if !exists {
                s.violations.push(format!(
                    "create: {what} branch {branch:?} is not in the repository"
                ));
                let errors =
                    json!([{ "resource": "PullRequest", "field": what, "code": "invalid" }]);
                return done(
                    &mut s,
                    i,
                    error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "Validation Failed",
                        Some(errors),
                    ),
                );
            }
        }
    }
    if s.prs
        .iter()
        .any(|p| p.owner == owner && p.repo == repo && p.head == head && p.state == "open")
    {
        let errors = json!([{ "resource": "PullRequest", "code": "custom",
            "message": format!("A pull request already exists for {owner}:{head}.") }]);
        return done(
            &mut s,
            i,
            error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Validation Failed",
                Some(errors),
            ),
        );
    }
    let pr = FakePr {
        number: s.prs.len() as u64 + 1,
        owner,
        repo,
        head,
        base,
        title,
        body: text,
        state: "open".into(),
    };
    s.prs.push(pr.clone());
    let base_url = host(&headers);
    done(
        &mut s,
        i,
        (StatusCode::CREATED, axum::Json(pr_json(&base_url, &pr))).into_response(),
    )
}

async fn list(
    State(state): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    Query(q): Query<Vec<(String, String)>>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let mut s = lock(&state);
    let query: Vec<String> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let path = format!("/repos/{owner}/{repo}/pulls");
    let i = match begin(
        &mut s,
        &method,
        path,
        query.join("&"),
        &headers,
        Value::Null,
    ) {
        Ok(i) => i,
        Err(r) => return *r,
    };
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let head = get("head");
    let state_filter = get("state").unwrap_or_else(|| "open".into());
    match &head {
        Some(h)
            if h.split_once(':')
                .is_some_and(|(o, b)| !o.is_empty() && !b.is_empty()) => {}
        _ => s
            .violations
            .push(format!("list: head must be owner:branch, got {head:?}")),
    }
    let base_url = host(&headers);
    let items: Vec<Value> = s
        .prs
        .iter()
        .filter(|p| p.owner == owner && p.repo == repo)
        .filter(|p| state_filter == "all" || p.state == state_filter)
        .filter(|p| {
            head.as_deref()
                .is_none_or(|h| *h == format!("{}:{}", p.owner, p.head))
        })
        .map(|p| pr_json(&base_url, p))
        .collect();
    done(&mut s, i, axum::Json(Value::Array(items)).into_response())
}

async fn update(
    State(state): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    method: Method,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let mut s = lock(&state);
    let path = format!("/repos/{owner}/{repo}/pulls/{number}");
    let i = match begin(&mut s, &method, path, String::new(), &headers, body.clone()) {
        Ok(i) => i,
        Err(r) => return *r,
    };
    let Some(obj) = body.as_object() else {
        s.violations
            .push("update: body is not a JSON object".into());
        return done(
            &mut s,
            i,
            error(StatusCode::BAD_REQUEST, "Problems parsing JSON", None),
        );
    };
    for (k, v) in obj {
        // octocrab repeats the number in the body; GitHub ignores it, but it must agree.
        let echo = k == "pull_number" && v.as_u64() == Some(number);
        if !echo
            && !["title", "body", "state", "base", "maintainer_can_modify"].contains(&k.as_str())
        {
            s.violations.push(format!("update: unexpected field {k:?}"));
        }
    }
    let base_url = host(&headers);
    let Some(pr) = s
        .prs
        .iter_mut()
        .find(|p| p.owner == owner && p.repo == repo && p.number == number)
    else {
        s.violations.push(format!("update: no PR #{number}"));
        return done(&mut s, i, error(StatusCode::NOT_FOUND, "Not Found", None));
    };
    if let Some(b) = obj.get("body").and_then(Value::as_str) {
        pr.body = b.into();
    }
    if let Some(t) = obj.get("title").and_then(Value::as_str) {
        pr.title = t.into();
    }
    let json = pr_json(&base_url, pr);
    done(&mut s, i, axum::Json(json).into_response())
}

async fn unknown(State(state): State<Shared>, method: Method, uri: axum::http::Uri) -> Response {
    let mut s = lock(&state);
    s.violations
        .push(format!("unexpected request {method} {uri}"));
    error(StatusCode::NOT_FOUND, "Not Found", None)
}

fn host(headers: &HeaderMap) -> String {
    headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map_or_else(|| "http://127.0.0.1".into(), |h| format!("http://{h}"))
}
