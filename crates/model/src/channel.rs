//! Channels: where an interaction happened. Normalises the names sources use and infers one when none is given.

/// The channels Waymark knows by name; any other non-empty name is kept as a custom channel.
pub const KNOWN_CHANNELS: &[&str] = &[
    "web",
    "app",
    "email",
    "sms",
    "chat",
    "call_center",
    "store",
    "social",
    "ads",
];

/// Lower-cases and maps common synonyms onto the known channel names
/// (`chatbot` → `chat`, `contact_centre` → `call_center`, `mobile` → `app`, …). Returns `None` for blank input.
pub fn normalise_channel(raw: &str) -> Option<String> {
    // Most rows name a known channel as it is written here: no lower-casing or replacing needed.
    if let Some(known) = KNOWN_CHANNELS.iter().find(|known| **known == raw) {
        return Some(known.to_string());
    }
    let lowered = raw.trim().to_ascii_lowercase().replace([' ', '-'], "_");
    if lowered.is_empty() {
        return None;
    }
    let canonical = match lowered.as_str() {
        "website" | "browser" | "online" | "internet" | "desktop" => "web",
        "mobile" | "mobile_app" | "ios" | "android" | "in_app" => "app",
        "e_mail" | "mail" | "newsletter" => "email",
        "text" | "text_message" | "whatsapp" => "sms",
        "chatbot" | "bot" | "live_chat" | "messenger" => "chat",
        "call_centre" | "contact_center" | "contact_centre" | "phone" | "call" | "telephone"
        | "ivr" | "callcenter" => "call_center",
        "shop" | "retail" | "in_store" | "branch" | "pos" => "store",
        "social_media" => "social",
        "advertising" | "paid" | "display" => "ads",
        other => other,
    };
    Some(canonical.to_string())
}

/// Infers a channel from the call type and the sending library when the event names none:
/// `page` → web, `screen` → app, a browser or mobile library → web or app, anything else → `other`.
pub fn infer_channel(event_type: crate::EventType, library_name: Option<&str>) -> &'static str {
    match event_type {
        crate::EventType::Page => "web",
        crate::EventType::Screen => "app",
        _ => match library_name.map(|name| name.to_ascii_lowercase()) {
            Some(name)
                if name.contains("analytics.js")
                    || name.contains("browser")
                    || name.contains("javascript") =>
            {
                "web"
            }
            Some(name)
                if name.contains("ios")
                    || name.contains("android")
                    || name.contains("react-native")
                    || name.contains("flutter") =>
            {
                "app"
            }
            _ => "other",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synonyms_map_to_known_channels() {
        assert_eq!(
            normalise_channel("Contact Centre").as_deref(),
            Some("call_center")
        );
        assert_eq!(normalise_channel("chatbot").as_deref(), Some("chat"));
        assert_eq!(normalise_channel("Kiosk").as_deref(), Some("kiosk"));
        assert_eq!(normalise_channel("  "), None);
    }
}
