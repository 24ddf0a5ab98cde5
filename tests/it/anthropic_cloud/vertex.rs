//! Google Vertex AI: streamRawPredict with a Google access token — a service account's
//! self-signed JWT (its RS256 signature checked against the key's public half) or a gcloud
//! user's token from a refresh at the key file's `token_uri`.

use std::path::PathBuf;

use base64::Engine;
use buildd_agent::anthropic::{Client, Endpoint, VertexAuth, VertexEndpoint};
use ring::signature::{self, KeyPair};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::server::{Check, Recorded, Reply, TestServer};
use super::{BETAS, config, request};

/// A throw-away RSA key made for this test (it signs nothing anywhere else).
const TEST_RSA_KEY: &str = concat!(
    "-----BEGIN PRIVATE KEY-----\n",
    "MIIEvwIBADANBgkqhkiG9w0BAQEFAASCBKkwggSlAgEAAoIBAQC/0lrr0yEswq7/\n",
    "UvmjvGWGLgKKwC4HU9BXPJxya98nRsgP5KADQnAD7KeQk5QjZTaM0zdUT49HfKhX\n",
    "xeGCevZInsWMcNftfYpLsMWATnk3sO9bgLnrsn/I7OiEmj45Py06Dxsq0X14fMZG\n",
    "1046KUxTmnVSsm0xPpUMkFBMNi/FXdVy8zTCzdYhmPBCNdz1aWQc1zbnauYLandm\n",
    "X4vhssAygOyqBHRnhscBuJnBcFrjIpcs/AQhrG7wxPErshF8BMJ0VUOWuejnhrNl\n",
    "YXlxz8cseuH/klMz0/UcGKzVkZrVLnIr+4lsN/9lfm70khZGhLxwYqGgjax0VTur\n",
    "A/EMX33pAgMBAAECggEACDniqUtYGF3O+GccCpAJQIxXkpC0SJ8pB5yzTtreaoZI\n",
    "DRpuXEVsnVZ4RyR1DWGJSdfC/ywcRmILrBvx1FEmn62jZibus6IXHLDbf2meHCvL\n",
    "z/5AuuFgRoMWY51jvru9WkiMjzUFrvWW4THZinf77HfqwR2iviJjbPMBZotKWCnf\n",
    "fC+yKfJD/frp8EnVo69h3NfynzVBlnkIRVAuNn3hm/clLz1Zs0dXNda0g2X8s2gE\n",
    "2+owYvDQn30YR3j69d9k+iP1rkz6SyFGujsBopnt+trO+oAmYQxpX/S1Dyyph/c5\n",
    "vPDku+qXedTQqn6H5ypvAqqgp9R1V/UruHawnyfFqwKBgQDfM3qTS68b2yTtcx6p\n",
    "+U4v7nvi0A+F3RfHPJm0zPrKeA8FvSYFTDeGmfJZYJnH5U/Um5LSXi8GJdtZWrAB\n",
    "QqT5w1ncyJ2SNCIFYEEebrRr39JvRC/CUFCaOjsovHbIQ0F3rsw/HnlI0WiVedqz\n",
    "SZJd5BSsg8vSDUW6yOStR8PRewKBgQDcAm0q22nJ9x/9mTu7S3Dpj21d6hkJlPeU\n",
    "NqqC/fAyZ/zuxOyO1rejZo1tOqw1rr1gPuG4eDApafnfipL9J6Aa5OhKInFcHFGz\n",
    "fBCQbMMKV76NTRzN5iDOTTQvFEHJ/wZIN3IWLHfyy0HvldekDUQmP0ckY+5spoBY\n",
    "EGcIk1b26wKBgQC8sbulvO08IodUiudYkWCNWxO3C2ikJecNU+kqFcTL2LXyhxcW\n",
    "kXm7vHhLIUTA3tcfiaqVWHRuwSBwqR904U+xq3pUEfJMgPBmFRrYTIURUbaIxF+P\n",
    "6fBKgoIzDSlqYpl9QfSARBYK/qZpAAxpWAB6ifEEa6OrX/ccUuwopiwg8wKBgQCi\n",
    "dOQ5lkU6jlHACEt0FNPukys2Auu0CJz8g5VLHsoj3meFxEHNg72cWdiqxH1vMnXC\n",
    "QQyaE520pv2M1J2Pc5gk48ynGWHNm1e1CjKNAtLOq1YYrs1LONgWnimfbfzadIcm\n",
    "AlMrDnEQBojMqj/OcsFU4Lreoy/maNgyrwH18h5wOwKBgQCi5uWjhde9tfDnFpZz\n",
    "gjNDdn4R7ELu7zCe/eyvACnIDJ7kaFsKwHYNQBgGoiHbX3v2aCtDIU7h5s876Ase\n",
    "jzJAtyOdVJWxizyJFQG2+BsoivKh4qh7v6O+heorA7kMgIHLEPP2iaHVBxLh6EzH\n",
    "wSo+pLgqf2DKFP34sxid2aqScA==\n",
    "-----END PRIVATE KEY-----\n",
);

