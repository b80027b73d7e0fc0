//! Conditions: CEL expressions over the event, the customer and facts of the customer's journey.
//!
//! A condition is parsed by the `cel` crate once, then checked here before it is accepted: every name, field and
//! function is known, journey functions take literal arguments naming known steps and valid windows, operators get
//! operands they accept, and the whole expression is a boolean. An error names the position (line and column,
//! from 1) in the expression. Evaluation binds the event, the customer and the journey facts the condition asks
//! for (computed by the caller, see [`Fact`]) and runs the compiled program; a runtime error (a missing property,
//! a journey function on a step never done) makes the condition false and is reported to the caller, who counts
//! it.
//!
//! The journey functions:
//! - `count(step)`: how many times the customer did `step`; `count(step, "1h")`: within the window ending now.
//! - `did(step)`: whether the customer ever did `step`.
//! - `since(step)`: the duration since the customer last did `step` (an error if never: `!did(s) || …`).
//! - `days_since(step)`: whole days since the customer last did `step` (an error if never).
//! - `score(model)`: the model's current score of the customer (an error when the customer has none yet).
//! - `in_segment(name)`: whether the customer is in segment `name` now.
//!
//! Variables: `event` (`name`, `type`, `channel`, `time`, `message_id`, `user_id`, `anonymous_id`, `properties`,
//! `traits`, `context`), `customer` (`id`, `traits`, `segments`, `scores`, `identifiers`; in the catalogue's
//! conditions also `attributes`, each a list of the values a catalogue attribute took on the customer's events), `last_step`,
//! `previous_step`, `current_stage`, `channel` (of the latest event) and `now`.

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};
use cel::objects::{Key, Map};
use cel::{Context, Env, ExecutionError, Value};
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, OnceLock};

/// A fact of the customer's journey that a condition reads through a journey function.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fact {
    /// `count(step)` (window `None`) or `count(step, window)`, the window in µs.
    Count {
        step: String,
        window: Option<i64>,
    },
    Did {
        step: String,
    },
    Since {
        step: String,
    },
    DaysSince {
        step: String,
    },
    Score {
        model: String,
    },
    InSegment {
        name: String,
    },
}

impl Fact {
    /// The key the fact's value is bound under for evaluation.
    pub fn key(&self) -> String {
        match self {
            Fact::Count { step, window } => {
                format!("count\u{1f}{step}\u{1f}{}", window.unwrap_or(-1))
            }
            Fact::Did { step } => format!("did\u{1f}{step}"),
            Fact::Since { step } => format!("since\u{1f}{step}"),
            Fact::DaysSince { step } => format!("days_since\u{1f}{step}"),
            Fact::Score { model } => format!("score\u{1f}{model}"),
            Fact::InSegment { name } => format!("in_segment\u{1f}{name}"),
        }
    }

    /// The step the fact is about, if any.
    pub fn step(&self) -> Option<&str> {
        match self {
            Fact::Count { step, .. }
            | Fact::Did { step }
            | Fact::Since { step }
            | Fact::DaysSince { step } => Some(step),
            _ => None,
        }
    }

    /// Whether the fact's value changes with time alone (without an event).
    pub fn changes_with_time(&self) -> bool {
        matches!(
            self,
            Fact::Count {
                window: Some(_),
                ..
            } | Fact::Since { .. }
                | Fact::DaysSince { .. }
        )
    }
}

/// What a condition reads, so that it is re-evaluated only when one of those can have changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reads {
    /// `event.*`.
    pub event: bool,
    /// `customer.traits`.
    pub traits: bool,
    /// `customer.scores` (every model).
    pub all_scores: bool,
    /// `customer.segments` (every segment).
    pub all_segments: bool,
    /// `last_step`, `previous_step`, `current_stage` or `channel`: changes with every event.
    pub latest: bool,
    /// `now`: changes with time.
    pub now: bool,
    /// The journey facts, in a stable order.
    pub facts: Vec<Fact>,
    /// Every `duration("…")` literal in the condition (µs): the instants where a `since(…)` comparison can flip.
    pub durations: Vec<i64>,
}

impl Reads {
    /// The steps the condition's facts are about.
    pub fn steps(&self) -> impl Iterator<Item = &str> {
        self.facts.iter().filter_map(Fact::step)
    }

