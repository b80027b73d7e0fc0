//! The registry of analyses: every analysis is one line of [`ANALYSES`], and from that line come its HTTP route
//! (`POST /v1/analyses/{name}`), its `waymark query {name}` subcommand (flags derived from the request's schema,
//! turned into the same JSON and parsed by the same code), its OpenAPI schemas and its help line.

use crate::{Engine, Error};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value};
use std::marker::PhantomData;
use waymark_analytics::{
    AttributionRequest, FlowsRequest, FrictionRequest, FunnelRequest, MomentsRequest,
    OverviewRequest, ProcessMapRequest, Query, RetentionRequest, Scope, VariantsRequest,
};

/// Every analysis, in the order help lists them. Adding one is one line here.
pub static ANALYSES: &[&dyn Analysis] = &[
    &Entry::<OverviewRequest>::NEW,
    &Entry::<ProcessMapRequest>::NEW,
    &Entry::<VariantsRequest>::NEW,
    &Entry::<FunnelRequest>::NEW,
    &Entry::<FlowsRequest>::NEW,
    &Entry::<FrictionRequest>::NEW,
    &Entry::<MomentsRequest>::NEW,
    &Entry::<RetentionRequest>::NEW,
    &Entry::<AttributionRequest>::NEW,
    &Entry::<waymark_analytics::step_counts::StepCountsRequest>::NEW,
    &Entry::<waymark_analytics::blueprint::ConformanceRequest>::NEW,
    &Entry::<waymark_analytics::feedback::FeedbackRequest>::NEW,
    &Entry::<waymark_analytics::personas::PersonasRequest>::NEW,
];

