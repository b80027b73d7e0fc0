//! Step rules: how events become steps for an analysis. By default a step is the event's name (`page:` / `screen:`
//! plus the name for views); rules rename, group and drop steps at query time, without touching stored events:
//!
//! - `{"match": "page:Product: *", "step": "Product page"}` groups by a `*` pattern;
//! - `{"regex": "^page:Help: (.*)$", "step": "Help: $1"}` groups by a regular expression (captures as `$1`);
//! - `{"match": "page:*", "step": "page:{path}"}` names the step after a property value (`{path}` is
//!   `properties.path`, any property name works);
//! - `{"match": "identify", "exclude": true}` drops noise events.
//!
//! The first rule that matches an event decides; events no rule matches keep their step.

use crate::error::AnalyticsError;
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use waymark_model::{JourneySet, PropertyColumn};

use crate::condition::wildcard_match;

/// One step rule. Exactly one of `match` (a `*` pattern) and `regex` selects the events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepRule {
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// The new step name: may use `$1`… (regex captures) and `{property}` (a property's value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// Drop the matching events.
    #[serde(default)]
    pub exclude: bool,
}

impl StepRule {
    /// `{property}` placeholders of the new name.
    fn placeholders(&self) -> Vec<String> {
        let mut names = Vec::new();
        let mut rest = self.step.as_deref().unwrap_or("");
        while let Some(open) = rest.find('{') {
            match rest[open..].find('}') {
                Some(close) => {
                    names.push(rest[open + 1..open + close].to_string());
                    rest = &rest[open + close + 1..];
                }
                None => break,
            }
        }
        names
    }
}

/// The property columns the rules read.
pub fn rule_properties(rules: &[StepRule], into: &mut Vec<String>) {
    for rule in rules {
        for name in rule.placeholders() {
            if !into.contains(&name) {
                into.push(name);
            }
        }
    }
}

enum Selector {
    Pattern(String),
    Regex(Regex),
}

/// What a rule does to one original step name.
#[derive(Clone)]
enum Outcome {
    Keep,
    Drop,
    /// The new name, with `{property}` placeholders still to fill per event.
    Rename(String),
}

