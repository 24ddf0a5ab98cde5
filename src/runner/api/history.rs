//! The conversation, append-only: once the API has accepted a request, not a byte of the
//! turns it carried ever changes (protocol doc §4: on preserved-thinking models every
//! thinking block is bound to everything before it, and a changed prefix is refused; on
//! every model a changed prefix is a cache miss from the change on).
//!
//! The history holds no cache markers: `request.rs` places them on a copy for each
//! request, so moving a marker never touches a stored turn. Context is kept in bounds by
//! the API (server-side compaction, `request.rs`), never by editing old turns here.
//!
//! Because accepted turns never change, each is encoded as JSON once, when it is accepted,
//! and every later request copies that JSON instead of serialising the turn again.
//!
//! The one exception is the newest user turn while no request carrying it was accepted:
//! the owner's instructions are added to it before it is sent, and when the API refused
//! it as too long ("prompt is too long"), its tool results may be cut shorter before it
//! is sent again ([`Conversation::shrink_unsent`]). The API never saw that turn in an
//! accepted request, so nothing is bound to it and no cache holds it.

use crate::anthropic::types::{ContentBlock, Encoded, Message, Role};

/// One task's turns.
#[derive(Debug, Clone)]
pub struct Conversation {
    messages: Vec<Message>,
    /// Messages before this index were in a request the API accepted: frozen.
    accepted: usize,
    /// The JSON of the first accepted messages, in order (all of them, unless one could
    /// not be encoded; the rest are then serialised with each request).
    encoded: Vec<Encoded>,
    /// The newest message holding a `compaction` block: the API reads nothing before it.
    compacted_at: Option<usize>,
}

/// How hard to cut the tool results of a refused turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shrink {
    /// Keep at most this many bytes of each result (its head and tail).
    ToBytes(usize),
    /// Replace each result with a note.
    Omit,
}

impl Conversation {
    /// A conversation that starts with the user turn `first`.
    pub fn new(first: Vec<ContentBlock>) -> Self {
        Self {
            messages: vec![Message {
                role: Role::User,
                content: first,
            }],
            accepted: 0,
            encoded: Vec::new(),
            compacted_at: None,
        }
    }

    /// The JSON of the first accepted turns, oldest first (see the module docs).
    pub fn encoded(&self) -> &[Encoded] {
        &self.encoded
    }

    /// Every turn, oldest first.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// The newest message holding a compaction block, if any.
    pub fn compacted_at(&self) -> Option<usize> {
        self.compacted_at
    }

    /// Whether the newest turn is the agent's (the model is owed a reply).
    pub fn ends_with_user(&self) -> bool {
        self.messages.last().is_some_and(|m| m.role == Role::User)
    }

    /// Append the model's reply exactly as received.
    pub fn push_assistant(&mut self, content: Vec<ContentBlock>) {
        if content
            .iter()
            .any(|b| matches!(b, ContentBlock::Compaction(_)))
        {
            self.compacted_at = Some(self.messages.len());
        }
        self.messages.push(Message {
            role: Role::Assistant,
            content,
        });
    }

    /// Append a user turn (tool results, a nudge to continue).
    pub fn push_user(&mut self, content: Vec<ContentBlock>) {
        self.messages.push(Message {
            role: Role::User,
            content,
        });
    }

    /// The API accepted a request carrying every turn there is now: freeze them.
    pub fn accept(&mut self) {
        self.accepted = self.messages.len();
        // Only a gapless run of encodings can stand in for the first messages.
        if self.encoded.len() < self.accepted {
            for message in &self.messages[self.encoded.len()..self.accepted] {
                match Encoded::new(message) {
                    Ok(json) => self.encoded.push(json),
                    Err(_) => break,
                }
            }
        }
    }

    /// The newest turn, if it is a user turn no accepted request carried.
    fn unsent_user_turn(&mut self) -> Option<&mut Message> {
        let i = self.messages.len().checked_sub(1)?;
        (i >= self.accepted && self.messages[i].role == Role::User).then(|| &mut self.messages[i])
    }

    /// Add `blocks` to the end of the newest user turn if it is still unsent; returns
    /// whether they were added (after a paused turn the conversation ends with the
    /// model's turn, and the blocks must wait for the next user turn).
    pub fn extend_unsent_user_turn(&mut self, blocks: Vec<ContentBlock>) -> bool {
        match self.unsent_user_turn() {
            Some(turn) => {
                turn.content.extend(blocks);
                true
            }
            None => false,
        }
    }