/// The analysis named `name`, or an error listing the names there are.
pub fn analysis(name: &str) -> Result<&'static dyn Analysis, Error> {
    ANALYSES
        .iter()
        .copied()
        .find(|entry| entry.name() == name)
        .ok_or_else(|| {
            Error::UnknownAnalysis(format!(
                "there is no analysis `{name}`; the analyses are {}",
                ANALYSES
                    .iter()
                    .map(|entry| entry.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

/// One registered analysis, whatever its request and report types.
pub trait Analysis: Send + Sync {
    fn name(&self) -> &'static str;
    fn help(&self) -> &'static str;
    /// Arguments after `waymark query {name}`.
    fn example(&self) -> &'static str;
    /// The request's JSON schema (definitions go to `generator`).
    fn request_schema(&self, generator: &mut SchemaGenerator) -> Schema;
    /// The report's JSON schema.
    fn report_schema(&self, generator: &mut SchemaGenerator) -> Schema;
    /// The request with every field at its default, as JSON.
    fn defaults(&self) -> Value;
    /// The CLI flags of the request's fields (the filter's are shared by all analyses).
    fn flags(&self) -> Vec<CliFlag>;
    /// Checks a JSON request as running it would (shape, then every value), without reading any journey.
    fn validate(&self, request: Value, step_names: &[String]) -> Result<(), Error>;
    /// Runs the analysis for a JSON request. With `rows`, the report as a table too.
    fn run(&self, engine: &Engine, request: Value, rows: Option<usize>) -> Result<Ran, Error>;
}

/// The field of an analysis's JSON report that holds the notes on its filter, when there are any.
pub const FILTER_NOTES: &str = "filter_notes";

/// What a run gives: the report as JSON, and as text when asked for.
#[derive(Debug, Clone)]
pub struct Ran {
    /// The report; with notes on its filter, they are its `filter_notes`.
    pub json: Value,
    pub text: Option<String>,
    /// What the filter cannot match (a property no event has, a value it never takes, a pattern matching
    /// nothing), each with the closest existing name.
    pub notes: Vec<String>,
}

/// A registry entry for the request type `Q`.
pub struct Entry<Q>(PhantomData<fn() -> Q>);

impl<Q> Entry<Q> {
    pub const NEW: Entry<Q> = Entry(PhantomData);
}

/// The request's JSON turned into its type; what is wrong with the shape is said with the flags' example.
pub(crate) fn parse_request<Q: Query>(request: Value) -> Result<Q, Error> {
    let request = if request.is_null() {
        Value::Object(Map::new())
    } else {
        request
    };
    serde_json::from_value(request).map_err(|error| {
        let example = example_request::<Q>();
        Error::Malformed(format!(
            "the {} request must look like {example}: {error}",
            Q::NAME
        ))
    })
}

/// The CLI example as the JSON request it makes (what the HTTP API takes).
fn example_request<Q: Query>() -> String {
    let entry = Entry::<Q>::NEW;
    split_words(Q::EXAMPLE)
        .and_then(|words| request_from_example(&entry.flags(), &words).ok())
        .map(|request| request.to_string())
        .unwrap_or_else(|| "{}".into())
}

impl<Q: Query> Analysis for Entry<Q> {
    fn name(&self) -> &'static str {
        Q::NAME
    }

    fn help(&self) -> &'static str {
        Q::HELP
    }

    fn example(&self) -> &'static str {
        Q::EXAMPLE
    }

    fn request_schema(&self, generator: &mut SchemaGenerator) -> Schema {
        generator.subschema_for::<Q>()
    }

    fn report_schema(&self, generator: &mut SchemaGenerator) -> Schema {
        generator.subschema_for::<Q::Report>()
    }

    fn defaults(&self) -> Value {
        serde_json::to_value(Q::default()).expect("requests serialise")
    }

    fn flags(&self) -> Vec<CliFlag> {
        let root = serde_json::to_value(schemars::schema_for!(Q)).expect("schemas serialise");
        derive_flags(&root, Q::FLAGS, &self.defaults())
    }

    fn validate(&self, request: Value, step_names: &[String]) -> Result<(), Error> {
        let request: Q = parse_request(request)?;
        request.spec(&waymark_analytics::DataInfo { step_names })?;
        request.scope().plan()?;
        Ok(())
    }

    fn run(&self, engine: &Engine, request: Value, rows: Option<usize>) -> Result<Ran, Error> {
        let request: Q = parse_request(engine.resolve_saved(request)?)?;
        let (report, notes) = engine.analyse_with_notes(&request)?;
        let mut json = serde_json::to_value(&report).expect("reports serialise");
        if let (Some(object), false) = (json.as_object_mut(), notes.is_empty()) {
            object.insert(FILTER_NOTES.into(), serde_json::json!(notes));
        }
        Ok(Ran {
            json,
            text: rows.map(|rows| request.text(&report, rows)),
            notes,
        })
    }
}

/// How a flag takes its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagArity {
    /// `--flag`: sets `true`.
    Switch,
    /// `--flag VALUE`, once.
    One,
    /// `--flag A,B` or repeated: a list.
    List,
    /// `--flag VALUE`, repeated, without splitting at commas (each value one list element or map entry).
    Repeated,
}

/// What one value of a flag becomes in the JSON request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueKind {
    Bool,
    Number,
    Text,
    /// Text, or JSON when it starts with `{` or `[` (a field that takes a name or an object).
    TextOrJson,
    /// `KEY=VALUE`: an entry of a map.
    Pair,
}

/// A CLI flag of an analysis's request: where its values go in the JSON request.
#[derive(Debug, Clone)]
pub struct CliFlag {
    /// The long name, without dashes.
    pub name: String,
    pub help: String,
    pub arity: FlagArity,
    /// A dotted path into the request; `a[]` appends one element per value.
    field: String,
    kind: ValueKind,
    presets: Vec<(String, Value)>,
}

/// A schema with `$ref`s resolved against the root's `$defs`.
fn resolve<'s>(schema: &'s Value, root: &'s Value) -> &'s Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => reference
            .strip_prefix("#/$defs/")
            .and_then(|name| root["$defs"].get(name))
            .map_or(schema, |target| resolve(target, root)),
        None => schema,
    }
}

