//! `waymark query …`: every analysis of the engine's registry as a subcommand, its flags derived from the
//! request's fields and turned into the same JSON request the HTTP API takes (parsed by the same code, so both
//! accept exactly the same values); tables for people, the documented JSON with `--json`.

use crate::{print_json, UsageError};
use anyhow::Result;
use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches, Subcommand};
use waymark_engine::registry::{self, FlagArity, ANALYSES};
use waymark_engine::{Engine, Scope};

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
    /// Rows shown per table (--json always has all).
    #[arg(long, global = true, default_value_t = 20, visible_alias = "edges")]
    rows: usize,
    /// Rename or group steps: PATTERN=NEW (`*` patterns; NEW may use {property}), e.g. "page:Product: *=Product page";
    /// repeat for several, the first match wins.
    #[arg(long = "step-rule", global = true)]
    step_rules: Vec<String>,
    /// Leave out events of these steps (`*` patterns; comma-separated or repeated).
    #[arg(long = "exclude-step", value_delimiter = ',', global = true)]
    exclude_steps: Vec<String>,
    /// Include test traffic (customers of `waymark simulate` runs), left out by default.
    #[arg(long, global = true)]
    test_traffic: bool,
    /// Keep identity calls (identify, alias, group) as journey steps, left out by default.
    #[arg(long, global = true)]
    identity_steps: bool,
    /// Keep a web page and the app screen of the same name as two steps (page:X, screen:X); one step by default.
    #[arg(long, global = true)]
    split_platforms: bool,
    /// Collapse repeats in every analysis: an event of the same step as the one before it is left out (A A B reads
    /// A B; the filter's `collapse_repeats`).
    #[arg(long = "no-repeats", global = true)]
    collapse_repeats: bool,
}

impl ScopeArgs {
    fn scope(&self) -> Result<Scope> {
        use waymark_engine::registry::scope_parts::{parse_condition, step_condition, StepRule};
        Ok(Scope {
            from: self.from.clone(),
            to: self.to.clone(),
            channels: self.channels.clone(),
            steps: self.only_steps.clone(),
            conditions: self
                .conditions
                .iter()
                .map(|text| parse_condition(text).map_err(|error| UsageError(format!("--where: {error}"))))
                .collect::<Result<_, _>>()?,
            test_traffic: self.test_traffic,
            identity_steps: self.identity_steps,
            split_platforms: self.split_platforms,
            collapse_repeats: self.collapse_repeats,
            split_gap: self.split_gap.clone(),
            split_before: self.split_before.clone().map(step_condition),
            split_after: self.split_after.clone().map(step_condition),
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

/// `waymark query NAME [flags]`: one subcommand per registered analysis (and a clear error for any other name).
#[derive(Debug, Clone)]
pub struct QueryCommand {
    name: String,
    /// (flag name, values) as given on the command line.
    given: Vec<(String, Vec<String>)>,
}

fn flag_id(name: &str) -> String {
    format!("analysis-{name}")
}

impl FromArgMatches for QueryCommand {
    fn from_arg_matches(matches: &ArgMatches) -> Result<QueryCommand, clap::Error> {
        let Some((name, sub)) = matches.subcommand() else {
            return Err(clap::Error::raw(
                clap::error::ErrorKind::MissingSubcommand,
                "name an analysis: waymark query NAME (see waymark query --help)",
            ));
        };
        let Ok(entry) = registry::analysis(name) else {
            return Ok(QueryCommand {
                name: name.to_string(),
                given: Vec::new(),
            });
        };
        let mut given = Vec::new();
        for flag in entry.flags() {
            let id = flag_id(&flag.name);
            match flag.arity {
                FlagArity::Switch => {
                    if sub.get_flag(&id) {
                        given.push((flag.name.clone(), Vec::new()));
                    }
                }
                _ => {
                    if let Some(values) = sub.get_many::<String>(&id) {
                        given.push((flag.name.clone(), values.cloned().collect()));
                    }
                }
            }
        }
        Ok(QueryCommand {
            name: name.to_string(),
            given,
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = QueryCommand::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Subcommand for QueryCommand {
    fn augment_subcommands(command: Command) -> Command {
        let mut command = command
            .subcommand_required(true)
            .allow_external_subcommands(true);
        for entry in ANALYSES {
            let mut sub = Command::new(entry.name()).about(format!(
                "{} Example: `waymark query {} {}`",
                entry.help(),
                entry.name(),
                entry.example()
            ));
            for flag in entry.flags() {
                let arg = Arg::new(flag_id(&flag.name))
                    .long(flag.name.clone())
                    .help(flag.help.clone());
                let arg = match flag.arity {
                    FlagArity::Switch => arg.action(ArgAction::SetTrue),
                    FlagArity::One => arg.action(ArgAction::Set).value_name("VALUE"),
                    FlagArity::List => arg
                        .action(ArgAction::Append)
                        .value_delimiter(',')
                        .value_name("A,B"),
                    FlagArity::Repeated => arg.action(ArgAction::Append).value_name("VALUE"),
                };
                sub = sub.arg(arg);
            }
            command = command.subcommand(sub);
        }
        command
    }

    fn augment_subcommands_for_update(command: Command) -> Command {
        QueryCommand::augment_subcommands(command)
    }

    fn has_subcommand(name: &str) -> bool {
        registry::analysis(name).is_ok()
    }
}

/// The `Examples:` block of `waymark query --help`, from the registry.
pub fn examples() -> String {
    let mut text = String::from("Examples:");
    for entry in ANALYSES {
        text.push_str(&format!(
            "\n  waymark query {} {}",
            entry.name(),
            entry.example()
        ));
    }
    text
}

pub fn query(
    engine: &Engine,
    command: QueryCommand,
    scope: &ScopeArgs,
    json_output: bool,
) -> Result<()> {
    let entry = registry::analysis(&command.name).map_err(usage)?;
    let filter = scope.scope()?;
    let mut given = command.given.clone();
    // `--blueprint FILE`: a blueprint file (TOML or JSON) given in full, read here (the server never reads files
    // a request names).
    for (name, values) in &mut given {
        if name == "blueprint" {
            for value in values.iter_mut() {
                let path = std::path::Path::new(value.as_str());
                let is_file = path.extension().is_some_and(|e| e == "toml" || e == "json");
                if is_file || path.is_file() {
                    let blueprint = crate::blueprint::read_file(path)?;
                    *value = serde_json::to_string(&blueprint)?;
                }
            }
        }
    }
    let request =
        registry::request_from_flags(&entry.flags(), &given, Some(&filter)).map_err(usage)?;
    let ran = entry
        .run(engine, request, (!json_output).then_some(scope.rows))
        .map_err(usage)?;
    if json_output {
        print_json(&ran.json);
    } else {
        for note in &ran.notes {
            eprintln!("note: {note}");
        }
        print!("{}", ran.text.unwrap_or_default());
    }
    Ok(())
}

/// An engine error: the user's fault exits 2, with its message as it is.
pub fn usage(error: waymark_engine::Error) -> anyhow::Error {
    if error.is_user_fault() {
        UsageError(error.to_string()).into()
    } else {
        error.into()
    }
}
