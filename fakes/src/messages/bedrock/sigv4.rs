//! Checking an AWS Signature Version 4 on a request, as the Bedrock front door does.
//!
//! The expected signature is computed with the `aws-sigv4` crate (the AWS SDK's own signer)
//! from the request as received, signing exactly the headers the client listed in
//! `SignedHeaders`, for the fake's access key, secret, region and service `bedrock`, at the
//! client's `x-amz-date`; then compared with the client's. Also checked: the credential
//! scope (key id, date, region, service), a session token when one is configured, and the
//! clock skew (at most 15 minutes from the wall clock, as AWS allows).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;

use super::BedrockConfig;

/// Why a signature was refused; each maps to the AWS error a client would see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigV4Error {
    /// No or unparsable `Authorization` / `x-amz-date`.
    Missing(String),
    /// Unknown access key or bad session token (`UnrecognizedClientException`).
    UnknownKey(String),
    /// Wrong scope, skew or signature (`InvalidSignatureException`).
    BadSignature(String),
}

impl SigV4Error {
    pub fn message(&self) -> &str {
        match self {
            SigV4Error::Missing(m) | SigV4Error::UnknownKey(m) | SigV4Error::BadSignature(m) => m,
        }
    }
}

struct AuthHeader<'a> {
    key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Option<AuthHeader<'_>> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',').map(str::trim) {
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let scope: Vec<&str> = credential?.split('/').collect();
    let [key_id, date, region, service, "aws4_request"] = scope.as_slice() else {
        return None;
    };
    Some(AuthHeader {
        key_id,
        date,
        region,
        service,
        signed_headers: signed?.split(';').collect(),
        signature: signature?,
    })
}

/// `20261201T084348Z` as a time.
pub fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, sec) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Check the SigV4 signature of a request. `path_and_query` as received (still encoded).
pub fn verify(
    cfg: &BedrockConfig,
    method: &str,
    path_and_query: &str,
    headers: &BTreeMap<String, String>,
    body: &[u8],
    now: SystemTime,
) -> Result<(), SigV4Error> {
    let auth = headers
        .get("authorization")
        .ok_or_else(|| SigV4Error::Missing("Missing Authentication Token".into()))?;
    let a = parse_authorization(auth).ok_or_else(|| {
        SigV4Error::Missing(format!(
            "Authorization header is not AWS4-HMAC-SHA256: {auth:.40}"
        ))
    })?;
    if a.key_id != cfg.access_key_id {
        return Err(SigV4Error::UnknownKey(
            "The security token included in the request is invalid.".into(),
        ));
    }
    if let Some(token) = &cfg.session_token
        && headers.get("x-amz-security-token") != Some(token)
    {
        return Err(SigV4Error::UnknownKey(
            "The security token included in the request is invalid.".into(),
        ));
    }
    let amz_date = headers
        .get("x-amz-date")
        .ok_or_else(|| SigV4Error::Missing("missing x-amz-date header".into()))?;
    let time = parse_amz_date(amz_date)
        .ok_or_else(|| SigV4Error::Missing(format!("bad x-amz-date {amz_date:?}")))?;
    check_scope(cfg, &a, amz_date)?;
    let skew = now.duration_since(time).unwrap_or_else(|e| e.duration());
    if skew > Duration::from_secs(15 * 60) {
        return Err(SigV4Error::BadSignature(format!(
            "Signature expired: {amz_date} is more than 15 minutes from the server's time"
        )));
    }
    let want = expected_signature(cfg, method, path_and_query, headers, body, time, &a)?;
    if want == a.signature {
        Ok(())
    } else {
        Err(SigV4Error::BadSignature(
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.".into(),
        ))
    }
}

fn check_scope(cfg: &BedrockConfig, a: &AuthHeader<'_>, amz_date: &str) -> Result<(), SigV4Error> {
    let bad = |what: String| Err(SigV4Error::BadSignature(what));
    if a.service != "bedrock" {
        return bad(format!(
            "Credential should be scoped to correct service: 'bedrock', not {:?}",
            a.service
        ));
    }
    if a.region != cfg.region {
        return bad(format!(
            "Credential should be scoped to a valid region: {:?}, not {:?}",
            cfg.region, a.region
        ));
    }
    if !amz_date.starts_with(a.date) || a.date.len() != 8 {
        return bad(format!(
            "Date in Credential scope does not match x-amz-date: {}",
            a.date
        ));
    }
    for required in ["host", "x-amz-date"] {
        if !a.signed_headers.contains(&required) {
            return bad(format!("'{required}' must be a signed header"));
        }
    }
    Ok(())
}

