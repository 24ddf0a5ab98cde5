//! A small scripted HTTP/1.1 server on 127.0.0.1 for these tests: it records every request
//! whole (method, path as sent, headers, body), runs the test's strict check on it (a
//! breach is answered with 400 and recorded, so tests assert `problems()` is empty), and
//! answers with the next scripted reply. One request per connection (`connection: close`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

#[cfg(feature = "bedrock")]
use aws_smithy_eventstream::frame::write_message_to;
#[cfg(feature = "bedrock")]
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
#[cfg(feature = "bedrock")]
use base64::Engine;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// The request target exactly as sent (percent-encoding kept).
    pub path: String,
    /// Lower-cased names.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn new(status: u16, content_type: &str, body: Vec<u8>) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body,
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// An Anthropic-shaped error.
    pub fn error(status: u16, kind: &str, message: &str) -> Self {
        let body = json!({"type":"error","error":{"type":kind,"message":message}});
        Self::new(status, "application/json", body.to_string().into_bytes())
            .with_header("request-id", "req_test")
    }

    /// A streamed reply (SSE) of one text block.
    pub fn sse_text(text: &str) -> Self {
        let body: String = text_events(text)
            .iter()
            .map(|e| {
                format!(
                    "event: {}\ndata: {e}\n\n",
                    e["type"].as_str().unwrap_or("x")
                )
            })
            .collect();
        Self::new(200, "text/event-stream", body.into_bytes())
    }

    /// A 200 SSE stream that starts and then carries an `error` event.
    pub fn sse_error(kind: &str) -> Self {
        let start = &text_events("")[0];
        let err = json!({"type":"error","error":{"type":kind,"message":"Overloaded"}});
        let body = format!("event: message_start\ndata: {start}\n\nevent: error\ndata: {err}\n\n");
        Self::new(200, "text/event-stream", body.into_bytes())
    }

    /// The same reply as Bedrock frames it: AWS event-stream `chunk` messages.
    #[cfg(feature = "bedrock")]
    pub fn event_stream_text(text: &str) -> Self {
        let mut body = Vec::new();
        for e in text_events(text) {
            let b64 = base64::engine::general_purpose::STANDARD.encode(e.to_string());
            let payload = json!({ "bytes": b64 }).to_string();
            body.extend(frame(
                &[
                    (":message-type", "event"),
                    (":event-type", "chunk"),
                    (":content-type", "application/json"),
                ],
                payload.as_bytes(),
            ));
        }
        Self::new(200, "application/vnd.amazon.eventstream", body)
    }

    /// A Bedrock stream cut by an exception frame after `message_start`.
    #[cfg(feature = "bedrock")]
    pub fn event_stream_exception(exception: &str) -> Self {
        let start = &text_events("")[0];
        let b64 = base64::engine::general_purpose::STANDARD.encode(start.to_string());
        let mut body = frame(
            &[(":message-type", "event"), (":event-type", "chunk")],
            json!({ "bytes": b64 }).to_string().as_bytes(),
        );
        body.extend(frame(
            &[
                (":message-type", "exception"),
                (":exception-type", exception),
            ],
            br#"{"message":"Too many requests, please wait before trying again."}"#,
        ));
        Self::new(200, "application/vnd.amazon.eventstream", body)
    }
}

#[cfg(feature = "bedrock")]
fn frame(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut m = Message::new(payload.to_vec());
    for (k, v) in headers {
        m = m.add_header(Header::new(
            k.to_string(),
            HeaderValue::String(v.to_string().into()),
        ));
    }
    let mut out = Vec::new();
    write_message_to(&m, &mut out).expect("frame encodes");
    out
}

/// The Messages API events of a one-text-block reply ending the turn.
pub fn text_events(text: &str) -> Vec<Value> {
    vec![
        json!({"type":"message_start","message":{"id":"msg_t","type":"message","role":"assistant",
            "model":"claude-test","content":[],"usage":{"input_tokens":12,"output_tokens":1,
            "cache_creation_input_tokens":0,"cache_read_input_tokens":0}}}),
        json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
        json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":text}}),
        json!({"type":"content_block_stop","index":0}),
        json!({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":5}}),
        json!({"type":"message_stop"}),
    ]
}

/// A request check: `Err` names the breach.
pub type Check = Box<dyn Fn(&Recorded) -> Result<(), String> + Send + Sync>;

struct State {
    replies: Vec<Reply>,
    recorded: Vec<Recorded>,
    problems: Vec<String>,
}

/// A running server; stops when dropped.
pub struct TestServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub async fn start(replies: Vec<Reply>, check: Check) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(State {
            replies: replies.into_iter().rev().collect(),
            recorded: Vec::new(),
            problems: Vec::new(),
        }));
        let check = Arc::new(check);
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (state, check) = (shared.clone(), check.clone());
                tokio::spawn(async move { serve(stream, state, check).await });
            }
        });
        Self { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().recorded.clone()
    }

    pub fn problems(&self) -> Vec<String> {
        self.lock().problems.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut stream: TcpStream, state: Arc<Mutex<State>>, check: Arc<Check>) {
    let Some(request) = read_request(&mut stream).await else {
        return;
    };
    let reply = {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        let verdict = check(&request);
        s.recorded.push(request);
        match verdict {
            Err(problem) => {
                s.problems.push(problem.clone());
                Reply::error(400, "invalid_request_error", &problem)
            }
            Ok(()) => s.replies.pop().unwrap_or_else(|| {
                s.problems.push("request after the script ran out".into());
                Reply::error(500, "api_error", "script ran out")
            }),
        }
    };
    let mut head = format!(
        "HTTP/1.1 {} X\r\ncontent-length: {}\r\nconnection: close\r\n",
        reply.status,
        reply.body.len()
    );
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(&reply.body).await;
    let _ = stream.shutdown().await;
}

async fn read_request(stream: &mut TcpStream) -> Option<Recorded> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Recorded {
        method,
        path,
        headers,
        body,
    })
}