const PROJECT: &str = "test-project";
const EMAIL: &str = "agent@test-project.iam.gserviceaccount.com";
const PATH: &str = "/v1/projects/test-project/locations/us-east5/publishers/anthropic/models/claude-sonnet-5-5:streamRawPredict";

fn public_key() -> Vec<u8> {
    let der = PrivateKeyDer::from_pem_slice(TEST_RSA_KEY.as_bytes()).expect("test key parses");
    let pair = signature::RsaKeyPair::from_pkcs8(der.secret_der()).expect("RSA key");
    pair.public_key().as_ref().to_vec()
}

fn b64url(s: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|e| e.to_string())
}

/// The bearer token is a JWT signed by the service account's key, for Vertex's scope.
fn verify_self_signed_jwt(r: &Recorded, public: &[u8]) -> Result<(), String> {
    let token = r
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or("no bearer token")?;
    let parts: Vec<&str> = token.split('.').collect();
    let [header, claims, sig] = parts.as_slice() else {
        return Err(format!("not a JWT: {token}"));
    };
    let header: Value = serde_json::from_slice(&b64url(header)?).map_err(|e| e.to_string())?;
    let claims: Value = serde_json::from_slice(&b64url(claims)?).map_err(|e| e.to_string())?;
    if header["alg"] != "RS256" || header["kid"] != "key-1" {
        return Err(format!("JWT header {header}"));
    }
    if claims["iss"] != EMAIL || claims["sub"] != EMAIL {
        return Err(format!("JWT claims {claims}"));
    }
    let scope = claims["scope"].as_str().unwrap_or_default();
    if !scope.contains("https://www.googleapis.com/auth/cloud-platform") {
        return Err(format!("JWT scope {scope:?}"));
    }
    let message = format!("{}.{}", parts[0], parts[1]);
    signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, public)
        .verify(message.as_bytes(), &b64url(sig)?)
        .map_err(|_| "JWT signature does not verify".to_string())
}

/// Path, headers and body shape of streamRawPredict for Anthropic models.
fn check_shape(r: &Recorded) -> Result<(), String> {
    if (r.method.as_str(), r.path.as_str()) != ("POST", PATH) {
        return Err(format!("{} {}", r.method, r.path));
    }
    if r.header("anthropic-beta") != Some(BETAS) {
        return Err(format!("anthropic-beta: {:?}", r.header("anthropic-beta")));
    }
    let body = r.json();
    if body.get("model").is_some() {
        return Err(format!("the model belongs in the URL: {body}"));
    }
    if body["anthropic_version"] != "vertex-2023-10-16" || body["stream"] != true {
        return Err(format!("body: {body}"));
    }
    Ok(())
}

