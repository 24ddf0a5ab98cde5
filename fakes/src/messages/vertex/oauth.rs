//! A fake Google OAuth 2.0 token endpoint for service accounts (the JWT-bearer grant a
//! client makes from service-account JSON credentials), and the service account itself.
//!
//! `POST {fake}/token` with a form body `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`
//! and `assertion=<JWT>`: the JWT must be RS256-signed with the service account's key, with
//! `iss` = its `client_email`, `aud` = the `token_uri`, a `scope` including
//! `https://www.googleapis.com/auth/cloud-platform`, and `iat`/`exp` at most an hour apart
//! around the wall clock (5 minutes' skew allowed). The answer is
//! `{"access_token":"ya29.fake-N","expires_in":3599,"token_type":"Bearer"}`; the token is
//! valid for an hour of the fake's clock.
//!
//! Google's client libraries may skip the endpoint for a service account with scopes and
//! send a self-signed JWT as the access token ([`check_self_signed`]); Google's APIs accept
//! both, and so do the fake's Vertex routes.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::signature::{self, RsaKeyPair, UnparsedPublicKey};
use serde_json::{Value, json};

pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// A test-only RSA key (generated for this fake; it guards nothing).
const TEST_KEY_PEM: &str = include_str!("test-service-account-key.pem");

/// A service account the fake trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    pub project_id: String,
    pub client_email: String,
    pub private_key_id: String,
    /// PKCS#8 PEM.
    pub private_key_pem: String,
}

impl ServiceAccount {
    /// The built-in test account of `project`.
    pub fn test(project: &str) -> Self {
        Self {
            project_id: project.into(),
            client_email: format!("buildd-agent@{project}.iam.gserviceaccount.com"),
            private_key_id: "fake-key-1".into(),
            private_key_pem: TEST_KEY_PEM.into(),
        }
    }

    /// Service-account JSON credentials (the file `GOOGLE_APPLICATION_CREDENTIALS` names).
    pub fn credentials_json(&self, token_uri: &str) -> String {
        json!({"type":"service_account","project_id":self.project_id,
            "private_key_id":self.private_key_id,"private_key":self.private_key_pem,
            "client_email":self.client_email,"client_id":"100000000000000000001",
            "auth_uri":"https://accounts.google.com/o/oauth2/auth","token_uri":token_uri})
        .to_string()
    }

    fn key_pair(&self) -> Result<RsaKeyPair, String> {
        let der = pem_body(&self.private_key_pem)?;
        RsaKeyPair::from_pkcs8(&der).map_err(|e| format!("service account key: {e}"))
    }

    /// Sign a JWT with this account's key (what a client library does; used by tests).
    pub fn sign_jwt(&self, claims: &Value) -> Result<String, String> {
        let header = json!({"alg":"RS256","typ":"JWT","kid":self.private_key_id});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let key = self.key_pair()?;
        let mut sig = vec![0; key.public().modulus_len()];
        key.sign(
            &signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            input.as_bytes(),
            &mut sig,
        )
        .map_err(|_| "signing failed".to_string())?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }

    /// The claims a well-behaved client sends, issued now.
    pub fn claims(&self, token_uri: &str) -> Value {
        let now = unix_now();
        json!({"iss":self.client_email,"scope":SCOPE,"aud":token_uri,"iat":now,"exp":now + 3600})
    }
}

