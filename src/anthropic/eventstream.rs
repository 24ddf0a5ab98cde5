//! Bedrock's `InvokeModelWithResponseStream` framing (AWS event stream,
//! `application/vnd.amazon.eventstream`) turned back into the Messages API's events.
//!
//! Each `chunk` frame carries `{"bytes": base64(<one Messages API event as JSON>)}`; the
//! event's `type` field is its name. Exception frames (`:message-type: exception`) become
//! `error` events with the Anthropic error type closest to the AWS one, so
//! [`super::stream::MessageAssembler`] and the retry policy treat both clouds alike. Frame
//! decoding (prelude, headers, CRCs) is `aws-smithy-eventstream`'s.

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::Message;
use base64::Engine;
use bytes::BytesMut;
use serde_json::{Value, json};

use super::error::ApiError;
use super::sse::{EventTooLarge, SseEvent};

/// Incremental decoder: bytes in (any chunking), Messages API events out.
#[derive(Debug)]
pub struct EventStreamDecoder {
    buffer: BytesMut,
    frames: MessageFrameDecoder,
    max_event_bytes: usize,
}

impl EventStreamDecoder {
    /// A decoder that refuses a frame larger than `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            buffer: BytesMut::new(),
            frames: MessageFrameDecoder::new(),
            max_event_bytes,
        }
    }

    /// Feed bytes; returns the events completed by them, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, ApiError> {
        self.buffer.extend_from_slice(chunk);
        let mut out = Vec::new();
        let limit = self.max_event_bytes;
        let too_large = || -> ApiError { EventTooLarge { limit }.into() };
        loop {
            match self.frames.decode_frame(&mut self.buffer) {
                Ok(DecodedFrame::Complete(message)) => {
                    if message.payload().len() > limit {
                        return Err(too_large());
                    }
                    if let Some(event) = to_event(&message)? {
                        out.push(event);
                    }
                }
                // What is left is the start of one frame: its size so far.
                Ok(DecodedFrame::Incomplete) if self.buffer.len() > limit => {
                    return Err(too_large());
                }
                Ok(DecodedFrame::Incomplete) => return Ok(out),
                Err(e) => {
                    return Err(ApiError::Protocol(format!(
                        "invalid AWS event-stream frame: {e}"
                    )));
                }
            }
        }
    }
}

fn header<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message
        .headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| h.value().as_string().ok())
        .map(|s| s.as_str())
}

/// One frame as a Messages API event; `None` for frames that carry none.
fn to_event(message: &Message) -> Result<Option<SseEvent>, ApiError> {
    match header(message, ":message-type").unwrap_or("event") {
        "event" => {
            if header(message, ":event-type") != Some("chunk") {
                return Ok(None);
            }
            let wrapper: Value = serde_json::from_slice(message.payload())
                .map_err(|e| ApiError::Protocol(format!("Bedrock chunk is not JSON: {e}")))?;
            let encoded = wrapper["bytes"]
                .as_str()
                .ok_or_else(|| ApiError::Protocol("Bedrock chunk without bytes".into()))?;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| ApiError::Protocol(format!("Bedrock chunk bytes: {e}")))?;
            let data = String::from_utf8(decoded)
                .map_err(|e| ApiError::Protocol(format!("Bedrock chunk is not UTF-8: {e}")))?;
            let event: Value = serde_json::from_str(&data)
                .map_err(|e| ApiError::Protocol(format!("Bedrock event is not JSON: {e}")))?;
            let name = event["type"].as_str().unwrap_or("message").to_string();
            Ok(Some(SseEvent { event: name, data }))
        }
        "exception" | "error" => {
            let aws = header(message, ":exception-type")
                .or_else(|| header(message, ":error-code"))
                .unwrap_or("unknownException")
                .to_string();
            let body: Value = serde_json::from_slice(message.payload()).unwrap_or(Value::Null);
            let text = body["message"]
                .as_str()
                .or_else(|| header(message, ":error-message"))
                .unwrap_or_default();
            let data = json!({"type": "error", "error": {
                "type": anthropic_kind(&aws),
                "message": format!("{aws}: {text}"),
            }});
            Ok(Some(SseEvent {
                event: "error".into(),
                data: data.to_string(),
            }))
        }
        _ => Ok(None),
    }
}