/// Applies `rules` to `journeys`: a new set with the renamed steps (a new step dictionary) and without the dropped
/// events. Fails on an invalid rule, saying which.
pub fn apply_step_rules(
    journeys: &JourneySet,
    rules: &[StepRule],
) -> Result<JourneySet, AnalyticsError> {
    if rules.is_empty() {
        return Ok(journeys.clone());
    }
    let mut selectors = Vec::new();
    for (index, rule) in rules.iter().enumerate() {
        let which = index + 1;
        let selector = match (&rule.pattern, &rule.regex) {
            (Some(pattern), None) => Selector::Pattern(pattern.clone()),
            (None, Some(regex)) => Selector::Regex(Regex::new(regex).map_err(|error| {
                AnalyticsError::condition(format!(
                    "step rule {which}: the regex does not compile: {error}"
                ))
            })?),
            _ => {
                return Err(AnalyticsError::condition(format!(
                    "step rule {which}: give exactly one of \"match\" (a * pattern) and \"regex\""
                )))
            }
        };
        if rule.step.is_none() && !rule.exclude {
            return Err(AnalyticsError::condition(format!(
                "step rule {which}: give the new \"step\" name, or \"exclude\": true"
            )));
        }
        selectors.push(selector);
    }
    // Per original step: the first matching rule's outcome.
    let outcomes: Vec<(Outcome, Option<usize>)> = journeys
        .step_names
        .iter()
        .map(|name| {
            for (index, (rule, selector)) in rules.iter().zip(&selectors).enumerate() {
                let renamed = match selector {
                    Selector::Pattern(pattern) => {
                        wildcard_match(pattern, name).then(|| rule.step.clone().unwrap_or_default())
                    }
                    Selector::Regex(regex) => regex.captures(name).map(|captures| {
                        let mut expanded = String::new();
                        captures.expand(rule.step.as_deref().unwrap_or(""), &mut expanded);
                        expanded
                    }),
                };
                if let Some(renamed) = renamed {
                    return if rule.exclude {
                        (Outcome::Drop, Some(index))
                    } else {
                        (Outcome::Rename(renamed), Some(index))
                    };
                }
            }
            (Outcome::Keep, None)
        })
        .collect();
    let columns: HashMap<String, &PropertyColumn> = journeys
        .properties
        .iter()
        .map(|column| (column.name.clone(), column))
        .collect();
    let mut names: Vec<String> = Vec::new();
    let mut codes: HashMap<String, u32> = HashMap::new();
    let mut code_of = |name: String| -> u32 {
        *codes.entry(name.clone()).or_insert_with(|| {
            names.push(name);
            (names.len() - 1) as u32
        })
    };
    // Renames without placeholders resolve once per original step.
    let fixed: Vec<Option<u32>> = outcomes
        .iter()
        .enumerate()
        .map(|(code, (outcome, rule))| match outcome {
            Outcome::Keep => Some(code_of(journeys.step_names[code].clone())),
            Outcome::Drop => None,
            Outcome::Rename(name)
                if rule.is_some_and(|rule| rules[rule].placeholders().is_empty()) =>
            {
                Some(code_of(name.clone()))
            }
            Outcome::Rename(_) => None,
        })
        .collect();
    let mut new_steps: Vec<u32> = Vec::with_capacity(journeys.n_events());
    let kept = journeys.select(|event| {
        let step = journeys.step[event] as usize;
        match (&outcomes[step].0, fixed[step]) {
            (Outcome::Drop, _) => false,
            (_, Some(code)) => {
                new_steps.push(code);
                true
            }
            (Outcome::Rename(template), None) => {
                let mut name = template.clone();
                for placeholder in rules[outcomes[step].1.expect("a rule matched")].placeholders() {
                    let value = columns.get(&placeholder).map(|column| column.value(event));
                    let text = match value {
                        Some(serde_json::Value::String(text)) => text.clone(),
                        Some(serde_json::Value::Null) | None => "(none)".to_string(),
                        Some(other) => other.to_string(),
                    };
                    name = name.replace(&format!("{{{placeholder}}}"), &text);
                }
                new_steps.push(code_of(name));
                true
            }
            (Outcome::Keep, None) => unreachable!("kept steps always have a code"),
        }
    });
    let mut kept = kept;
    kept.step = new_steps;
    kept.step_names = names;
    Ok(kept)
}

/// How events become customer steps before any analysis, unless a scope asks otherwise ([`crate::Scope`]'s
/// `identity_steps` and `split_platforms`): Segment's identity calls (`identify`, `alias`, `group`) are left out —
/// they say who the customer is, not what the customer did — and an app screen with the name of a web page
/// (`screen:X` beside `page:X`) is that page, `page:X`: the same page on two platforms. As codes on a step
/// dictionary `names`: per step code the code it becomes (`u32::MAX` to leave its events out), and the dictionary
/// after (only the steps left, so an analysis listing step names lists no empty ones); `None` when neither applies.
/// The engine applies it to every view, with its other default adjustments, in one copy.
pub fn customer_step_codes(
    names: &[String],
    identity_steps: bool,
    split_platforms: bool,
) -> Option<(Vec<u32>, Vec<String>)> {
    let by_name: HashMap<&str, u32> = names
        .iter()
        .enumerate()
        .map(|(code, name)| (name.as_str(), code as u32))
        .collect();
    // Per step code: the code it becomes, or `u32::MAX` to leave the event out.
    let mut changed = false;
    let target: Vec<u32> = names
        .iter()
        .enumerate()
        .map(|(code, name)| {
            if !identity_steps && waymark_model::IDENTITY_STEPS.contains(&name.as_str()) {
                changed = true;
                return u32::MAX;
            }
            if !split_platforms {
                if let Some(page) = name
                    .strip_prefix("screen:")
                    .and_then(|view| by_name.get(format!("page:{view}").as_str()))
                {
                    changed = true;
                    return *page;
                }
            }
            code as u32
        })
        .collect();
    if !changed {
        return None;
    }
    // The dictionary keeps only the steps left: an analysis listing step names lists no empty ones.
    let mut used = vec![false; names.len()];
    for to in target.iter().filter(|to| **to != u32::MAX) {
        used[*to as usize] = true;
    }
    let mut compact = vec![u32::MAX; names.len()];
    let mut kept_names = Vec::new();
    for (code, name) in names.iter().enumerate() {
        if used[code] {
            compact[code] = kept_names.len() as u32;
            kept_names.push(name.clone());
        }
    }
    let target: Vec<u32> = target
        .iter()
        .map(|to| {
            if *to == u32::MAX {
                u32::MAX
            } else {
                compact[*to as usize]
            }
        })
        .collect();
    Some((target, kept_names))
}

