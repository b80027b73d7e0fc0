//! Conditions on events: which step, which channel, which property values. A condition is written once (JSON or
//! Rust) and compiled against a journey set's dictionaries, so testing an event is a few table lookups.

use crate::error::AnalyticsError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::cmp::Ordering;
use waymark_model::JourneySet;

/// A test of one event. JSON forms: `{"step": "Login*"}` (exact name, or a `*` wildcard pattern),
/// `{"channel": "app"}`, `{"property": "plan", "op": "=", "value": "pro"}`, `{"property": "coupon", "op":
/// "is_null"}`, `{"all": [...]}`, `{"any": [...]}`, `{"not": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged, deny_unknown_fields)]
pub enum Condition {
    Step {
        step: String,
    },
    Channel {
        channel: String,
    },
    Property {
        property: String,
        op: Op,
        #[serde(default, skip_serializing_if = "Value::is_null")]
        value: Value,
    },
    All {
        all: Vec<Condition>,
    },
    Any {
        any: Vec<Condition>,
    },
    Not {
        not: Box<Condition>,
    },
}

/// Comparison operators. Numbers compare numerically (a string holding a number compares as that number), strings
/// by their text; a missing or null property matches only `is_null` (and `!=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Op {
    #[serde(rename = "=")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "contains")]
    Contains,
    /// Not containing the text (or the list not holding the value); a missing value does not contain it.
    #[serde(rename = "not_contains")]
    NotContains,
    #[serde(rename = "is_null")]
    IsNull,
    #[serde(rename = "is_not_null")]
    IsNotNull,
}

impl Condition {
    /// The step named `name` (or matching the `*` pattern).
    pub fn step(name: impl Into<String>) -> Condition {
        Condition::Step { step: name.into() }
    }

    /// `property op value`.
    pub fn property(property: impl Into<String>, op: Op, value: Value) -> Condition {
        Condition::Property {
            property: property.into(),
            op,
            value,
        }
    }

    /// A short label: the step pattern for a step condition, the condition's JSON otherwise.
    pub fn label(&self) -> String {
        match self {
            Condition::Step { step } => step.clone(),
            other => serde_json::to_string(other).unwrap_or_default(),
        }
    }

