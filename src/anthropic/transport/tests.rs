//! Endpoint choice from the environment, and each platform's wire shape.

use std::collections::HashMap;

use serde_json::Value;

use super::*;
use crate::anthropic::types::{
    ContentBlock, ContextEdit, ContextManagement, KeepThinking, Message, Role,
};

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

fn request() -> MessagesRequest<'static> {
    MessagesRequest {
        model: "us.anthropic.claude-haiku-4-5-20251001-v1:0".into(),
        max_tokens: 100,
        stream: true,
        messages: vec![Message {
            role: Role::User,
            content: vec![ContentBlock::text("hi")],
        }]
        .into(),
        context_management: Some(ContextManagement {
            edits: vec![ContextEdit::ClearThinking {
                keep: Some(KeepThinking::All),
            }],
        }),
        betas: vec!["interleaved-thinking-2025-05-14".into()],
        ..MessagesRequest::default()
    }
}

fn header<'a>(p: &'a [(HeaderName, HeaderValue)], name: &str) -> Option<&'a str> {
    p.iter()
        .find(|(k, _)| k.as_str() == name)
        .and_then(|(_, v)| v.to_str().ok())
}

#[test]
fn without_a_switch_the_claude_api_or_a_gateway_is_used() {
    let e = Endpoint::from_lookup(env(&[("ANTHROPIC_API_KEY", "sk-ant-1")])).unwrap();
    assert_eq!(
        e,
        Endpoint::anthropic(crate::anthropic::DEFAULT_BASE_URL, Secret::new("sk-ant-1"))
    );
    let gw = Endpoint::from_lookup(env(&[
        ("ANTHROPIC_BASE_URL", "https://llm.corp.example/anthropic"),
        ("ANTHROPIC_AUTH_TOKEN", "gw-token"),
        ("CLAUDE_CODE_USE_BEDROCK", "0"),
    ]))
    .unwrap();
    let Endpoint::Anthropic(a) = &gw else {
        panic!("{gw:?}")
    };
    assert_eq!(a.base_url, "https://llm.corp.example/anthropic");
    assert_eq!(a.auth_token.as_ref().map(Secret::expose), Some("gw-token"));
    assert!(a.api_key.is_none());
    assert_eq!(gw.platform(), "anthropic");
}

#[test]
fn gateway_requests_carry_the_bearer_token_the_version_and_the_betas() {
    let e = Endpoint::Anthropic(AnthropicEndpoint {
        base_url: "http://127.0.0.1:9/".into(),
        api_key: Some(Secret::new("sk-ant-1")),
        auth_token: Some(Secret::new("gw-token")),
    });
    let t = Transport::new(&e).unwrap();
    let p = t.prepare(&request(), "2026-10-21").unwrap();
    assert_eq!(p.url, "http://127.0.0.1:9/v1/messages");
    assert_eq!(header(&p.headers, "x-api-key"), Some("sk-ant-1"));
    assert_eq!(header(&p.headers, "authorization"), Some("Bearer gw-token"));
    assert_eq!(header(&p.headers, "anthropic-version"), Some("2026-10-21"));
    assert_eq!(
        header(&p.headers, "anthropic-beta"),
        Some("interleaved-thinking-2025-05-14,context-management-2025-06-27")
    );
    assert!(
        p.headers
            .iter()
            .any(|(k, v)| k == "authorization" && v.is_sensitive())
    );
    let body: Value = serde_json::from_slice(&p.body).unwrap();
    assert_eq!(body["model"], "us.anthropic.claude-haiku-4-5-20251001-v1:0");
    let none = Endpoint::Anthropic(AnthropicEndpoint {
        base_url: "http://127.0.0.1:9".into(),
        api_key: None,
        auth_token: Some(Secret::new(" ")),
    });
    assert!(matches!(Transport::new(&none), Err(ApiError::Config(_))));
}

