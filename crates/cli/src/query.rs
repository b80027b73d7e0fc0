//! `waymark query …`: the analyses as tables for people and as the documented JSON with `--json`. The flags map
//! one-to-one onto the HTTP API's request fields.

use crate::{print_json, UsageError};
use anyhow::Result;
use clap::{Args, Subcommand};
use waymark_analytics::{
    Attribution, Breakdown, Condition, CountBy, Direction, Exclusion, FlowsReport, FunnelMode,
    FunnelReport, NodeKind, StepRule,
};
use waymark_engine::query::{
    self as queries, parse_condition, AnchorSpec, FlowsRequest, FrictionRequest, FunnelRequest,
    ProcessMapRequest, QueryError, RetentionRequest, Scope, VariantsRequest,
};
use waymark_store::Store;

/// Filters every analysis takes.
#[derive(Args, Debug, Clone, Default)]
pub struct ScopeArgs {
    /// Only events at or after this time (2026-03-01 or RFC 3339).
    #[arg(long, global = true)]
    from: Option<String>,
    /// Only events before this time.
    #[arg(long, global = true)]
    to: Option<String>,
    /// Only these channels (comma-separated or repeated).
    #[arg(long = "channel", value_delimiter = ',', global = true)]
    channels: Vec<String>,
    /// Only these steps (`*` patterns; comma-separated or repeated).
    #[arg(long = "only-step", value_delimiter = ',', global = true)]
    only_steps: Vec<String>,
    /// Only events whose property satisfies this (PROP=VALUE, PROP!=VALUE, PROP>=N, PROP~TEXT, PROP?, !PROP);
    /// repeat for several.
    #[arg(long = "where", global = true)]
    conditions: Vec<String>,
    /// Split journeys into instances after this much inactivity (30m, 2d).
    #[arg(long, global = true)]
    split_gap: Option<String>,
    /// Start a new journey instance at each occurrence of this step (an entry event).
    #[arg(long, global = true)]
    split_before: Option<String>,
    /// End the journey instance after each occurrence of this step (a goal event).
    #[arg(long, global = true)]
    split_after: Option<String>,
    /// Rename or group steps: PATTERN=NEW (`*` patterns; NEW may use {property}), e.g. "page:Product: *=Product page";
    /// repeat for several, the first match wins.
    #[arg(long = "step-rule", global = true)]
    step_rules: Vec<String>,
    /// Leave out events of these steps (`*` patterns; comma-separated or repeated).
    #[arg(long = "exclude-step", value_delimiter = ',', global = true)]
    exclude_steps: Vec<String>,
}

impl ScopeArgs {
    fn scope(&self) -> Result<Scope> {
        Ok(Scope {
            from: self.from.clone(),
            to: self.to.clone(),
            channels: self.channels.clone(),
            steps: self.only_steps.clone(),
            conditions: self
                .conditions
                .iter()
                .map(|text| parse_condition(text).map_err(usage))
                .collect::<Result<_, _>>()?,
            split_gap: self.split_gap.clone(),
            split_before: self.split_before.clone().map(Condition::step),
            split_after: self.split_after.clone().map(Condition::step),
            step_rules: self
                .exclude_steps
                .iter()
                .map(|pattern| {
                    Ok(StepRule {
                        pattern: Some(pattern.clone()),
                        regex: None,
                        step: None,
                        exclude: true,
                    })
                })
                .chain(self.step_rules.iter().map(|text| {
                    let (pattern, step) = text.rsplit_once('=').ok_or_else(|| {
                        UsageError(format!(
                            "--step-rule {text:?}: write PATTERN=NEW, e.g. \"page:Product: *=Product page\""
                        ))
                    })?;
                    Ok(StepRule {
                        pattern: Some(pattern.trim().to_string()),
                        regex: None,
                        step: Some(step.trim().to_string()),
                        exclude: false,
                    })
                }))
                .collect::<Result<_, UsageError>>()?,
        })
    }
}