    /// Models whose score the condition reads.
    pub fn models(&self) -> impl Iterator<Item = &str> {
        self.facts.iter().filter_map(|fact| match fact {
            Fact::Score { model } => Some(model.as_str()),
            _ => None,
        })
    }

    /// Segments whose membership the condition reads.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.facts.iter().filter_map(|fact| match fact {
            Fact::InSegment { name } => Some(name.as_str()),
            _ => None,
        })
    }

    /// Whether the value can change with time alone.
    pub fn time_dependent(&self) -> bool {
        self.now || self.facts.iter().any(Fact::changes_with_time)
    }
}

/// A condition that failed to compile: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    /// 1-based line and column (in characters) in the expression.
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

/// What a condition may refer to.
#[derive(Debug, Clone, Default)]
pub struct Vocabulary {
    /// Known step names; `None` accepts any step (nothing to check against yet).
    pub steps: Option<BTreeSet<String>>,
    /// Known model names; `None` accepts any.
    pub models: Option<BTreeSet<String>>,
    /// Segments the condition may read (those defined before it).
    pub segments: BTreeSet<String>,
    /// Whether `event` is bound where the condition is evaluated.
    pub event: bool,
    /// The customer attributes (`customer.attributes.NAME`, a list of values each) bound where the condition is
    /// evaluated; `None` where there are none (segments and triggers: only the catalogue derives attributes).
    pub attributes: Option<BTreeSet<String>>,
}

/// A compiled, checked condition.
#[derive(Debug)]
pub struct Condition {
    source: String,
    program: cel::Program,
    reads: Reads,
}