/// The branches of a schema that are not `null` (an `Option` is "T or null").
fn branches<'s>(schema: &'s Value, root: &'s Value) -> Vec<&'s Value> {
    let schema = resolve(schema, root);
    for key in ["anyOf", "oneOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            return options
                .iter()
                .map(|option| resolve(option, root))
                .filter(|option| option.get("type").and_then(Value::as_str) != Some("null"))
                .flat_map(|option| branches(option, root))
                .collect();
        }
    }
    vec![schema]
}

/// The types a schema allows, `null` left out.
fn types(schema: &Value) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(name)) => vec![name.as_str()],
        Some(Value::Array(names)) => names
            .iter()
            .filter_map(Value::as_str)
            .filter(|name| *name != "null")
            .collect(),
        _ => Vec::new(),
    }
}

/// (arity, value kind) of a field with this schema.
fn shape(schema: &Value, root: &Value) -> (FlagArity, ValueKind) {
    let options = branches(schema, root);
    let scalar = |option: &Value| -> Option<ValueKind> {
        match types(option).first().copied() {
            Some("boolean") => Some(ValueKind::Bool),
            Some("integer" | "number") => Some(ValueKind::Number),
            Some("string") => Some(ValueKind::Text),
            None if option.get("const").is_some_and(Value::is_string) => Some(ValueKind::Text),
            _ => None,
        }
    };
    if let [only] = options.as_slice() {
        let kinds = types(only);
        if kinds.first() == Some(&"array") {
            let item = only.get("items").unwrap_or(&Value::Null);
            let (_, kind) = shape(item, root);
            return (FlagArity::List, kind);
        }
        if kinds.first() == Some(&"object")
            && only.get("properties").is_none()
            && only
                .get("additionalProperties")
                .is_some_and(Value::is_object)
        {
            return (FlagArity::Repeated, ValueKind::Pair);
        }
        if let Some(kind) = scalar(only) {
            let arity = if kind == ValueKind::Bool {
                FlagArity::Switch
            } else {
                FlagArity::One
            };
            return (arity, kind);
        }
        return (FlagArity::One, ValueKind::TextOrJson);
    }
    let kinds: Vec<Option<ValueKind>> = options.iter().map(|option| scalar(option)).collect();
    if kinds.iter().all(|kind| *kind == Some(ValueKind::Text)) {
        (FlagArity::One, ValueKind::Text)
    } else {
        (FlagArity::One, ValueKind::TextOrJson)
    }
}

/// The schema of the field at `path` (dotted; `a[]` steps into the list's items; a field of one branch of a
/// "one of" is found in that branch).
fn field_schema<'s>(root: &'s Value, path: &str) -> Option<&'s Value> {
    let mut schema = root;
    for segment in path.split('.') {
        let (name, into_items) = match segment.strip_suffix("[]") {
            Some(name) => (name, true),
            None => (segment, false),
        };
        schema = branches(schema, root)
            .into_iter()
            .find_map(|option| option.get("properties").and_then(|fields| fields.get(name)))?;
        if into_items {
            schema = branches(schema, root)
                .into_iter()
                .find_map(|option| option.get("items"))?;
        }
    }
    Some(schema)
}

fn kebab(name: &str) -> String {
    name.replace('_', "-")
}