#[test]
fn bedrock_is_chosen_like_claude_code_with_each_kind_of_credentials() {
    let keys = Endpoint::from_lookup(env(&[
        ("CLAUDE_CODE_USE_BEDROCK", "1"),
        ("CLAUDE_CODE_USE_VERTEX", "1"),
        ("AWS_ACCESS_KEY_ID", "AKID"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("AWS_SESSION_TOKEN", "session"),
        ("AWS_REGION", "eu-west-3"),
    ]))
    .unwrap();
    let Endpoint::Bedrock(b) = &keys else {
        panic!("bedrock wins over vertex: {keys:?}")
    };
    assert_eq!(
        b.base_url,
        "https://bedrock-runtime.eu-west-3.amazonaws.com"
    );
    assert_eq!(b.region, "eu-west-3");
    assert!(matches!(&b.auth, BedrockAuth::SigV4(c)
        if c.access_key_id == "AKID" && c.session_token.as_ref().map(Secret::expose) == Some("session")));
    let bearer = Endpoint::from_lookup(env(&[
        ("CLAUDE_CODE_USE_BEDROCK", "true"),
        ("AWS_BEARER_TOKEN_BEDROCK", "bedrock-key"),
        ("AWS_DEFAULT_REGION", "us-west-2"),
        ("ANTHROPIC_BEDROCK_BASE_URL", "http://127.0.0.1:9"),
    ]))
    .unwrap();
    let Endpoint::Bedrock(b) = &bearer else {
        panic!("{bearer:?}")
    };
    assert_eq!(
        (b.base_url.as_str(), b.region.as_str()),
        ("http://127.0.0.1:9", "us-west-2")
    );
    assert!(matches!(&b.auth, BedrockAuth::ApiKey(k) if k.expose() == "bedrock-key"));
    let skip = Endpoint::from_lookup(env(&[
        ("CLAUDE_CODE_USE_BEDROCK", "1"),
        ("CLAUDE_CODE_SKIP_BEDROCK_AUTH", "1"),
        ("HOME", "/nonexistent"),
    ]))
    .unwrap();
    assert!(matches!(&skip, Endpoint::Bedrock(b)
        if b.auth == BedrockAuth::Skip && b.region == env::DEFAULT_AWS_REGION));
    let half = Endpoint::from_lookup(env(&[
        ("CLAUDE_CODE_USE_BEDROCK", "1"),
        ("AWS_ACCESS_KEY_ID", "AKID"),
    ]));
    assert!(matches!(half, Err(EndpointError::HalfAwsKey)));
    let none = Endpoint::from_lookup(env(&[
        ("CLAUDE_CODE_USE_BEDROCK", "1"),
        ("HOME", "/nonexistent"),
    ]));
    assert!(matches!(none, Err(EndpointError::NoAwsCredentials)));
}

#[test]
fn bedrock_credentials_and_region_can_come_from_a_profile() {
    let dir = tempfile::tempdir().unwrap();
    let aws = dir.path().join(".aws");
    std::fs::create_dir(&aws).unwrap();
    std::fs::write(
        aws.join("credentials"),
        "[ci]\naws_access_key_id = AKCI\naws_secret_access_key = s\n",
    )
    .unwrap();
    std::fs::write(aws.join("config"), "[profile ci]\nregion = ap-south-1\n").unwrap();
    let home = dir.path().to_str().unwrap();
    let e = Endpoint::from_lookup(env(&[
        ("CLAUDE_CODE_USE_BEDROCK", "1"),
        ("AWS_PROFILE", "ci"),
        ("HOME", home),
    ]))
    .unwrap();
    let Endpoint::Bedrock(b) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(b.region, "ap-south-1");
    assert!(matches!(&b.auth, BedrockAuth::SigV4(c) if c.access_key_id == "AKCI"));
}

#[cfg(feature = "bedrock")]
#[test]
fn bedrock_requests_put_the_model_in_the_url_and_the_betas_in_the_body() {
    let t = Transport::new(&Endpoint::Bedrock(BedrockEndpoint {
        base_url: "https://bedrock-runtime.us-east-1.amazonaws.com/".into(),
        region: "us-east-1".into(),
        auth: BedrockAuth::ApiKey(Secret::new("k")),
    }))
    .unwrap();
    let p = t.prepare(&request(), "2026-10-21").unwrap();
    assert_eq!(
        p.url,
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/\
         us.anthropic.claude-haiku-4-5-20251001-v1%3A0/invoke-with-response-stream"
    );
    assert_eq!(
        header(&p.headers, "accept"),
        Some("application/vnd.amazon.eventstream")
    );
    assert_eq!(header(&p.headers, "anthropic-version"), None);
    let body: Value = serde_json::from_slice(&p.body).unwrap();
    assert!(
        body.get("model").is_none() && body.get("stream").is_none(),
        "{body}"
    );
    assert_eq!(body["anthropic_version"], "bedrock-2023-05-31");
    assert_eq!(
        body["anthropic_beta"],
        serde_json::json!([
            "interleaved-thinking-2025-05-14",
            "context-management-2025-06-27"
        ])
    );
    assert_eq!(body["max_tokens"], 100);
}

/// A signature computed independently (Python's hashlib/hmac, following the SigV4
/// documentation step by step: double-encoded path, signed headers accept;content-type;
/// host;x-amz-date;x-amz-security-token) for the request below.
#[cfg(feature = "bedrock")]
#[test]
fn bedrock_sigv4_matches_an_independent_computation() {
    use std::time::{Duration, UNIX_EPOCH};

    let b = bedrock::Bedrock::new(&BedrockEndpoint {
        base_url: "https://bedrock-runtime.us-east-1.amazonaws.com".into(),
        region: "us-east-1".into(),
        auth: BedrockAuth::SigV4(AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: Some(Secret::new("SESSIONTOKEN")),
        }),
    })
    .unwrap();
    let p = Prepared {
        url: "https://bedrock-runtime.us-east-1.amazonaws.com/model/\
              us.anthropic.claude-haiku-4-5-20251001-v1%3A0/invoke-with-response-stream"
            .into(),
        headers: common_headers("application/vnd.amazon.eventstream").to_vec(),
        body: br#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":100}"#.to_vec(),
    };
    // 2026-12-01T08:50:00Z
    let time = UNIX_EPOCH + Duration::from_secs(1_796_115_000);
    let h = b.authorize(&p, time).unwrap();
    assert_eq!(header(&h, "x-amz-date"), Some("20261201T085000Z"));
    assert_eq!(header(&h, "x-amz-security-token"), Some("SESSIONTOKEN"));
    assert_eq!(
        header(&h, "authorization"),
        Some(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261201/us-east-1/bedrock/aws4_request, \
             SignedHeaders=accept;content-type;host;x-amz-date;x-amz-security-token, \
             Signature=82db63b4391f9dfb68be169f42f455d629eb646508466134e1e0c5585dd68d38"
        )
    );
    assert!(
        h.iter()
            .all(|(k, v)| k != "authorization" || v.is_sensitive())
    );
}