impl Condition {
    /// Compiles and checks `source`.
    pub fn compile(source: &str, vocabulary: &Vocabulary) -> Result<Condition, ExprError> {
        if source.trim().is_empty() {
            return Err(ExprError {
                line: 1,
                column: 1,
                message: "the condition is empty; write a CEL expression such as `count(\"Login Failed\", \"1h\") >= 2`".into(),
            });
        }
        let program = env().compile(source).map_err(|errors| {
            let first = errors.errors.first();
            let (line, column) = first
                .map(|error| (error.pos.0.max(1) as usize, error.pos.1.max(0) as usize + 1))
                .unwrap_or((1, 1));
            ExprError {
                line,
                column,
                message: first
                    .map(|error| format!("syntax error: {}", error.msg))
                    .unwrap_or_else(|| "syntax error".into()),
            }
        })?;
        let mut checker = Checker {
            source,
            info: program.source_info(),
            vocabulary,
            reads: Reads::default(),
            scope: Vec::new(),
        };
        let ty = checker.check(program.expression())?;
        if !matches!(ty, Ty::Bool | Ty::Dyn) {
            return Err(checker.error(
                program.expression(),
                format!(
                    "the condition gives {} where a boolean (true or false) is needed",
                    ty.name()
                ),
            ));
        }
        let mut reads = checker.reads;
        reads.facts.sort();
        reads.facts.dedup();
        reads.durations.sort_unstable();
        reads.durations.dedup();
        Ok(Condition {
            source: source.to_string(),
            program,
            reads,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn reads(&self) -> &Reads {
        &self.reads
    }

    /// Evaluates the condition in `bindings`: `Ok(true)` only for a boolean `true`.
    pub fn evaluate(&self, bindings: &Bindings) -> Result<bool, String> {
        match self.program.execute(&bindings.context) {
            Ok(Value::Bool(value)) => Ok(value),
            Ok(other) => Err(format!("the condition gave {other:?}, not a boolean")),
            Err(error) => Err(error.to_string()),
        }
    }
}

/// The CEL environment every condition compiles and runs in: the standard library.
fn env() -> &'static Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(Env::stdlib()))
}

/// The values one evaluation sees: built once per event (or timer) and shared by every condition evaluated then.
pub struct Bindings {
    context: Context<'static, 'static>,
}

/// The journey facts' values, by [`Fact::key`]; a fact missing from the map is an error when read (a step never
/// done, a score not yet computed).
pub type FactValues = HashMap<String, Value>;

/// The journey state a condition sees besides the facts.
#[derive(Debug, Clone, Default)]
pub struct Latest<'a> {
    pub last_step: Option<&'a str>,
    pub previous_step: Option<&'a str>,
    pub current_stage: Option<&'a str>,
    pub channel: Option<&'a str>,
}

impl Bindings {
    /// Binds `event` (when evaluating on one), `customer`, the latest step and channel, `now` (µs) and `facts`.
    pub fn new(
        event: Option<Value>,
        customer: Value,
        latest: &Latest<'_>,
        now: i64,
        facts: FactValues,
    ) -> Bindings {
        let mut context = Context::with_env(Arc::clone(env()));
        if let Some(event) = event {
            context.add_variable_from_value("event", event);
        }
        context.add_variable_from_value("customer", customer);
        let text = |value: Option<&str>| Value::String(Arc::new(value.unwrap_or("").to_string()));
        context.add_variable_from_value("last_step", text(latest.last_step));
        context.add_variable_from_value("previous_step", text(latest.previous_step));
        context.add_variable_from_value("current_stage", text(latest.current_stage));
        context.add_variable_from_value("channel", text(latest.channel));
        context.add_variable_from_value("now", timestamp_value(now));
        let facts = Arc::new(facts);
        for name in ["count", "did", "since", "days_since", "score", "in_segment"] {
            let facts = Arc::clone(&facts);
            let function = move |cel::extractors::Arguments(args): cel::extractors::Arguments| -> Result<Value, ExecutionError> {
                fact_call(name, &args, &facts)
            };
            // The names are not standard-library overloads, so this cannot fail.
            let _ = context.add_function(name, function);
        }
        Bindings { context }
    }
}

/// A journey function's value: looked up by the key its (literal) arguments make.
fn fact_call(name: &str, args: &[Value], facts: &FactValues) -> Result<Value, ExecutionError> {
    let text = |index: usize| match args.get(index) {
        Some(Value::String(value)) => Ok(value.as_str().to_string()),
        _ => Err(ExecutionError::function_error(
            name,
            "expects a string literal argument",
        )),
    };
    let first = text(0)?;
    let fact = match name {
        "count" => Fact::Count {
            step: first.clone(),
            window: match args.get(1) {
                None => None,
                Some(_) => Some(
                    parse_window(&text(1)?)
                        .map_err(|error| ExecutionError::function_error(name, error))?,
                ),
            },
        },
        "did" => Fact::Did {
            step: first.clone(),
        },
        "since" => Fact::Since {
            step: first.clone(),
        },
        "days_since" => Fact::DaysSince {
            step: first.clone(),
        },
        "score" => Fact::Score {
            model: first.clone(),
        },
        _ => Fact::InSegment {
            name: first.clone(),
        },
    };
    facts.get(&fact.key()).cloned().ok_or_else(|| {
        ExecutionError::function_error(
            name,
            match name {
                "score" => format!("no score of model '{first}' for this customer yet"),
                _ => format!("the customer never did '{first}'"),
            },
        )
    })
}

/// A CEL timestamp of `micros` since the epoch (UTC).
pub fn timestamp_value(micros: i64) -> Value {
    let time = chrono::DateTime::from_timestamp_micros(micros).unwrap_or_default();
    Value::Timestamp(time.fixed_offset())
}

/// A CEL duration of `micros`.
pub fn duration_value(micros: i64) -> Value {
    Value::Duration(chrono::Duration::microseconds(micros))
}

/// A CEL value of a JSON value (numbers: integers stay integers, others are doubles).
pub fn json_value(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => match n.as_u64() {
                Some(u) => Value::UInt(u),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
        },
        serde_json::Value::String(s) => Value::String(Arc::new(s.clone())),
        serde_json::Value::Array(items) => {
            Value::List(Arc::new(items.iter().map(json_value).collect()))
        }
        serde_json::Value::Object(object) => json_map(object),
    }
}

/// A CEL map of a JSON object.
pub fn json_map(object: &serde_json::Map<String, serde_json::Value>) -> Value {
    map_value(object.iter().map(|(k, v)| (k.clone(), json_value(v))))
}

/// A CEL map with string keys.
pub fn map_value(entries: impl IntoIterator<Item = (String, Value)>) -> Value {
    let map: HashMap<Key, Value> = entries
        .into_iter()
        .map(|(k, v)| (Key::String(Arc::new(k)), v))
        .collect();
    Value::Map(Map { map: Arc::new(map) })
}