/// The flags of a request: one `--field-name` per top-level field (the filter aside), except fields a declared
/// flag covers, plus the declared flags.
fn derive_flags(
    root: &Value,
    declared: &[waymark_analytics::Flag],
    defaults: &Value,
) -> Vec<CliFlag> {
    let covered = |field: &str| {
        declared.iter().any(|flag| {
            let top = flag.field.split(['.', '[']).next().unwrap_or_default();
            top == field
                || flag
                    .presets
                    .iter()
                    .any(|(path, _)| path.split(['.', '[']).next() == Some(field))
        })
    };
    let mut flags = Vec::new();
    let fields = root.get("properties").and_then(Value::as_object);
    for (field, schema) in fields.into_iter().flatten() {
        if field == "filter" || covered(field) {
            continue;
        }
        let (arity, kind) = shape(schema, root);
        let mut help = description(schema, root);
        match defaults.get(field) {
            Some(Value::String(text)) if !text.is_empty() => {
                help.push_str(&format!(" [default: {text}]"))
            }
            Some(value @ Value::Number(_)) => help.push_str(&format!(" [default: {value}]")),
            _ => {}
        }
        flags.push(CliFlag {
            name: kebab(field),
            help,
            arity,
            field: field.clone(),
            kind,
            presets: Vec::new(),
        });
    }
    for flag in declared {
        let schema = field_schema(root, flag.field).unwrap_or(&Value::Null);
        let (mut arity, kind) = shape(schema, root);
        if flag.field.contains("[]") {
            arity = FlagArity::Repeated;
        }
        let help = if flag.help.is_empty() {
            description(schema, root)
        } else {
            flag.help.to_string()
        };
        flags.push(CliFlag {
            name: flag.name.to_string(),
            help,
            arity,
            field: flag.field.to_string(),
            kind,
            presets: flag
                .presets
                .iter()
                .map(|(path, json)| {
                    (
                        path.to_string(),
                        serde_json::from_str(json).expect("preset values are JSON"),
                    )
                })
                .collect(),
        });
    }
    flags.sort_by(|a, b| a.name.cmp(&b.name));
    flags
}