#[derive(Subcommand)]
pub enum QueryCommand {
    /// Directly-follows graph of steps: counts and mean / median / p90 time per edge, step, start and end counts.
    /// Example: `waymark query process-map --edges 20`
    ProcessMap {
        /// Show only the N most frequent edges in the table (JSON always has all).
        #[arg(long, default_value_t = 30)]
        edges: usize,
    },
    /// Distinct step sequences with counts, share and cumulative coverage.
    /// Example: `waymark query variants --top 10`
    Variants {
        /// Keep the K most frequent variants.
        #[arg(long, default_value_t = 20)]
        top: usize,
    },
    /// Where customers go after a step (or how they got to it), level by level, with drop-off.
    /// Example: `waymark query flows --after "Login Attempted" --depth 4`
    Flows {
        /// The anchor step: flows run forward from its first occurrence.
        #[arg(long, conflicts_with = "before", required_unless_present = "before")]
        after: Option<String>,
        /// The anchor step: flows run backward from its last occurrence.
        #[arg(long)]
        before: Option<String>,
        /// Levels to follow.
        #[arg(long, default_value_t = 4)]
        depth: usize,
        /// Steps shown per level; the rest are (other).
        #[arg(long, default_value_t = 6)]
        top: usize,
        /// Count a step repeated back to back once.
        #[arg(long)]
        collapse_repeats: bool,
    },
    /// Where customers get stuck, ranked by impact: dead ends, loops, errors, channel jumps, repeat contacts, slow
    /// and stuck steps, negative feedback — each explained, with its customers.
    /// Example: `waymark query friction --goal "Order Completed" --top 10`
    Friction {
        /// The goal step (repeatable). Default: the usual goal names found in the data (Order Completed, …).
        #[arg(long = "goal")]
        goals: Vec<String>,
        /// A step's standard time, as STEP=DURATION (repeatable), e.g. "Installation Scheduled=72h".
        #[arg(long = "standard-time")]
        standard_times: Vec<String>,
        /// Findings to show.
        #[arg(long, default_value_t = 15)]
        top: usize,
        /// Properties checked for where a finding concentrates (comma-separated).
        #[arg(long, value_delimiter = ',')]
        segment_by: Vec<String>,
    },
    /// Cohorts by the period of a start step, and how many come back (a return step) in each later period.
    /// Example: `waymark query retention --start "Order Completed" --return "page:Home" --period week`
    Retention {
        /// The step that puts a customer in a cohort (first occurrence).
        #[arg(long)]
        start: String,
        /// The step that counts as coming back.
        #[arg(long = "return")]
        returning: String,
        /// day, week (Monday-based) or month, in UTC.
        #[arg(long, default_value = "week")]
        period: String,
        /// Periods after the cohort's own.
        #[arg(long, default_value_t = 8)]
        periods: usize,
    },
    /// How many customers get through ordered steps within a window, where the rest stop, and what they do next.
    /// Example: `waymark query funnel --steps "Added to Cart,Checkout Started,Order Completed" --window 7d`
    Funnel {
        /// The steps, in order (comma-separated; `*` patterns allowed).
        #[arg(long, value_delimiter = ',', required = true)]
        steps: Vec<String>,
        /// Conversion window from step 1, inclusive (90s, 2h, 7d).
        #[arg(long, default_value = "7d")]
        window: String,
        /// ClickHouse windowFunnel modes: strict_order, strict_deduplication, strict_increase, strict_once,
        /// allow_reentry; or any_order (comma-separated or repeated).
        #[arg(long = "mode", value_delimiter = ',')]
        modes: Vec<String>,
        /// Break the funnel down by this property.
        #[arg(long)]
        breakdown: Option<String>,
        /// Which step's value the breakdown uses: first, last or a step number.
        #[arg(long, default_value = "first")]
        attribution: String,
        /// Values shown in the breakdown before the rest are summed as (other).
        #[arg(long, default_value_t = 10)]
        breakdown_top: usize,
        /// Count customers (default) or attempts (each step-1 event starts one).
        #[arg(long, default_value = "customer")]
        count_by: String,
        /// Customers who do this step between step 1 and the last step lose that attempt (repeatable).
        #[arg(long = "exclude")]
        exclusions: Vec<String>,
        /// Customers listed per drop-off.
        #[arg(long, default_value_t = 20)]
        drill_down: usize,
    },
}

