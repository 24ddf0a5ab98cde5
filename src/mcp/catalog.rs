//! The tools each MCP server lists, kept per scope for a few minutes, with one HTTP client
//! per scope.
//!
//! Connecting, `initialize` and `tools/list` were four HTTP exchanges per task and about a
//! fifth of a scripted task's CPU (BENCHMARKS.md), for a list that depends only on the
//! server's scope and the key: the buildd server lists its tools by the key's level and
//! the workspace's data class, not by worker. A task that finds its scope listed less than
//! [`CATALOG_TTL`] ago gets the list from here and opens its own session only when the
//! model calls one of the tools; a task that never does makes no MCP request at all. A
//! list that went stale in between costs nothing worse than the server's own error for a
//! call it no longer offers. Sharing the client also means an `https://` server's trust
//! roots are loaded once, not once per task.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::Tool;
use tokio::time::Instant;

use super::{McpEndpoint, McpError, McpSession};
use crate::secret::Secret;

/// A server's tools, shared by the tasks of its scope.
pub type Tools = Arc<[Tool]>;

/// How long a scope's tool list is reused before a task lists it again.
pub const CATALOG_TTL: Duration = Duration::from_secs(300);

/// How long connecting to one server may take before the task goes on without it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a task gets for one server.
#[derive(Debug)]
pub struct Listed {
    /// The scope's client, for opening a session later.
    pub http: reqwest::Client,
    /// The server's tools.
    pub tools: Tools,
    /// The session that listed them, when this task listed them itself.
    pub session: Option<McpSession>,
}

/// The listed scopes of one agent process.
#[derive(Debug)]
pub struct Catalog {
    ttl: Duration,
    scopes: Mutex<Vec<Scope>>,
}

#[derive(Debug)]
struct Scope {
    scope: String,
    bearer: Option<Secret>,
    http: reqwest::Client,
    tools: Option<(Tools, Instant)>,
}

impl Default for Catalog {
    fn default() -> Self {
        Self::with_ttl(CATALOG_TTL)
    }
}

impl Catalog {
    /// A catalog that keeps each list for `ttl`.
    pub fn with_ttl(ttl: Duration) -> Self {
        Self {
            ttl,
            scopes: Mutex::new(Vec::new()),
        }
    }

    /// `endpoint`'s tools: kept ones if fresh, else from a session opened now (and handed
    /// over with them).
    pub async fn list(&self, endpoint: &McpEndpoint) -> Result<Listed, McpError> {
        let (http, kept) = self.lookup(endpoint)?;
        if let Some(tools) = kept {
            return Ok(Listed {
                http,
                tools,
                session: None,
            });
        }
        let session = McpSession::open(http.clone(), endpoint).await?;
        let tools: Tools = session.list_tools().await?.into();
        self.keep(endpoint, tools.clone());
        Ok(Listed {
            http,
            tools,
            session: Some(session),
        })
    }

    /// The scope's client (built on first use) and its tools if listed within the TTL.
    fn lookup(&self, endpoint: &McpEndpoint) -> Result<(reqwest::Client, Option<Tools>), McpError> {
        let mut scopes = self.scopes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = scopes.iter().find(|s| s.serves(endpoint)) {
            let fresh = s.tools.as_ref().filter(|_| s.is_fresh(self.ttl));
            return Ok((s.http.clone(), fresh.map(|(tools, _)| tools.clone())));
        }
        // A daemon serves many workspaces over its life: keep only the scopes listed
        // within the TTL, so the catalog holds what recent tasks used and no more.
        scopes.retain(|s| s.is_fresh(self.ttl));
        let http = crate::http::client_builder(&endpoint.url)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| McpError::Connect {
                name: endpoint.name.clone(),
                url: endpoint.url.clone(),
                cause: format!("no HTTP client: {}", crate::http::error_chain(&e)),
            })?;
        scopes.push(Scope {
            scope: endpoint.scope.clone(),
            bearer: endpoint.bearer.clone(),
            http: http.clone(),
            tools: None,
        });
        Ok((http, None))
    }

    fn keep(&self, endpoint: &McpEndpoint, tools: Tools) {
        let mut scopes = self.scopes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = scopes.iter_mut().find(|s| s.serves(endpoint)) {
            s.tools = Some((tools, Instant::now()));
        }
    }
}

