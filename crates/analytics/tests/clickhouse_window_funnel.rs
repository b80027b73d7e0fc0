//! Replays ClickHouse's own `windowFunnel` test (`00632_aggregation_window_funnel`, in `../shared/data/clickhouse/`)
//! through Waymark's funnel: every `INSERT`ed row becomes an event whose columns are properties, every
//! `windowFunnel(window, modes…)(time, cond…)` becomes a [`Funnel`] with those modes and one step per condition,
//! `GROUP BY` picks the customer, and the printed result must equal ClickHouse 26.9's output for every statement.
//!
//! Times are ClickHouse's raw units read as µs, so windows keep their meaning (and `1e14 + 1` still fits).
//! The SQL understood is exactly what the test file uses; anything else fails the test loudly.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use waymark_analytics::{run, Condition, Funnel, FunnelMode, FunnelStep, Op};
use waymark_model::{JourneySet, PropertyColumnBuilder};

fn shared(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/clickhouse")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!(
            "{}: {error} (this test reads the shared ClickHouse reference in place)",
            path.display()
        )
    })
}

// ---------------------------------------------------------------------------------------------------------------
// Tokens

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Number(f64),
    Text(String),
    Symbol(String),
}

fn tokenize(sql: &str) -> Vec<Token> {
    let chars: Vec<char> = sql.chars().collect();
    let mut tokens = Vec::new();
    let mut at = 0;
    while at < chars.len() {
        let c = chars[at];
        if c.is_whitespace() {
            at += 1;
        } else if c == '\'' {
            let end = at
                + 1
                + chars[at + 1..]
                    .iter()
                    .position(|c| *c == '\'')
                    .expect("closed quote");
            tokens.push(Token::Text(chars[at + 1..end].iter().collect()));
            at = end + 1;
        } else if c == '`' {
            let end = at
                + 1
                + chars[at + 1..]
                    .iter()
                    .position(|c| *c == '`')
                    .expect("closed backquote");
            tokens.push(Token::Word(chars[at + 1..end].iter().collect()));
            at = end + 1;
        } else if c.is_ascii_digit() {
            let start = at;
            while at < chars.len() && (chars[at].is_ascii_alphanumeric() || chars[at] == '.') {
                at += 1;
            }
            let text: String = chars[start..at].iter().collect();
            tokens.push(Token::Number(
                text.parse().unwrap_or_else(|_| panic!("number {text}")),
            ));
        } else if c.is_alphabetic() || c == '_' {
            let start = at;
            while at < chars.len()
                && (chars[at].is_alphanumeric() || chars[at] == '_' || chars[at] == '.')
            {
                at += 1;
            }
            tokens.push(Token::Word(chars[start..at].iter().collect()));
        } else {
            let two: String = chars[at..(at + 2).min(chars.len())].iter().collect();
            if ["<=", ">=", "!=", "<>"].contains(&two.as_str()) {
                tokens.push(Token::Symbol(two));
                at += 2;
            } else {
                tokens.push(Token::Symbol(c.to_string()));
                at += 1;
            }
        }
    }
    tokens
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn new(sql: &str) -> Parser {
        Parser {
            tokens: tokenize(sql),
            at: 0,
        }
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Token {
        let token = self.tokens.get(self.at).cloned().expect("more tokens");
        self.at += 1;
        token
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn is_symbol(&self, symbol: &str) -> bool {
        matches!(self.peek(), Some(Token::Symbol(s)) if s == symbol)
    }

    fn eat_word(&mut self, word: &str) -> bool {
        let found = self.is_word(word);
        self.at += usize::from(found);
        found
    }

    fn eat_symbol(&mut self, symbol: &str) -> bool {
        let found = self.is_symbol(symbol);
        self.at += usize::from(found);
        found
    }

    fn expect_word(&mut self, word: &str) {
        assert!(
            self.eat_word(word),
            "expected `{word}` at {:?}",
            self.peek()
        );
    }

    fn expect_symbol(&mut self, symbol: &str) {
        assert!(
            self.eat_symbol(symbol),
            "expected `{symbol}` at {:?}",
            self.peek()
        );
    }

    fn name(&mut self) -> String {
        match self.next() {
            Token::Word(word) => word,
            other => panic!("expected a name, found {other:?}"),
        }
    }

    /// A literal: number (with `+`/`-` arithmetic as in `1e14 + 1`), string or null.
    fn literal(&mut self) -> Value {
        let mut value = match self.next() {
            Token::Number(number) => number,
            Token::Text(text) => return Value::String(text),
            Token::Word(word) if word.eq_ignore_ascii_case("null") => return Value::Null,
            other => panic!("expected a literal, found {other:?}"),
        };
        loop {
            if self.eat_symbol("+") {
                value += self.literal().as_f64().expect("numeric term");
            } else if self.eat_symbol("-") {
                value -= self.literal().as_f64().expect("numeric term");
            } else {
                break;
            }
        }
        if value.fract() == 0.0 && value.abs() < 9e15 {
            json!(value as i64)
        } else {
            json!(value)
        }
    }

    /// `a` or `toUInt32(a)`.
    fn column(&mut self) -> String {
        let name = self.name();
        if name.starts_with("to") && self.eat_symbol("(") {
            let inner = self.name();
            self.expect_symbol(")");
            inner
        } else {
            name
        }
    }

    fn op(&mut self) -> Op {
        match self.next() {
            Token::Symbol(symbol) => match symbol.as_str() {
                "=" => Op::Eq,
                "!=" | "<>" => Op::Ne,
                "<" => Op::Lt,
                "<=" => Op::Le,
                ">" => Op::Gt,
                ">=" => Op::Ge,
                other => panic!("unknown operator {other}"),
            },
            other => panic!("expected an operator, found {other:?}"),
        }
    }

    /// A boolean expression as a Waymark [`Condition`] over the row's columns.
    fn condition(&mut self) -> Condition {
        let mut parts = vec![self.conjunction()];
        while self.eat_word("or") {
            parts.push(self.conjunction());
        }
        if parts.len() == 1 {
            parts.pop().unwrap()
        } else {
            Condition::Any { any: parts }
        }
    }

    fn conjunction(&mut self) -> Condition {
        let mut parts = vec![self.comparison()];
        while self.eat_word("and") {
            parts.push(self.comparison());
        }
        if parts.len() == 1 {
            parts.pop().unwrap()
        } else {
            Condition::All { all: parts }
        }
    }

    fn comparison(&mut self) -> Condition {
        if self.eat_symbol("(") {
            let inner = self.condition();
            self.expect_symbol(")");
            return inner;
        }
        if self.eat_word("coalesce") {
            // COALESCE(col, fallback) = value: the column equals value, or is null when the fallback does.
            self.expect_symbol("(");
            let column = self.column();
            self.expect_symbol(",");
            let fallback = self.literal();
            self.expect_symbol(")");
            assert_eq!(self.op(), Op::Eq, "only COALESCE(…) = value is used");
            let value = self.literal();
            let equal = Condition::property(column.clone(), Op::Eq, value.clone());
            return if fallback == value {
                Condition::Any {
                    any: vec![Condition::property(column, Op::IsNull, Value::Null), equal],
                }
            } else {
                equal
            };
        }
        let column = self.column();
        if self.eat_word("is") {
            let negated = self.eat_word("not");
            self.expect_word("null");
            let op = if negated { Op::IsNotNull } else { Op::IsNull };
            return Condition::property(column, op, Value::Null);
        }
        let op = self.op();
        Condition::property(column, op, self.literal())
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Tables and statements

#[derive(Debug, Clone)]
struct Column {
    name: String,
    kind: String,
    default: Value,
}

#[derive(Debug, Default)]
struct Table {
    columns: Vec<Column>,
    rows: Vec<Vec<Value>>,
}

impl Table {
    fn index(&self, name: &str) -> usize {
        self.columns
            .iter()
            .position(|column| column.name == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    }

    /// A value as stored: DateTime strings become seconds since the epoch.
    fn store(&self, column: usize, value: Value) -> Value {
        match (&value, self.columns[column].kind.as_str()) {
            (Value::String(text), "DateTime") => {
                let time = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
                    .expect("DateTime literal");
                json!(time.and_utc().timestamp())
            }
            _ => value,
        }
    }
}

#[derive(Default)]
struct Database {
    tables: BTreeMap<String, Table>,
}

/// One `windowFunnel` query.
struct FunnelQuery {
    /// `select N = windowFunnel(...)`: print 1 when the level equals N.
    compare_with: Option<i64>,
    window: i64,
    modes: Vec<FunnelMode>,
    time: String,
    conditions: Vec<Condition>,
    table: String,
    filter: Option<Condition>,
    group_by: Option<String>,
    json_rows: bool,
}

impl Database {
    /// Runs one statement and returns what ClickHouse prints for it.
    fn execute(&mut self, sql: &str, checks: &mut usize) -> String {
        let mut parser = Parser::new(sql);
        if parser.eat_word("drop") {
            parser.expect_word("table");
            if parser.eat_word("if") {
                parser.expect_word("exists");
            }
            self.tables.remove(&parser.name());
            String::new()
        } else if parser.eat_word("create") {
            parser.expect_word("table");
            let name = parser.name();
            parser.expect_symbol("(");
            let mut table = Table::default();
            loop {
                let column = parser.name();
                let mut kind = parser.name();
                if parser.eat_symbol("(") {
                    kind = parser.name(); // Nullable(String)
                    parser.expect_symbol(")");
                }
                let default = if parser.eat_word("default") {
                    parser.literal()
                } else {
                    Value::Null
                };
                table.columns.push(Column {
                    name: column,
                    kind,
                    default,
                });
                if !parser.eat_symbol(",") {
                    break;
                }
            }
            parser.expect_symbol(")");
            self.tables.insert(name, table);
            String::new()
        } else if parser.eat_word("insert") {
            parser.expect_word("into");
            let name = parser.name();
            let table = self.tables.get_mut(&name).expect("table exists");
            let mut targets: Vec<usize> = (0..table.columns.len()).collect();
            if parser.eat_symbol("(") {
                targets.clear();
                loop {
                    let column = parser.name();
                    targets.push(table.index(&column));
                    if !parser.eat_symbol(",") {
                        break;
                    }
                }
                parser.expect_symbol(")");
            }
            let tuples = if parser.eat_word("values") {
                let mut tuples = Vec::new();
                while parser.eat_symbol("(") {
                    tuples.push(tuple(&mut parser));
                    parser.eat_symbol(",");
                }
                tuples
            } else {
                // SELECT data.1, data.2, … FROM (SELECT arrayJoin([(…), …]) data)
                while !parser.is_word("arrayJoin") {
                    parser.next();
                }
                parser.next();
                parser.expect_symbol("(");
                parser.expect_symbol("[");
                let mut tuples = Vec::new();
                while parser.eat_symbol("(") {
                    tuples.push(tuple(&mut parser));
                    parser.eat_symbol(",");
                }
                tuples
            };
            for values in tuples {
                assert_eq!(
                    values.len(),
                    targets.len(),
                    "a row of {name} has the wrong width"
                );
                let mut row: Vec<Value> = table
                    .columns
                    .iter()
                    .map(|column| column.default.clone())
                    .collect();
                for (target, value) in targets.iter().zip(values) {
                    row[*target] = table.store(*target, value);
                }
                table.rows.push(row);
            }
            String::new()
        } else if parser.eat_word("select") {
            if let Some(Token::Text(text)) = parser.peek().cloned() {
                return text + "\n";
            }
            let query = parse_funnel_query(&mut parser);
            self.run(&query, checks)
        } else {
            panic!("statement not understood: {sql}")
        }
    }

    fn run(&self, query: &FunnelQuery, checks: &mut usize) -> String {
        let table = &self.tables[&query.table];
        let time = table.index(&query.time);
        // All rows as one journey set (one journey per group, rows in insertion order, stably sorted by time), with
        // every column as a property.
        let group_of = |row: &Vec<Value>| -> i64 {
            query.group_by.as_ref().map_or(0, |column| {
                row[table.index(column)]
                    .as_i64()
                    .expect("numeric group key")
            })
        };
        let build = |rows: &[&Vec<Value>]| -> JourneySet {
            let mut groups: BTreeMap<i64, Vec<&Vec<Value>>> = BTreeMap::new();
            for row in rows {
                groups.entry(group_of(row)).or_default().push(row);
            }
            let mut set = JourneySet::from_journeys(groups.iter().map(|(group, rows)| {
                let mut events: Vec<(i64, &str, &str)> = rows
                    .iter()
                    .map(|row| (row[time].as_i64().expect("integer time"), "row", "sql"))
                    .collect();
                events.sort_by_key(|event| event.0);
                (group.to_string(), events)
            }));
            for (index, column) in table.columns.iter().enumerate() {
                let mut builder = PropertyColumnBuilder::new(column.name.clone());
                for rows in groups.values() {
                    let mut rows = rows.clone();
                    rows.sort_by_key(|row| row[time].as_i64());
                    for row in rows {
                        builder.push(Some(&row[index]));
                    }
                }
                set.properties.push(builder.finish());
            }
            set
        };
        let all: Vec<&Vec<Value>> = table.rows.iter().collect();
        let rows: Vec<&Vec<Value>> = match &query.filter {
            None => all,
            Some(filter) => {
                // WHERE through the same condition engine: one journey per row.
                let single = JourneySet::from_journeys(
                    all.iter()
                        .enumerate()
                        .map(|(index, _)| (index.to_string(), vec![(0, "row", "sql")])),
                );
                let mut single = single;
                for (index, column) in table.columns.iter().enumerate() {
                    let mut builder = PropertyColumnBuilder::new(column.name.clone());
                    all.iter().for_each(|row| builder.push(Some(&row[index])));
                    single.properties.push(builder.finish());
                }
                let compiled = filter.compile(&single).unwrap();
                all.iter()
                    .enumerate()
                    .filter(|(index, _)| compiled.matches(&single, *index))
                    .map(|(_, row)| *row)
                    .collect()
            }
        };
        let journeys = build(&rows);
        let funnel = Funnel {
            steps: query
                .conditions
                .iter()
                .enumerate()
                .map(|(index, condition)| FunnelStep {
                    name: format!("cond{}", index + 1),
                    condition: condition.clone(),
                    within_us: None,
                })
                .collect(),
            window_us: query.window,
            modes: query.modes.clone(),
            ..Funnel::new(&[], 0)
        };
        let prepared = funnel.prepare(&journeys).unwrap();
        let levels: Vec<(String, usize)> = (0..journeys.n_journeys())
            .map(|journey| {
                let range = journeys.offsets[journey]..journeys.offsets[journey + 1];
                (
                    journeys.customer_ids[journey].to_string(),
                    prepared.outcome(&journeys, range).level,
                )
            })
            .collect();
        // The aggregate report agrees with the per-customer levels, on one thread and on several.
        let report = run(&prepared, &journeys, 1);
        assert_eq!(report, run(&prepared, &journeys, 3));
        for (step, count) in report.counts().iter().enumerate() {
            let expected = levels.iter().filter(|(_, level)| *level > step).count() as u64;
            assert_eq!(*count, expected, "step {} count", step + 1);
        }
        *checks += 1;
        let mut out = String::new();
        for (group, level) in &levels {
            let level = *level as i64;
            let line = match (query.compare_with, &query.group_by, query.json_rows) {
                (Some(n), None, false) => format!("{}", i64::from(n == level)),
                (Some(n), None, true) => format!("[{}]", i64::from(n == level)),
                (None, Some(_), true) => format!("[{group}, {level}]"),
                (None, Some(_), false) => format!("{group}\t{level}"),
                _ => panic!("result shape not understood"),
            };
            out.push_str(&line);
            out.push('\n');
        }
        if levels.is_empty() && query.group_by.is_none() {
            out.push_str(if query.compare_with == Some(0) {
                "1\n"
            } else {
                "0\n"
            });
        }
        out
    }
}

fn tuple(parser: &mut Parser) -> Vec<Value> {
    let mut values = Vec::new();
    loop {
        values.push(parser.literal());
        if !parser.eat_symbol(",") {
            break;
        }
    }
    parser.expect_symbol(")");
    values
}

fn parse_funnel_query(parser: &mut Parser) -> FunnelQuery {
    let mut compare_with = None;
    if let Some(Token::Number(number)) = parser.peek().cloned() {
        parser.next();
        parser.expect_symbol("=");
        compare_with = Some(number as i64);
    } else if !parser.is_word("windowFunnel") {
        parser.name(); // the group column, printed first
        parser.expect_symbol(",");
    }
    parser.expect_word("windowFunnel");
    parser.expect_symbol("(");
    let window = parser.literal().as_i64().expect("integer window");
    let mut modes = Vec::new();
    while parser.eat_symbol(",") {
        match parser.next() {
            Token::Text(mode) => {
                modes.push(FunnelMode::parse(&mode).unwrap_or_else(|| panic!("mode {mode}")))
            }
            other => panic!("expected a mode, found {other:?}"),
        }
    }
    parser.expect_symbol(")");
    parser.expect_symbol("(");
    let time = parser.column();
    let mut conditions = Vec::new();
    while parser.eat_symbol(",") {
        conditions.push(parser.condition());
    }
    parser.expect_symbol(")");
    if parser.eat_word("as") {
        parser.name();
    }
    parser.expect_word("from");
    let table = parser.name();
    let filter = parser.eat_word("where").then(|| parser.condition());
    let mut group_by = None;
    if parser.eat_word("group") {
        parser.expect_word("by");
        group_by = Some(parser.name());
    }
    if parser.eat_word("order") {
        parser.expect_word("by");
        parser.name();
    }
    let json_rows = parser.eat_word("format") && parser.name() == "JSONCompactEachRow";
    assert!(
        parser.peek().is_none(),
        "unparsed tail: {:?}",
        &parser.tokens[parser.at..]
    );
    FunnelQuery {
        compare_with,
        window,
        modes,
        time,
        conditions,
        table,
        filter,
        group_by,
        json_rows,
    }
}

/// The statements of a SQL script, split on `;` outside quotes, comments dropped.
fn statements(script: &str) -> Vec<String> {
    let text: String = script
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        if c == '\'' {
            quoted = !quoted;
        }
        if c == ';' && !quoted {
            if !current.trim().is_empty() {
                statements.push(current.trim().to_string());
            }
            current.clear();
        } else {
            current.push(c);
        }
    }
    statements
}

/// Each statement's expected output, read from an echo-format reference (each statement followed by its output).
fn expected_outputs(reference: &str, statements: &[String]) -> Vec<String> {
    let mut cursor = 0;
    let mut spans = Vec::new();
    for statement in statements {
        let start = cursor
            + reference[cursor..]
                .find(statement.as_str())
                .unwrap_or_else(|| panic!("statement not echoed in the reference: {statement}"));
        let end = start + statement.len() + 1; // and its `;`
        spans.push((start, end));
        cursor = end;
    }
    spans
        .iter()
        .enumerate()
        .map(|(index, (_, end))| {
            let next = spans.get(index + 1).map_or(reference.len(), |span| span.0);
            reference[*end..next].trim_start_matches('\n').to_string()
        })
        .collect()
}

#[test]
fn every_statement_matches_clickhouse_26_9() {
    let script = statements(&shared("00632_aggregation_window_funnel.derived.sql"));
    let expected = expected_outputs(
        &shared("00632_aggregation_window_funnel.chdb-26.9.reference"),
        &script,
    );
    let mut database = Database::default();
    let (mut checks, mut mismatches) = (0, Vec::new());
    for (statement, expected) in script.iter().zip(&expected) {
        let got = database.execute(statement, &mut checks);
        if &got != expected {
            mismatches.push(format!("{statement}\n  expected:\n{expected}  got:\n{got}"));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} statements differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert_eq!(checks, 47, "every windowFunnel query of the file was run");
}

#[test]
fn upstream_reference_differs_only_in_the_allow_reentry_block() {
    // The upstream reference predates the documented allow_reentry semantics; everything else must agree with it.
    let script = statements(&shared("00632_aggregation_window_funnel.derived.sql"));
    let expected = expected_outputs(
        &shared("00632_aggregation_window_funnel.reference"),
        &script,
    );
    let mut database = Database::default();
    let mut checks = 0;
    let mut differing = Vec::new();
    for (statement, expected) in script.iter().zip(&expected) {
        let got = database.execute(statement, &mut checks);
        if statement.to_lowercase().starts_with("select") && &got != expected {
            differing.push(statement.clone());
        }
    }
    assert!(
        !differing.is_empty() && differing.len() <= 7,
        "{differing:#?}"
    );
    assert!(
        differing
            .iter()
            .all(|statement| statement.contains("allow_reentry")
                || statement.contains("funnel_test_ecommerce")),
        "{differing:#?}"
    );
}
