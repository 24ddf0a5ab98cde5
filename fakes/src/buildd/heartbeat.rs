//! `POST /api/workers/heartbeat`, as the server's route handles it: 401
//! without a known key, 400 `localUiUrl is required` when it is missing or
//! empty, `activeWorkerCount` optional (default 0) but an integer when sent.
//! Accepted heartbeats are recorded ([`super::FakeBuildd::heartbeats`]).

use super::*;

pub(super) async fn heartbeat(
    State(state): State<Shared>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = lock(&state);
    let parsed = parse_body(&mut s, &headers, &body, "heartbeat");
    let v = parsed.clone().unwrap_or(Value::Null);
    let resp = match (authenticate(&s, &headers), parsed) {
        (None, _) => err(StatusCode::UNAUTHORIZED, "Unauthorized"),
        (_, Err(m)) => err(StatusCode::BAD_REQUEST, &m),
        (Some(_), Ok(b)) => check(&mut s, &b),
    };
    record(
        &mut s,
        &method,
        "/api/workers/heartbeat",
        &headers,
        &v,
        resp.status().as_u16(),
    );
    resp
}

fn check(s: &mut Inner, body: &Value) -> Response {
    // The server tests `!localUiUrl`: absent, null and "" are all refused.
    let url = body.get("localUiUrl").and_then(Value::as_str).unwrap_or("");
    if url.is_empty() {
        s.violations.push("heartbeat: localUiUrl missing".into());
        return err(StatusCode::BAD_REQUEST, "localUiUrl is required");
    }
    // The server stores the count in an integer column: anything else fails there.
    if body.get("activeWorkerCount").is_some_and(|n| !n.is_u64()) {
        s.violations
            .push("heartbeat: activeWorkerCount is not a count".into());
        return err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Failed to process heartbeat",
        );
    }
    (
        StatusCode::OK,
        axum::Json(
            json!({ "ok": true, "viewerToken": "vt_fake_viewer_token", "pendingTaskCount": 0 }),
        ),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_ui_url_is_required_and_the_count_must_be_one() {
        let mut s = Inner::default();
        let status = |s: &mut Inner, body: Value| check(s, &body).status();
        assert_eq!(
            status(&mut s, json!({"activeWorkerCount": 1})),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(&mut s, json!({"localUiUrl": "", "activeWorkerCount": 1})),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(s.violations.len(), 2);
        assert_eq!(
            status(&mut s, json!({"localUiUrl": "headless://a/b"})),
            StatusCode::OK
        );
        assert_eq!(
            status(
                &mut s,
                json!({"localUiUrl": "headless://a/b", "activeWorkerCount": -1})
            ),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
