//! Where the prompt-cache markers go and how long what they mark lives (protocol doc §5).
//!
//! Four markers, the API's limit, in prefix order:
//! 1. the last tool definition and 2. the system prompt, both with a **1-hour** TTL: this
//!    prefix is fixed for the task, written once, and then outlives any tool call; the tool
//!    list is the same for every task, so a daemon reuses it across tasks too. Writing it
//!    at 1h costs 0.75× base input more than at 5 minutes, once per hour, on a few thousand
//!    tokens;
//! 3. the block the newest marker sat on in the last accepted request: the prefix that
//!    request wrote, read back exactly. Without it the API finds the previous prefix only
//!    within about 20 block boundaries of the newest marker, and one turn with a dozen
//!    parallel tool calls (calls, results, thinking) adds more than that;
//! 4. the last block of the newest turn, so the next request reads all of this one.
//!
//! Markers 3 and 4 carry the conversation's TTL: **5 minutes** until a gap between two
//! requests of the task (the model's reply plus the tool calls it asked for) passed
//! [`LONG_GAP`], then **1 hour** for the rest of the task. The arithmetic (Sonnet 5.5:
//! input $2, 5m write $2.50, 1h write $4, read $0.10 per MTok): a 1h write costs $1.50/MTok
//! more, paid on each turn's *new* tokens; an expired cache rewrites the *whole*
//! conversation at $2.50 instead of reading it at $0.10. At a 100K-token conversation one
//! expiry costs $0.24 — as much as the 1h premium on 160K new tokens, a 40-turn task's
//! worth of 4K-token turns. So 1h everywhere would make every task pay for the rare one
//! with a slow test suite, and 5m everywhere makes that task rewrite its cache after every
//! slow command; a task that ran one slow command usually runs it again (the tests, the
//! build), so the switch pays for at most one expiry and protects every later one. The gap
//! counts from request to request because a hit refreshes an entry when the API reads it.
//! Markers are ordered 1h before 5m, as the API requires.

use std::time::{Duration, Instant};

use crate::anthropic::types::{CacheTtl, ContentBlock, Message};

use super::history::Conversation;

/// A gap between two requests this long switches the conversation to the 1-hour TTL: a
/// minute short of the 5-minute lifetime, for the time the API takes to read the prompt
/// and for the next gap, which is usually as long.
pub const LONG_GAP: Duration = Duration::from_secs(4 * 60);

/// A block in the conversation: message index, block index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Index into the messages.
    pub message: usize,
    /// Index into that message's content.
    pub block: usize,
}

/// The cache decisions of one task.
#[derive(Debug, Clone)]
pub struct CachePolicy {
    conversation_ttl: CacheTtl,
    long_gap: Duration,
    /// When the last accepted request was sent.
    last_sent: Option<Instant>,
    /// Where that request's newest marker sat.
    written: Option<Position>,
}

impl CachePolicy {
    /// A task's policy: 5-minute conversation markers until a gap of `long_gap`.
    pub fn new(long_gap: Duration) -> Self {
        Self {
            conversation_ttl: CacheTtl::FiveMinutes,
            long_gap,
            last_sent: None,
            written: None,
        }
    }

    /// The TTL of the conversation's markers (3 and 4).
    pub fn conversation_ttl(&self) -> CacheTtl {
        self.conversation_ttl
    }

    /// Before sending at `now`: switch to 1-hour markers if the gap since the last request
    /// was long. Returns the gap when this call made the switch.
    pub fn before_request(&mut self, now: Instant) -> Option<Duration> {
        let gap = now.saturating_duration_since(self.last_sent?);
        if gap < self.long_gap || self.conversation_ttl == CacheTtl::OneHour {
            return None;
        }
        self.conversation_ttl = CacheTtl::OneHour;
        Some(gap)
    }

    /// Where markers 3 and 4 go in `conversation` (one when they coincide, none before the
    /// newest compaction block, which the API reads from).
    pub fn positions(&self, conversation: &Conversation) -> Vec<Position> {
        let messages = conversation.messages();
        let from = conversation.compacted_at().unwrap_or(0);
        let mut out = Vec::with_capacity(2);
        if let Some(p) = self
            .written
            .filter(|p| p.message >= from && markable(messages, *p))
        {
            out.push(p);
        }
        if let Some(newest) = newest_markable(messages).filter(|p| p.message >= from)
            && !out.contains(&newest)
        {
            out.push(newest);
        }
        out
    }