fn usage(error: QueryError) -> anyhow::Error {
    match error {
        QueryError::Invalid(message) => UsageError(message).into(),
        other => other.into(),
    }
}

pub fn query(
    store: &Store,
    analysis: QueryCommand,
    scope: &ScopeArgs,
    json_output: bool,
) -> Result<()> {
    let filter = scope.scope()?;
    match analysis {
        QueryCommand::ProcessMap { edges } => {
            let map = queries::process_map(store, &ProcessMapRequest { filter }).map_err(usage)?;
            if json_output {
                print_json(&serde_json::to_value(&map)?);
                return Ok(());
            }
            println!(
                "{} journeys, {} events, {} steps, {} edges",
                map.cases,
                map.events,
                map.steps.len(),
                map.edges.len()
            );
            println!();
            println!(
                "{:>9}  {:>8}  {:>8}  {:>8}  edge",
                "count", "mean", "median", "p90"
            );
            for edge in map.edges.iter().take(edges) {
                println!(
                    "{:>9}  {:>8}  {:>8}  {:>8}  {} → {}",
                    edge.count,
                    human_duration(edge.mean_secs),
                    human_duration(edge.median_secs),
                    human_duration(edge.p90_secs),
                    edge.from,
                    edge.to
                );
            }
            if map.edges.len() > edges {
                println!(
                    "… {} more edges (--edges N, or --json for all)",
                    map.edges.len() - edges
                );
            }
        }
        QueryCommand::Variants { top } => {
            let variants = queries::variants(
                store,
                &VariantsRequest {
                    top: Some(top),
                    filter,
                },
            )
            .map_err(usage)?;
            if json_output {
                print_json(&serde_json::to_value(&variants)?);
                return Ok(());
            }
            println!(
                "{} journeys, {} variants",
                variants.cases, variants.n_variants
            );
            println!();
            println!("{:>8}  {:>6}  {:>8}  steps", "count", "share", "coverage");
            for variant in &variants.variants {
                println!(
                    "{:>8}  {:>5.1}%  {:>7.1}%  {}",
                    variant.count,
                    variant.share * 100.0,
                    variant.coverage * 100.0,
                    variant.steps.join(" → ")
                );
            }
        }
        QueryCommand::Flows {
            after,
            before,
            depth,
            top,
            collapse_repeats,
        } => {
            let (anchor, direction) = match (after, before) {
                (Some(step), _) => (step, Direction::Forward),
                (None, Some(step)) => (step, Direction::Backward),
                (None, None) => {
                    return Err(UsageError("give --after STEP or --before STEP".into()).into())
                }
            };
            let mut request = FlowsRequest::new(&anchor, direction);
            request.depth = depth;
            request.top = top;
            request.collapse_repeats = collapse_repeats;
            request.filter = filter;
            let report = queries::flows(store, &request).map_err(usage)?;
            if json_output {
                print_json(&serde_json::to_value(&report)?);
            } else {
                print_flows(&report, &anchor);
            }
        }
        QueryCommand::Retention {
            start,
            returning,
            period,
            periods,
        } => {
            let period = match period.as_str() {
                "day" | "daily" => waymark_analytics::Period::Day,
                "week" | "weekly" => waymark_analytics::Period::Week,
                "month" | "monthly" => waymark_analytics::Period::Month,
                other => {
                    return Err(
                        UsageError(format!("--period {other:?}: use day, week or month")).into(),
                    )
                }
            };
            let request = RetentionRequest {
                start: AnchorSpec::Name(start),
                returning: AnchorSpec::Name(returning),
                period,
                periods,
                filter,
            };
            let report = queries::retention(store, &request).map_err(usage)?;
            if json_output {
                print_json(&serde_json::to_value(&report)?);
            } else {
                print_retention(&report);
            }
        }
        QueryCommand::Friction {
            goals,
            standard_times,
            top,
            segment_by,
        } => {
            let request = FrictionRequest {
                goals,
                standard_times: standard_times
                    .iter()
                    .map(|text| {
                        text.rsplit_once('=')
                            .map(|(step, time)| (step.trim().to_string(), time.trim().to_string()))
                            .ok_or_else(|| UsageError(format!("--standard-time {text:?}: write STEP=DURATION, e.g. \"Installation Scheduled=72h\"")))
                    })
                    .collect::<Result<_, _>>()?,
                segment_by: (!segment_by.is_empty()).then_some(segment_by),
                top: Some(top),
                filter,
                ..FrictionRequest::default()
            };
            let report = queries::friction(store, &request).map_err(usage)?;
            if json_output {
                print_json(&serde_json::to_value(&report)?);
            } else {
                print_friction(&report);
            }
        }
        QueryCommand::Funnel {
            steps,
            window,
            modes,
            breakdown,
            attribution,
            breakdown_top,
            count_by,
            exclusions,
            drill_down,
        } => {
            let mut request = FunnelRequest::new(
                &steps.iter().map(String::as_str).collect::<Vec<_>>(),
                &window,
            );
            request.modes = modes
                .iter()
                .map(|mode| {
                    FunnelMode::parse(mode).ok_or_else(|| {
                        UsageError(format!(
                            "--mode {mode:?}: use strict_order, strict_deduplication, strict_increase, strict_once, allow_reentry or any_order"
                        ))
                    })
                })
                .collect::<Result<_, _>>()?;
            request.count_by = match count_by.as_str() {
                "customer" | "customers" => CountBy::Customer,
                "attempt" | "attempts" => CountBy::Attempt,
                other => return Err(UsageError(format!("--count-by {other:?}: use customer or attempt (for journey instances, add --split-gap)")).into()),
            };
            request.breakdown = breakdown
                .map(|property| -> Result<Breakdown> {
                    let attribution = match attribution.as_str() {
                        "first" | "first_touch" => Attribution::FirstTouch,
                        "last" | "last_touch" => Attribution::LastTouch,
                        other => Attribution::Step(
                            other
                                .trim_start_matches("step")
                                .trim_start_matches(':')
                                .parse()
                                .map_err(|_| {
                                    UsageError(format!(
                                        "--attribution {other:?}: use first, last or a step number"
                                    ))
                                })?,
                        ),
                    };
                    Ok(Breakdown {
                        property,
                        attribution,
                        top: breakdown_top,
                    })
                })
                .transpose()?;
            request.exclusions = exclusions
                .iter()
                .map(|step| Exclusion {
                    condition: waymark_analytics::Condition::step(step.clone()),
                    after: 1,
                    before: None,
                })
                .collect();
            request.drill_down = drill_down;
            request.filter = filter;
            let report = queries::funnel(store, &request).map_err(usage)?;
            if json_output {
                print_json(&serde_json::to_value(&report)?);
            } else {
                print_funnel(&report, &window);
            }
        }
    }
    Ok(())
}