impl Scope {
    fn is_fresh(&self, ttl: Duration) -> bool {
        self.tools
            .as_ref()
            .is_some_and(|(_, at)| at.elapsed() < ttl)
    }

    fn serves(&self, endpoint: &McpEndpoint) -> bool {
        self.scope == endpoint.scope
            && self.bearer.as_ref().map(Secret::expose)
                == endpoint.bearer.as_ref().map(Secret::expose)
    }
}

#[cfg(test)]
mod tests {
    use buildd_fakes::buildd::{DEFAULT_KEY, FakeBuildd, TaskSeed};

    use super::*;
    use crate::buildd::BuilddClient;
    use crate::buildd::types::ClaimRequest;

    /// The fake's MCP endpoints of `n` claimed tasks of one workspace, and the fake.
    async fn endpoints(n: usize) -> (FakeBuildd, Vec<McpEndpoint>) {
        endpoints_in(&vec![None; n]).await
    }

    /// One claimed task's endpoint per entry, each in that workspace (`None`: the default).
    async fn endpoints_in(workspaces: &[Option<&str>]) -> (FakeBuildd, Vec<McpEndpoint>) {
        let fake = FakeBuildd::start();
        let n = workspaces.len();
        for (i, ws) in workspaces.iter().enumerate() {
            fake.add_task(TaskSeed {
                title: format!("task {i}"),
                workspace_id: ws.map(str::to_string),
                ..TaskSeed::default()
            });
        }
        let client = BuilddClient::new(&fake.url(), Secret::new(DEFAULT_KEY), "t").unwrap();
        let claim = ClaimRequest {
            runner: "t".into(),
            max_tasks: n as u32,
            workspace_id: None,
            task_id: None,
            capabilities: Vec::new(),
        };
        let workers = client.claim(&claim).await.unwrap().workers;
        let endpoints = workers
            .iter()
            .map(|w| client.mcp_endpoint(w.task.workspace_id.as_deref().unwrap(), &w.id))
            .collect();
        (fake, endpoints)
    }

    fn count(fake: &FakeBuildd, method: &str) -> usize {
        fake.mcp_methods().iter().filter(|m| *m == method).count()
    }

    #[tokio::test]
    async fn a_scope_is_listed_once_within_the_ttl_and_again_after_it() {
        let (fake, e) = endpoints(3).await;
        let catalog = Catalog::default();
        let first = catalog.list(&e[0]).await.unwrap();
        assert!(first.session.is_some(), "the first task lists them itself");
        let second = catalog.list(&e[1]).await.unwrap();
        assert!(second.session.is_none(), "kept");
        assert!(Arc::ptr_eq(&first.tools, &second.tools));
        assert_eq!(
            (count(&fake, "initialize"), count(&fake, "tools/list")),
            (1, 1)
        );

        let expired = Catalog::with_ttl(Duration::ZERO);
        for endpoint in &e[1..] {
            let listed = expired.list(endpoint).await.unwrap();
            assert!(listed.session.is_some());
            assert_eq!(listed.tools.len(), 3);
        }
        assert_eq!(count(&fake, "tools/list"), 3);
        assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    }

    #[tokio::test]
    async fn another_key_is_another_scope() {
        let (_fake, e) = endpoints(1).await;
        let catalog = Catalog::default();
        catalog.list(&e[0]).await.unwrap();
        let mut other = e[0].clone();
        other.bearer = Some(Secret::new("bld_not_the_agents"));
        let refused = catalog.list(&other).await.unwrap_err();
        assert!(matches!(refused, McpError::Connect { .. }), "{refused}");
        assert!(!refused.to_string().contains("bld_not_the_agents"));
    }

    #[tokio::test]
    async fn only_scopes_listed_within_the_ttl_are_held() {
        let (_fake, e) = endpoints_in(&[Some("ws_a"), Some("ws_b"), Some("ws_a")]).await;
        let catalog = Catalog::with_ttl(Duration::ZERO);
        catalog.list(&e[0]).await.unwrap();
        catalog.list(&e[1]).await.unwrap();
        let held = |c: &Catalog| c.scopes.lock().unwrap().len();
        assert_eq!(held(&catalog), 1, "ws_a expired when ws_b came");
        let kept = Catalog::default();
        for endpoint in &e {
            kept.list(endpoint).await.unwrap();
        }
        assert_eq!(held(&kept), 2, "one per workspace");
    }
}
