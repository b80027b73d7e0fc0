//! `waymark`: the command line. Thin glue: parse flags, resolve the configuration (defaults → TOML file →
//! `WAYMARK_*` environment → flags), run one command, map failures to exit codes (0 ok, 2 bad usage or input,
//! 1 anything else).

mod blueprint;
mod catalogue;
mod config;
mod customer;
mod files;
mod identity;
mod keys;
mod model;
mod query;
mod rules;
mod serve;
mod simulate;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use config::Effective;
use indicatif::{ProgressBar, ProgressStyle};
use model::ModelCommand;
use query::{QueryCommand, ScopeArgs};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use waymark_engine::demo::{Business, DemoConfig};
use waymark_engine::import::{ImportFormat, ImportOptions};
use waymark_engine::{Engine, ReportOptions};

/// mimalloc instead of the system allocator: import and ingest allocate many short-lived maps and strings, and
/// glibc's malloc spent about 30 % of an import's CPU time in its own bookkeeping (measured with `perf record`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its place in `mi_option_e`, `mimalloc.h`; the bindings name no constant).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory goes back to the OS after 10 s instead of mimalloc's 1 s. Imports and compaction free and
/// allocate hundreds of MB every second; returned pages came back zeroed by the kernel, which was a fifth of the
/// store writer's time in a 10M-row import. Memory freed for good is still returned, 10 s later.
fn keep_freed_memory_longer() {
    // SAFETY: sets one of mimalloc's tuning options, which it reads whenever it considers purging.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 10_000) };
}

#[derive(Parser)]
#[command(
    name = "waymark",
    version,
    about = "Customer journey analytics and journey management engine"
)]
struct Cli {
    /// Data directory of the journey store.
    #[arg(
        long,
        global = true,
        env = "WAYMARK_DATA",
        default_value = "./waymark-data"
    )]
    data: PathBuf,
    /// Configuration file (TOML). Default: `waymark.toml` in the data directory, if present.
    #[arg(long, global = true, env = "WAYMARK_CONFIG")]
    config: Option<PathBuf>,
    /// Machine-readable JSON on stdout instead of tables and progress bars.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "WAYMARK_LISTEN")]
    listen: Option<String>,
    /// Accepted write key (repeat for several). Default: from the config file, else one is generated and printed.
    #[arg(long = "write-key", env = "WAYMARK_WRITE_KEYS", value_delimiter = ',')]
    write_keys: Vec<String>,
    /// Do not build the UI's journey views in the background at start (benchmarks use this so nothing else runs).
    #[arg(long)]
    no_warm_up: bool,
    /// The clock trigger timers follow: `wall` (production), or `event-time` (the latest event's time, for
    /// replaying history through the collector).
    #[arg(long, env = "WAYMARK_RULES_CLOCK", default_value = "wall", value_parser = ["wall", "event-time"])]
    rules_clock: String,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, env = "WAYMARK_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "WAYMARK_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Connections served at once; one more is answered 503 and closed. Default 1024.
    #[arg(long, env = "WAYMARK_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Time a client has to send a request's head, and to start the next one on a kept-alive connection.
    #[arg(long, env = "WAYMARK_HEADER_TIMEOUT", value_parser = humantime::parse_duration, default_value = "10s")]
    header_timeout: std::time::Duration,
    /// Time a client has to send a request's body (408 after it).
    #[arg(long, env = "WAYMARK_BODY_TIMEOUT", value_parser = humantime::parse_duration, default_value = "60s")]
    body_timeout: std::time::Duration,
    /// Requests a second per read key (bursts of twice that); 0 is unlimited. Default 100.
    #[arg(long, env = "WAYMARK_RATE_LIMIT_READ")]
    rate_limit_read: Option<u32>,
    /// Requests a second per admin key; 0 is unlimited. Default 50.
    #[arg(long, env = "WAYMARK_RATE_LIMIT_ADMIN")]
    rate_limit_admin: Option<u32>,
    /// Requests a second per write key; 0 (the default) is unlimited, since one write key carries every
    /// customer's events.
    #[arg(long, env = "WAYMARK_RATE_LIMIT_WRITE")]
    rate_limit_write: Option<u32>,
}