fn description(schema: &Value, root: &Value) -> String {
    schema
        .get("description")
        .or_else(|| resolve(schema, root).get("description"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .replace('\n', " ")
}

/// One value of `flag` as JSON.
fn flag_value(flag: &CliFlag, text: &str) -> Result<Value, Error> {
    Ok(match flag.kind {
        ValueKind::Bool => Value::Bool(true),
        ValueKind::Number => serde_json::from_str::<serde_json::Number>(text.trim())
            .map(Value::Number)
            .unwrap_or_else(|_| Value::String(text.to_string())),
        ValueKind::Text | ValueKind::Pair => Value::String(text.to_string()),
        ValueKind::TextOrJson => {
            let trimmed = text.trim_start();
            if trimmed.starts_with('{') || trimmed.starts_with('[') {
                serde_json::from_str(trimmed).map_err(|error| {
                    Error::Malformed(format!(
                        "--{}: {text:?} is not valid JSON: {error}",
                        flag.name
                    ))
                })?
            } else {
                Value::String(text.to_string())
            }
        }
    })
}

/// Sets `path` (dotted; `a[]` appends a new element) in `target` to `value`.
fn set_path(target: &mut Value, path: &str, value: Value) {
    let (head, rest) = match path.split_once('.') {
        Some((head, rest)) => (head, Some(rest)),
        None => (path, None),
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let fields = target.as_object_mut().expect("made an object");
    if let Some(list) = head.strip_suffix("[]") {
        let items = fields
            .entry(list)
            .or_insert_with(|| Value::Array(Vec::new()));
        if !items.is_array() {
            *items = Value::Array(Vec::new());
        }
        let items = items.as_array_mut().expect("made an array");
        match rest {
            Some(rest) => {
                let mut element = Value::Object(Map::new());
                set_path(&mut element, rest, value);
                items.push(element);
            }
            None => items.push(value),
        }
        return;
    }
    match rest {
        Some(rest) => set_path(fields.entry(head).or_insert(Value::Null), rest, value),
        None => {
            fields.insert(head.to_string(), value);
        }
    }
}

/// The JSON request that the given flag values (`(flag name, values)`, as the command line had them) and filter
/// make: exactly what the same request over HTTP would be.
pub fn request_from_flags(
    flags: &[CliFlag],
    given: &[(String, Vec<String>)],
    filter: Option<&Scope>,
) -> Result<Value, Error> {
    let mut request = Value::Object(Map::new());
    let mut set_by: Vec<(String, String)> = Vec::new();
    for (name, values) in given {
        let flag = flags
            .iter()
            .find(|flag| &flag.name == name)
            .ok_or_else(|| Error::Malformed(format!("there is no flag --{name}")))?;
        let top = flag
            .field
            .split(['.', '['])
            .next()
            .unwrap_or_default()
            .to_string();
        if let Some((_, other)) = set_by
            .iter()
            .find(|(field, other)| field == &flag.field && other != name)
        {
            return Err(Error::Malformed(format!(
                "--{other} and --{name} both set {top}; give one of them"
            )));
        }
        set_by.push((flag.field.clone(), name.clone()));
        for (path, value) in &flag.presets {
            set_path(&mut request, path, value.clone());
        }
        match flag.arity {
            FlagArity::Switch => set_path(&mut request, &flag.field, Value::Bool(true)),
            FlagArity::One => {
                let text = values.last().map(String::as_str).unwrap_or_default();
                set_path(&mut request, &flag.field, flag_value(flag, text)?);
            }
            FlagArity::List => {
                let items = values
                    .iter()
                    .map(|text| flag_value(flag, text))
                    .collect::<Result<Vec<_>, _>>()?;
                set_path(&mut request, &flag.field, Value::Array(items));
            }
            FlagArity::Repeated if flag.kind == ValueKind::Pair => {
                for text in values {
                    let (key, value) = text.rsplit_once('=').ok_or_else(|| {
                        Error::Malformed(format!(
                            "--{name} {text:?}: write KEY=VALUE, e.g. \"Application Reviewed=48h\""
                        ))
                    })?;
                    set_path(
                        &mut request,
                        &format!("{}.{}", flag.field, key.trim().replace('.', "\u{2024}")),
                        Value::String(value.trim().to_string()),
                    );
                }
                unescape_keys(&mut request);
            }
            FlagArity::Repeated => {
                for text in values {
                    set_path(&mut request, &flag.field, flag_value(flag, text)?);
                }
            }
        }
    }
    if let Some(filter) = filter.filter(|filter| **filter != Scope::default()) {
        request["filter"] = serde_json::to_value(filter).expect("scopes serialise");
    }
    Ok(request)
}

/// Map keys may hold dots (`standard_times` of a step named `a.b`): they are carried as one-dot leaders through
/// [`set_path`] and turned back here.
fn unescape_keys(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            let entries: Vec<(String, Value)> = std::mem::take(fields).into_iter().collect();
            for (key, mut field) in entries {
                unescape_keys(&mut field);
                fields.insert(key.replace('\u{2024}', "."), field);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(unescape_keys),
        _ => {}
    }
}

/// An example command line's request: the analysis's own flags, leaving out those every analysis shares (the
/// filter's and display flags such as `--rows`, which the CLI adds) with their values.
fn request_from_example(flags: &[CliFlag], args: &[String]) -> Result<Value, Error> {
    let mut own = Vec::new();
    let mut words = args.iter().peekable();
    while let Some(word) = words.next() {
        let name = word.trim_start_matches("--");
        let name = name.split_once('=').map_or(name, |(name, _)| name);
        if flags.iter().any(|flag| flag.name == name) {
            own.push(word.clone());
            while let Some(value) = words.next_if(|next| !next.starts_with("--")) {
                own.push(value.clone());
            }
        } else {
            while words.next_if(|next| !next.starts_with("--")).is_some() {}
        }
    }
    request_from_args(flags, &own, None)
}

/// `args` (as a shell would split them: `--flag value`, `--flag=value`, `--switch`) as a JSON request.
pub fn request_from_args(
    flags: &[CliFlag],
    args: &[String],
    filter: Option<&Scope>,
) -> Result<Value, Error> {
    let mut given: Vec<(String, Vec<String>)> = Vec::new();
    let mut words = args.iter();
    while let Some(word) = words.next() {
        let Some(name) = word.strip_prefix("--") else {
            return Err(Error::Malformed(format!("unexpected argument {word:?}")));
        };
        let (name, inline) = match name.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (name, None),
        };
        let flag = flags
            .iter()
            .find(|flag| flag.name == name)
            .ok_or_else(|| Error::Malformed(format!("there is no flag --{name}")))?;
        let values = match flag.arity {
            FlagArity::Switch => Vec::new(),
            arity => {
                let value = inline
                    .or_else(|| words.next().cloned())
                    .ok_or_else(|| Error::Malformed(format!("--{name} needs a value")))?;
                if arity == FlagArity::List {
                    value.split(',').map(str::to_string).collect()
                } else {
                    vec![value]
                }
            }
        };
        match given.iter_mut().find(|(given_name, _)| given_name == name) {
            Some((_, existing)) => existing.extend(values),
            None => given.push((name.to_string(), values)),
        }
    }
    request_from_flags(flags, &given, filter)
}

/// Splits a command line as a shell would for simple quoting (`"…"`, `'…'`); `None` for an unclosed quote.
fn split_words(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(open), c) if c == open => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return None;
    }
    if in_word {
        words.push(word);
    }
    Some(words)
}

