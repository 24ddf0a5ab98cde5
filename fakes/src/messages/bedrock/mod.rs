//! Bedrock-shaped routes (§11), served by the same fake and script as `/v1/messages`:
//!
//! - `POST /model/{modelId}/invoke-with-response-stream`: InvokeModel with a response stream.
//!   Body in Anthropic form with `anthropic_version:"bedrock-2023-05-31"`, optional
//!   `anthropic_beta:[…]`, and no `model` (it is in the path) and no `stream`. The reply is
//!   AWS event-stream framed (`eventstream.rs`): one `chunk` event per Anthropic stream event,
//!   payload `{"bytes":"<base64 of the event's JSON>"}`; `message_stop` carries
//!   `amazon-bedrock-invocationMetrics`. Errors before the stream are JSON `{"message"}` with
//!   an `x-amzn-ErrorType` header; errors inside it are `exception` frames.
//! - `POST /model/{modelId}/invoke`: the same, answered with the whole message as JSON.
//! - `POST /anthropic/v1/messages`: the Messages API on bedrock-runtime: the Claude API's
//!   request and SSE reply, `model` in the body as a Bedrock id.
//!
//! Every request must carry a valid SigV4 signature for the configured credentials, region
//! and service `bedrock` (`sigv4.rs`), or `Authorization: Bearer <Bedrock API key>` when one
//! is configured.
//!
//! Assumptions ([U] in the doc, or not in it): pings are not forwarded as chunks; the
//! mapping of API errors to Bedrock's (400 → `ValidationException`, 401 → 403
//! `InvalidSignatureException`/`UnrecognizedClientException`, 404 model → 400
//! `ValidationException`, 408 → `ModelTimeoutException`, 409 → `ConflictException`, 429 →
//! `ThrottlingException`, 529 → 503 `ServiceUnavailableException`, other 5xx →
//! `InternalServerException`) and of mid-stream errors (`overloaded_error` →
//! `serviceUnavailableException`, others `internalServerException`); the Messages-API path
//! takes `anthropic-version` as the Claude API does and answers errors in its shape.

pub mod eventstream;
pub mod sigv4;

use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::engine::{Auth, ErrorReply, Incoming, Outcome, Shared, process};
use super::http::{aggregate, header_map, parse_body, render_sse};
use super::models::normalize_cloud_id;
use super::params::Route;
use super::record::AuthKind;
use super::sse::{Event, streamed};

/// The credentials and region the Bedrock routes check requests against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BedrockConfig {
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// When set, requests must carry it as `x-amz-security-token` (temporary credentials).
    pub session_token: Option<String>,
    /// A Bedrock API key accepted as `Authorization: Bearer` instead of a signature.
    pub api_key: Option<String>,
}

impl BedrockConfig {
    pub fn new(region: &str, access_key_id: &str, secret_access_key: &str) -> Self {
        Self {
            region: region.into(),
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
            api_key: None,
        }
    }
}

pub(crate) fn routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/model/{model}/invoke-with-response-stream",
            post(invoke_stream),
        )
        .route("/model/{model}/invoke", post(invoke))
        .route("/anthropic/v1/messages", post(messages))
        .with_state(shared)
}

/// Check the credential of a request: a Bedrock API key, or SigV4.
fn authenticate(shared: &Shared, uri: &str, headers: &HeaderMap, body: &[u8]) -> Auth {
    let Some(cfg) = &shared.options.bedrock else {
        return Auth::Checked(None, vec!["Bedrock routes are not configured".into()]);
    };
    let map = header_map(headers);
    let authz = map
        .get("authorization")
        .map(String::as_str)
        .unwrap_or_default();
    if let Some(token) = authz.strip_prefix("Bearer ") {
        let ok = cfg.api_key.as_deref() == Some(token);
        let problems = if ok {
            vec![]
        } else {
            vec!["The security token included in the request is invalid.".into()]
        };
        return Auth::Checked(Some(AuthKind::Bearer), problems);
    }
    let kind = authz
        .starts_with("AWS4-HMAC-SHA256")
        .then_some(AuthKind::SigV4);
    match sigv4::verify(cfg, "POST", uri, &map, body, SystemTime::now()) {
        Ok(()) => Auth::Checked(kind, vec![]),
        Err(e) => Auth::Checked(kind, vec![e.message().to_string()]),
    }
}

fn path_model(raw: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
    normalize_cloud_id(&decoded)
}

async fn invoke_stream(
    State(shared): State<Arc<Shared>>,
    Path(model): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let incoming = invoke_request(&shared, &model, &uri, &headers, &body, true);
    render_event_stream(process(&shared, incoming))
}

async fn invoke(
    State(shared): State<Arc<Shared>>,
    Path(model): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let incoming = invoke_request(&shared, &model, &uri, &headers, &body, false);
    match process(&shared, incoming) {
        Outcome::Stream { events, .. } => axum::Json(aggregate(&events)).into_response(),
        Outcome::Error(e) => bedrock_error(&e),
        Outcome::Cut(_) | Outcome::StreamError(_) => bedrock_error(&ErrorReply::new(
            500,
            "api_error",
            "The model stopped before finishing (scripted stream failure).",
        )),
    }
}

