//! `GET /api/accounts/me`, as the server's route answers it (not in buildd-api.md; read
//! from the server's `apps/web/src/app/api/accounts/me/route.ts`): the account behind
//! the Bearer key, or 401 `Invalid API key`. Read-only: `doctor` checks a key with it
//! without claiming.

use super::*;

pub(super) async fn me(
    State(state): State<Shared>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let mut s = lock(&state);
    let resp = match authenticate(&s, &headers) {
        None => err(StatusCode::UNAUTHORIZED, "Invalid API key"),
        Some(key) => axum::Json(json!({
            "id": format!("acct_{}", key.account),
            "name": key.account,
            "type": "service",
            "level": key.level,
            "authType": "api",
            "maxConcurrentWorkers": 3,
        }))
        .into_response(),
    };
    let status = resp.status().as_u16();
    record(
        &mut s,
        &method,
        "/api/accounts/me",
        &headers,
        &Value::Null,
        status,
    );
    resp
}
