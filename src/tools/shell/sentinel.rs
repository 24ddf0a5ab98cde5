//! Finding the end of one command in the session's output stream.
//!
//! After each command the driver writes `__buildd_end_<nonce>__ <status>\n`
//! to the output pipe, after everything the command wrote (a pipe keeps
//! order), so the bytes before that line are the command's output and the
//! number is its exit status. The nonce is 128 random bits, new for every
//! command and never visible to it (the driver reads it only once the command
//! has finished), so a command cannot end its own output early by printing
//! something that looks like the line.
//!
//! The line can arrive split across reads; [`Sentinel`] holds back only the
//! bytes that could still be the start of it.

use memchr::memmem;

/// Digits, sign and slack after the marker before a newline must have come.
const MAX_STATUS_LEN: usize = 12;

/// Scans the output of one command for its end-of-command line.
#[derive(Debug)]
pub(super) struct Sentinel {
    marker: Vec<u8>,
    /// Bytes that may be (the start of) the end-of-command line.
    held: Vec<u8>,
}

/// The end of a command, found in the stream.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct End {
    /// The command's exit status, as the shell's `$?`.
    pub status: i32,
    /// Bytes after the line: written by background jobs once the command had ended.
    pub rest: Vec<u8>,
}

impl Sentinel {
    /// A scanner for the line the driver writes with `nonce`.
    pub(super) fn new(nonce: &str) -> Self {
        Self {
            marker: format!("__buildd_end_{nonce}__ ").into_bytes(),
            held: Vec::new(),
        }
    }

    /// Feed the next bytes of the stream. Bytes that are certainly output go
    /// to `out`, in order; once the line is complete, returns where it ended.
    pub(super) fn push(&mut self, bytes: &[u8], out: &mut impl FnMut(&[u8])) -> Option<End> {
        self.held.extend_from_slice(bytes);
        let mut from = 0;
        loop {
            let Some(at) = memmem::find(&self.held[from..], &self.marker).map(|i| from + i) else {
                // Keep only what could still begin the marker.
                let keep = self.marker.len() - 1;
                let cut = self.held.len().saturating_sub(keep).max(from);
                out(&self.held[..cut]);
                self.held.drain(..cut);
                return None;
            };
            let status_at = at + self.marker.len();
            let tail = &self.held[status_at..];
            match memchr::memchr(b'\n', &tail[..tail.len().min(MAX_STATUS_LEN)]) {
                Some(nl) => {
                    let status = std::str::from_utf8(&tail[..nl])
                        .ok()
                        .and_then(|s| s.parse::<i32>().ok());
                    if let Some(status) = status {
                        out(&self.held[..at]);
                        let rest = self.held[status_at + nl + 1..].to_vec();
                        self.held.clear();
                        return Some(End { status, rest });
                    }
                    // Not our line after all: it is output; look further on.
                    from = status_at;
                }
                None if tail.len() < MAX_STATUS_LEN => {
                    // The status has not fully arrived: wait for more.
                    out(&self.held[..at]);
                    self.held.drain(..at);
                    return None;
                }
                None => from = status_at,
            }
        }
    }

    /// The stream ended without the line: what was held back is output.
    pub(super) fn finish(self, out: &mut impl FnMut(&[u8])) {
        out(&self.held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NONCE: &str = "0123456789abcdef0123456789abcdef";

    fn line(status: i32) -> String {
        format!("__buildd_end_{NONCE}__ {status}\n")
    }

    /// Feed `chunks`; the output seen and the end found.
    fn scan(chunks: &[&[u8]]) -> (Vec<u8>, Option<End>) {
        let mut s = Sentinel::new(NONCE);
        let mut out = Vec::new();
        for chunk in chunks {
            if let Some(end) = s.push(chunk, &mut |b| out.extend_from_slice(b)) {
                return (out, Some(end));
            }
        }
        s.finish(&mut |b| out.extend_from_slice(b));
        (out, None)
    }

    #[test]
    fn output_before_the_line_is_the_commands_and_after_it_is_kept() {
        let stream = format!("hello\nno newline{}late", line(3));
        let (out, end) = scan(&[stream.as_bytes()]);
        assert_eq!(out, b"hello\nno newline");
        assert_eq!(
            end,
            Some(End {
                status: 3,
                rest: b"late".to_vec()
            })
        );
    }

    #[test]
    fn another_nonce_or_a_malformed_status_is_output() {
        let other = "__buildd_end_ffffffffffffffffffffffffffffffff__ 0\n";
        let bad = format!("__buildd_end_{NONCE}__ zero\n");
        let stream = format!("{other}{bad}{}", line(0));
        let (out, end) = scan(&[stream.as_bytes()]);
        assert_eq!(out, format!("{other}{bad}").as_bytes());
        assert_eq!(end.map(|e| e.status), Some(0));
    }

    #[test]
    fn a_stream_that_ends_without_the_line_is_all_output() {
        let (out, end) = scan(&[b"partial __buildd_end_0123"]);
        assert_eq!(out, b"partial __buildd_end_0123");
        assert_eq!(end, None);
    }

    proptest! {
        /// Wherever the reads split the stream, the output and the status
        /// come out the same.
        #[test]
        fn any_split_gives_the_same_result(
            before in "(?s).{0,200}",
            status in -1i32..300,
            after in "(?s).{0,50}",
            cuts in prop::collection::vec(0usize..400, 0..8),
        ) {
            let stream = format!("{before}{}{after}", line(status)).into_bytes();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (stream.len() + 1)).collect();
            cuts.sort_unstable();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut last = 0;
            for cut in cuts {
                chunks.push(&stream[last..cut]);
                last = cut;
            }
            chunks.push(&stream[last..]);
            let (out, end) = scan(&chunks);
            prop_assert_eq!(out, before.as_bytes());
            let end = end.expect("the line is found");
            prop_assert_eq!(end.status, status);
            // What follows the line in the read that completed it; later reads
            // are the next command's.
            prop_assert!(after.as_bytes().starts_with(&end.rest));
        }
    }
}
