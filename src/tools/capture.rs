//! Bounded output capture: keep the head and the tail of a stream, count what
//! was dropped in between.
//!
//! A command can print gigabytes; the model needs the start (what ran) and
//! the end (the error, the summary), and the agent must not hold the rest in
//! memory. The shell feeds bytes in as they arrive; [`Capture::finish`] turns
//! them into text that fits the cap and says how much was cut.

use std::collections::VecDeque;

/// Head-and-tail capture of a byte stream, at most `cap` bytes kept.
#[derive(Debug)]
pub struct Capture {
    head_cap: usize,
    tail_cap: usize,
    head: Vec<u8>,
    tail: VecDeque<u8>,
    total: u64,
}

impl Capture {
    /// Keep at most `cap` bytes: half from the start, half from the end.
    pub fn new(cap: usize) -> Self {
        let head_cap = cap / 2;
        Self {
            head_cap,
            tail_cap: cap - head_cap,
            head: Vec::new(),
            tail: VecDeque::new(),
            total: 0,
        }
    }

    /// Append bytes as they arrive.
    pub fn push(&mut self, mut bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let room = self.head_cap - self.head.len();
        if room > 0 {
            let take = room.min(bytes.len());
            self.head.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
        }
        if self.tail_cap == 0 {
            return;
        }
        if bytes.len() >= self.tail_cap {
            self.tail.clear();
            self.tail
                .extend(bytes[bytes.len() - self.tail_cap..].iter().copied());
            return;
        }
        let overflow = (self.tail.len() + bytes.len()).saturating_sub(self.tail_cap);
        self.tail.drain(..overflow);
        self.tail.extend(bytes.iter().copied());
    }

    /// The captured text (invalid UTF-8 replaced), with a marker saying how
    /// many bytes were left out between head and tail.
    pub fn finish(self) -> String {
        let kept = (self.head.len() + self.tail.len()) as u64;
        let omitted = self.total - kept;
        let mut tail: Vec<u8> = self.tail.into_iter().collect();
        if omitted == 0 {
            let mut all = self.head;
            all.append(&mut tail);
            return String::from_utf8_lossy(&all).into_owned();
        }
        // Both cuts may fall inside a UTF-8 sequence: drop the partial
        // character at the end of the head and at the start of the tail.
        let head_end = match std::str::from_utf8(&self.head) {
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            _ => self.head.len(),
        };
        let tail_start = tail
            .iter()
            .position(|b| (*b & 0b1100_0000) != 0b1000_0000)
            .unwrap_or(tail.len());
        let mut out = String::from_utf8_lossy(&self.head[..head_end]).into_owned();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!(
            "[… {omitted} bytes of output omitted; showing the first and last part …]\n"
        ));
        out.push_str(&String::from_utf8_lossy(&tail[tail_start..]));
        out
    }
}

/// Cut `text` to at most `cap` characters at a line boundary where possible,
/// keeping the start, and append `note` when something was cut. For outputs
/// where the start matters most (file views, search results).
pub fn truncate_head(text: &str, cap: usize, note: &str) -> String {
    if text.chars().count() <= cap {
        return text.to_string();
    }
    let byte_end = text.char_indices().nth(cap).map_or(text.len(), |(i, _)| i);
    let cut = text[..byte_end].rfind('\n').map_or(byte_end, |i| i + 1);
    let mut out = text[..cut].to_string();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(note);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn small_output_is_kept_whole() {
        let mut c = Capture::new(100);
        c.push(b"hello ");
        c.push(b"world\n");
        assert_eq!(c.finish(), "hello world\n");
    }

    #[test]
    fn large_output_keeps_head_and_tail_and_counts_the_rest() {
        let mut c = Capture::new(20);
        for i in 0..100 {
            c.push(format!("{i:02}").as_bytes());
        }
        let out = c.finish();
        assert!(out.starts_with("0001020304\n"), "{out}");
        assert!(out.ends_with("\n9596979899"), "{out}");
        assert!(out.contains("[… 180 bytes of output omitted"), "{out}");
    }

    #[test]
    fn truncate_head_cuts_at_a_line() {
        let text = "one\ntwo\nthree\n";
        assert_eq!(truncate_head(text, 100, "[cut]"), text);
        assert_eq!(truncate_head(text, 10, "[cut]"), "one\ntwo\n[cut]");
    }

    proptest! {
        /// Whatever arrives, in whatever chunks, the kept text is the true
        /// head and tail of the stream and never panics on split UTF-8.
        #[test]
        fn capture_matches_the_stream(chunks in prop::collection::vec(".{0,40}", 0..40), cap in 0usize..64) {
            let mut c = Capture::new(cap);
            let mut all = Vec::new();
            for chunk in &chunks {
                c.push(chunk.as_bytes());
                all.extend_from_slice(chunk.as_bytes());
            }
            let out = c.finish();
            if all.len() <= cap {
                prop_assert_eq!(out, String::from_utf8_lossy(&all).into_owned());
            } else {
                let all = String::from_utf8(all).expect("chunks are UTF-8");
                let marker = format!("[… {} bytes of output omitted", all.len() - cap);
                let (head, tail) = out.split_once(&marker).expect("marker");
                let tail = tail.split_once("…]\n").expect("marker end").1;
                prop_assert!(all.starts_with(head.strip_suffix('\n').unwrap_or(head)), "{head:?}");
                prop_assert!(all.ends_with(tail), "{tail:?}");
                prop_assert!(head.len() + tail.len() <= cap + 1);
            }
        }

        #[test]
        fn truncate_head_respects_the_cap(text in ".{0,200}", cap in 0usize..100) {
            let out = truncate_head(&text, cap, "");
            prop_assert!(out.chars().count() <= cap + 1);
            prop_assert!(text.starts_with(out.trim_end_matches('\n')));
        }
    }
}