#[test]
fn vertex_needs_a_project_and_derives_its_base_url_from_the_region() {
    let missing = Endpoint::from_lookup(env(&[("CLAUDE_CODE_USE_VERTEX", "1")]));
    assert!(matches!(missing, Err(EndpointError::NoVertexProject)));
    let base = |region: Option<&str>| {
        let mut vars = vec![
            ("CLAUDE_CODE_USE_VERTEX", "1"),
            ("ANTHROPIC_VERTEX_PROJECT_ID", "p"),
        ];
        if let Some(r) = region {
            vars.push(("CLOUD_ML_REGION", r));
        }
        match Endpoint::from_lookup(env(&vars)).unwrap() {
            Endpoint::Vertex(v) => (v.base_url, v.region, v.auth),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        base(None),
        (
            "https://us-east5-aiplatform.googleapis.com/v1".into(),
            "us-east5".into(),
            VertexAuth::ApplicationDefault
        )
    );
    assert_eq!(
        base(Some("global")).0,
        "https://aiplatform.googleapis.com/v1"
    );
    assert_eq!(
        base(Some("eu")).0,
        "https://aiplatform.eu.rep.googleapis.com/v1"
    );
    assert_eq!(
        base(Some("europe-west1")).0,
        "https://europe-west1-aiplatform.googleapis.com/v1"
    );
    let e = Endpoint::from_lookup(env(&[
        ("CLAUDE_CODE_USE_VERTEX", "yes"),
        ("ANTHROPIC_VERTEX_PROJECT_ID", "proj"),
        ("ANTHROPIC_VERTEX_BASE_URL", "http://127.0.0.1:9/v1"),
        ("GOOGLE_APPLICATION_CREDENTIALS", "/etc/sa.json"),
    ]))
    .unwrap();
    assert!(matches!(&e, Endpoint::Vertex(v)
        if v.base_url == "http://127.0.0.1:9/v1"
            && v.auth == VertexAuth::CredentialsFile("/etc/sa.json".into())));
    let skip = Endpoint::from_lookup(env(&[
        ("CLAUDE_CODE_USE_VERTEX", "1"),
        ("ANTHROPIC_VERTEX_PROJECT_ID", "proj"),
        ("CLAUDE_CODE_SKIP_VERTEX_AUTH", "1"),
    ]))
    .unwrap();
    assert!(matches!(&skip, Endpoint::Vertex(v) if v.auth == VertexAuth::Skip));
}

#[cfg(feature = "vertex")]
#[test]
fn vertex_requests_use_stream_raw_predict_without_a_model_in_the_body() {
    let t = Transport::new(&Endpoint::Vertex(VertexEndpoint {
        base_url: "https://us-east5-aiplatform.googleapis.com/v1".into(),
        project_id: "my-proj".into(),
        region: "us-east5".into(),
        auth: VertexAuth::Skip,
    }))
    .unwrap();
    let mut r = request();
    r.model = "claude-sonnet-4-5@20250929".into();
    let p = t.prepare(&r, "2026-10-21").unwrap();
    assert_eq!(
        p.url,
        "https://us-east5-aiplatform.googleapis.com/v1/projects/my-proj/locations/us-east5/\
         publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict"
    );
    assert_eq!(
        header(&p.headers, "anthropic-beta"),
        Some("interleaved-thinking-2025-05-14,context-management-2025-06-27")
    );
    let body: Value = serde_json::from_slice(&p.body).unwrap();
    assert!(body.get("model").is_none(), "{body}");
    assert_eq!(body["anthropic_version"], "vertex-2023-10-16");
    assert_eq!(body["stream"], true);
    assert!(body.get("anthropic_beta").is_none());
    let bad = Transport::new(&Endpoint::Vertex(VertexEndpoint {
        base_url: "https://x/v1".into(),
        project_id: "a/b".into(),
        region: "r".into(),
        auth: VertexAuth::Skip,
    }));
    assert!(matches!(bad, Err(ApiError::Config(_))));
}

#[cfg(not(all(feature = "bedrock", feature = "vertex")))]
#[test]
fn a_platform_left_out_of_the_build_is_refused_by_name() {
    #[cfg(not(feature = "bedrock"))]
    {
        let e = Endpoint::Bedrock(BedrockEndpoint {
            base_url: "https://b".into(),
            region: "us-east-1".into(),
            auth: BedrockAuth::Skip,
        });
        let err = Transport::new(&e).unwrap_err();
        assert!(err.to_string().contains("cargo feature `bedrock`"), "{err}");
    }
    #[cfg(not(feature = "vertex"))]
    {
        let e = Endpoint::Vertex(VertexEndpoint {
            base_url: "https://v/v1".into(),
            project_id: "p".into(),
            region: "r".into(),
            auth: VertexAuth::Skip,
        });
        let err = Transport::new(&e).unwrap_err();
        assert!(err.to_string().contains("cargo feature `vertex`"), "{err}");
    }
}