fn invoke_request(
    shared: &Shared,
    model: &str,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &Bytes,
    streaming: bool,
) -> Incoming {
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    Incoming {
        route: Route::BedrockInvoke,
        name: if streaming {
            "bedrock-invoke-stream"
        } else {
            "bedrock-invoke"
        },
        headers: header_map(headers),
        body: parse_body(body),
        path_model: Some(path_model(model)),
        auth: authenticate(shared, path, headers, body),
        streaming,
    }
}

async fn messages(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed = parse_body(&body);
    let model = parsed
        .as_ref()
        .ok()
        .and_then(|b| b["model"].as_str())
        .map(normalize_cloud_id);
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let incoming = Incoming {
        route: Route::Messages,
        name: "bedrock-messages",
        headers: header_map(&headers),
        body: parsed,
        path_model: model,
        auth: authenticate(&shared, path, &headers, &body),
        streaming: true,
    };
    render_sse(process(&shared, incoming))
}

/// An API error as Bedrock answers it.
fn bedrock_error(e: &ErrorReply) -> Response {
    let (status, kind, message) = match e.status {
        400 => (400, "ValidationException", e.message.clone()),
        401 if e.message.contains("security token") => {
            (403, "UnrecognizedClientException", e.message.clone())
        }
        401 | 403 => (403, "InvalidSignatureException", e.message.clone()),
        404 => (
            400,
            "ValidationException",
            "The provided model identifier is invalid.".into(),
        ),
        408 => (408, "ModelTimeoutException", e.message.clone()),
        409 => (409, "ConflictException", e.message.clone()),
        429 => (429, "ThrottlingException", e.message.clone()),
        529 | 503 => (503, "ServiceUnavailableException", e.message.clone()),
        _ => (500, "InternalServerException", e.message.clone()),
    };
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (code, axum::Json(json!({"message": message}))).into_response();
    if let Ok(v) = HeaderValue::from_str(kind) {
        resp.headers_mut().insert("x-amzn-errortype", v);
    }
    resp.headers_mut().insert(
        "x-amzn-requestid",
        HeaderValue::from_static("fake-request-id"),
    );
    for (k, v) in &e.headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            resp.headers_mut().insert(name, value);
        }
    }
    resp
}

/// One Anthropic event as a Bedrock `chunk` frame.
pub fn chunk_frame(data: &Value) -> Vec<u8> {
    let payload = json!({"bytes": STANDARD.encode(data.to_string())});
    eventstream::encode(
        &[
            (":event-type", "chunk"),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload.to_string().as_bytes(),
    )
}

fn exception_frame(kind: &str, message: &str) -> Vec<u8> {
    eventstream::encode(
        &[
            (":exception-type", kind),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        json!({"message": message}).to_string().as_bytes(),
    )
}

/// `message_stop` with the invocation metrics Bedrock adds.
fn with_metrics(events: &[Event]) -> Vec<Value> {
    let input = events
        .iter()
        .find(|e| e.name == "message_start")
        .and_then(|e| e.data["message"]["usage"]["input_tokens"].as_u64())
        .unwrap_or(0);
    let output = events
        .iter()
        .rfind(|e| e.name == "message_delta")
        .and_then(|e| e.data["usage"]["output_tokens"].as_u64())
        .unwrap_or(0);
    events
        .iter()
        .filter(|e| e.name != "ping")
        .map(|e| {
            let mut d = e.data.clone();
            if e.name == "message_stop" {
                d["amazon-bedrock-invocationMetrics"] = json!({"inputTokenCount":input,
                    "outputTokenCount":output,"invocationLatency":1,"firstByteLatency":1});
            }
            d
        })
        .collect()
}

fn render_event_stream(outcome: Outcome) -> Response {
    let mut frames: Vec<Bytes> = Vec::new();
    match outcome {
        Outcome::Error(e) => return bedrock_error(&e),
        Outcome::Stream { events, .. } => {
            frames.extend(
                with_metrics(&events)
                    .iter()
                    .map(|d| Bytes::from(chunk_frame(d))),
            );
        }
        Outcome::Cut(events) => {
            let data = with_metrics(&events);
            frames.extend(data.iter().take(3).map(|d| Bytes::from(chunk_frame(d))));
            if let Some(d) = data.get(3) {
                let f = chunk_frame(d);
                frames.push(Bytes::copy_from_slice(&f[..f.len() / 2]));
            }
        }
        Outcome::StreamError(events) => {
            for e in &events {
                if e.name == "error" {
                    let kind = match e.data["error"]["type"].as_str() {
                        Some("overloaded_error") => "serviceUnavailableException",
                        _ => "internalServerException",
                    };
                    let msg = e.data["error"]["message"].as_str().unwrap_or_default();
                    frames.push(Bytes::from(exception_frame(kind, msg)));
                } else {
                    frames.push(Bytes::from(chunk_frame(&e.data)));
                }
            }
        }
    }
    let headers = [
        (
            "x-amzn-bedrock-content-type".to_string(),
            "application/json".to_string(),
        ),
        (
            "x-amzn-requestid".to_string(),
            "fake-request-id".to_string(),
        ),
    ];
    streamed(
        frames,
        false,
        "application/vnd.amazon.eventstream",
        &headers,
    )
}
