//! Amazon Bedrock: the InvokeModelWithResponseStream request, signed with SigV4 (checked by
//! re-signing the request exactly as it arrived), or carrying a Bedrock API key.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use buildd_agent::anthropic::{AwsCredentials, BedrockAuth, BedrockEndpoint, Client, Endpoint};
use buildd_agent::secret::Secret;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::server::{Check, Recorded, Reply, TestServer};
use super::{config, request};

const MODEL: &str = "us.anthropic.claude-haiku-4-5-20251001-v1:0";
const PATH: &str =
    "/model/us.anthropic.claude-haiku-4-5-20251001-v1%3A0/invoke-with-response-stream";
const AKID: &str = "AKIDTESTBEDROCK";
const SECRET: &str = "test/secret/key+for+bedrock";

/// `20261201T085000Z` → the instant.
fn amz_time(s: &str) -> Option<SystemTime> {
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    // Days from civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Recompute the SigV4 `authorization` for `r` as received and compare.
fn verify_sigv4(r: &Recorded, session_token: Option<&str>) -> Result<(), String> {
    let got = r.header("authorization").ok_or("no authorization header")?;
    let signed = got
        .split("SignedHeaders=")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .ok_or("no SignedHeaders")?;
    for required in ["host", "x-amz-date", "content-type"] {
        if !signed.split(';').any(|h| h == required) {
            return Err(format!("{required} is not signed: {signed}"));
        }
    }
    if r.header("x-amz-security-token") != session_token {
        return Err(format!(
            "x-amz-security-token: {:?}",
            r.header("x-amz-security-token")
        ));
    }
    let time = amz_time(r.header("x-amz-date").ok_or("no x-amz-date")?).ok_or("bad x-amz-date")?;
    // The signer adds host, x-amz-date and the token itself; give it the other signed ones.
    let headers: Vec<(&str, &str)> = signed
        .split(';')
        .filter(|h| !matches!(*h, "host" | "x-amz-date" | "x-amz-security-token"))
        .map(|h| Ok((h, r.header(h).ok_or(format!("signed header {h} missing"))?)))
        .collect::<Result<_, String>>()?;
    let uri = format!("http://{}{}", r.header("host").ok_or("no host")?, r.path);
    let creds = Credentials::new(
        AKID,
        SECRET,
        session_token.map(str::to_string),
        None,
        "test",
    );
    let identity = creds.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("eu-west-3")
        .name("bedrock")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let signable = SignableRequest::new(
        "POST",
        uri,
        headers.into_iter(),
        SignableBody::Bytes(&r.body),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    let want = instructions
        .headers()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.to_string())
        .ok_or("re-signing gave no authorization")?;
    if got != want {
        return Err(format!("signature mismatch:\n got {got}\nwant {want}"));
    }
    Ok(())
}

/// Path, headers and body shape of InvokeModelWithResponseStream for Anthropic models.
fn check_shape(r: &Recorded) -> Result<(), String> {
    if (r.method.as_str(), r.path.as_str()) != ("POST", PATH) {
        return Err(format!("{} {}", r.method, r.path));
    }
    if r.header("accept") != Some("application/vnd.amazon.eventstream") {
        return Err(format!("accept: {:?}", r.header("accept")));
    }
    let body = r.json();
    if body.get("model").is_some() || body.get("stream").is_some() {
        return Err(format!("model and stream belong in the URL: {body}"));
    }
    if body["anthropic_version"] != "bedrock-2023-05-31" {
        return Err(format!("anthropic_version: {}", body["anthropic_version"]));
    }
    if body["anthropic_beta"]
        != json!([
            "interleaved-thinking-2025-05-14",
            "context-management-2025-06-27"
        ])
    {
        return Err(format!("anthropic_beta: {}", body["anthropic_beta"]));
    }
    if body["messages"][0]["content"][0]["text"] != "hi" || body["max_tokens"] != 1000 {
        return Err(format!("body: {body}"));
    }
    Ok(())
}

fn endpoint(base_url: String, auth: BedrockAuth) -> Endpoint {
    Endpoint::Bedrock(BedrockEndpoint {
        base_url,
        region: "eu-west-3".into(),
        auth,
    })
}

fn sigv4(token: Option<&str>) -> BedrockAuth {
    BedrockAuth::SigV4(AwsCredentials {
        access_key_id: AKID.into(),
        secret_access_key: Secret::new(SECRET),
        session_token: token.map(Secret::new),
    })
}

async fn call(server: &TestServer, auth: BedrockAuth, attempts: u32) -> String {
    let client = Client::new(config(endpoint(server.url(), auth), attempts)).unwrap();
    let reply = client
        .create_message(&request(MODEL), &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("{e}; problems: {:?}", server.problems()));
    reply.text()
}

#[tokio::test]
async fn a_sigv4_signed_request_is_answered_in_aws_event_stream_framing() {
    let check: Check = Box::new(|r| {
        check_shape(r)?;
        verify_sigv4(r, None)
    });
    let server = TestServer::start(vec![Reply::event_stream_text("from Bedrock")], check).await;
    assert_eq!(call(&server, sigv4(None), 1).await, "from Bedrock");
    assert!(server.problems().is_empty(), "{:?}", server.problems());
}

#[tokio::test]
async fn temporary_credentials_sign_the_session_token_and_exceptions_are_retried() {
    let check: Check = Box::new(|r| {
        check_shape(r)?;
        verify_sigv4(r, Some("session-token-1"))
    });
    let server = TestServer::start(
        vec![
            Reply::event_stream_exception("throttlingException"),
            Reply::event_stream_text("after a throttle"),
        ],
        check,
    )
    .await;
    assert_eq!(
        call(&server, sigv4(Some("session-token-1")), 2).await,
        "after a throttle"
    );
    assert!(server.problems().is_empty(), "{:?}", server.problems());
    let r = server.requests();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].body, r[1].body, "the same request is resent");
    assert_ne!(r[0].header("authorization"), None);
}

#[tokio::test]
async fn a_bedrock_api_key_goes_as_a_bearer_token_without_a_signature() {
    let check: Check = Box::new(|r| {
        check_shape(r)?;
        if r.header("authorization") != Some("Bearer bedrock-api-key") {
            return Err(format!("authorization: {:?}", r.header("authorization")));
        }
        if r.header("x-amz-date").is_some() {
            return Err("signed although an API key was given".into());
        }
        Ok(())
    });
    let server = TestServer::start(vec![Reply::event_stream_text("keyed")], check).await;
    let auth = BedrockAuth::ApiKey(Secret::new("bedrock-api-key"));
    assert_eq!(call(&server, auth, 1).await, "keyed");
    assert!(server.problems().is_empty(), "{:?}", server.problems());
}
