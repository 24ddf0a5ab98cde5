//! Vertex-shaped routes (§11), served by the same fake and script as `/v1/messages`:
//!
//! - `POST /v1/projects/{p}/locations/{region}/publishers/anthropic/models/{model}:streamRawPredict`
//!   (SSE, `stream: true` in the body) and `…:rawPredict` (one JSON message). The body is
//!   the Anthropic request with `anthropic_version:"vertex-2023-10-16"` and no `model`;
//!   betas come in the `anthropic-beta` header. `{model}` is `claude-sonnet-5-5` or an older
//!   `claude-sonnet-4-5@20250929`.
//! - `POST /token`: a Google OAuth token endpoint (`oauth.rs`) that issues access tokens to
//!   the configured service account; predict requests must carry one as
//!   `Authorization: Bearer`, unexpired on the fake's clock, or a JWT the service account
//!   signed itself (what Google's client libraries send for a service account with scopes).
//!
//! Assumptions: errors of Google's front door (unknown project or region, bad token) are
//! Google-shaped (`{"error":{"code","message","status"}}`); errors of the model (400 and the
//! scripted ones) are passed through in the Anthropic shape.

pub mod oauth;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;

pub use oauth::ServiceAccount;

use super::engine::{Auth, Incoming, Outcome, Shared, process};
use super::http::{aggregate, api_error, header_map, parse_body, render_sse};
use super::models::normalize_cloud_id;
use super::params::Route;
use super::record::{AuthKind, RecordedRequest};

/// The project, region and service account the Vertex routes accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VertexConfig {
    pub project: String,
    pub region: String,
    pub service_account: ServiceAccount,
}

impl VertexConfig {
    /// A config for `project` in `region` with the built-in test service account.
    pub fn new(project: &str, region: &str) -> Self {
        Self {
            project: project.into(),
            region: region.into(),
            service_account: ServiceAccount::test(project),
        }
    }
}

/// How long an issued access token lives, on the fake's clock.
const TOKEN_MS: u64 = 3_600_000;

#[derive(Clone)]
struct VertexState {
    shared: Arc<Shared>,
    token_uri: String,
}

pub(crate) fn routes(shared: Arc<Shared>, base_url: &str) -> Router {
    let state = VertexState {
        shared,
        token_uri: format!("{base_url}/token"),
    };
    Router::new()
        .route("/token", post(token))
        .route(
            "/v1/projects/{project}/locations/{region}/publishers/anthropic/models/{tail}",
            post(predict),
        )
        .with_state(state)
}

fn google_error(status: u16, kind: &str, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        code,
        axum::Json(json!({"error":{"code":status,"message":message,"status":kind}})),
    )
        .into_response()
}

async fn token(State(st): State<VertexState>, body: Bytes) -> Response {
    let Some(cfg) = &st.shared.options.vertex else {
        return google_error(404, "NOT_FOUND", "no Vertex configuration");
    };
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let oauth_error = |e: &str, d: &str| {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error":e,"error_description":d})),
        )
            .into_response()
    };
    if field("grant_type") != Some(oauth::JWT_BEARER) {
        return oauth_error("unsupported_grant_type", "Invalid grant_type.");
    }
    let Some(assertion) = field("assertion") else {
        return oauth_error("invalid_request", "Missing required parameter: assertion");
    };
    if let Err(d) = oauth::check_assertion(&cfg.service_account, &st.token_uri, assertion) {
        let mut inner = st.shared.lock();
        inner.violations.push(format!("google token endpoint: {d}"));
        return oauth_error("invalid_grant", &d);
    }
    let now = st.shared.options.clock.now_ms();
    let mut inner = st.shared.lock();
    let access = format!("ya29.fake-{}", inner.google_tokens.len() + 1);
    inner.google_tokens.insert(access.clone(), now + TOKEN_MS);
    axum::Json(json!({"access_token":access,"expires_in":3599,"token_type":"Bearer"}))
        .into_response()
}

async fn predict(
    State(st): State<VertexState>,
    Path((project, region, tail)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(cfg) = &st.shared.options.vertex else {
        return google_error(404, "NOT_FOUND", "no Vertex configuration");
    };
    let (model, streaming) = match tail.rsplit_once(':') {
        Some((m, "streamRawPredict")) => (m.to_string(), true),
        Some((m, "rawPredict")) => (m.to_string(), false),
        _ => return google_error(404, "NOT_FOUND", &format!("unknown method in {tail:?}")),
    };
    let map = header_map(&headers);
    let name = if streaming {
        "vertex-stream-raw-predict"
    } else {
        "vertex-raw-predict"
    };
    // The front door's refusals are recorded like any other request.
    let refuse = |status: u16, kind: &str, msg: &str| {
        let body = parse_body(&body).unwrap_or_default();
        let mut rec = RecordedRequest::new(name, map.clone(), body);
        rec.status = status;
        rec.model = Some(normalize_cloud_id(&model));
        rec.problems = vec![msg.to_string()];
        let mut inner = st.shared.lock();
        inner.violations.push(format!("vertex: {msg}"));
        inner.requests.push(rec);
        google_error(status, kind, msg)
    };
    if project != cfg.project || region != cfg.region {
        let msg =
            format!("Publisher model projects/{project}/locations/{region} not found or no access");
        return refuse(404, "NOT_FOUND", &msg);
    }
    let bearer = map
        .get("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .map(str::to_string);
    let now = st.shared.options.clock.now_ms();
    let issued = bearer.as_ref().is_some_and(|t| {
        st.shared
            .lock()
            .google_tokens
            .get(t)
            .is_some_and(|exp| *exp > now)
    });
    let self_signed = || {
        bearer
            .as_deref()
            .is_some_and(|t| oauth::check_self_signed(&cfg.service_account, t).is_ok())
    };
    let valid = issued || self_signed();
    if !valid {
        let msg = "Request had invalid authentication credentials. Expected OAuth 2 access token.";
        return refuse(401, "UNAUTHENTICATED", msg);
    }
    let incoming = Incoming {
        route: Route::Vertex,
        name,
        headers: map.clone(),
        body: parse_body(&body),
        path_model: Some(normalize_cloud_id(&model)),
        auth: Auth::Checked(Some(AuthKind::Bearer), Vec::new()),
        streaming,
    };
    let outcome = process(&st.shared, incoming);
    if streaming {
        return render_sse(outcome);
    }
    match outcome {
        Outcome::Stream { events, .. } => axum::Json(aggregate(&events)).into_response(),
        Outcome::Error(e) => api_error(&e),
        Outcome::Cut(_) | Outcome::StreamError(_) => google_error(
            500,
            "INTERNAL",
            "The model stopped before finishing (scripted stream failure).",
        ),
    }
}