    /// Cut the tool results of the newest, never-accepted user turn (see the module
    /// docs); returns whether anything got shorter.
    pub fn shrink_unsent(&mut self, how: Shrink) -> bool {
        let Some(turn) = self.unsent_user_turn() else {
            return false;
        };
        let mut changed = false;
        for block in &mut turn.content {
            if let ContentBlock::ToolResult { content, .. } = block
                && let Some(short) = shrunk(content, how)
            {
                *content = short;
                changed = true;
            }
        }
        changed
    }
}

/// What replaces an output when the turn holding it does not fit the context window.
pub const OMITTED: &str = "[output omitted: it did not fit in the context window. Rerun the \
     command with narrower output (grep, head, tail, a line range) if you need it.]";

/// `text` cut as `how` says, or `None` when it is already that short.
fn shrunk(text: &str, how: Shrink) -> Option<String> {
    let max = match how {
        Shrink::Omit => return (text != OMITTED).then(|| OMITTED.to_string()),
        Shrink::ToBytes(max) => max,
    };
    if text.len() <= max || text == OMITTED {
        return None;
    }
    let keep = max / 2;
    let head_end = floor_char_boundary(text, keep);
    let tail_start = ceil_char_boundary(text, text.len() - keep);
    let cut = tail_start - head_end;
    Some(format!(
        "{}\n[… {cut} bytes cut here: the whole output did not fit in the context window. \
         Rerun the command with narrower output if you need them …]\n{}",
        &text[..head_end],
        &text[tail_start..]
    ))
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char_boundary(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(id: &str, content: &str) -> ContentBlock {
        ContentBlock::ToolResult {
            tool_use_id: id.into(),
            content: content.into(),
            is_error: false,
            cache_control: None,
        }
    }

    fn conversation_with_results(big: &str) -> Conversation {
        let mut c = Conversation::new(vec![ContentBlock::text("task")]);
        c.push_assistant(vec![ContentBlock::text("a")]);
        c.push_user(vec![result("1", big)]);
        c
    }

    #[test]
    fn accepted_turns_never_change_and_only_the_unsent_one_takes_blocks() {
        let big = "x".repeat(4000);
        let mut c = conversation_with_results(&big);
        c.accept();
        let frozen = c.messages().to_vec();
        assert!(!c.extend_unsent_user_turn(vec![ContentBlock::text("late")]));
        assert!(!c.shrink_unsent(Shrink::Omit));
        assert_eq!(c.messages(), frozen.as_slice());
        let encoded: Vec<_> = c.encoded().iter().map(Encoded::get).collect();
        let fresh: Vec<_> = frozen
            .iter()
            .map(|m| serde_json::to_string(m).unwrap())
            .collect();
        assert_eq!(
            encoded, fresh,
            "every accepted turn, encoded as it serialises"
        );

        c.push_assistant(vec![ContentBlock::text("b")]);
        assert!(!c.extend_unsent_user_turn(vec![ContentBlock::text("late")]));
        c.push_user(vec![result("2", &big)]);
        assert!(c.extend_unsent_user_turn(vec![ContentBlock::text("note")]));
        assert!(c.shrink_unsent(Shrink::ToBytes(100)));
        assert_eq!(&c.messages()[..frozen.len()], frozen.as_slice());
        let newest = &c.messages()[4].content;
        assert!(
            matches!(&newest[0], ContentBlock::ToolResult { content, .. }
            if content.len() < 400 && content.starts_with("xxx") && content.contains("bytes cut"))
        );
        assert_eq!(newest[1], ContentBlock::text("note"), "texts stay");
        assert!(c.shrink_unsent(Shrink::Omit));
        assert!(!c.shrink_unsent(Shrink::Omit), "nothing left to cut");
    }

    #[test]
    fn cutting_respects_character_boundaries_and_short_outputs_stay() {
        let text = "é".repeat(300);
        let short = shrunk(&text, Shrink::ToBytes(101)).unwrap();
        assert!(short.starts_with('é') && short.ends_with('é'));
        assert_eq!(shrunk("small", Shrink::ToBytes(100)), None);
    }

    #[test]
    fn a_compaction_block_is_remembered_where_it_was_appended() {
        let mut c = Conversation::new(vec![ContentBlock::text("task")]);
        assert_eq!(c.compacted_at(), None);
        let block: ContentBlock =
            serde_json::from_value(serde_json::json!({"type":"compaction","content":"s"})).unwrap();
        c.push_assistant(vec![block, ContentBlock::text("go on")]);
        assert_eq!(c.compacted_at(), Some(1));
        assert!(!c.ends_with_user());
    }
}
