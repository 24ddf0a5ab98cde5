//! The AWS event-stream binary framing (`application/vnd.amazon.eventstream`), written from
//! the published format (the doc marks Bedrock's use of it [U]):
//!
//! ```text
//! total length  u32 BE   (the whole message, these 4 bytes and both CRCs included)
//! headers len   u32 BE
//! prelude CRC   u32 BE   CRC-32 (IEEE) of the 8 bytes above
//! headers       per header: name len u8, name, value type u8, value
//!               (type 7 = string: len u16 BE, UTF-8 bytes)
//! payload       bytes
//! message CRC   u32 BE   CRC-32 of everything before it
//! ```
//!
//! Only string headers are written (all Bedrock sends); [`decode`] reads what [`encode`]
//! writes, for tests.

/// Header value type 7: a string.
const STRING: u8 = 7;

/// One framed message.
pub fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for (name, value) in headers {
        // Names are short ASCII constants and values short strings; both fit their fields.
        h.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
        h.extend_from_slice(&name.as_bytes()[..name.len().min(255)]);
        h.push(STRING);
        let len = value.len().min(u16::MAX as usize);
        h.extend_from_slice(&(len as u16).to_be_bytes());
        h.extend_from_slice(&value.as_bytes()[..len]);
    }
    let total = 12 + h.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(h.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// A decoded message: string headers and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn be32(b: &[u8], at: usize) -> Option<usize> {
    let bytes: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes) as usize)
}

/// Split a byte stream into frames, checking both CRCs. `Err` names the first problem.
pub fn decode(mut bytes: &[u8]) -> Result<Vec<Frame>, String> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let prelude = bytes.get(..8).ok_or("short prelude")?;
        if be32(bytes, 8) != Some(crc32fast::hash(prelude) as usize) {
            return Err("prelude CRC mismatch".into());
        }
        let total = be32(bytes, 0).ok_or("short prelude")?;
        let headers_len = be32(bytes, 4).ok_or("short prelude")?;
        let msg = bytes.get(..total).ok_or("message longer than the stream")?;
        if total < 16 + headers_len {
            return Err("lengths do not add up".into());
        }
        if be32(msg, total - 4) != Some(crc32fast::hash(&msg[..total - 4]) as usize) {
            return Err("message CRC mismatch".into());
        }
        let mut h = &msg[12..12 + headers_len];
        let mut headers = Vec::new();
        while !h.is_empty() {
            let n = *h.first().ok_or("short header")? as usize;
            let name = h.get(1..1 + n).ok_or("short header name")?;
            if h.get(1 + n) != Some(&STRING) {
                return Err("only string headers are supported".into());
            }
            let len = h
                .get(2 + n..4 + n)
                .map(|l| u16::from_be_bytes([l[0], l[1]]) as usize)
                .ok_or("short header value")?;
            let value = h.get(4 + n..4 + n + len).ok_or("short header value")?;
            headers.push((
                String::from_utf8_lossy(name).into_owned(),
                String::from_utf8_lossy(value).into_owned(),
            ));
            h = &h[4 + n + len..];
        }
        frames.push(Frame {
            headers,
            payload: msg[12 + headers_len..total - 4].to_vec(),
        });
        bytes = &bytes[total..];
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_a_flipped_bit_is_caught() {
        let a = encode(
            &[(":event-type", "chunk"), (":message-type", "event")],
            b"{\"bytes\":\"e30=\"}",
        );
        let b = encode(&[(":message-type", "exception")], b"");
        let mut stream = a.clone();
        stream.extend_from_slice(&b);
        let frames = decode(&stream).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].header(":event-type"), Some("chunk"));
        assert_eq!(frames[0].payload, b"{\"bytes\":\"e30=\"}");
        assert_eq!(frames[1].header(":message-type"), Some("exception"));
        // Total length is the frame's size.
        assert_eq!(
            u32::from_be_bytes(a[..4].try_into().unwrap()) as usize,
            a.len()
        );
        let mut bad = a.clone();
        let last = bad.len() - 6;
        bad[last] ^= 1;
        assert_eq!(decode(&bad), Err("message CRC mismatch".into()));
        bad = a;
        bad[5] ^= 1;
        assert_eq!(decode(&bad), Err("prelude CRC mismatch".into()));
    }

    #[test]
    fn an_empty_frame_matches_the_aws_test_vector() {
        // awslabs event-stream test suite, encoded/positive/empty_message.
        let f = encode(&[], b"");
        assert_eq!(
            f,
            [
                0, 0, 0, 0x10, 0, 0, 0, 0, 0x05, 0xc2, 0x48, 0xeb, 0x7d, 0x98, 0xc8, 0xff
            ]
        );
        assert_eq!(decode(&f).unwrap()[0].payload, Vec::<u8>::new());
    }
}