fn pem_body(pem: &str) -> Result<Vec<u8>, String> {
    let b64: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    STANDARD
        .decode(b64)
        .map_err(|e| format!("service account key is not PEM: {e}"))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// Check a JWT-bearer assertion; `Err` is the OAuth error description.
pub fn check_assertion(sa: &ServiceAccount, token_uri: &str, jwt: &str) -> Result<(), String> {
    let claims = verified_claims(sa, jwt)?;
    if claims["aud"] != token_uri {
        return Err(format!(
            "Invalid JWT: aud {} is not {token_uri}",
            claims["aud"]
        ));
    }
    check_scope_and_times(&claims)
}

/// Check a self-signed JWT used directly as the access token, as Google's client
/// libraries send for a service account with scopes (no token endpoint involved):
/// RS256 with the account's key, `iss` = `sub` = its `client_email`, a `scope` including
/// [`SCOPE`], and a short lifetime around the wall clock.
pub fn check_self_signed(sa: &ServiceAccount, jwt: &str) -> Result<(), String> {
    let claims = verified_claims(sa, jwt)?;
    if claims["sub"] != sa.client_email.as_str() {
        return Err("Invalid JWT: sub is not the service account".into());
    }
    check_scope_and_times(&claims)
}

/// The claims of `jwt` once its RS256 signature by `sa` and its `iss` check out.
fn verified_claims(sa: &ServiceAccount, jwt: &str) -> Result<Value, String> {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [h, c, s] = parts.as_slice() else {
        return Err("assertion is not a JWT".into());
    };
    let decode = |p: &str| {
        URL_SAFE_NO_PAD
            .decode(p)
            .map_err(|_| "bad base64url in JWT".to_string())
    };
    let header: Value = serde_json::from_slice(&decode(h)?).map_err(|_| "bad JWT header")?;
    let claims: Value = serde_json::from_slice(&decode(c)?).map_err(|_| "bad JWT claims")?;
    if header["alg"] != "RS256" {
        return Err(format!("unsupported JWT alg {}", header["alg"]));
    }
    let key = sa.key_pair()?;
    UnparsedPublicKey::new(
        &signature::RSA_PKCS1_2048_8192_SHA256,
        key.public().as_ref(),
    )
    .verify(format!("{h}.{c}").as_bytes(), &decode(s)?)
    .map_err(|_| "Invalid JWT Signature.".to_string())?;
    if claims["iss"] != sa.client_email.as_str() {
        return Err(format!(
            "Invalid JWT: iss {} is not the service account",
            claims["iss"]
        ));
    }
    Ok(claims)
}

fn check_scope_and_times(claims: &Value) -> Result<(), String> {
    let scopes = claims["scope"].as_str().unwrap_or_default();
    if !scopes.split(' ').any(|s| s == SCOPE) {
        return Err(format!("Invalid JWT: scope must include {SCOPE}"));
    }
    let (Some(iat), Some(exp)) = (claims["iat"].as_i64(), claims["exp"].as_i64()) else {
        return Err("Invalid JWT: iat and exp are required".into());
    };
    let now = unix_now();
    // Client libraries backdate `iat` a little for clock skew (google-cloud-auth: 20 s), so
    // the lifetime gets the same 5 minutes of slack as the clock check below.
    if exp <= iat || exp - iat > 3600 + 300 {
        return Err("Invalid JWT: exp must be after iat and at most an hour later".into());
    }
    if iat > now + 300 || exp <= now - 300 {
        return Err(
            "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe".into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const URI: &str = "http://127.0.0.1:1/token";

    #[test]
    fn a_self_signed_token_passes_with_its_subject_and_scope_only() {
        let sa = ServiceAccount::test("proj");
        let now = unix_now();
        let claims = json!({"iss":sa.client_email,"sub":sa.client_email,"scope":SCOPE,
            "iat":now,"exp":now + 3600});
        assert_eq!(
            check_self_signed(&sa, &sa.sign_jwt(&claims).unwrap()),
            Ok(())
        );
        let mut other = claims.clone();
        other["sub"] = json!("someone@else.iam.gserviceaccount.com");
        assert!(check_self_signed(&sa, &sa.sign_jwt(&other).unwrap()).is_err());
        let mut unscoped = claims;
        unscoped["scope"] = json!("https://www.googleapis.com/auth/userinfo.email");
        assert!(check_self_signed(&sa, &sa.sign_jwt(&unscoped).unwrap()).is_err());
        let stranger = ServiceAccount {
            private_key_pem: String::new(),
            ..ServiceAccount::test("proj")
        };
        assert!(check_self_signed(&stranger, "a.b.c").is_err());
    }

    #[test]
    fn a_signed_assertion_passes_and_tampering_fails() {
        let sa = ServiceAccount::test("proj");
        let good = sa.sign_jwt(&sa.claims(URI)).unwrap();
        assert_eq!(check_assertion(&sa, URI, &good), Ok(()));
        let mut claims = sa.claims(URI);
        claims["aud"] = json!("https://oauth2.googleapis.com/token");
        let wrong_aud = sa.sign_jwt(&claims).unwrap();
        assert!(
            check_assertion(&sa, URI, &wrong_aud)
                .unwrap_err()
                .contains("aud")
        );
        let mut claims = sa.claims(URI);
        claims["scope"] = json!("https://www.googleapis.com/auth/userinfo.email");
        assert!(check_assertion(&sa, URI, &sa.sign_jwt(&claims).unwrap()).is_err());
        let mut claims = sa.claims(URI);
        claims["exp"] = json!(claims["iat"].as_i64().unwrap() + 7200);
        assert!(check_assertion(&sa, URI, &sa.sign_jwt(&claims).unwrap()).is_err());
        // Swap in other claims under the same signature.
        let parts: Vec<&str> = good.split('.').collect();
        let mut claims = sa.claims(URI);
        claims["iss"] = json!("someone@else.iam.gserviceaccount.com");
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            parts[2]
        );
        assert_eq!(
            check_assertion(&sa, URI, &forged),
            Err("Invalid JWT Signature.".into())
        );
        let creds: Value = serde_json::from_str(&sa.credentials_json(URI)).unwrap();
        assert_eq!(creds["token_uri"], URI);
        assert!(
            creds["private_key"]
                .as_str()
                .unwrap()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
    }
}
