//! Dev-only helpers for tests. [`journeys`] reads a journey set from a few lines of text, so an analysis's test
//! says in one line what happens:
//!
//! ```
//! let set = waymark_testkit::journeys(r#"
//!     c1: view@0 cart@5s "Order Completed"@9s
//!     c2: view@0 help@1m/chat
//! "#);
//! assert_eq!((set.n_journeys(), set.n_events()), (2, 5));
//! assert_eq!(set.channel_names[set.journey(1).channel[1] as usize], "chat");
//! ```
//!
//! One journey per line: `customer: event event …`. An event is `step@time`, optionally `/channel` (default
//! `web`). Times are offsets from 2026-01-01T00:00:00Z in a humantime duration (`0`, `90s`, `5m`, `2h`, `3d`,
//! `1d2h`). A step with spaces is quoted. Blank lines and lines starting with `#` are skipped.

use waymark_model::JourneySet;

/// 2026-01-01T00:00:00Z in µs: the DSL's time zero.
pub const EPOCH_US: i64 = 1_767_225_600_000_000;

/// One parsed event: time (µs), step, channel.
type ParsedEvent = (i64, String, String);

/// The journey set the text describes. Panics, naming the line, on text that is not the DSL (tests only).
pub fn journeys(text: &str) -> JourneySet {
    let parsed: Vec<(String, Vec<ParsedEvent>)> = text
        .lines()
        .enumerate()
        .filter_map(|(number, line)| {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            let (customer, events) = line.split_once(':').unwrap_or_else(|| {
                panic!("line {}: write `customer: step@time …`: {line}", number + 1)
            });
            let events = words(events)
                .iter()
                .map(|word| {
                    event(word).unwrap_or_else(|problem| panic!("line {}: {problem}", number + 1))
                })
                .collect();
            Some((customer.trim().to_string(), events))
        })
        .collect();
    JourneySet::from_journeys(parsed.iter().map(|(customer, events)| {
        (
            customer.clone(),
            events
                .iter()
                .map(|(ts, step, channel)| (*ts, step.as_str(), channel.as_str()))
                .collect(),
        )
    }))
}

/// Splits at spaces outside double quotes, keeping the quotes out.
fn words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

fn event(word: &str) -> Result<ParsedEvent, String> {
    let (step, rest) = word
        .rsplit_once('@')
        .ok_or_else(|| format!("`{word}`: write step@time, e.g. view@5s"))?;
    let (time, channel) = rest.split_once('/').unwrap_or((rest, "web"));
    let offset_us = if time.trim() == "0" {
        0
    } else {
        humantime::parse_duration(time)
            .map_err(|error| format!("`{word}`: `{time}` is not a duration ({error})"))?
            .as_micros() as i64
    };
    Ok((EPOCH_US + offset_us, step.to_string(), channel.to_string()))
}
