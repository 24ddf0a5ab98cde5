//! Reading the CLI's output: stdout as bounded lines, the end of stderr.

use std::io;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// One user message as a line of the CLI's streaming input
/// (`--input-format stream-json`, `docs/claude-cli.md`).
pub(super) fn user_message(text: &str) -> String {
    let line = serde_json::json!({
        "type": "user",
        "message": {"role": "user", "content": [{"type": "text", "text": text}]},
    });
    format!("{line}\n")
}

/// How much of the end of stderr is kept for error messages.
pub(super) const STDERR_TAIL_BYTES: usize = 8 * 1024;

/// One line read by [`LineReader`].
#[derive(Debug, PartialEq)]
pub(super) enum Line {
    Complete(String),
    /// A line longer than the limit, skipped; holds its length in bytes.
    TooLong(usize),
}

/// Reads newline-terminated lines with a cap on their length.
///
/// Cancel-safe: all state lives in the struct and is updated only after the
/// one await point, so `next_line` can sit in a `select!`.
pub(super) struct LineReader<R> {
    inner: BufReader<R>,
    buf: Vec<u8>,
    /// Bytes of the current line dropped for being over `max`.
    dropped: usize,
    max: usize,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub(super) fn new(inner: R, max: usize) -> Self {
        Self {
            inner: BufReader::new(inner),
            buf: Vec::new(),
            dropped: 0,
            max,
        }
    }

    /// The next line without its newline, `None` at end of input.
    pub(super) async fn next_line(&mut self) -> io::Result<Option<Line>> {
        loop {
            let chunk = self.inner.fill_buf().await?;
            if chunk.is_empty() {
                if self.buf.is_empty() && self.dropped == 0 {
                    return Ok(None);
                }
                return Ok(Some(self.take()));
            }
            let newline = chunk.iter().position(|&b| b == b'\n');
            let part = &chunk[..newline.unwrap_or(chunk.len())];
            if self.dropped > 0 || self.buf.len() + part.len() > self.max {
                self.dropped += self.buf.len() + part.len();
                self.buf.clear();
            } else {
                self.buf.extend_from_slice(part);
            }
            let used = newline.map_or(chunk.len(), |i| i + 1);
            self.inner.consume(used);
            if newline.is_some() {
                return Ok(Some(self.take()));
            }
        }
    }

    fn take(&mut self) -> Line {
        if self.dropped > 0 {
            let n = std::mem::take(&mut self.dropped);
            self.buf.clear();
            Line::TooLong(n)
        } else {
            let bytes = std::mem::take(&mut self.buf);
            let line = String::from_utf8(bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
            Line::Complete(line.strip_suffix('\r').map(str::to_owned).unwrap_or(line))
        }
    }
}

/// The last [`STDERR_TAIL_BYTES`] of a stream, shared with the task reading it.
#[derive(Debug, Default, Clone)]
pub(super) struct Tail(Arc<Mutex<Vec<u8>>>);

impl Tail {
    pub(super) fn push(&self, bytes: &[u8]) {
        let mut buf = self.0.lock().unwrap_or_else(|p| p.into_inner());
        buf.extend_from_slice(bytes);
        if buf.len() > STDERR_TAIL_BYTES {
            let cut = buf.len() - STDERR_TAIL_BYTES;
            buf.drain(..cut);
        }
    }

    pub(super) fn text(&self) -> String {
        let buf = self.0.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&buf).trim().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Just;

    async fn read_all(input: &[u8], max: usize) -> Vec<Line> {
        let mut r = LineReader::new(input, max);
        let mut out = Vec::new();
        while let Some(l) = r.next_line().await.unwrap() {
            out.push(l);
        }
        out
    }

    #[tokio::test]
    async fn line_reader_bounds_lines() {
        let input = b"short\r\n0123456789abcdef\nok\n\xff\xfe\nlast";
        assert_eq!(
            read_all(input, 8).await,
            vec![
                Line::Complete("short".into()),
                Line::TooLong(16),
                Line::Complete("ok".into()),
                Line::Complete("\u{fffd}\u{fffd}".into()),
                Line::Complete("last".into()),
            ]
        );
        assert_eq!(read_all(b"", 8).await, vec![]);
        assert_eq!(read_all(b"0123456789", 4).await, vec![Line::TooLong(10)]);
    }

    #[tokio::test]
    async fn line_reader_across_small_reads() {
        // A one-byte buffer forces every line to span many reads.
        let input: &[u8] = b"{\"a\":1}\n{\"b\":2}\n";
        let mut r = LineReader {
            inner: BufReader::with_capacity(1, input),
            buf: Vec::new(),
            dropped: 0,
            max: 100,
        };
        assert_eq!(
            r.next_line().await.unwrap(),
            Some(Line::Complete("{\"a\":1}".into()))
        );
        assert_eq!(
            r.next_line().await.unwrap(),
            Some(Line::Complete("{\"b\":2}".into()))
        );
        assert_eq!(r.next_line().await.unwrap(), None);
    }

    proptest::proptest! {
        /// Any byte stream comes out as one `Line` per newline-separated
        /// segment, intact when short enough, without panicking.
        #[test]
        fn line_reader_splits_any_bytes(
            input in proptest::collection::vec(
                proptest::prop_oneof![Just(b'\n'), Just(b'\r'), Just(b'a'), proptest::num::u8::ANY],
                0..300,
            ),
            max in 1usize..40,
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let lines = rt.block_on(read_all(&input, max));
            let mut segments: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
            if segments.last().is_some_and(|s| s.is_empty()) {
                segments.pop();
            }
            proptest::prop_assert_eq!(lines.len(), segments.len());
            for (line, seg) in lines.iter().zip(segments) {
                match line {
                    Line::Complete(text) => {
                        proptest::prop_assert!(seg.len() <= max);
                        let seg = seg.strip_suffix(b"\r").unwrap_or(seg);
                        if let Ok(expected) = std::str::from_utf8(seg) {
                            proptest::prop_assert_eq!(text.as_str(), expected);
                        }
                    }
                    Line::TooLong(n) => {
                        proptest::prop_assert!(seg.len() > max);
                        proptest::prop_assert_eq!(*n, seg.len());
                    }
                }
            }
        }
    }

    #[test]
    fn tail_keeps_the_end() {
        let t = Tail::default();
        t.push(&vec![b'a'; STDERR_TAIL_BYTES]);
        t.push(b"the end");
        let text = t.text();
        assert_eq!(text.len(), STDERR_TAIL_BYTES);
        assert!(text.ends_with("the end"));
    }
}
