//! Waymark's event model: what an interaction is, how it is validated, and the journey it belongs to.
//!
//! Everything here is pure data with validating constructors; no IO, no async. An [`Event`] is built from a
//! Segment-spec JSON object by [`Event::from_segment_json`], which either returns a normalised event (clock skew
//! corrected, channel resolved, identifiers checked against the junk list) or a [`ValidationError`] naming the
//! field to fix.
//!
//! ```
//! use waymark_model::{Event, Timestamp, IngestContext};
//! let json = serde_json::json!({
//!     "type": "track", "event": "Order Completed", "userId": "u-42",
//!     "timestamp": "2026-01-02T03:04:05Z", "properties": {"revenue": 99.5}
//! });
//! let context = IngestContext::at(Timestamp::parse("2026-01-02T03:04:06Z").unwrap());
//! let event = Event::from_segment_json(&json, &context).unwrap();
//! assert_eq!(event.step(), "Order Completed");
//! assert_eq!(event.user_id.as_deref(), Some("u-42"));
//! ```

mod channel;
mod error;
mod event;
mod identity;
mod journey;
mod time;

pub use channel::{infer_channel, normalise_channel, KNOWN_CHANNELS};
pub use error::ValidationError;
pub use event::{
    write_json_string, Event, EventType, IngestContext, RowParts, RowRef, WrittenRow,
    IDENTITY_STEPS, MAX_BATCH_BYTES, MAX_EVENT_BYTES,
};
pub use identity::{is_junk_identifier, Identifier, IdentifierKind, JUNK_IDENTIFIERS};
pub use journey::{JourneyRef, JourneySet, Names, PropertyColumn, PropertyColumnBuilder};
pub use time::Timestamp;
