//! Why an event was refused: one variant per user fault, each with a stable code and a message saying what to change.

use thiserror::Error;

/// A problem with one incoming event. `code()` is stable and machine-readable; `Display` tells the sender what to fix.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValidationError {
    /// The body is not JSON, or not a JSON object.
    #[error("the body is not valid JSON ({detail}); send one JSON object per event")]
    InvalidJson { detail: String },
    /// A field has the wrong JSON type.
    #[error("field `{field}` must be {expected}, got {got}")]
    WrongType {
        field: String,
        expected: &'static str,
        got: &'static str,
    },
    /// `type` is missing or not one of the Segment calls.
    #[error("field `type` is {got}; use one of track, identify, page, screen, group, alias")]
    UnknownType { got: String },
    /// Neither `userId` nor `anonymousId` (after removing junk values).
    #[error(
        "the event has no usable identifier: set `userId` or `anonymousId` to a real id{junk}"
    )]
    MissingIdentifier { junk: String },
    /// A `track` event without a name.
    #[error("a track event needs a non-empty `event` name, e.g. \"Order Completed\"")]
    MissingEventName,
    /// An `alias` without `previousId`.
    #[error("an alias call needs `previousId` (the old identifier) and `userId` (the new one)")]
    MissingPreviousId,
    /// A `group` without `groupId`.
    #[error("a group call needs a non-empty `groupId`")]
    MissingGroupId,
    /// A timestamp field that does not parse or is out of range.
    #[error("field `{field}` is {value:?}, which is not an ISO-8601 timestamp between 1970 and 2100 (e.g. \"2026-01-02T03:04:05.123Z\")")]
    InvalidTimestamp { field: String, value: String },
    /// An event over the size limit.
    #[error("the event is {bytes} bytes; the limit is {limit} bytes per event — move large payloads out of `properties`")]
    EventTooLarge { bytes: usize, limit: usize },
    /// A batch over the size limit.
    #[error(
        "the batch is {bytes} bytes; the limit is {limit} bytes — send fewer events per batch"
    )]
    BatchTooLarge { bytes: usize, limit: usize },
    /// A batch with no `batch` array.
    #[error("a batch request needs a `batch` array of events")]
    MissingBatch,
}

impl ValidationError {
    /// The stable machine-readable code, used in HTTP errors, failed-event records and metrics labels.
    pub fn code(&self) -> &'static str {
        match self {
            ValidationError::InvalidJson { .. } => "invalid_json",
            ValidationError::WrongType { .. } => "wrong_type",
            ValidationError::UnknownType { .. } => "unknown_type",
            ValidationError::MissingIdentifier { .. } => "missing_identifier",
            ValidationError::MissingEventName => "missing_event_name",
            ValidationError::MissingPreviousId => "missing_previous_id",
            ValidationError::MissingGroupId => "missing_group_id",
            ValidationError::InvalidTimestamp { .. } => "invalid_timestamp",
            ValidationError::EventTooLarge { .. } => "event_too_large",
            ValidationError::BatchTooLarge { .. } => "batch_too_large",
            ValidationError::MissingBatch => "missing_batch",
        }
    }
}
