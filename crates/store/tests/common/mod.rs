//! What the store's integration tests share.

use waymark_model::{Event, IngestContext, Timestamp};

/// A validated `track` event `step` at `seconds` after 1,700,000,000 s, with `properties.plan = "pro"`.
pub fn event(
    message: &str,
    user: Option<&str>,
    anonymous: Option<&str>,
    step: &str,
    seconds: i64,
) -> Event {
    let mut json = serde_json::json!({
        "type": "track", "event": step, "messageId": message, "properties": {"plan": "pro"},
        "timestamp": Timestamp::from_secs(1_700_000_000 + seconds).to_rfc3339(),
    });
    if let Some(user) = user {
        json["userId"] = user.into();
    }
    if let Some(anonymous) = anonymous {
        json["anonymousId"] = anonymous.into();
    }
    Event::from_segment_json(
        &json,
        &IngestContext::at(Timestamp::from_secs(1_700_000_000)),
    )
    .unwrap()
}
