//! Identifiers: the keys that tie events to a customer (`userId`, `anonymousId`), and the junk values never to trust.

use serde::{Deserialize, Serialize};

/// Identifier values that SDK bugs and placeholder code send; merging on them would fuse strangers into one customer.
pub const JUNK_IDENTIFIERS: &[&str] = &[
    "anonymous",
    "anon",
    "guest",
    "null",
    "nil",
    "none",
    "undefined",
    "unknown",
    "n/a",
    "0",
    "-1",
    "[object object]",
    "true",
    "false",
    "nan",
    "00000000-0000-0000-0000-000000000000",
];

/// True when `value` is blank or on the junk list (case-insensitive, surrounding whitespace ignored).
pub fn is_junk_identifier(value: &str) -> bool {
    let trimmed = value.trim();
    trimmed.is_empty()
        || JUNK_IDENTIFIERS
            .iter()
            .any(|junk| trimmed.eq_ignore_ascii_case(junk))
}

/// Which namespace an identifier lives in. A `userId` "42" and an `anonymousId` "42" are different identifiers.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum IdentifierKind {
    /// A known customer id (`userId`).
    User,
    /// A device or cookie id (`anonymousId`).
    Anonymous,
}

/// One identifier: a kind and a value. Its canonical text form is `user:VALUE` or `anon:VALUE`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct Identifier {
    pub kind: IdentifierKind,
    pub value: String,
}

impl Identifier {
    pub fn user(value: impl Into<String>) -> Identifier {
        Identifier {
            kind: IdentifierKind::User,
            value: value.into(),
        }
    }

    pub fn anonymous(value: impl Into<String>) -> Identifier {
        Identifier {
            kind: IdentifierKind::Anonymous,
            value: value.into(),
        }
    }

    /// `user:VALUE` or `anon:VALUE`.
    pub fn key(&self) -> String {
        match self.kind {
            IdentifierKind::User => format!("user:{}", self.value),
            IdentifierKind::Anonymous => format!("anon:{}", self.value),
        }
    }

    /// Parses the canonical key form back; a bare value is taken as a `userId`.
    pub fn from_key(key: &str) -> Identifier {
        if let Some(value) = key.strip_prefix("user:") {
            Identifier::user(value)
        } else if let Some(value) = key.strip_prefix("anon:") {
            Identifier::anonymous(value)
        } else {
            Identifier::user(key)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junk_ids_are_recognised_in_any_case() {
        for junk in [
            "anonymous",
            "NULL",
            " undefined ",
            "[object Object]",
            "0",
            "",
        ] {
            assert!(is_junk_identifier(junk), "{junk:?}");
        }
        assert!(!is_junk_identifier("u-42"));
        assert!(!is_junk_identifier("f81d4fae-7dec-11d0-a765-00a0c91e6bf6"));
    }

    #[test]
    fn keys_round_trip() {
        for id in [Identifier::user("a:b"), Identifier::anonymous("x")] {
            assert_eq!(Identifier::from_key(&id.key()), id);
        }
    }
}