/// Step codes by name, as an event's property names a step (feedback's `rated_step`): with, for each page a screen
/// was merged into ([`customer_step_codes`]), the screen's name too, so `screen:Help` finds `page:Help`. `code` maps
/// each step's code (friction re-codes them).
pub(crate) fn step_codes_by_name(
    names: &[String],
    code: impl Fn(usize) -> u32,
) -> HashMap<String, u32> {
    let mut codes: HashMap<String, u32> = names
        .iter()
        .enumerate()
        .map(|(index, name)| (name.clone(), code(index)))
        .collect();
    for (index, name) in names.iter().enumerate() {
        if let Some(view) = name.strip_prefix("page:") {
            codes
                .entry(format!("screen:{view}"))
                .or_insert_with(|| code(index));
        }
    }
    codes
}

/// `journeys` without the events whose step repeats the one before it in the same journey: `A A B A` is `A B A`.
pub fn collapse_repeats(journeys: &JourneySet) -> JourneySet {
    let mut journey = 0;
    journeys.select(|event| {
        while journeys.offsets[journey + 1] <= event {
            journey += 1;
        }
        event == journeys.offsets[journey] || journeys.step[event] != journeys.step[event - 1]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use waymark_model::PropertyColumnBuilder;

    fn rule(value: serde_json::Value) -> StepRule {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn rules_group_rename_template_and_drop() {
        let mut journeys = JourneySet::from_journeys([(
            "ann".to_string(),
            vec![
                (0, "page:Product: Lock", "web"),
                (1, "identify", "web"),
                (2, "page:Help: Reset", "web"),
                (3, "page:Pricing", "web"),
                (4, "Order Completed", "web"),
            ],
        )]);
        let mut path = PropertyColumnBuilder::new("path");
        for value in [
            json!("/p/lock"),
            json!(null),
            json!("/help/reset"),
            json!("/pricing"),
            json!(null),
        ] {
            path.push(Some(&value));
        }
        journeys.properties.push(path.finish());
        let rules = [
            rule(json!({"match": "page:Product: *", "step": "Product page"})),
            rule(json!({"regex": "^page:Help: (.*)$", "step": "Help ($1)"})),
            rule(json!({"match": "page:*", "step": "page:{path}"})),
            rule(json!({"match": "identify", "exclude": true})),
        ];
        let mut names = Vec::new();
        rule_properties(&rules, &mut names);
        assert_eq!(names, ["path"]);
        let renamed = apply_step_rules(&journeys, &rules).unwrap();
        let steps: Vec<&str> = renamed
            .step
            .iter()
            .map(|step| renamed.step_names[*step as usize].as_str())
            .collect();
        assert_eq!(
            steps,
            [
                "Product page",
                "Help (Reset)",
                "page:/pricing",
                "Order Completed"
            ]
        );
        assert_eq!(renamed.ts, [0, 2, 3, 4]);
        assert_eq!(renamed.property("path").unwrap().codes.len(), 4);
    }

    #[test]
    fn bad_rules_say_which_and_why() {
        let journeys = JourneySet::from_journeys([("a".to_string(), vec![(0, "x", "web")])]);
        let error = apply_step_rules(&journeys, &[rule(json!({"regex": "(", "step": "y"}))])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("step rule 1") && error.contains("regex"),
            "{error}"
        );
        let error = apply_step_rules(&journeys, &[rule(json!({"match": "x"}))])
            .unwrap_err()
            .to_string();
        assert!(error.contains("exclude"), "{error}");
    }
}
