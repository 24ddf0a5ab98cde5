//! JSON written once and sent many times.
//!
//! A task's tools, its system prompt and every turn the API has accepted are the same bytes
//! in each of the task's requests. Serialising them again for every turn escaped the whole
//! conversation each time (issue 14's profile: a tenth of the agent's CPU per task), so they
//! are encoded once and copied into each body as they are.

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

/// A value's JSON, encoded once.
#[derive(Debug, Clone)]
pub struct Encoded {
    json: Box<RawValue>,
}

impl Encoded {
    /// Encode `value`.
    pub fn new<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        Ok(Self {
            json: serde_json::value::to_raw_value(value)?,
        })
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.json.get()
    }

    /// Its length in bytes (to size a request body before writing it).
    pub fn byte_len(&self) -> usize {
        self.json.get().len()
    }

    /// Whether it is an empty JSON array (`[]`), which a request leaves out.
    pub fn is_empty_list(&self) -> bool {
        self.json.get() == "[]"
    }
}

impl PartialEq for Encoded {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Serialize for Encoded {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.json.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_encoded_value_is_sent_as_the_same_json_even_inside_a_value() {
        let value = json!({"name": "bash", "text": "a \"quoted\"\nline"});
        let encoded = Encoded::new(&value).unwrap();
        assert_eq!(
            serde_json::to_string(&[&encoded]).unwrap(),
            format!("[{}]", serde_json::to_string(&value).unwrap())
        );
        // The cloud transports reshape the body as a `Value`: the raw JSON parses back.
        assert_eq!(serde_json::to_value(&encoded).unwrap(), value);
        assert!(!encoded.is_empty_list());
        assert!(Encoded::new(&Vec::<u8>::new()).unwrap().is_empty_list());
    }
}
