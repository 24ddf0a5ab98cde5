//! The conversation as a request carries it: the agent's history, borrowed, with the cache
//! markers of this one request laid over it while it is serialised.
//!
//! Why not a `Vec<Message>`: the markers move every turn, so owning them meant copying the
//! whole history (and dropping the copy) for each request. Here only the one or two
//! messages that carry a marker are copied, while they are written out. Messages the
//! history already holds encoded (the turns the API accepted, which never change) are
//! copied into the body as that JSON, not serialised again.

use std::borrow::Cow;

use serde::ser::{Serialize, SerializeSeq, Serializer};

use super::content::{CacheControl, Message};
use super::encoded::Encoded;

/// The turns of one request, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Turns<'a> {
    messages: Cow<'a, [Message]>,
    /// The first messages, encoded (the accepted ones; a marked one is written afresh).
    encoded: &'a [Encoded],
    /// `(message, block)` indices that carry `marker` in this request.
    marked: Vec<(usize, usize)>,
    marker: Option<CacheControl>,
}

impl<'a> Turns<'a> {
    /// `messages` as they are (markers already in them, if any).
    pub fn new(messages: impl Into<Cow<'a, [Message]>>) -> Self {
        Self {
            messages: messages.into(),
            encoded: &[],
            marked: Vec::new(),
            marker: None,
        }
    }

    /// `messages` with `marker` on each `(message, block)` in `marked`. An index that names
    /// no block, or a block that cannot carry a marker, is left as it is. `encoded` holds
    /// the JSON of the first messages, exactly as `messages` would serialise.
    pub fn marked(
        messages: &'a [Message],
        encoded: &'a [Encoded],
        marked: Vec<(usize, usize)>,
        marker: CacheControl,
    ) -> Self {
        Self {
            messages: Cow::Borrowed(messages),
            encoded: &encoded[..encoded.len().min(messages.len())],
            marked,
            marker: Some(marker),
        }
    }

    /// About how many bytes the turns take as JSON: the encoded ones exactly, a guess
    /// for the others.
    pub fn size_hint(&self) -> usize {
        const PER_MESSAGE: usize = 2048;
        let known: usize = self.encoded.iter().map(Encoded::byte_len).sum();
        known + (self.messages.len() - self.encoded.len()) * PER_MESSAGE
    }

    fn is_marked(&self, i: usize) -> bool {
        self.marker.is_some() && self.marked.iter().any(|(m, _)| *m == i)
    }

    /// How many messages.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    fn with_markers<'m>(&self, i: usize, message: &'m Message) -> Cow<'m, Message> {
        let Some(marker) = self.marker else {
            return Cow::Borrowed(message);
        };
        let mut blocks = self.marked.iter().filter(|(m, _)| *m == i).peekable();
        if blocks.peek().is_none() {
            return Cow::Borrowed(message);
        }
        let mut copy = message.clone();
        for (_, b) in blocks {
            if let Some(block) = copy.content.get_mut(*b) {
                block.set_cache_control(Some(marker));
            }
        }
        Cow::Owned(copy)
    }
}

impl From<Vec<Message>> for Turns<'static> {
    fn from(messages: Vec<Message>) -> Self {
        Turns::new(messages)
    }
}

impl Serialize for Turns<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.messages.len()))?;
        for (i, message) in self.messages.iter().enumerate() {
            match self.encoded.get(i) {
                Some(json) if !self.is_marked(i) => seq.serialize_element(json)?,
                _ => seq.serialize_element(self.with_markers(i, message).as_ref())?,
            }
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anthropic::types::{CacheTtl, ContentBlock, Role};
    use serde_json::json;

    fn history() -> Vec<Message> {
        vec![
            Message {
                role: Role::User,
                content: vec![ContentBlock::text("one"), ContentBlock::text("two")],
            },
            Message {
                role: Role::Assistant,
                content: vec![ContentBlock::text("three")],
            },
        ]
    }

    #[test]
    fn markers_appear_where_asked_and_the_history_is_untouched() {
        let history = history();
        let marker = CacheControl::with_ttl(CacheTtl::OneHour);
        let turns = Turns::marked(&history, &[], vec![(0, 1), (5, 0), (1, 9)], marker);
        let sent = serde_json::to_value(&turns).unwrap();
        assert_eq!(sent[0]["content"][0].get("cache_control"), None);
        assert_eq!(
            sent[0]["content"][1]["cache_control"],
            serde_json::to_value(marker).unwrap()
        );
        assert_eq!(sent[1]["content"][0].get("cache_control"), None);
        assert_eq!(sent.as_array().map(Vec::len), Some(2));
        assert_eq!(
            history,
            self::history(),
            "the history itself carries no marker"
        );
    }

    #[test]
    fn encoded_turns_are_sent_as_encoded_unless_marked() {
        let history = history();
        let encoded: Vec<Encoded> = history.iter().map(|m| Encoded::new(m).unwrap()).collect();
        let marker = CacheControl::with_ttl(CacheTtl::FiveMinutes);
        let fresh = Turns::marked(&history, &[], vec![(1, 0)], marker);
        let cached = Turns::marked(&history, &encoded, vec![(1, 0)], marker);
        assert_eq!(
            serde_json::to_string(&cached).unwrap(),
            serde_json::to_string(&fresh).unwrap()
        );
        assert_eq!(
            serde_json::to_value(&cached).unwrap()[1]["content"][0]["cache_control"],
            serde_json::to_value(marker).unwrap()
        );
        let exact: usize = encoded.iter().map(Encoded::byte_len).sum();
        assert_eq!(cached.size_hint(), exact);
        assert_eq!(
            fresh.size_hint(),
            2 * 2048,
            "a guess per message not encoded"
        );
        // More encodings than messages (a history cut short) are not read past its end.
        let short = Turns::marked(&history[..1], &encoded, Vec::new(), marker);
        assert_eq!(
            serde_json::to_value(&short)
                .unwrap()
                .as_array()
                .map(Vec::len),
            Some(1)
        );
    }

    #[test]
    fn unmarked_turns_serialise_as_the_plain_messages() {
        let turns = Turns::from(history());
        assert_eq!(
            serde_json::to_value(&turns).unwrap(),
            serde_json::to_value(history()).unwrap()
        );
        assert_eq!(serde_json::to_value(Turns::default()).unwrap(), json!([]));
    }
}