/// A duration text (`90s`, `30m`, `2h`, `7d`, `1h 30m`) in µs; positive.
pub fn parse_window(text: &str) -> Result<i64, String> {
    let duration = humantime::parse_duration(text.trim()).map_err(|error| {
        format!("'{text}' is not a duration ({error}); write e.g. 30m, 2h or 7d")
    })?;
    let micros =
        i64::try_from(duration.as_micros()).map_err(|_| format!("'{text}' is too long"))?;
    if micros <= 0 {
        return Err(format!("'{text}' is not a positive duration"));
    }
    Ok(micros)
}

/// The closest of `candidates` to `name` (by edit distance, within a third of its length).
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = name.to_lowercase();
    candidates
        .into_iter()
        .map(|candidate| (edit_distance(&lower, &candidate.to_lowercase()), candidate))
        .filter(|(distance, candidate)| *distance <= (candidate.chars().count().max(3)) / 3)
        .min()
        .map(|(_, candidate)| candidate)
}

/// Edit distance with adjacent transpositions (optimal string alignment): `cuont` is one edit from `count`.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

/// The checker's types: CEL's, with `event` and `customer` as objects of known fields.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ty {
    Bool,
    Int,
    UInt,
    Double,
    Str,
    Bytes,
    Duration,
    Timestamp,
    Null,
    List,
    Map,
    Event,
    Customer,
    /// `customer.attributes`: a map of value lists whose keys the vocabulary knows.
    Attributes,
    Dyn,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Bool => "a boolean",
            Ty::Int => "an int",
            Ty::UInt => "a uint",
            Ty::Double => "a double",
            Ty::Str => "a string",
            Ty::Bytes => "bytes",
            Ty::Duration => "a duration",
            Ty::Timestamp => "a timestamp",
            Ty::Null => "null",
            Ty::List => "a list",
            Ty::Map => "a map",
            Ty::Event => "the event",
            Ty::Customer => "the customer",
            Ty::Attributes => "the customer's attributes",
            Ty::Dyn => "a value",
        }
    }

    fn numeric(self) -> bool {
        matches!(self, Ty::Int | Ty::UInt | Ty::Double)
    }
}

const EVENT_FIELDS: &[(&str, Ty)] = &[
    ("name", Ty::Str),
    ("type", Ty::Str),
    ("channel", Ty::Str),
    ("time", Ty::Timestamp),
    ("message_id", Ty::Str),
    ("user_id", Ty::Str),
    ("anonymous_id", Ty::Str),
    ("properties", Ty::Map),
    ("traits", Ty::Map),
    ("context", Ty::Map),
];

const CUSTOMER_FIELDS: &[(&str, Ty)] = &[
    ("id", Ty::Str),
    ("traits", Ty::Map),
    ("segments", Ty::List),
    ("scores", Ty::Map),
    ("identifiers", Ty::List),
    ("attributes", Ty::Attributes),
];

const VARIABLES: &[(&str, Ty)] = &[
    ("event", Ty::Event),
    ("customer", Ty::Customer),
    ("last_step", Ty::Str),
    ("previous_step", Ty::Str),
    ("current_stage", Ty::Str),
    ("channel", Ty::Str),
    ("now", Ty::Timestamp),
];

const JOURNEY_FUNCTIONS: &[&str] = &["count", "did", "since", "days_since", "score", "in_segment"];

/// Standard-library global functions and what they give.
const GLOBAL_FUNCTIONS: &[(&str, Ty)] = &[
    ("size", Ty::Int),
    ("int", Ty::Int),
    ("uint", Ty::UInt),
    ("double", Ty::Double),
    ("string", Ty::Str),
    ("bytes", Ty::Bytes),
    ("bool", Ty::Bool),
    ("timestamp", Ty::Timestamp),
    ("duration", Ty::Duration),
    ("type", Ty::Dyn),
    ("dyn", Ty::Dyn),
    ("matches", Ty::Bool),
    ("contains", Ty::Bool),
    ("startsWith", Ty::Bool),
    ("endsWith", Ty::Bool),
];