fn key_file(dir: &tempfile::TempDir, json: Value) -> PathBuf {
    let path = dir.path().join("credentials.json");
    std::fs::write(&path, json.to_string()).expect("write key file");
    path
}

fn endpoint(server: &TestServer, auth: VertexAuth) -> Endpoint {
    Endpoint::Vertex(VertexEndpoint {
        base_url: format!("{}/v1", server.url()),
        project_id: PROJECT.into(),
        region: "us-east5".into(),
        auth,
    })
}

#[tokio::test]
async fn a_service_account_signs_its_own_token_for_stream_raw_predict() {
    let public = public_key();
    let check: Check = Box::new(move |r| {
        check_shape(r)?;
        verify_self_signed_jwt(r, &public)
    });
    let server = TestServer::start(vec![Reply::sse_text("from Vertex")], check).await;
    let dir = tempfile::tempdir().unwrap();
    let path = key_file(
        &dir,
        json!({"type":"service_account","project_id":PROJECT,"private_key_id":"key-1",
               "private_key":TEST_RSA_KEY,"client_email":EMAIL,"client_id":"1",
               "token_uri":format!("{}/token", server.url())}),
    );
    let client = Client::new(config(
        endpoint(&server, VertexAuth::CredentialsFile(path)),
        1,
    ))
    .unwrap();
    let reply = client
        .create_message(&request("claude-sonnet-5-5"), &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("{e}; problems: {:?}", server.problems()));
    assert_eq!(reply.text(), "from Vertex");
    assert!(server.problems().is_empty(), "{:?}", server.problems());
    assert_eq!(
        server.requests().len(),
        1,
        "a self-signed token needs no token request"
    );
}

#[tokio::test]
async fn a_gcloud_user_refreshes_its_token_at_the_token_uri() {
    let check: Check = Box::new(|r| {
        if r.path == "/token" {
            // google-cloud-auth posts the refresh as JSON.
            let body = r.json();
            let want = [
                ("grant_type", "refresh_token"),
                ("refresh_token", "rt-1"),
                ("client_id", "cid"),
                ("client_secret", "cs"),
            ];
            for (k, v) in want {
                if body[k] != v {
                    return Err(format!("token request {k}: {}", body[k]));
                }
            }
            return Ok(());
        }
        check_shape(r)?;
        match r.header("authorization") {
            Some("Bearer ya29.test-token") => Ok(()),
            other => Err(format!("authorization: {other:?}")),
        }
    });
    let token = json!({"access_token":"ya29.test-token","expires_in":3600,"token_type":"Bearer"});
    let server = TestServer::start(
        vec![
            Reply::new(200, "application/json", token.to_string().into_bytes()),
            Reply::sse_text("as a user"),
        ],
        check,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = key_file(
        &dir,
        json!({"type":"authorized_user","client_id":"cid","client_secret":"cs",
               "refresh_token":"rt-1","token_uri":format!("{}/token", server.url())}),
    );
    let client = Client::new(config(
        endpoint(&server, VertexAuth::CredentialsFile(path)),
        1,
    ))
    .unwrap();
    let reply = client
        .create_message(&request("claude-sonnet-5-5"), &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("{e}; problems: {:?}", server.problems()));
    assert_eq!(reply.text(), "as a user");
    assert!(server.problems().is_empty(), "{:?}", server.problems());
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn skipping_vertex_auth_sends_no_authorization() {
    let check: Check = Box::new(|r| {
        check_shape(r)?;
        match r.header("authorization") {
            None => Ok(()),
            Some(v) => Err(format!("authorization sent: {v}")),
        }
    });
    let server = TestServer::start(vec![Reply::sse_text("behind a gateway")], check).await;
    let client = Client::new(config(endpoint(&server, VertexAuth::Skip), 1)).unwrap();
    let reply = client
        .create_message(&request("claude-sonnet-5-5"), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(reply.text(), "behind a gateway");
    assert!(server.problems().is_empty(), "{:?}", server.problems());
}