    /// The condition in words, for people: `Login Failed`, `context.os.name = Android`, `a and (b or c)`.
    pub fn words(&self) -> String {
        let nested = |c: &Condition| match c {
            Condition::All { .. } | Condition::Any { .. } => format!("({})", c.words()),
            other => other.words(),
        };
        match self {
            Condition::Step { step } => step.clone(),
            Condition::Channel { channel } => format!("channel {channel}"),
            Condition::Property {
                property,
                op,
                value,
            } => {
                let value = match value {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                match op {
                    Op::IsNull => format!("{property} is missing"),
                    Op::IsNotNull => format!("{property} is set"),
                    other => {
                        let op = serde_json::to_value(other)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default();
                        format!("{property} {op} {value}")
                    }
                }
            }
            Condition::All { all } => all.iter().map(nested).collect::<Vec<_>>().join(" and "),
            Condition::Any { any } => any.iter().map(nested).collect::<Vec<_>>().join(" or "),
            Condition::Not { not } => format!("not {}", nested(not)),
        }
    }

    /// The property columns this condition reads.
    pub fn properties(&self, into: &mut Vec<String>) {
        match self {
            Condition::Property { property, .. } => {
                if !into.contains(property) {
                    into.push(property.clone());
                }
            }
            Condition::All { all: parts } | Condition::Any { any: parts } => {
                parts.iter().for_each(|part| part.properties(into))
            }
            Condition::Not { not } => not.properties(into),
            Condition::Step { .. } | Condition::Channel { .. } => {}
        }
    }

    /// Compiles against `journeys`' dictionaries. Fails when a property column the condition reads is not loaded.
    /// When this is a step condition whose name pattern matches no step of `journeys` (most likely a typo, which
    /// would otherwise show as an empty result), a sentence saying so, with the names it may have meant: equal but
    /// for case, or holding it (or held in it), case aside. `what` names the condition's role ("Step 2").
    pub fn unmatched(
        &self,
        compiled: &Compiled,
        journeys: &JourneySet,
        what: &str,
    ) -> Option<String> {
        let (Condition::Step { step: pattern }, Compiled::Step(table)) = (self, compiled) else {
            return None;
        };
        if table.contains(&true) {
            return None;
        }
        let mut close = similar_names(pattern, journeys.step_names.iter().map(String::as_str));
        close.truncate(3);
        let hint = if close.is_empty() {
            ".".to_string()
        } else {
            format!(
                "; did you mean {}?",
                close
                    .iter()
                    .map(|name| format!("\"{name}\""))
                    .collect::<Vec<_>>()
                    .join(" or ")
            )
        };
        Some(format!(
            "{what} \"{pattern}\" matches no step in the data (names are matched exactly, `*` as a wildcard){hint}"
        ))
    }

    pub fn compile(&self, journeys: &JourneySet) -> Result<Compiled, AnalyticsError> {
        Ok(match self {
            Condition::Step { step } => Compiled::Step(step_table(step, &journeys.step_names)),
            Condition::Channel { channel } => Compiled::Channel(
                journeys
                    .channel_names
                    .iter()
                    .map(|name| wildcard_match(channel, name))
                    .collect(),
            ),
            Condition::Property {
                property,
                op,
                value,
            } => {
                let column = journeys
                    .properties
                    .iter()
                    .position(|column| &column.name == property)
                    .ok_or_else(|| {
                        AnalyticsError::condition(format!(
                            "property `{property}` was not loaded for this query"
                        ))
                    })?;
                if !matches!(op, Op::IsNull | Op::IsNotNull) && value.is_null() {
                    return Err(AnalyticsError::condition(format!(
                        "the condition on `{property}` needs a \"value\" to compare with"
                    )));
                }
                let table = journeys.properties[column]
                    .values
                    .iter()
                    .map(|candidate| test_value(candidate, *op, value))
                    .collect();
                Compiled::Property { column, table }
            }
            Condition::All { all } => Compiled::All(
                all.iter()
                    .map(|part| part.compile(journeys))
                    .collect::<Result<_, _>>()?,
            ),
            Condition::Any { any } => Compiled::Any(
                any.iter()
                    .map(|part| part.compile(journeys))
                    .collect::<Result<_, _>>()?,
            ),
            Condition::Not { not } => Compiled::Not(Box::new(not.compile(journeys)?)),
        })
    }
}

/// A condition bound to one journey set: every leaf is a lookup table over a dictionary.
#[derive(Debug, Clone)]
pub enum Compiled {
    Step(Vec<bool>),
    Channel(Vec<bool>),
    Property { column: usize, table: Vec<bool> },
    All(Vec<Compiled>),
    Any(Vec<Compiled>),
    Not(Box<Compiled>),
}

impl Compiled {
    /// Whether event `event` (an index into the set's columns) satisfies the condition.
    #[inline]
    pub fn matches(&self, journeys: &JourneySet, event: usize) -> bool {
        match self {
            Compiled::Step(table) => table[journeys.step[event] as usize],
            Compiled::Channel(table) => table[journeys.channel[event] as usize],
            Compiled::Property { column, table } => {
                table[journeys.properties[*column].codes[event] as usize]
            }
            Compiled::All(parts) => parts.iter().all(|part| part.matches(journeys, event)),
            Compiled::Any(parts) => parts.iter().any(|part| part.matches(journeys, event)),
            Compiled::Not(part) => !part.matches(journeys, event),
        }
    }

    /// Per step, whether the condition holds, when it depends on the step alone (a step condition, or any of
    /// several): a lookup instead of an evaluation per event.
    pub fn steps_only(&self) -> Option<Vec<bool>> {
        match self {
            Compiled::Step(table) => Some(table.clone()),
            Compiled::Any(parts) => {
                let mut tables = parts.iter().map(Compiled::steps_only);
                let mut all = tables.next()??;
                for table in tables {
                    for (into, matched) in all.iter_mut().zip(table?) {
                        *into |= matched;
                    }
                }
                Some(all)
            }
            _ => None,
        }
    }

    /// The step table, when the condition depends on the step alone.
    pub fn step_table(&self) -> Option<&[bool]> {
        match self {
            Compiled::Step(table) => Some(table),
            _ => None,
        }
    }
}

/// `*` matches any run of characters; everything else literally.
/// The names a mistyped `wanted` may have meant: equal to it but for case, or (three characters or more) holding it
/// or held in it, case aside; the equal ones first, then the shorter.
pub fn similar_names<'a>(wanted: &str, names: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let wanted = wanted.to_lowercase();
    let mut close: Vec<&str> = names
        .filter(|name| {
            let name = name.to_lowercase();
            name == wanted
                || (wanted.len() >= 3 && (name.contains(&wanted) || wanted.contains(&name)))
        })
        .collect();
    close.sort_by_key(|name| (name.to_lowercase() != wanted, name.len()));
    close
}

pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == text;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

fn as_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().parse().ok(),
        Value::Bool(flag) => Some(f64::from(u8::from(*flag))),
        _ => None,
    }
}

fn compare(candidate: &Value, wanted: &Value) -> Option<Ordering> {
    match (candidate, wanted) {
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        _ => as_number(candidate)?.partial_cmp(&as_number(wanted)?),
    }
}

/// Which steps a step pattern matches. By default an app screen named like a web page is that page (`screen:X` is
/// counted as `page:X`: [`crate::customer_step_codes`]), so a screen pattern that matches no step (`screen:Checkout`)
/// matches the pages screens became: `page:` names with no `screen:` twin in these journeys.
fn step_table(pattern: &str, names: &[String]) -> Vec<bool> {
    let direct: Vec<bool> = names
        .iter()
        .map(|name| wildcard_match(pattern, name))
        .collect();
    if direct.contains(&true) || !pattern.starts_with("screen:") {
        return direct;
    }
    let screens: std::collections::HashSet<&str> = names
        .iter()
        .filter(|name| name.starts_with("screen:"))
        .map(String::as_str)
        .collect();
    names
        .iter()
        .map(|name| {
            name.strip_prefix("page:").is_some_and(|view| {
                let as_screen = format!("screen:{view}");
                !screens.contains(as_screen.as_str()) && wildcard_match(pattern, &as_screen)
            })
        })
        .collect()
}

fn test_value(candidate: &Value, op: Op, wanted: &Value) -> bool {
    if candidate.is_null() {
        return matches!(op, Op::IsNull | Op::Ne | Op::NotContains);
    }
    match op {
        Op::IsNull => false,
        Op::IsNotNull => true,
        Op::Eq => compare(candidate, wanted) == Some(Ordering::Equal),
        Op::Ne => compare(candidate, wanted) != Some(Ordering::Equal),
        Op::Lt => compare(candidate, wanted) == Some(Ordering::Less),
        Op::Le => matches!(
            compare(candidate, wanted),
            Some(Ordering::Less | Ordering::Equal)
        ),
        Op::Gt => compare(candidate, wanted) == Some(Ordering::Greater),
        Op::Ge => matches!(
            compare(candidate, wanted),
            Some(Ordering::Greater | Ordering::Equal)
        ),
        Op::Contains => match (candidate, wanted) {
            (Value::String(text), Value::String(part)) => text.contains(part.as_str()),
            (Value::Array(items), wanted) => items.contains(wanted),
            _ => false,
        },
        Op::NotContains => !test_value(candidate, Op::Contains, wanted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wildcards_match_runs_of_characters() {
        assert!(wildcard_match("page:/help*", "page:/help/reset"));
        assert!(wildcard_match("*error*", "login error shown"));
        assert!(wildcard_match("a*b*c", "aXbYc"));
        assert!(!wildcard_match("a*b*c", "aXcYb"));
        assert!(!wildcard_match("ab*ba", "aba"));
        assert!(wildcard_match("Login", "Login") && !wildcard_match("Login", "Login failed"));
    }

    #[test]
    fn values_compare_as_numbers_or_text() {
        assert!(test_value(&json!(1002), Op::Ge, &json!(1002)));
        assert!(test_value(&json!("1002"), Op::Lt, &json!(1003)));
        assert!(test_value(&json!("b"), Op::Gt, &json!("a")));
        assert!(!test_value(&Value::Null, Op::Eq, &json!("a")));
        assert!(test_value(&Value::Null, Op::IsNull, &Value::Null));
        assert!(!test_value(&json!("x"), Op::Eq, &json!(3)));
    }

    #[test]
    fn conditions_read_as_json() {
        let condition: Condition = serde_json::from_value(json!({"all": [
            {"step": "Checkout*"},
            {"property": "plan", "op": "=", "value": "pro"},
            {"not": {"channel": "store"}}
        ]}))
        .unwrap();
        let mut properties = Vec::new();
        condition.properties(&mut properties);
        assert_eq!(properties, ["plan"]);
        assert!(serde_json::from_value::<Condition>(json!({"stepp": "x"})).is_err());
    }
}
