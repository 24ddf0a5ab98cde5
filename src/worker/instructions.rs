//! De-duplicating the server's `instructions` before they reach the model.
//!
//! The server builds the string from the one-off dashboard message (consumed when it is
//! returned) and, for mission tasks, a `**USER REPLIES:**` and a `**MISSION GUIDANCE:**`
//! block that come back on every update (see `buildd-api.md`, "`instructions`"). The model
//! should see each reply and each guidance note once, and every one-off message. The link
//! (`link.rs`) keeps one [`Deduper`] per task and hands the model only what is new. The text
//! is untrusted: a message that itself contains a block header is split there like the
//! server's blocks, which at worst drops a repeated line of it.

use std::collections::HashSet;

/// The block headers the server appends, each after a blank line.
const HEADERS: [&str; 2] = ["**USER REPLIES:**", "**MISSION GUIDANCE:**"];

/// What one task was already handed.
#[derive(Debug, Default)]
pub struct Deduper {
    /// `(header, entry)` pairs already delivered.
    seen: HashSet<(String, String)>,
}

impl Deduper {
    /// The part of `text` the model has not seen: the one-off message (always) and the
    /// block entries not delivered before, under their headers. `None` when nothing is new.
    pub fn fresh(&mut self, text: &str) -> Option<String> {
        let (message, blocks) = split(text);
        let mut out = message.trim().to_string();
        for (header, entries) in blocks {
            let new: Vec<&str> = entries
                .into_iter()
                .filter(|e| self.seen.insert((header.to_string(), e.to_string())))
                .collect();
            if new.is_empty() {
                continue;
            }
            if !out.is_empty() {
                out.push_str("\n\n");
            }
            out.push_str(header);
            for e in new {
                out.push('\n');
                out.push_str(e);
            }
        }
        (!out.is_empty()).then_some(out)
    }
}

/// The one-off message and the blocks after it: each block's header and entries (an entry is
/// a `- ` line with the lines that continue it).
fn split(text: &str) -> (&str, Vec<(&'static str, Vec<&str>)>) {
    let mut starts: Vec<(usize, &'static str)> = HEADERS
        .iter()
        .flat_map(|h| {
            let marker = format!("\n\n{h}\n");
            text.match_indices(&marker)
                .map(|(i, _)| (i, *h))
                .collect::<Vec<_>>()
        })
        .collect();
    // A text that starts with a block has no blank line before its header.
    for h in HEADERS {
        if text.starts_with(&format!("{h}\n")) {
            starts.push((0, h));
        }
    }
    starts.sort_unstable();
    let message_end = starts.first().map_or(text.len(), |(i, _)| *i);
    let mut blocks = Vec::new();
    for (n, (start, header)) in starts.iter().enumerate() {
        let end = starts.get(n + 1).map_or(text.len(), |(i, _)| *i);
        let body = text[*start..end].trim_start_matches('\n');
        let body = body.strip_prefix(header).unwrap_or(body);
        blocks.push((*header, entries(body)));
    }
    (&text[..message_end], blocks)
}

/// The `- ` entries of a block body; lines before the first entry count as one.
fn entries(body: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    let mut start: Option<usize> = None;
    let mut offset = 0;
    for line in body.split_inclusive('\n') {
        if line.starts_with("- ") {
            if let Some(s) = start {
                out.push(body[s..offset].trim());
            }
            start = Some(offset);
        } else if start.is_none() && !line.trim().is_empty() {
            start = Some(offset);
        }
        offset += line.len();
    }
    if let Some(s) = start {
        out.push(body[s..].trim());
    }
    out.retain(|e| !e.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MISSION: &str = "\n\n**USER REPLIES:**\n- Re: \"Which DB?\": Postgres — the\nmain one\
                           \n\n**MISSION GUIDANCE:**\n- Style: small commits\n- Tests first";

    #[test]
    fn repeated_mission_entries_are_delivered_once_and_messages_always() {
        let mut d = Deduper::default();
        let first = d.fresh(&format!("Use tabs.{MISSION}")).unwrap();
        assert_eq!(
            first,
            "Use tabs.\n\n**USER REPLIES:**\n- Re: \"Which DB?\": Postgres — the\nmain one\
             \n\n**MISSION GUIDANCE:**\n- Style: small commits\n- Tests first"
        );
        assert_eq!(d.fresh(MISSION), None, "the blocks again: nothing new");
        let more = format!("{MISSION}\n- Ship it: today");
        assert_eq!(
            d.fresh(&more).as_deref(),
            Some("**MISSION GUIDANCE:**\n- Ship it: today")
        );
        assert_eq!(
            d.fresh(&format!("Use tabs.{MISSION}")).as_deref(),
            Some("Use tabs."),
            "a one-off message is delivered every time it is sent"
        );
    }

    #[test]
    fn a_text_of_blocks_only_and_plain_messages() {
        let mut d = Deduper::default();
        let only = "**MISSION GUIDANCE:**\n- A\n- B";
        assert_eq!(d.fresh(only).as_deref(), Some(only));
        assert_eq!(d.fresh(only), None);
        assert_eq!(d.fresh("  \n "), None);
        assert_eq!(
            d.fresh("Line one\n\nline two").as_deref(),
            Some("Line one\n\nline two")
        );
    }

    #[test]
    fn the_same_entry_under_another_header_is_new() {
        let mut d = Deduper::default();
        assert!(d.fresh("\n\n**USER REPLIES:**\n- X").is_some());
        assert!(d.fresh("\n\n**MISSION GUIDANCE:**\n- X").is_some());
    }
}