    /// A request sent at `sent_at` with its newest marker at `newest` was accepted.
    pub fn accepted(&mut self, newest: Option<Position>, sent_at: Instant) {
        self.last_sent = Some(sent_at);
        if newest.is_some() {
            self.written = newest;
        }
    }
}

/// Whether a marker can sit on the block at `p`.
fn markable(messages: &[Message], p: Position) -> bool {
    messages
        .get(p.message)
        .and_then(|m| m.content.get(p.block))
        .is_some_and(can_carry_marker)
}

fn can_carry_marker(b: &ContentBlock) -> bool {
    matches!(
        b,
        ContentBlock::Text { .. } | ContentBlock::ToolResult { .. }
    )
}

/// The last block of the conversation that can carry a marker.
fn newest_markable(messages: &[Message]) -> Option<Position> {
    messages.iter().enumerate().rev().find_map(|(i, m)| {
        let j = m.content.iter().rposition(can_carry_marker)?;
        Some(Position {
            message: i,
            block: j,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anthropic::types::ContentBlock;

    fn result(id: &str) -> ContentBlock {
        ContentBlock::ToolResult {
            tool_use_id: id.into(),
            content: "out".into(),
            is_error: false,
            cache_control: None,
        }
    }

    fn tool_use(id: &str) -> ContentBlock {
        ContentBlock::ToolUse {
            id: id.into(),
            name: "bash".into(),
            input: serde_json::json!({}),
        }
    }

    #[test]
    fn the_last_written_prefix_keeps_its_marker_after_many_parallel_calls() {
        let mut c = Conversation::new(vec![ContentBlock::text("task")]);
        let mut policy = CachePolicy::new(LONG_GAP);
        let first = policy.positions(&c);
        assert_eq!(
            first,
            vec![Position {
                message: 0,
                block: 0
            }]
        );
        policy.accepted(first.last().copied(), Instant::now());
        let ids: Vec<String> = (0..15).map(|i| format!("t{i}")).collect();
        c.push_assistant(ids.iter().map(|i| tool_use(i)).collect());
        c.push_user(ids.iter().map(|i| result(i)).collect());
        assert_eq!(
            policy.positions(&c),
            vec![
                Position {
                    message: 0,
                    block: 0
                },
                Position {
                    message: 2,
                    block: 14
                }
            ],
            "30 blocks later the previous prefix is still marked"
        );
    }

    #[test]
    fn nothing_is_marked_before_the_newest_compaction_block() {
        let mut c = Conversation::new(vec![ContentBlock::text("task")]);
        let mut policy = CachePolicy::new(LONG_GAP);
        policy.accepted(
            Some(Position {
                message: 0,
                block: 0,
            }),
            Instant::now(),
        );
        let block: ContentBlock =
            serde_json::from_value(serde_json::json!({"type":"compaction","content":"s"})).unwrap();
        c.push_assistant(vec![block]);
        assert_eq!(policy.positions(&c), vec![], "a paused compaction turn");
        c.push_user(vec![ContentBlock::text("more")]);
        assert_eq!(
            policy.positions(&c),
            vec![Position {
                message: 2,
                block: 0
            }]
        );
    }

    #[test]
    fn a_long_gap_switches_the_conversation_to_one_hour_for_good() {
        let mut policy = CachePolicy::new(Duration::from_secs(240));
        let t0 = Instant::now();
        assert_eq!(policy.before_request(t0), None, "no gap before the first");
        policy.accepted(None, t0);
        assert_eq!(policy.before_request(t0 + Duration::from_secs(30)), None);
        assert_eq!(policy.conversation_ttl(), CacheTtl::FiveMinutes);
        policy.accepted(None, t0 + Duration::from_secs(30));
        let late = t0 + Duration::from_secs(30 + 300);
        assert_eq!(policy.before_request(late), Some(Duration::from_secs(300)));
        assert_eq!(policy.conversation_ttl(), CacheTtl::OneHour);
        policy.accepted(None, late);
        assert_eq!(policy.before_request(late + Duration::from_secs(1)), None);
        assert_eq!(policy.conversation_ttl(), CacheTtl::OneHour, "stays");
    }
}