fn expected_signature(
    cfg: &BedrockConfig,
    method: &str,
    path_and_query: &str,
    headers: &BTreeMap<String, String>,
    body: &[u8],
    time: SystemTime,
    a: &AuthHeader<'_>,
) -> Result<String, SigV4Error> {
    let mut signed: Vec<(&str, &str)> = Vec::new();
    for name in &a.signed_headers {
        let value = headers.get(*name).ok_or_else(|| {
            SigV4Error::BadSignature(format!("signed header {name:?} is not in the request"))
        })?;
        signed.push((name, value.as_str()));
    }
    let host = headers.get("host").map_or("localhost", String::as_str);
    let uri = format!("http://{host}{path_and_query}");
    let payload = match headers.get("x-amz-content-sha256").map(String::as_str) {
        Some("UNSIGNED-PAYLOAD") => SignableBody::UnsignedPayload,
        _ => SignableBody::Bytes(body),
    };
    let internal =
        |e: &dyn std::fmt::Display| SigV4Error::BadSignature(format!("cannot sign: {e}"));
    let request =
        SignableRequest::new(method, uri, signed.into_iter(), payload).map_err(|e| internal(&e))?;
    let identity = Credentials::new(
        &cfg.access_key_id,
        &cfg.secret_access_key,
        cfg.session_token.clone(),
        None,
        "buildd-fakes",
    )
    .into();
    let mut settings = SigningSettings::default();
    // Sign exactly what the client listed (the default would leave out user-agent).
    settings.excluded_headers = Some(Vec::new());
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&cfg.region)
        .name("bedrock")
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| internal(&e))?
        .into();
    let (_, signature) = sign(request, &params)
        .map_err(|e| internal(&e))?
        .into_parts();
    Ok(signature)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Sign a request as a client using the AWS SDK's signer would.
    pub(crate) fn signed_headers(
        cfg: &BedrockConfig,
        host: &str,
        path: &str,
        body: &[u8],
        time: SystemTime,
    ) -> BTreeMap<String, String> {
        let base = [("host", host), ("content-type", "application/json")];
        let request = SignableRequest::new(
            "POST",
            format!("http://{host}{path}"),
            base.into_iter(),
            SignableBody::Bytes(body),
        )
        .unwrap();
        let identity = Credentials::new(
            &cfg.access_key_id,
            &cfg.secret_access_key,
            cfg.session_token.clone(),
            None,
            "t",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&cfg.region)
            .name("bedrock")
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let (instructions, _) = sign(request, &params).unwrap().into_parts();
        let mut out: BTreeMap<String, String> = base
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        for (k, v) in instructions.headers() {
            out.insert(k.to_ascii_lowercase(), v.to_string());
        }
        out
    }

    fn cfg() -> BedrockConfig {
        BedrockConfig::new("us-east-1", "AKIDFAKE", "fake-secret")
    }

    #[test]
    fn a_good_signature_passes_and_every_tampering_fails() {
        let now = SystemTime::now();
        let path = "/model/us.anthropic.claude-haiku-4-5-20251001-v1:0/invoke-with-response-stream";
        let body = br#"{"anthropic_version":"bedrock-2023-05-31"}"#;
        let h = signed_headers(&cfg(), "127.0.0.1:9", path, body, now);
        assert_eq!(verify(&cfg(), "POST", path, &h, body, now), Ok(()));
        assert!(matches!(
            verify(&cfg(), "POST", path, &h, b"{}", now),
            Err(SigV4Error::BadSignature(_))
        ));
        assert!(verify(&cfg(), "POST", "/model/other/invoke", &h, body, now).is_err());
        let mut wrong_secret = cfg();
        wrong_secret.secret_access_key = "other".into();
        assert!(verify(&wrong_secret, "POST", path, &h, body, now).is_err());
        let mut other_region = cfg();
        other_region.region = "eu-west-1".into();
        let e = verify(&other_region, "POST", path, &h, body, now).unwrap_err();
        assert!(e.message().contains("region"), "{e:?}");
        let later = now + Duration::from_secs(16 * 60);
        assert!(
            verify(&cfg(), "POST", path, &h, body, later)
                .unwrap_err()
                .message()
                .contains("expired")
        );
        let mut other_key = cfg();
        other_key.access_key_id = "AKIDOTHER".into();
        assert!(matches!(
            verify(&other_key, "POST", path, &h, body, now),
            Err(SigV4Error::UnknownKey(_))
        ));
        let mut no_auth = h.clone();
        no_auth.remove("authorization");
        assert!(matches!(
            verify(&cfg(), "POST", path, &no_auth, body, now),
            Err(SigV4Error::Missing(_))
        ));
    }

    #[test]
    fn amz_dates_parse_to_the_right_instant() {
        let t = parse_amz_date("20261201T084348Z").unwrap();
        let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs, 1_796_114_628);
        assert!(parse_amz_date("2026-12-01T08:43:48Z").is_none());
        assert!(parse_amz_date("20261301T084348Z").is_none());
    }
}
