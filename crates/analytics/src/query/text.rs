//! Reports as tables for people: what `waymark query` prints without `--json`. Pure text, no IO.

use crate::{
    Attribution, Direction, FlowsReport, FrictionReport, FunnelReport, NodeKind, RetentionReport,
};
use serde_json::Value;
use std::fmt::Write;

/// `writeln!` into a `String`, which cannot fail.
macro_rules! outln {
    ($out:expr) => {{
        let _ = writeln!($out);
    }};
    ($out:expr, $($arg:tt)*) => {{
        let _ = writeln!($out, $($arg)*);
    }};
}

/// `write!` into a `String`.
macro_rules! outw {
    ($out:expr, $($arg:tt)*) => {{
        let _ = write!($out, $($arg)*);
    }};
}

/// The line under a table cut at `rows`: how many `noun` are left out and how to see them.
pub fn more(out: &mut String, total: usize, rows: usize, noun: &str) {
    if total > rows {
        outln!(
            out,
            "… {} more {noun} (--rows N, or --json for all)",
            total - rows
        );
    }
}

/// Any report without a table of its own: its fields, one per line, nested lists and objects indented.
pub fn generic(report: &Value) -> String {
    let mut out = String::new();
    generic_into(&mut out, report, 0);
    out
}

fn generic_into(out: &mut String, value: &Value, depth: usize) {
    let indent = "  ".repeat(depth);
    match value {
        Value::Object(fields) => {
            for (name, field) in fields {
                match field {
                    Value::Object(_) | Value::Array(_) => {
                        outln!(out, "{indent}{name}:");
                        generic_into(out, field, depth + 1);
                    }
                    scalar => outln!(out, "{indent}{name}: {}", scalar_text(scalar)),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::Object(_) | Value::Array(_) => {
                        outln!(out, "{indent}-");
                        generic_into(out, item, depth + 1);
                    }
                    scalar => outln!(out, "{indent}- {}", scalar_text(scalar)),
                }
            }
        }
        scalar => outln!(out, "{indent}{}", scalar_text(scalar)),
    }
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

pub fn funnel(report: &FunnelReport, window: &str) -> String {
    let mut out = String::new();
    let modes = if report.modes.is_empty() {
        "ordered".to_string()
    } else {
        report
            .modes
            .iter()
            .map(|mode| {
                serde_json::to_value(mode)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    outln!(
        out,
        "Funnel of {} {} ({}), window {window}",
        thousands(report.total),
        report.units,
        modes
    );
    out.push('\n');
    let width = report
        .steps
        .iter()
        .map(|step| step.name.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    outln!(
        out,
        "  #  {:<width$}  {:>9}  {:>6}  {:>9}  {:<20}  {:>8}  {:>8}",
        "step",
        "reached",
        "of 1st",
        "from prev",
        "",
        "median",
        "p90"
    );
    for (index, step) in report.steps.iter().enumerate() {
        let bar_len = (step.conversion * 20.0).round() as usize;
        let (median, p90) = step
            .time_to_convert
            .as_ref()
            .map_or((String::new(), String::new()), |timing| {
                (duration(timing.median_secs), duration(timing.p90_secs))
            });
        outln!(
            out,
            "  {:>1}  {:<width$}  {:>9}  {:>5.1}%  {:>8.1}%  {:<20}  {:>8}  {:>8}",
            index + 1,
            step.name,
            thousands(step.count),
            step.conversion * 100.0,
            step.step_conversion * 100.0,
            "█".repeat(bar_len),
            median,
            p90,
        );
    }
    let drops: Vec<_> = report
        .steps
        .iter()
        .enumerate()
        .filter(|(_, step)| step.dropped > 0)
        .collect();
    notes(&mut out, &report.warnings);
    if !drops.is_empty() {
        out.push('\n');
        outln!(out, "Where they stopped, and what they did next:");
        for (index, step) in drops {
            let next: Vec<String> = step
                .next_steps
                .iter()
                .take(4)
                .map(|next| {
                    format!(
                        "{} {:.0}%",
                        next.step,
                        100.0 * next.count as f64 / step.dropped as f64
                    )
                })
                .collect();
            outln!(
                out,
                "  after {} {}: {} stopped within the window; their next event: {}",
                index + 1,
                step.name,
                thousands(step.dropped),
                next.join(", ")
            );
            let next_name = report
                .steps
                .get(index + 1)
                .map_or("", |next| next.name.as_str());
            let last = report
                .steps
                .last()
                .filter(|_| index + 2 < report.steps.len());
            if step.next_step_later > 0 {
                outln!(
                    out,
                    "      {} of them did {next_name} later, outside the window or the funnel's order",
                    thousands(step.next_step_later)
                );
            }
            if let Some(last) = last.filter(|_| step.last_step_later > 0) {
                outln!(
                    out,
                    "      {} of them reached {} another way (not counted as converted)",
                    thousands(step.last_step_later),
                    last.name
                );
            }
            if let Some(first) = step.dropped_customers.first() {
                outln!(
                    out,
                    "      e.g. {first} (waymark identity show {first:?}; --json lists {})",
                    step.dropped_customers.len()
                );
            }
        }
    }
    if let Some(breakdown) = &report.breakdown {
        out.push('\n');
        let attribution = match breakdown.attribution {
            Attribution::FirstTouch => "first touch".to_string(),
            Attribution::LastTouch => "last touch".to_string(),
            Attribution::Step(step) => format!("at step {step}"),
        };
        outln!(
            out,
            "By {} ({attribution}); conversion, then customers per step:",
            breakdown.property
        );
        for group in &breakdown.groups {
            let counts: Vec<String> = group.counts.iter().copied().map(thousands).collect();
            outln!(
                out,
                "  {:<24} {:>6.1}%  {}",
                group.value,
                group.conversion * 100.0,
                counts.join(" → ")
            );
        }
    }
    out
}

/// A report's warnings, under its table.
pub fn notes(out: &mut String, warnings: &[String]) {
    if !warnings.is_empty() {
        out.push('\n');
    }
    for warning in warnings {
        outln!(out, "Note: {warning}");
    }
}

pub fn retention(report: &RetentionReport) -> String {
    let mut out = String::new();
    outln!(
        out,
        "Retention of {} {} in {} cohorts (by {}{}; period 0 is the cohort's own, after starting)",
        thousands(report.customers),
        if report.mode == crate::RetentionMode::Recurring {
            "cohort memberships"
        } else {
            "customers"
        },
        report.cohorts.len(),
        format!("{:?}", report.period).to_lowercase(),
        if report.mode == crate::RetentionMode::Recurring {
            ", recurring: a cohort per period a customer starts in"
        } else {
            ", first time"
        }
    );
    out.push('\n');
    outw!(out, "  {:<10}  {:>9}", "cohort", "customers");
    for k in 0..=report.periods {
        outw!(out, "  {:>5}", format!("+{k}"));
    }
    out.push('\n');
    for cohort in &report.cohorts {
        outw!(
            out,
            "  {:<10}  {:>9}",
            cohort.cohort,
            thousands(cohort.customers)
        );
        for (k, rate) in cohort.rates.iter().enumerate() {
            if k <= cohort.observed_periods {
                outw!(out, "  {:>4.0}%", rate * 100.0);
            } else {
                outw!(out, "  {:>5}", "");
            }
        }
        out.push('\n');
    }
    outw!(out, "  {:<10}  {:>9}", "all", thousands(report.customers));
    for rate in &report.overall {
        match rate {
            Some(rate) => outw!(out, "  {:>4.0}%", rate * 100.0),
            None => outw!(out, "  {:>5}", "–"),
        }
    }
    out.push('\n');
    outln!(
        out,
        "  (blank: periods the data does not reach yet; \"all\" counts only the cohorts it reaches)"
    );
    notes(&mut out, &report.warnings);
    out
}

pub fn friction(report: &FrictionReport) -> String {
    let mut out = String::new();
    outln!(
        out,
        "Friction across {} customers (goal: {}; {:.1}% reach it; as of {}). Top {} of {} findings by harm (goals lost + extra contacts + customers beyond the norm):",
        thousands(report.customers),
        report.goals.join(" or "),
        report.goal_rate * 100.0,
        report.as_of,
        report.findings.len(),
        report.candidates
    );
    for (rank, finding) in report.findings.iter().enumerate() {
        out.push('\n');
        // The customer count, unless the headline already says it.
        let customers = thousands(finding.customers);
        let mut notes = Vec::new();
        if !finding.headline.contains(&format!("{customers} customer")) {
            notes.push(format!("{customers} customers"));
        }
        if finding.harm.is_empty() {
            notes.push("no measurable harm".to_string());
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!("   [{}]", notes.join("; "))
        };
        outln!(out, "{:>2}. {}{notes}", rank + 1, finding.headline);
        for line in wrap(&finding.explanation, 100) {
            outln!(out, "    {line}");
        }
        if !finding.example_customers.is_empty() {
            outln!(
                out,
                "    customers: {}",
                finding
                    .example_customers
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    out
}

/// Splits `text` into lines of at most `width` characters at spaces.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

pub fn flows(report: &FlowsReport, anchor: &str) -> String {
    let mut out = String::new();
    let (verb, level_name) = match report.direction {
        Direction::Forward => ("after", "step +"),
        Direction::Backward => ("before", "step -"),
    };
    outln!(
        out,
        "Flows {verb} {anchor}: {} customers, {} levels",
        thousands(report.customers),
        report.depth
    );
    for level in 1..=report.depth as u32 {
        let nodes: Vec<_> = report
            .nodes
            .iter()
            .filter(|node| node.level == level)
            .collect();
        if nodes.is_empty() {
            break;
        }
        out.push('\n');
        outln!(out, "  {level_name}{level}");
        let level_total: u64 = nodes.iter().map(|node| node.count).sum();
        for node in nodes {
            let share = node.count as f64 / level_total.max(1) as f64;
            let from: Vec<String> = report
                .links
                .iter()
                .filter(|link| link.level + 1 == level && link.target == node.id)
                .take(2)
                .map(|link| {
                    format!(
                        "{} {}",
                        link.source.split_once(':').map_or("", |(_, step)| step),
                        thousands(link.count)
                    )
                })
                .collect();
            let marker = if node.kind == NodeKind::DropOff {
                "✕ "
            } else {
                ""
            };
            outln!(
                out,
                "    {:>8}  {:>5.1}%  {:<28}  {marker}{}",
                thousands(node.count),
                share * 100.0,
                "█".repeat((share * 28.0).round() as usize),
                node.step,
            );
            if level > 1 && !from.is_empty() && node.kind != NodeKind::DropOff {
                outln!(
                    out,
                    "                      {:<28}    from {}",
                    "",
                    from.join(", ")
                );
            }
        }
    }
    notes(&mut out, &report.warnings);
    out
}

/// A count with its thousands separated, as the UI prints it: 16,827.
pub fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// `90s`, `14m`, `3.5h`, `2.1d`: a duration a person reads at a glance.
pub fn duration(secs: f64) -> String {
    match secs {
        s if s < 90.0 => format!("{s:.0}s"),
        s if s < 5_400.0 => format!("{:.0}m", s / 60.0),
        s if s < 172_800.0 => format!("{:.1}h", s / 3_600.0),
        s => format!("{:.1}d", s / 86_400.0),
    }
}