/// Standard-library member functions and what they give.
const MEMBER_FUNCTIONS: &[(&str, Ty)] = &[
    ("size", Ty::Int),
    ("contains", Ty::Bool),
    ("startsWith", Ty::Bool),
    ("endsWith", Ty::Bool),
    ("matches", Ty::Bool),
    ("getFullYear", Ty::Int),
    ("getMonth", Ty::Int),
    ("getDayOfYear", Ty::Int),
    ("getDayOfMonth", Ty::Int),
    ("getDate", Ty::Int),
    ("getDayOfWeek", Ty::Int),
    ("getHours", Ty::Int),
    ("getMinutes", Ty::Int),
    ("getSeconds", Ty::Int),
    ("getMilliseconds", Ty::Int),
];

struct Checker<'a> {
    source: &'a str,
    info: &'a cel::common::ast::SourceInfo,
    vocabulary: &'a Vocabulary,
    reads: Reads,
    /// Comprehension variables in scope.
    scope: Vec<String>,
}

impl Checker<'_> {
    fn error(&self, expr: &IdedExpr, message: impl Into<String>) -> ExprError {
        let mut offset = self
            .info
            .offset_for(expr.id)
            .map(|(start, _)| start as usize)
            .unwrap_or(0);
        // A call is recorded at its parenthesis; point at the function's name instead.
        if let Expr::Call(call) = &expr.expr {
            let before: String = self.source.chars().take(offset).collect();
            if self.source.chars().nth(offset) == Some('(')
                && before.ends_with(call.func_name.as_str())
            {
                offset -= call.func_name.chars().count();
            }
        }
        // Offsets count characters of the source.
        let mut line = 1;
        let mut column = 1;
        for (index, ch) in self.source.chars().enumerate() {
            if index >= offset {
                break;
            }
            if ch == '\n' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
        }
        ExprError {
            line,
            column,
            message: message.into(),
        }
    }

    fn check(&mut self, expr: &IdedExpr) -> Result<Ty, ExprError> {
        match &expr.expr {
            Expr::Unspecified => Ok(Ty::Dyn),
            Expr::Literal(literal) => Ok(match literal {
                LiteralValue::Boolean(_) => Ty::Bool,
                LiteralValue::Bytes(_) => Ty::Bytes,
                LiteralValue::Double(_) => Ty::Double,
                LiteralValue::Int(_) => Ty::Int,
                LiteralValue::Null => Ty::Null,
                LiteralValue::String(_) => Ty::Str,
                LiteralValue::UInt(_) => Ty::UInt,
            }),
            Expr::Ident(name) => self.ident(expr, name),
            Expr::Select(select) => {
                let operand = self.check(&select.operand)?;
                if operand == Ty::Attributes {
                    let known = self.vocabulary.attributes.as_ref();
                    if known.is_some_and(|names| !names.contains(&select.field)) {
                        let names = known.into_iter().flatten().map(String::as_str);
                        let hint = closest(&select.field, names.clone())
                            .map(|name| format!("did you mean `customer.attributes.{name}`? "))
                            .unwrap_or_default();
                        return Err(self.error(
                            expr,
                            format!(
                                "the catalogue defines no attribute `{}`: {hint}its attributes are {}",
                                select.field,
                                names.collect::<Vec<_>>().join(", ")
                            ),
                        ));
                    }
                    return Ok(if select.test { Ty::Bool } else { Ty::List });
                }
                let fields = match operand {
                    Ty::Event => EVENT_FIELDS,
                    Ty::Customer => CUSTOMER_FIELDS,
                    Ty::Map | Ty::Dyn => return Ok(if select.test { Ty::Bool } else { Ty::Dyn }),
                    other => {
                        return Err(self.error(
                            expr,
                            format!("{} has no fields (`.{}`)", other.name(), select.field),
                        ))
                    }
                };
                let Some((_, ty)) = fields.iter().find(|(name, _)| *name == select.field) else {
                    let what = if operand == Ty::Event {
                        "event"
                    } else {
                        "customer"
                    };
                    let names: Vec<&str> = fields.iter().map(|(name, _)| *name).collect();
                    let hint = closest(&select.field, names.iter().copied())
                        .map(|name| format!("did you mean `{what}.{name}`? "))
                        .unwrap_or_default();
                    return Err(self.error(
                        expr,
                        format!(
                            "`{what}` has no field `{}`: {hint}its fields are {}",
                            select.field,
                            names.join(", ")
                        ),
                    ));
                };
                if operand == Ty::Customer {
                    match select.field.as_str() {
                        "attributes" if self.vocabulary.attributes.is_none() => {
                            return Err(self.error(
                                expr,
                                "`customer.attributes` is known only in the catalogue's conditions (they are derived there from the customer's events); here, read `customer.traits` or the journey functions",
                            ))
                        }
                        "traits" => self.reads.traits = true,
                        "scores" => self.reads.all_scores = true,
                        "segments" => self.reads.all_segments = true,
                        _ => {}
                    }
                }
                Ok(if select.test { Ty::Bool } else { *ty })
            }
            Expr::Call(call) => self.call(expr, call),
            Expr::Comprehension(comprehension) => {
                self.check(&comprehension.iter_range)?;
                self.scope.push(comprehension.iter_var.clone());
                if let Some(second) = &comprehension.iter_var2 {
                    self.scope.push(second.clone());
                }
                self.scope.push(comprehension.accu_var.clone());
                let result = (|| {
                    self.check(&comprehension.accu_init)?;
                    self.check(&comprehension.loop_cond)?;
                    self.check(&comprehension.loop_step)?;
                    self.check(&comprehension.result)
                })();
                self.scope.pop();
                if comprehension.iter_var2.is_some() {
                    self.scope.pop();
                }
                self.scope.pop();
                result
            }
            Expr::List(list) => {
                for element in &list.elements {
                    self.check(element)?;
                }
                Ok(Ty::List)
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(entry) = &entry.expr {
                        self.check(&entry.key)?;
                        self.check(&entry.value)?;
                    }
                }
                Ok(Ty::Map)
            }
            Expr::Struct(structure) => Err(self.error(
                expr,
                format!(
                    "message construction (`{}{{…}}`) is not available in conditions",
                    structure.type_name
                ),
            )),
        }
    }

    fn ident(&mut self, expr: &IdedExpr, name: &str) -> Result<Ty, ExprError> {
        if self.scope.iter().any(|bound| bound == name) {
            return Ok(Ty::Dyn);
        }
        match VARIABLES.iter().find(|(known, _)| *known == name) {
            Some((_, Ty::Event)) if !self.vocabulary.event => Err(self.error(
                expr,
                "`event` is not available here: this condition is evaluated without an event (a segment, or a \
                 trigger on a timer, a segment entry or a score); use `last_step`, `channel` or a journey function",
            )),
            Some((known, ty)) => {
                match *known {
                    "event" => self.reads.event = true,
                    "last_step" | "previous_step" | "current_stage" | "channel" => {
                        self.reads.latest = true
                    }
                    "now" => self.reads.now = true,
                    _ => {}
                }
                Ok(*ty)
            }
            None => {
                let names = VARIABLES.iter().map(|(known, _)| *known);
                let hint = closest(name, names.clone())
                    .map(|known| format!("did you mean `{known}`? "))
                    .unwrap_or_default();
                Err(self.error(
                    expr,
                    format!(
                        "unknown name `{name}`: {hint}the names are {}",
                        names.collect::<Vec<_>>().join(", ")
                    ),
                ))
            }
        }
    }

    fn call(
        &mut self,
        expr: &IdedExpr,
        call: &cel::common::ast::CallExpr,
    ) -> Result<Ty, ExprError> {
        use cel::common::ast::operators as op;
        let name = call.func_name.as_str();
        if call.target.is_none() && JOURNEY_FUNCTIONS.contains(&name) {
            return self.journey_function(expr, name, &call.args);
        }
        let target = match &call.target {
            Some(target) => Some(self.check(target)?),
            None => None,
        };
        let mut args = Vec::with_capacity(call.args.len());
        for arg in &call.args {
            args.push(self.check(arg)?);
        }
        let arg = |index: usize| args.get(index).copied().unwrap_or(Ty::Dyn);
        match name {
            op::LOGICAL_AND | op::LOGICAL_OR | op::LOGICAL_NOT => {
                for (index, ty) in args.iter().enumerate() {
                    if !matches!(ty, Ty::Bool | Ty::Dyn) {
                        let word = match name {
                            op::LOGICAL_AND => "&&",
                            op::LOGICAL_OR => "||",
                            _ => "!",
                        };
                        return Err(self.error(
                            &call.args[index],
                            format!("`{word}` needs booleans, this is {}", ty.name()),
                        ));
                    }
                }
                Ok(Ty::Bool)
            }
            op::EQUALS | op::NOT_EQUALS | op::IN | op::NOT_STRICTLY_FALSE => Ok(Ty::Bool),
            op::LESS | op::LESS_EQUALS | op::GREATER | op::GREATER_EQUALS => {
                let (a, b) = (arg(0), arg(1));
                let comparable = a == Ty::Dyn
                    || b == Ty::Dyn
                    || (a.numeric() && b.numeric())
                    || (a == b
                        && matches!(
                            a,
                            Ty::Str | Ty::Bool | Ty::Duration | Ty::Timestamp | Ty::Bytes
                        ));
                if !comparable {
                    return Err(self.error(
                        expr,
                        format!("cannot compare {} with {}", a.name(), b.name()),
                    ));
                }
                Ok(Ty::Bool)
            }
            op::ADD | op::SUBSTRACT | op::MULTIPLY | op::DIVIDE | op::MODULO => {
                let (a, b) = (arg(0), arg(1));
                if a == Ty::Dyn || b == Ty::Dyn {
                    return Ok(Ty::Dyn);
                }
                let result = match (name, a, b) {
                    (_, x, y) if x == y && x.numeric() => Some(x),
                    (op::ADD, Ty::Str, Ty::Str) => Some(Ty::Str),
                    (op::ADD, Ty::List, Ty::List) => Some(Ty::List),
                    (op::ADD | op::SUBSTRACT, Ty::Duration, Ty::Duration) => Some(Ty::Duration),
                    (op::ADD | op::SUBSTRACT, Ty::Timestamp, Ty::Duration) => Some(Ty::Timestamp),
                    (op::ADD, Ty::Duration, Ty::Timestamp) => Some(Ty::Timestamp),
                    (op::SUBSTRACT, Ty::Timestamp, Ty::Timestamp) => Some(Ty::Duration),
                    _ => None,
                };
                result.ok_or_else(|| {
                    let hint = if a.numeric() && b.numeric() {
                        " (CEL does not mix number types: convert one with int() or double())"
                    } else {
                        ""
                    };
                    self.error(
                        expr,
                        format!("cannot combine {} with {}{hint}", a.name(), b.name()),
                    )
                })
            }
            op::NEGATE => match arg(0) {
                ty @ (Ty::Int | Ty::Double | Ty::Duration | Ty::Dyn) => Ok(ty),
                other => Err(self.error(expr, format!("cannot negate {}", other.name()))),
            },
            op::CONDITIONAL => {
                if !matches!(arg(0), Ty::Bool | Ty::Dyn) {
                    return Err(self.error(
                        &call.args[0],
                        format!("`? :` needs a boolean condition, this is {}", arg(0).name()),
                    ));
                }
                Ok(if arg(1) == arg(2) { arg(1) } else { Ty::Dyn })
            }
            op::INDEX | op::OPT_INDEX | op::OPT_SELECT => Ok(Ty::Dyn),
            _ => {
                let table = if target.is_some() {
                    MEMBER_FUNCTIONS
                } else {
                    GLOBAL_FUNCTIONS
                };
                if let Some((_, ty)) = table.iter().find(|(known, _)| *known == name) {
                    if name == "duration" {
                        if let Some(IdedExpr {
                            expr: Expr::Literal(LiteralValue::String(text)),
                            ..
                        }) = call.args.first()
                        {
                            let text = text.to_string();
                            let micros = cel_duration(&text)
                                .map_err(|message| self.error(&call.args[0], message))?;
                            self.reads.durations.push(micros);
                        }
                    }
                    return Ok(*ty);
                }
                let mut names: Vec<&str> = table.iter().map(|(known, _)| *known).collect();
                if target.is_none() {
                    names.extend_from_slice(JOURNEY_FUNCTIONS);
                }
                let hint = closest(name, names.iter().copied())
                    .map(|known| format!(" (did you mean `{known}`?)"))
                    .unwrap_or_default();
                Err(self.error(
                    expr,
                    if target.is_some() {
                        format!("unknown method `.{name}()`{hint}")
                    } else {
                        format!(
                            "unknown function `{name}`{hint}; the journey functions are {}",
                            JOURNEY_FUNCTIONS.join(", ")
                        )
                    },
                ))
            }
        }
    }

    fn journey_function(
        &mut self,
        expr: &IdedExpr,
        name: &str,
        args: &[IdedExpr],
    ) -> Result<Ty, ExprError> {
        let arity = if name == "count" { 1..=2 } else { 1..=1 };
        if !arity.contains(&args.len()) {
            let usage = match name {
                "count" => "count(\"Step\") or count(\"Step\", \"1h\")",
                "score" => "score(\"model\")",
                "in_segment" => "in_segment(\"segment\")",
                other => return Err(self.error(expr, format!("`{other}` takes one step name"))),
            };
            return Err(self.error(
                expr,
                format!("`{name}` takes {} arguments: {usage}", arity.end()),
            ));
        }
        let literal = |index: usize| -> Result<String, ExprError> {
            match &args[index].expr {
                Expr::Literal(LiteralValue::String(text)) => Ok(text.to_string()),
                _ => Err(self.error(
                    &args[index],
                    format!("`{name}` needs a string literal here (its value is read from the journey as it is defined)"),
                )),
            }
        };
        let first = literal(0)?;
        let fact = match name {
            "score" => {
                if let Some(models) = &self.vocabulary.models {
                    if !models.contains(&first) {
                        let hint = closest(&first, models.iter().map(String::as_str))
                            .map(|known| format!(" (did you mean '{known}'?)"))
                            .unwrap_or_default();
                        return Err(self.error(
                            &args[0],
                            format!(
                                "unknown model '{first}'{hint}; saved models: {}",
                                list(models)
                            ),
                        ));
                    }
                }
                Fact::Score { model: first }
            }
            "in_segment" => {
                if !self.vocabulary.segments.contains(&first) {
                    let hint = closest(&first, self.vocabulary.segments.iter().map(String::as_str))
                        .map(|known| format!(" (did you mean '{known}'?)"))
                        .unwrap_or_default();
                    return Err(self.error(
                        &args[0],
                        format!(
                            "unknown segment '{first}'{hint}: a condition reads segments defined before it ({})",
                            list(&self.vocabulary.segments)
                        ),
                    ));
                }
                Fact::InSegment { name: first }
            }
            _ => {
                self.known_step(&args[0], &first)?;
                match name {
                    "count" => {
                        let window = match args.get(1) {
                            None => None,
                            Some(arg) => {
                                let text = literal(1)?;
                                Some(
                                    parse_window(&text)
                                        .map_err(|message| self.error(arg, message))?,
                                )
                            }
                        };
                        Fact::Count {
                            step: first,
                            window,
                        }
                    }
                    "did" => Fact::Did { step: first },
                    "since" => Fact::Since { step: first },
                    _ => Fact::DaysSince { step: first },
                }
            }
        };
        let ty = match &fact {
            Fact::Count { .. } | Fact::DaysSince { .. } => Ty::Int,
            Fact::Did { .. } | Fact::InSegment { .. } => Ty::Bool,
            Fact::Since { .. } => Ty::Duration,
            Fact::Score { .. } => Ty::Double,
        };
        self.reads.facts.push(fact);
        Ok(ty)
    }

    fn known_step(&self, arg: &IdedExpr, step: &str) -> Result<(), ExprError> {
        let Some(steps) = &self.vocabulary.steps else {
            return Ok(());
        };
        if steps.contains(step) {
            return Ok(());
        }
        let hint = closest(step, steps.iter().map(String::as_str))
            .map(|known| format!(" (did you mean '{known}'?)"))
            .unwrap_or_default();
        Err(self.error(
            arg,
            format!(
                "unknown step '{step}'{hint}: no stored event has it; list a step not seen yet under `expect_steps`"
            ),
        ))
    }
}

fn list(names: &BTreeSet<String>) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// A CEL duration literal (`"2h"`, `"90m"`, `"1.5h"`, `"3600s"`) in µs, as `duration()` reads it.
fn cel_duration(text: &str) -> Result<i64, String> {
    match env().compile(&format!("duration({:?})", text)) {
        Ok(program) => match program.execute(&Context::with_env(Arc::clone(env()))) {
            Ok(Value::Duration(duration)) => duration
                .num_microseconds()
                .ok_or_else(|| format!("'{text}' is too long")),
            _ => Err(format!(
                "'{text}' is not a CEL duration: write a number and a unit, e.g. \"90m\", \"2h\" or \"86400s\""
            )),
        },
        Err(_) => Err(format!("'{text}' is not a CEL duration")),
    }
}
