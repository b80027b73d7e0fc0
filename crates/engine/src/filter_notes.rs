//! Notes on a filter that cannot match what it was meant to: a property no event has, a value the property
//! never takes, a step or channel pattern that matches nothing. Without them `--where plan=pro` on data that has
//! no `plan` answers zeros everywhere, as if that were a finding. The notes name the closest existing property
//! (from a sample of stored events), value, step or channel.

use crate::{live, rules, Engine};
use serde_json::Value;
use std::collections::BTreeSet;
use waymark_analytics::condition::{similar_names, wildcard_match, Condition, Op};
use waymark_analytics::Scope;
use waymark_model::{Event, JourneySet};

/// Events read (spread over the store's arrival order) to learn which property names exist.
const SAMPLE: usize = 2_000;

fn leaf_paths(prefix: &str, value: &Value, depth: usize, into: &mut BTreeSet<String>) {
    match value {
        Value::Object(object) if depth < 4 => {
            for (key, inner) in object {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                leaf_paths(&path, inner, depth + 1, into);
            }
        }
        _ if !prefix.is_empty() => {
            into.insert(prefix.to_string());
        }
        _ => {}
    }
}

fn names_of(event: &Event, into: &mut BTreeSet<String>) {
    for (key, value) in &event.properties {
        leaf_paths(key, value, 1, into);
    }
    for (root, map) in [("context", &event.context), ("traits", &event.traits)] {
        for (key, value) in map {
            leaf_paths(&format!("{root}.{key}"), value, 2, into);
        }
    }
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Names among `candidates` that `wanted` may have meant: those equal but for case or holding it
/// (`similar_names`, as the analyses' step notes find them), and before them the closest by edit distance when
/// it is not one of those.
fn close<'a>(wanted: &str, candidates: impl Iterator<Item = &'a str> + Clone) -> Vec<&'a str> {
    let mut found = similar_names(wanted, candidates.clone());
    if let Some(nearest) = waymark_rules::expr::closest(wanted, candidates) {
        if !found.contains(&nearest) {
            found.insert(0, nearest);
        }
    }
    found.truncate(3);
    found
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

impl Engine {
    /// Property names seen on a sample of the stored events.
    fn sampled_property_names(&self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        let last = self.store.last_seq().unwrap_or(0);
        let stride = (last / 5).max(1);
        for part in 0..5u64 {
            let after = (part > 0).then(|| part * stride);
            if let Ok(events) = self.store.events_after(after, SAMPLE / 5) {
                for stored in &events {
                    names_of(&stored.event, &mut names);
                }
            }
        }
        names.insert("channel".into());
        names
    }

    /// The notes for `scope` on `view` (loaded with the scope's property columns).
    pub(crate) fn filter_notes(&self, scope: &Scope, view: &JourneySet) -> Vec<String> {
        let mut notes = Vec::new();
        let mut known: Option<BTreeSet<String>> = None;
        let mut walk = vec![];
        walk.extend(scope.conditions.iter());
        while let Some(condition) = walk.pop() {
            match condition {
                Condition::All { all } => walk.extend(all.iter()),
                Condition::Any { any } => walk.extend(any.iter()),
                Condition::Not { not } => walk.push(not),
                Condition::Property {
                    property,
                    op,
                    value,
                } => {
                    if live::is_score_column(property) || rules::is_segment_column(property) {
                        continue;
                    }
                    let Some(column) = view.property(property) else {
                        continue;
                    };
                    let present: Vec<&Value> = column.values.iter().skip(1).collect();
                    if present.is_empty() {
                        if matches!(op, Op::IsNull) {
                            continue;
                        }
                        let names = known.get_or_insert_with(|| self.sampled_property_names());
                        let hint = close(property, names.iter().map(String::as_str));
                        notes.push(format!(
                            "no event has the property `{property}`, so the filter `{}` keeps nothing{}",
                            condition.words(),
                            if hint.is_empty() {
                                String::new()
                            } else {
                                format!("; did you mean {}?", quoted(&hint))
                            }
                        ));
                    } else if matches!(op, Op::Eq) && !present.contains(&value) {
                        let texts: Vec<String> = present.iter().map(|v| value_text(v)).collect();
                        let hint = close(&value_text(value), texts.iter().map(String::as_str));
                        let mut listed: Vec<&str> =
                            texts.iter().map(String::as_str).take(8).collect();
                        listed.sort_unstable();
                        notes.push(format!(
                            "no event has `{property}` = {}, so that filter keeps nothing{}; its values include {}{}",
                            value_text(value),
                            if hint.is_empty() {
                                String::new()
                            } else {
                                format!(" (did you mean {}?)", quoted(&hint))
                            },
                            listed.join(", "),
                            if texts.len() > 8 {
                                format!(" and {} more", texts.len() - 8)
                            } else {
                                String::new()
                            }
                        ));
                    }
                }
                Condition::Step { .. } | Condition::Channel { .. } => {}
            }
        }
        for (what, patterns, names) in [
            ("step", &scope.steps, &view.step_names),
            ("channel", &scope.channels, &view.channel_names),
        ] {
            for pattern in patterns {
                if names.iter().any(|name| wildcard_match(pattern, name)) {
                    continue;
                }
                let hint = close(pattern, names.iter().map(String::as_str));
                notes.push(format!(
                    "the {what} filter \"{pattern}\" matches no {what} in the data (names are matched exactly, `*` as a wildcard){}",
                    if hint.is_empty() {
                        String::new()
                    } else {
                        format!("; did you mean {}?", quoted(&hint))
                    }
                ));
            }
        }
        notes.reverse();
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_names_are_the_nearest_and_those_equal_but_for_case() {
        let names = ["plan", "context.os.name", "Plan Type", "region"];
        assert_eq!(close("plann", names.iter().copied()), ["plan"]);
        assert_eq!(close("REGION", names.iter().copied()), ["region"]);
        assert_eq!(
            close("plan t", names.iter().copied()),
            ["plan", "Plan Type"]
        );
        assert!(close("zzzzzzzz", names.iter().copied()).len() <= 1);
    }
}