/// Every analysis's request and report schemas, with their definitions, for the OpenAPI document.
pub fn schemas(generator: &mut SchemaGenerator) -> Vec<(&'static str, Schema, Schema)> {
    ANALYSES
        .iter()
        .map(|entry| {
            (
                entry.name(),
                entry.request_schema(generator),
                entry.report_schema(generator),
            )
        })
        .collect()
}

/// The schema of any type, for callers that describe engine types (the server's OpenAPI document).
pub fn schema_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(line: &str) -> Vec<String> {
        split_words(line).unwrap()
    }

    #[test]
    fn every_example_makes_a_request_its_type_accepts() {
        let steps: Vec<String> = Vec::new();
        for entry in ANALYSES {
            let request = request_from_example(&entry.flags(), &args(entry.example()))
                .unwrap_or_else(|error| panic!("{}: {error}", entry.name()));
            entry
                .validate(request.clone(), &steps)
                .unwrap_or_else(|error| panic!("{} {request}: {error}", entry.name()));
        }
    }

    #[test]
    fn flags_make_the_json_the_api_takes() {
        let funnel = analysis("funnel").unwrap().flags();
        let request = request_from_args(
            &funnel,
            &args("--steps A,B --window 1h --mode strict_once --exclude Help --exclude Chat --breakdown device --breakdown-top 3 --drill-down 5"),
            None,
        )
        .unwrap();
        assert_eq!(
            request,
            json!({"steps": ["A", "B"], "window": "1h", "modes": ["strict_once"],
                "exclusions": [{"condition": {"step": "Help"}}, {"condition": {"step": "Chat"}}],
                "breakdown": {"property": "device", "top": 3}, "drill_down": 5})
        );
        let flows = analysis("flows").unwrap().flags();
        assert_eq!(
            request_from_args(&flows, &args("--before Checkout --collapse-repeats"), None).unwrap(),
            json!({"anchor": "Checkout", "direction": "backward", "collapse_repeats": true})
        );
        assert!(
            request_from_args(&flows, &args("--before A --after B"), None)
                .unwrap_err()
                .to_string()
                .contains("give one of them")
        );
        let friction = analysis("friction").unwrap().flags();
        assert_eq!(
            request_from_args(
                &friction,
                &args("--goal Buy --standard-time 'Install.Visit=72h' --top 3"),
                None
            )
            .unwrap(),
            json!({"goals": ["Buy"], "standard_times": {"Install.Visit": "72h"}, "top": 3})
        );
        // A number flag given a word is passed on as it is, so that the type's own error names it, as over HTTP.
        let variants = analysis("variants").unwrap().flags();
        assert_eq!(
            request_from_args(&variants, &args("--top ten"), None).unwrap(),
            json!({"top": "ten"})
        );
    }

    #[test]
    fn unknown_names_list_the_analyses() {
        let error = analysis("moments-of-magic").err().unwrap().to_string();
        assert!(
            error.contains("process-map") && error.contains("retention"),
            "{error}"
        );
    }
}

/// What the CLI needs to build a [`Scope`] from its flags.
pub mod scope_parts {
    pub use waymark_analytics::query::parse_condition;
    pub use waymark_analytics::StepRule;

    /// The condition "the step is `name`" (or matches the `*` pattern).
    pub fn step_condition(name: String) -> waymark_analytics::Condition {
        waymark_analytics::Condition::step(name)
    }
}