// Parsed once per run; the query filters make one variant larger than the rest, which costs nothing here.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Serve the collector, API and UI.
    Serve(ServeArgs),
    /// Generate a demo business (the smart-home retailer, or a fibre broadband provider), ingest it, then serve
    /// it; a store without models gets the starter models (P(goal) within 7d, P(stuck) within 1d), trained beside
    /// the server (before exiting with --no-serve).
    Demo {
        #[command(flatten)]
        serve: ServeArgs,
        /// `retail` (docs/demo.md) or `telecom` (docs/telecom.md).
        #[arg(long, default_value = "retail")]
        business: waymark_engine::demo::Business,
        /// Number of customers (about 40 events each).
        #[arg(long, default_value_t = 50_000)]
        customers: usize,
        /// Random seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Ingest only; do not serve.
        #[arg(long)]
        no_serve: bool,
        /// Plant more truth for analyses to find (retail only; docs/demo.md): `intervention` (a checkout-reminder
        /// trigger with a holdout, decided live as the demo arrives: `waymark rules lift`), `incident` (Android
        /// login failures jump for one day), or both, comma-separated.
        #[arg(long, default_value = "")]
        plant: waymark_engine::demo::Plant,
        /// Add a scenario's personas (the YAML `waymark simulate` runs) to the demo as ordinary customers,
        /// starting at the scenario's `start` (default: the demo's first day).
        #[arg(long)]
        scenario: Option<PathBuf>,
    },
    /// Write the demo data set to a JSON Lines file (`.gz` to compress), for import elsewhere.
    Generate {
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 50_000)]
        customers: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// `demo` (the retailer, Segment JSON Lines), `telecom` (the broadband provider, Segment JSON Lines) or
        /// `zipf` (flat benchmark journeys as Parquet: heavy-tailed lengths, 50 Zipf-distributed steps; see
        /// --events).
        #[arg(long, default_value = "demo")]
        shape: String,
        /// Events to generate with --shape zipf (1M, 10M, 100M or a number).
        #[arg(long, default_value = "1M")]
        events: String,
    },
    /// Import events from CSV, JSON Lines, Parquet or XES (optionally .gz).
    Import {
        /// Files to import, in order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// csv, jsonl, parquet or xes (default: from the file name).
        #[arg(long)]
        format: Option<String>,
        /// Column holding the customer / case id.
        #[arg(long)]
        customer: Option<String>,
        /// Column holding the step / activity name.
        #[arg(long)]
        step: Option<String>,
        /// Column holding the time.
        #[arg(long)]
        time: Option<String>,
        /// Column holding the channel.
        #[arg(long)]
        channel: Option<String>,
        /// Channel for rows that name none (e.g. call_center).
        #[arg(long)]
        default_channel: Option<String>,
        /// Keep only these columns as properties (repeat); default keeps every other column.
        #[arg(long = "property")]
        properties: Vec<String>,
        /// Record bad rows as failed events and continue.
        #[arg(long)]
        skip_invalid: bool,
    },
    /// Export every event to Parquet, in journey order.
    Export {
        #[arg(long)]
        out: PathBuf,
    },
    /// Write the overview, friction, moments of truth, attribution, journey map, process map and funnel as one
    /// self-contained HTML file (for e-mail: no server, no network).
    /// Example: `waymark report --out journeys.html --funnel-steps "Added to Cart,Checkout Started,Order Completed"`
    Report {
        #[arg(long)]
        out: PathBuf,
        /// The goal step (repeatable; default: the first usual goal name the data has, e.g. Order Completed).
        #[arg(long = "goal")]
        goals: Vec<String>,
        /// Funnel steps, in order (default: the most common first step, then the goal).
        #[arg(long, value_delimiter = ',')]
        funnel_steps: Vec<String>,
        /// Funnel window.
        #[arg(long, default_value = "7d")]
        window: String,
        /// The journey map's anchor step (default: the most common first step).
        #[arg(long)]
        anchor: Option<String>,
    },
    /// Predict what in-flight journeys will do: evaluate, train, list and score models of the next step, the
    /// goal, getting stuck and the remaining time.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// Journey management definitions (segments and triggers): check, apply, show, dry-run, and the trigger
    /// delivery log. Example: `waymark rules check rules.toml && waymark rules dry-run rules.toml --since 7d`
    Rules {
        #[command(subcommand)]
        command: rules::RulesCommand,
    },
    /// Designed journeys (blueprints) saved in the data directory: list, show, save a TOML or JSON file,
    /// delete, and trace one customer's journey against one. `waymark query conformance --blueprint NAME`
    /// compares every journey with it. Example: `waymark blueprint save purchase.toml`
    Blueprint {
        #[command(subcommand)]
        command: blueprint::BlueprintCommand,
    },
    /// The content and offers next best action ranks (catalogue.toml): check, apply, show.
    /// `waymark customer nba ID` ranks them for one customer. Example: `waymark catalogue apply catalogue.toml`
    Catalogue {
        #[command(subcommand)]
        command: catalogue::CatalogueCommand,
    },
    /// Play customer: run a scenario's personas (YAML: "an Android owner fails to sign in twice, opens the chat,
    /// calls") through the real ingest path into a sandbox with this store's definitions (rules, catalogue,
    /// blueprints, models); the report follows each simulated customer step by step — what was offered, which
    /// triggers fired, where the journey left the blueprint. Webhooks are journaled, not sent; this store is not
    /// touched. Example: `waymark simulate examples/scenarios/android-sign-in.yaml`
    Simulate {
        /// The scenario (YAML).
        scenario: PathBuf,
        /// The sandbox data directory (new or empty; kept for `waymark --data DIR …`). Default: a new directory
        /// under the system's temporary directory.
        #[arg(long)]
        sandbox: Option<PathBuf>,
        /// Start from no definitions instead of this store's.
        #[arg(long)]
        empty: bool,
        /// Play the scenario against this running server instead (`http://127.0.0.1:8080`), in real time (a
        /// wait takes as long as it says), as test traffic that its analyses leave out.
        #[arg(long)]
        server: Option<String>,
        /// The server's write key (with --server).
        #[arg(long, env = "WAYMARK_WRITE_KEY")]
        write_key: Option<String>,
        /// A read key for the server's answers (with --server; not needed on an open loopback server).
        #[arg(long, env = "WAYMARK_READ_KEY")]
        read_key: Option<String>,
    },
    /// Keys and their roles: create, list and revoke the keys the server accepts (write: collect; read:
    /// analyses, customers, the UI; admin: everything). Example: `waymark keys create --role read --name "CX team"`
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// A customer's data: export everything held about it, or delete it everywhere (GDPR access and erasure).
    /// Example: `waymark customer export ann@example.com --out ann.json`
    Customer {
        #[command(subcommand)]
        command: customer::CustomerCommand,
    },
    /// Inspect and correct the identity graph.
    Identity {
        #[command(subcommand)]
        command: IdentityCommand,
    },
    /// List failed (refused) events with their reasons.
    Failed {
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Run a journey analysis (tables by default, `--json` for the documented JSON, the same as the HTTP API's).
    #[command(after_help = query::examples())]
    Query {
        #[command(subcommand)]
        analysis: QueryCommand,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Attribution over a path table in ChannelAttribution's format (`path;total_conversions;total_conversion_value;
    /// total_null`, touchpoints joined by `>`): first, last, linear, position-based and Markov removal effects.
    /// For the store's own journeys use `waymark query attribution`.
    /// Example: `waymark attribution --paths Data.csv --order 2`
    Attribution {
        /// The path table (`;` or `,` separated, with a header).
        #[arg(long)]
        paths: PathBuf,
        /// The Markov chain's order (1 to 4): a state is the last ORDER touchpoints.
        #[arg(long, default_value_t = 1)]
        order: usize,
        /// Include the chain's transition matrix (with --json).
        #[arg(long)]
        transition_matrix: bool,
        /// Touchpoints shown in the table (--json always has all).
        #[arg(long, default_value_t = 20)]
        rows: usize,
    },
    /// Counts of events, customers, segments and bytes.
    Stats,
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum IdentityCommand {
    /// A customer's identifiers and merge history.
    Show { identifier: String },
    /// Every merge edge with its provenance.
    Edges,
    /// Force two identifiers into one customer.
    Merge { a: String, b: String },
    /// Undo merge edge EDGE (see `identity show` or `identity edges`).
    Unmerge { edge: u32 },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration (secrets redacted).
    Check(ServeArgs),
}

#[cfg(unix)]
fn default_sigpipe() {
    // SAFETY: runs first thing in `main`, before any other thread; it only sets the signal's disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn default_sigpipe() {}

/// A failure caused by the user's input or usage: exit code 2.
#[derive(Debug)]
struct UsageError(String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn main() {
    keep_freed_memory_longer();
    let cli = Cli::parse();
    // A closed pipe (`waymark query … | head`) ends a command quietly, as it does any Unix tool, instead of a panic at
    // the next line written. Serving keeps Rust's default (the signal ignored, an error per write), so that a client
    // hanging up never ends the server.
    if !matches!(cli.command, Command::Serve(_) | Command::Demo { .. }) {
        default_sigpipe();
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WAYMARK_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let code = match run(cli) {
        Ok(()) => 0,
        Err(error) => {
            let usage = error
                .chain()
                .any(|cause| cause.is::<UsageError>() || is_input_error(cause));
            eprintln!("error: {}", error_line(&error));
            if usage {
                2
            } else {
                1
            }
        }
    };
    std::process::exit(code);
}

/// The error and its causes on one line, leaving out a cause whose text is already there (errors that print their
/// source as well as return it would otherwise say the same thing twice).
fn error_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn is_input_error(cause: &(dyn std::error::Error + 'static)) -> bool {
    cause
        .downcast_ref::<waymark_engine::Error>()
        .is_some_and(waymark_engine::Error::is_user_fault)
}

fn open_store(effective: &Effective) -> Result<Engine> {
    Engine::open(&effective.data, effective.store_options())
        .with_context(|| format!("opening the data directory {}", effective.data.display()))
}

/// Opens the store for a command that does not serve (import, export, identity, stats, failed).
fn open_store_for_maintenance(data: &Path, file_config: &config::FileConfig) -> Result<Engine> {
    let effective = Effective::resolve(
        data,
        file_config,
        &ServeArgs {
            listen: None,
            write_keys: vec![],
            no_warm_up: true,
            rules_clock: "wall".into(),
            tls_cert: None,
            tls_key: None,
            max_connections: None,
            header_timeout: waymark_server::HttpLimits::default().header_timeout,
            body_timeout: waymark_server::HttpLimits::default().body_timeout,
            rate_limit_read: None,
            rate_limit_admin: None,
            rate_limit_write: None,
        },
    )?;
    open_store(&effective)
}

fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values serialise")
    );
}

fn progress_bar(json: bool, length: u64, template: &str) -> ProgressBar {
    if json {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(length);
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("valid template")
            .progress_chars("█▉▊▋▌▍▎▏ "),
    );
    bar
}

fn run(cli: Cli) -> Result<()> {
    let file_config = config::load(cli.config.as_deref(), &cli.data)?;
    match cli.command {
        Command::Serve(args) => {
            let effective = Effective::resolve(&cli.data, &file_config, &args)?;
            let store = Arc::new(open_store(&effective)?);
            serve::serve(store, &effective, cli.json, None, !args.no_warm_up)
        }
        Command::Demo {
            serve: args,
            customers,
            seed,
            business,
            no_serve,
            plant,
            scenario,
        } => {
            let scenario = scenario
                .as_deref()
                .map(simulate::read_scenario)
                .transpose()?;
            if business != Business::Retail && plant != Default::default() {
                return Err(UsageError(
                    "--plant plants into the retailer only: drop it or use --business retail"
                        .into(),
                )
                .into());
            }
            let mut effective = Effective::resolve(&cli.data, &file_config, &args)?;
            if effective.generated_key {
                effective.write_keys = vec!["demo_write_key".into()];
                effective.generated_key = false;
            }
            let store = Arc::new(open_store(&effective)?);
            let summary = serve::ingest_demo(
                &store,
                DemoConfig {
                    customers,
                    seed,
                    business,
                    plant,
                },
                cli.json,
            )?;
            if let Some(scenario) = &scenario {
                let events = store.ingest_scenario(scenario)?;
                if !cli.json {
                    println!(
                        "  Scenario:   {} ({} events of {} persona{}) added",
                        scenario.name,
                        events,
                        scenario.personas.len(),
                        if scenario.personas.len() == 1 {
                            ""
                        } else {
                            "s"
                        }
                    );
                }
            }
            if no_serve {
                let models = model::train_starter_models(&store, cli.json)?;
                if cli.json {
                    let mut summary = summary;
                    summary["models"] = serde_json::to_value(
                        models.iter().map(|info| &info.name).collect::<Vec<_>>(),
                    )?;
                    print_json(&summary);
                }
                return Ok(());
            }
            // Serving starts at once; the starter models train beside it and are scored when saved.
            let trainer = Arc::clone(&store);
            let quiet = cli.json;
            std::thread::spawn(move || {
                if let Err(error) = model::train_starter_models(&trainer, true).map(|models| {
                    if !quiet && !models.is_empty() {
                        println!(
                            "  Models:     {} trained; see the Predictions page",
                            models
                                .iter()
                                .map(|info| info.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        );
                    }
                }) {
                    eprintln!("warning: the starter models were not trained: {error}");
                }
            });
            serve::serve(store, &effective, cli.json, Some(summary), !args.no_warm_up)
        }
        Command::Generate {
            out,
            customers,
            seed,
            shape,
            events,
        } => match shape.as_str() {
            "demo" | "retail" | "telecom" => files::generate(
                &out,
                DemoConfig {
                    customers,
                    seed,
                    business: if shape == "telecom" {
                        Business::Telecom
                    } else {
                        Business::Retail
                    },
                    ..Default::default()
                },
                cli.json,
            ),
            "zipf" => files::generate_zipf(
                &out,
                waymark_engine::synthetic::parse_count(&events)
                    .map_err(|problem| UsageError(format!("--events: {problem}")))?,
                seed,
                cli.json,
            ),
            other => {
                Err(UsageError(format!("--shape {other:?}: use demo, telecom or zipf")).into())
            }
        },
        Command::Import {
            files,
            format,
            customer,
            step,
            time,
            channel,
            default_channel,
            properties,
            skip_invalid,
        } => {
            let format = match format {
                Some(text) => Some(ImportFormat::parse(&text).ok_or_else(|| {
                    UsageError(format!("--format {text:?}: use csv, jsonl, parquet or xes"))
                })?),
                None => None,
            };
            let options = ImportOptions {
                format,
                customer_column: customer,
                step_column: step,
                time_column: time,
                channel_column: channel,
                default_channel,
                property_columns: (!properties.is_empty()).then_some(properties),
                skip_invalid,
                ..ImportOptions::default()
            };
            let store = open_store_for_maintenance(&cli.data, &file_config)?;
            files::import(&store, &files, &options, cli.json)
        }
        Command::Report {
            out,
            goals,
            funnel_steps,
            window,
            anchor,
        } => {
            let store = open_store_for_maintenance(&cli.data, &file_config)?;
            let data = store
                .report(&ReportOptions {
                    goals,
                    funnel_steps,
                    window: Some(window),
                    anchor,
                })
                .map_err(query::usage)?;
            let html = waymark_server::report_html(&data);
            std::fs::write(&out, &html).with_context(|| format!("writing {}", out.display()))?;
            if cli.json {
                print_json(&json!({ "out": out, "bytes": html.len() }));
            } else {
                println!("Wrote {} ({} KB): overview, friction, moments of truth, attribution, journey map, process map and funnel in one file.", out.display(), html.len() / 1024);
            }
            Ok(())
        }
        Command::Export { out } => {
            if let Some(parent) = out.parent().filter(|parent| !parent.as_os_str().is_empty()) {
                if !parent.is_dir() {
                    return Err(UsageError(format!(
                        "cannot write {}: there is no directory {}",
                        out.display(),
                        parent.display()
                    ))
                    .into());
                }
            }
            let store = open_store_for_maintenance(&cli.data, &file_config)?;
            let total = store.stats().events;
            let bar = progress_bar(
                cli.json,
                total,
                "{msg} {bar:40} {pos}/{len} rows ({per_sec}, {eta})",
            );
            bar.set_message("exporting");
            let started = Instant::now();
            let rows = store
                .export_parquet(&out, |rows| bar.set_position(rows))
                .context("exporting to Parquet")?;
            bar.finish_and_clear();
            let bytes = std::fs::metadata(&out).map(|meta| meta.len()).unwrap_or(0);
            if cli.json {
                print_json(
                    &json!({ "file": out, "rows": rows, "bytes": bytes, "seconds": started.elapsed().as_secs_f64() }),
                );
            } else {
                println!(
                    "Exported {rows} events to {} ({:.1} MB) in {:.1} s",
                    out.display(),
                    bytes as f64 / 1e6,
                    started.elapsed().as_secs_f64()
                );
            }
            Ok(())
        }
        Command::Identity { command } => {
            let store = open_store_for_maintenance(&cli.data, &file_config)?;
            identity::identity(&store, command, cli.json)
        }
        Command::Keys { command } => keys::keys(&cli.data, command, cli.json),
        Command::Customer { command } => {
            let engine = open_store_for_maintenance(&cli.data, &file_config)?;
            customer::customer(&engine, command, cli.json)
        }
        Command::Simulate {
            scenario,
            sandbox,
            empty,
            server,
            write_key,
            read_key,
        } => match server {
            Some(url) => {
                let write_key = write_key.ok_or_else(|| {
                    UsageError(
                        "--server needs the server's --write-key (or WAYMARK_WRITE_KEY)".into(),
                    )
                })?;
                simulate::simulate_live(
                    &scenario,
                    &simulate::LiveServer {
                        url,
                        write_key,
                        read_key,
                    },
                    cli.json,
                )
            }
            None => simulate::simulate(&cli.data, &scenario, sandbox, empty, cli.json),
        },
        Command::Catalogue { command } => {
            let engine = open_store_for_maintenance(&cli.data, &file_config)?;
            catalogue::catalogue(&engine, command, cli.json)
        }
        Command::Blueprint { command } => {
            let engine = open_store_for_maintenance(&cli.data, &file_config)?;
            blueprint::blueprint(&engine, command, cli.json)
        }
        Command::Rules { command } => {
            let store = open_store_for_maintenance(&cli.data, &file_config)?;
            rules::rules(&store, command, cli.json)
        }
        Command::Model { command } => {
            let engine = open_store_for_maintenance(&cli.data, &file_config)?;
            model::run(&engine, command, cli.json)
        }
        Command::Failed { limit } => {
            let store = open_store_for_maintenance(&cli.data, &file_config)?;
            let failed = store.failed_events(limit)?;
            if cli.json {
                print_json(&json!({ "failed": failed }));
            } else if failed.is_empty() {
                println!("No failed events.");
            } else {
                for record in failed {
                    println!(
                        "{}  {:<20} {}  [{}]",
                        record.received_at, record.code, record.message, record.source
                    );
                }
            }
            Ok(())
        }
        Command::Query { analysis, scope } => {
            let store = open_store_for_maintenance(&cli.data, &file_config)?;
            if store.stats().events == 0 {
                // On stderr, so that `--json` output stays the report alone.
                eprintln!(
                    "note: {} holds no events yet: `waymark import FILE` loads a file, `waymark serve` collects events, `waymark demo` makes a realistic set",
                    cli.data.display()
                );
            }
            query::query(&store, analysis, &scope, cli.json)
        }
        Command::Attribution {
            paths,
            order,
            transition_matrix,
            rows,
        } => {
            let text = std::fs::read_to_string(&paths)
                .map_err(|error| UsageError(format!("--paths {}: {error}", paths.display())))?;
            let ran = waymark_engine::attribute_path_table(&text, order, transition_matrix, rows)
                .map_err(|error| UsageError(format!("{}: {error}", paths.display())))?;
            if cli.json {
                print_json(&ran.json);
            } else {
                print!("{}", ran.text.unwrap_or_default());
            }
            Ok(())
        }
        Command::Stats => {
            let store = open_store_for_maintenance(&cli.data, &file_config)?;
            let stats = store.stats();
            if cli.json {
                print_json(&serde_json::to_value(&stats)?);
            } else {
                println!("events        {}", stats.events);
                println!("customers     {}", stats.customers);
                println!("identifiers   {}", stats.identifiers);
                println!(
                    "merge edges   {} ({} refused merges)",
                    stats.merge_edges, stats.identity_warnings
                );
                println!("steps         {}", stats.steps);
                println!("channels      {}", stats.channels);
                println!(
                    "segments      {} ({:.1} MB)",
                    stats.segments,
                    stats.segment_bytes as f64 / 1e6
                );
                println!(
                    "log           {} events in memory, {:.1} MB",
                    stats.memtable_events,
                    stats.wal_bytes as f64 / 1e6
                );
                println!("failed events {}", stats.failed_events);
            }
            Ok(())
        }
        Command::Config {
            command: ConfigCommand::Check(args),
        } => {
            let effective = Effective::resolve(&cli.data, &file_config, &args)?;
            let redacted = effective.redacted();
            if cli.json {
                print_json(&serde_json::to_value(&redacted)?);
            } else {
                println!("{}", toml::to_string_pretty(&redacted)?);
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option set is mimalloc's purge delay: the only option whose default is 1,000 (ms) in the bundled
    /// mimalloc 3, so a renumbered `mi_option_e` fails here instead of silently changing another setting.
    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        // SAFETY: reads one of mimalloc's options.
        let before = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(before, 1_000, "mimalloc 3's default purge delay");
        }
        keep_freed_memory_longer();
        // SAFETY: as above.
        let after = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(after, 10_000);
    }
}