fn print_funnel(report: &FunnelReport, window: &str) {
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
    println!(
        "Funnel of {} {} ({}), window {window}",
        report.total, report.units, modes
    );
    println!();
    let width = report
        .steps
        .iter()
        .map(|step| step.name.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "  #  {:<width$}  {:>9}  {:>6}  {:>9}  {:<20}  {:>8}  {:>8}",
        "step", "reached", "of 1st", "from prev", "", "median", "p90"
    );
    for (index, step) in report.steps.iter().enumerate() {
        let bar_len = (step.conversion * 20.0).round() as usize;
        let (median, p90) =
            step.time_to_convert
                .as_ref()
                .map_or((String::new(), String::new()), |timing| {
                    (
                        human_duration(timing.median_secs),
                        human_duration(timing.p90_secs),
                    )
                });
        println!(
            "  {:>1}  {:<width$}  {:>9}  {:>5.1}%  {:>8.1}%  {:<20}  {:>8}  {:>8}",
            index + 1,
            step.name,
            step.count,
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
    print_notes(&report.warnings);
    if !drops.is_empty() {
        println!();
        println!("Where they stopped, and what they did next:");
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
            println!(
                "  after {} {}: {} stopped — next: {}",
                index + 1,
                step.name,
                step.dropped,
                next.join(", ")
            );
            if let Some(first) = step.dropped_customers.first() {
                println!(
                    "      e.g. {first} (waymark identity show {first:?}; --json lists {})",
                    step.dropped_customers.len()
                );
            }
        }
    }
    if let Some(breakdown) = &report.breakdown {
        println!();
        let attribution = match breakdown.attribution {
            Attribution::FirstTouch => "first touch".to_string(),
            Attribution::LastTouch => "last touch".to_string(),
            Attribution::Step(step) => format!("at step {step}"),
        };
        println!(
            "By {} ({attribution}); conversion, then customers per step:",
            breakdown.property
        );
        for group in &breakdown.groups {
            let counts: Vec<String> = group.counts.iter().map(u64::to_string).collect();
            println!(
                "  {:<24} {:>6.1}%  {}",
                group.value,
                group.conversion * 100.0,
                counts.join(" → ")
            );
        }
    }
}

/// A report's warnings, under its table.
fn print_notes(warnings: &[String]) {
    if !warnings.is_empty() {
        println!();
    }
    for warning in warnings {
        println!("Note: {warning}");
    }
}

fn print_retention(report: &waymark_analytics::RetentionReport) {
    println!(
        "Retention of {} customers in {} cohorts (by {}; period 0 is the cohort's own, after starting)",
        report.customers,
        report.cohorts.len(),
        format!("{:?}", report.period).to_lowercase()
    );
    println!();
    print!("  {:<10}  {:>9}", "cohort", "customers");
    for k in 0..=report.periods {
        print!("  {:>5}", format!("+{k}"));
    }
    println!();
    for cohort in &report.cohorts {
        print!("  {:<10}  {:>9}", cohort.cohort, cohort.customers);
        for rate in &cohort.rates {
            print!("  {:>4.0}%", rate * 100.0);
        }
        println!();
    }
    print!("  {:<10}  {:>9}", "all", report.customers);
    for rate in &report.overall {
        print!("  {:>4.0}%", rate * 100.0);
    }
    println!();
    print_notes(&report.warnings);
}

fn print_friction(report: &waymark_analytics::FrictionReport) {
    println!(
        "Friction across {} customers (goal: {}; {:.1}% reach it). Top {} of {} findings by impact:",
        report.customers,
        report.goals.join(" or "),
        report.goal_rate * 100.0,
        report.findings.len(),
        report.candidates
    );
    for (rank, finding) in report.findings.iter().enumerate() {
        println!();
        println!(
            "{:>2}. {}   [impact {:.0}, {} customers, goal rate {:.0}% vs {:.0}%]",
            rank + 1,
            finding.title,
            finding.impact,
            finding.customers,
            finding.goal_rate * 100.0,
            finding.others_goal_rate * 100.0
        );
        for line in wrap(&finding.explanation, 100) {
            println!("    {line}");
        }
        if !finding.example_customers.is_empty() {
            println!(
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
}

/// Splits `text` into lines of at most `width` characters at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
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

fn print_flows(report: &FlowsReport, anchor: &str) {
    let (verb, level_name) = match report.direction {
        Direction::Forward => ("after", "step +"),
        Direction::Backward => ("before", "step -"),
    };
    println!(
        "Flows {verb} {anchor}: {} customers, {} levels",
        report.customers, report.depth
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
        println!();
        println!("  {level_name}{level}");
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
                        link.count
                    )
                })
                .collect();
            let marker = if node.kind == NodeKind::DropOff {
                "✕ "
            } else {
                ""
            };
            println!(
                "    {:>8}  {:>5.1}%  {:<28}  {marker}{}",
                node.count,
                share * 100.0,
                "█".repeat((share * 28.0).round() as usize),
                node.step,
            );
            if level > 1 && !from.is_empty() && node.kind != NodeKind::DropOff {
                println!(
                    "                      {:<28}    from {}",
                    "",
                    from.join(", ")
                );
            }
        }
    }
    print_notes(&report.warnings);
}

/// `90s`, `14m`, `3.5h`, `2.1d`: a duration a person reads at a glance.
fn human_duration(secs: f64) -> String {
    match secs {
        s if s < 90.0 => format!("{s:.0}s"),
        s if s < 5_400.0 => format!("{:.0}m", s / 60.0),
        s if s < 172_800.0 => format!("{:.1}h", s / 3_600.0),
        s => format!("{:.1}d", s / 86_400.0),
    }
}