/// The Anthropic error type that behaves like an AWS stream exception.
fn anthropic_kind(aws: &str) -> &'static str {
    match aws.to_ascii_lowercase().as_str() {
        "throttlingexception" => "rate_limit_error",
        "servicequotaexceededexception" => "rate_limit_error",
        "serviceunavailableexception" => "overloaded_error",
        "modeltimeoutexception" => "timeout_error",
        "internalserverexception" | "modelstreamerrorexception" => "api_error",
        "validationexception" => "invalid_request_error",
        "accessdeniedexception" => "permission_error",
        _ => "api_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::{Header, HeaderValue};

    fn frame(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
        let mut m = Message::new(payload.to_vec());
        for (k, v) in headers {
            m = m.add_header(Header::new(
                k.to_string(),
                HeaderValue::String(v.to_string().into()),
            ));
        }
        let mut out = Vec::new();
        write_message_to(&m, &mut out).unwrap();
        out
    }

    fn chunk(event: &Value) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(event.to_string());
        frame(
            &[
                (":message-type", "event"),
                (":event-type", "chunk"),
                (":content-type", "application/json"),
            ],
            json!({ "bytes": b64 }).to_string().as_bytes(),
        )
    }

    #[test]
    fn chunks_become_events_in_any_chunking() {
        let start = json!({"type":"message_start","message":{"id":"m"}});
        let stop = json!({"type":"message_stop"});
        let mut bytes = chunk(&start);
        bytes.extend(frame(
            &[(":message-type", "event"), (":event-type", "metrics")],
            b"{}",
        ));
        bytes.extend(chunk(&stop));
        for size in [1, 7, 64, bytes.len()] {
            let mut d = EventStreamDecoder::new(1 << 20);
            let events: Vec<SseEvent> = bytes
                .chunks(size)
                .flat_map(|c| d.push(c).unwrap())
                .collect();
            let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
            assert_eq!(names, ["message_start", "message_stop"], "chunks of {size}");
            let first: Value = serde_json::from_str(&events[0].data).unwrap();
            assert_eq!(first, start);
        }
    }

    #[test]
    fn exceptions_become_error_events_with_an_anthropic_type() {
        let bytes = frame(
            &[
                (":message-type", "exception"),
                (":exception-type", "throttlingException"),
            ],
            br#"{"message":"Too many tokens, please wait"}"#,
        );
        let events = EventStreamDecoder::new(1 << 20).push(&bytes).unwrap();
        assert_eq!(events[0].event, "error");
        let v: Value = serde_json::from_str(&events[0].data).unwrap();
        assert_eq!(v["error"]["type"], "rate_limit_error");
        assert_eq!(
            v["error"]["message"],
            "throttlingException: Too many tokens, please wait"
        );
        assert_eq!(
            anthropic_kind("serviceUnavailableException"),
            "overloaded_error"
        );
        assert_eq!(
            anthropic_kind("validationException"),
            "invalid_request_error"
        );
    }

    #[test]
    fn corrupt_or_oversized_frames_are_refused() {
        let mut bytes = chunk(&json!({"type":"ping"}));
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff; // breaks the message CRC
        let err = EventStreamDecoder::new(1 << 20).push(&bytes).unwrap_err();
        assert!(matches!(err, ApiError::Protocol(_)), "{err:?}");
        let big = chunk(&json!({"type":"ping","pad":"x".repeat(4096)}));
        let err = EventStreamDecoder::new(1024).push(&big).unwrap_err();
        assert!(matches!(err, ApiError::EventTooLarge(_)), "{err:?}");
    }
}
