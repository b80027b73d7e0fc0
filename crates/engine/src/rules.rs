//! Journey management at work: the definitions file, dry runs against history, and — while a server runs — the
//! rules worker that follows the store and the deliveries it makes.
//!
//! Files in the data directory:
//! ```text
//! rules.toml                 the definitions (segments, triggers, stages, settings), edited by hand or the API
//! rules/versions.json        each trigger's version and the digest of the definition it is
//! rules/history/NAME.vN.toml every version of every trigger as it was saved
//! rules/state.json.zst       a snapshot of the rules' state and the store sequence number it covers
//! rules/journal.log          JSON lines: trigger instances (fsynced before any action runs) and delivery attempts
//! rules/segments.log         JSON lines: segment entries and exits
//! ```
//!
//! Exactly once, from the receiver's side: the worker reads events in arrival order from the store
//! ([`waymark_store::Store::events_after`]); the instances they set off are written to the journal and fsynced
//! before any action runs; each delivery carries the instance's idempotency key (`webhook-id`), and an event
//! action's `messageId` is derived from it, so the store keeps it once. After a crash the worker starts from its
//! snapshot, reads the journal (instances already decided are not decided again; deliveries not yet confirmed
//! are retried) and processes the events after the snapshot again; timers due meanwhile fire at once.

use crate::{Engine, Error};
use backon::BackoffBuilder;
use base64::Engine as _;
use hmac::Mac;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};
pub use waymark_rules::defs::{ActionSpec, SegmentSpec, TriggerSpec};
pub use waymark_rules::{
    position_in_toml, Cause, Decision, DefinitionError, DefinitionErrors, Instance, Known, Mode,
    Rules, RulesFile, RulesState, Status,
};
use waymark_store::ArrivalIdentity;

/// Analyses read segment membership as a customer property: `segment:NAME` is `true` on every event of a
/// customer in the segment now, `false` on everyone else's, so it filters (`segment:NAME=true`) and breaks down
/// like any property. (A colon is in no property path, so no event property is shadowed.)
pub const SEGMENT_COLUMN: &str = "segment:";

/// Whether a property name is a segment column.
pub fn is_segment_column(name: &str) -> bool {
    name.starts_with(SEGMENT_COLUMN)
}

/// The definitions file in the data directory.
pub const RULES_FILE: &str = "rules.toml";

/// Prometheus names.
pub const RULES_EVENT_SECONDS: &str = "waymark_rules_event_seconds";
pub const RULES_EVALUATIONS: &str = "waymark_rules_events_total";
/// The trigger name of a monitor's instances: `monitor:` + the monitor's name.
pub const MONITOR_PREFIX: &str = "monitor:";
pub const RULES_INSTANCES: &str = "waymark_rules_instances_total";
pub const RULES_ERRORS: &str = "waymark_rules_evaluation_errors_total";
pub const DELIVERIES: &str = "waymark_deliveries_total";
pub const DELIVERY_SECONDS: &str = "waymark_delivery_seconds";

/// Which clock timers follow.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum RulesClock {
    /// The wall clock: an absence fires when its time has come, events or not (production).
    #[default]
    Wall,
    /// The data's own clock, the latest event time seen: for replaying history through ingest, where the wall
    /// clock is long past every wait.
    EventTime,
}

/// How the rules worker runs.
#[derive(Debug, Clone)]
pub struct RulesOptions {
    pub clock: RulesClock,
    /// Delivery threads (a slow receiver holds one, not all).
    pub delivery_threads: usize,
    /// Attempts before an action goes to the dead letters.
    pub max_attempts: u32,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    pub request_timeout: Duration,
    pub snapshot_every: Duration,
    /// Whether webhooks are sent: false in a sandbox (a scenario simulation), where each is journaled as
    /// `simulated` instead; event and trait actions are stored either way.
    pub send_webhooks: bool,
}

impl Default for RulesOptions {
    fn default() -> Self {
        RulesOptions {
            clock: RulesClock::Wall,
            delivery_threads: 4,
            max_attempts: 8,
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(300),
            request_timeout: Duration::from_secs(10),
            snapshot_every: Duration::from_secs(30),
            send_webhooks: true,
        }
    }
}

/// What the rules worker has done.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct RulesStatus {
    pub running: bool,
    pub clock: RulesClock,
    /// The store sequence number processed through.
    pub through_seq: Option<u64>,
    /// On the event-time clock: where the clock stands (µs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_at: Option<i64>,
    pub customers: usize,
    pub timers: usize,
    pub segments: usize,
    pub triggers: usize,
    pub events: u64,
    pub instances: u64,
    pub evaluation_errors: u64,
    /// Actions waiting for delivery (including retries), and those given up.
    pub pending_deliveries: usize,
    pub dead_letters: usize,
    /// Why the definitions on disk are not in force, if they are not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub definitions_error: Option<String>,
}

/// The live part an engine keeps for a server.
#[derive(Default)]
pub(crate) struct RulesLive {
    wake: Mutex<Option<mpsc::Sender<Wake>>>,
    status: Mutex<RulesStatus>,
    journal: Mutex<Option<std::fs::File>>,
    deliveries: Arc<DeliveryQueue>,
    events: AtomicU64,
    stopping: AtomicBool,
    /// Serialises changes to the definitions file.
    saving: Mutex<()>,
    /// Each segment's members, as the running worker keeps them.
    members: RwLock<HashMap<String, HashSet<String>>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

enum Wake {
    Events,
    /// Customers' new scores: (customer, every model's value, the customer's last event time).
    Scores(Vec<ScoreChange>),
    Reload,
    /// The data's clock moved on (event time only): timers due by then fire.
    Clock(i64),
    /// A customer was deleted: drop everything held about it (see [`Engine::forget_in_rules`]).
    Forget {
        customer: Forgetting,
        done: mpsc::Sender<Result<ForgottenRules, Error>>,
    },
}

/// A deleted customer as the rules know it: the ids it was filed under (each identifier's value, since the rules
/// file events under the customer's display id as they arrive) and its identifier keys.
#[derive(Debug, Clone, Default)]
pub(crate) struct Forgetting {
    pub(crate) customers: HashSet<String>,
    pub(crate) keys: Vec<String>,
}

/// What deleting a customer removed from the rules.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct ForgottenRules {
    /// Trigger instances removed from the journal, with their delivery attempts.
    pub trigger_instances: usize,
    /// Segment entries and exits removed from the segment history.
    pub segment_changes: usize,
    /// Deliveries not yet made (or dead letters) that will not be made.
    pub deliveries_cancelled: usize,
}

/// One journal line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
enum Record {
    /// Instances decided by the events through `through_seq` and the timers due by then.
    Instances {
        through_seq: Option<u64>,
        instances: Vec<Instance>,
    },
    /// One delivery attempt of action `action` of instance `key`.
    Attempt {
        key: String,
        action: usize,
        attempt: u32,
        /// Wall time, µs.
        at: i64,
        outcome: Outcome,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A dead letter sent again by an operator.
    Replayed { key: String, action: usize, at: i64 },
}

/// How a delivery attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Delivered,
    /// A sandbox (a scenario simulation): the webhook was not sent.
    Simulated,
    /// Will be retried.
    Failed,
    /// Given up: in the dead letters.
    Dead,
}

/// One action of one instance, as the delivery log shows it.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Delivery {
    pub action: usize,
    /// `webhook`, `event` or `traits`.
    pub kind: String,
    pub attempts: u32,
    /// `pending`, `delivered` or `dead`.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// One trigger instance with its deliveries.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LoggedInstance {
    pub instance: Instance,
    pub deliveries: Vec<Delivery>,
}

/// The snapshot file's content.
#[derive(Serialize, Deserialize)]
struct Snapshot {
    through_seq: Option<u64>,
    digest: u64,
    clock: i64,
    aliases: HashMap<String, String>,
    /// The identity graph as the worker has followed it (events filed as they arrived).
    #[serde(default)]
    identity: ArrivalIdentity,
    state: RulesState,
    /// The clock through which monitors were checked.
    #[serde(default)]
    monitors_through: Option<i64>,
}

/// What a dry run found, per trigger.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DryRunTrigger {
    pub trigger: String,
    pub fired: usize,
    pub capped: usize,
    pub held_out: usize,
    pub quiet: usize,
    /// Distinct customers with an instance.
    pub customers: usize,
    /// Up to 20 of them.
    pub sample: Vec<String>,
}

/// A dry run of definitions against the stored history.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DryRun {
    /// The window instances are counted in (µs); history before `since` builds facts and segments only.
    pub since: Option<i64>,
    pub until: i64,
    pub events: usize,
    pub triggers: Vec<DryRunTrigger>,
    /// Members of each segment at `until`.
    pub segments: BTreeMap<String, usize>,
    pub evaluation_errors: usize,
}

/// Segment memberships now, and how they came about.
struct SegmentsNow {
    file: RulesFile,
    members: BTreeMap<String, HashSet<String>>,
    /// Entries and exits, oldest first.
    changes: Vec<Decision>,
    live: bool,
}

/// Every segment: its members now and its history.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SegmentsReport {
    /// Whether memberships are the running worker's (true) or replayed from history for this answer (false).
    pub live: bool,
    /// The time zone of the calendar days.
    pub timezone: String,
    pub segments: Vec<SegmentReport>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SegmentReport {
    pub name: String,
    /// Empty when the definition gives none.
    pub description: String,
    pub condition: String,
    /// The property analyses filter and break down by (`segment:NAME`, true or false).
    pub column: String,
    /// Members now.
    pub members: usize,
    /// Entries and exits over the history.
    pub entered: u64,
    pub exited: u64,
    /// Some members, sorted.
    pub sample: Vec<String>,
    /// Each calendar day with a change: entries, exits, and the size at the day's end.
    pub days: Vec<SegmentDay>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SegmentDay {
    /// `2026-03-01`.
    pub day: String,
    pub entered: u64,
    pub exited: u64,
    pub size: u64,
}

/// A history replayed through a definition set.
struct Replayed {
    decisions: Vec<Decision>,
    state: RulesState,
    since: Option<i64>,
    until: i64,
    events: usize,
}

/// Where a dry run starts counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// An instant, µs.
    At(i64),
    /// A span before the run's end (`7d`: the last week of the data).
    Last(i64),
}

impl Since {
    /// `7d`, `36h` (a span before the end) or an RFC 3339 instant.
    pub fn parse(text: &str) -> Result<Since, String> {
        if let Some(at) = waymark_model::Timestamp::parse(text.trim()) {
            return Ok(Since::At(at.0));
        }
        waymark_rules::expr::parse_window(text)
            .map(Since::Last)
            .map_err(|_| {
                format!(
                    "'{text}' is neither a span (7d, 36h) nor an instant (2026-03-01T00:00:00Z)"
                )
            })
    }
}

/// A saved definition set.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SavedRules {
    /// Each trigger's version now.
    pub versions: BTreeMap<String, u32>,
    /// Triggers whose version this save bumped.
    pub changed: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Versions {
    triggers: BTreeMap<String, (u64, u32)>,
}

/// Each trigger's version in a compiled set.
fn trigger_versions(rules: &Rules) -> BTreeMap<String, u32> {
    rules
        .set
        .triggers
        .iter()
        .map(|t| (t.name.clone(), t.version))
        .collect()
}

fn now_us() -> i64 {
    waymark_model::Timestamp::now().0
}

fn digest_of(spec: &TriggerSpec) -> u64 {
    xxhash_rust::xxh3::xxh3_64(serde_json::to_string(spec).unwrap_or_default().as_bytes())
}

impl Engine {
    pub(crate) fn rules_dir(&self) -> PathBuf {
        self.dir().join("rules")
    }

    /// The definitions in force (an empty set when there is no `rules.toml`).
    pub fn rules_file(&self) -> Result<RulesFile, Error> {
        let path = self.dir().join(RULES_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => RulesFile::from_toml(&text).map_err(Error::Rules),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(RulesFile::default()),
            Err(error) => Err(Error::Model(format!("{}: {error}", path.display()))),
        }
    }

    /// What definitions are checked against: the stored steps and the saved models.
    pub fn rules_known(&self) -> Result<Known, Error> {
        let steps: BTreeSet<String> = self.store.step_names().into_iter().collect();
        let models: BTreeSet<String> = self
            .current_models()?
            .iter()
            .map(|model| model.info.name.clone())
            .collect();
        Ok(Known {
            // An empty store checks no step: nothing is known yet.
            steps: (!steps.is_empty()).then_some(steps),
            models: Some(models),
        })
    }

    fn versions(&self) -> Versions {
        std::fs::read(self.rules_dir().join("versions.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// Validates and compiles `file` with each trigger's current version (or the one a save would give it).
    pub fn compile_rules(&self, file: &RulesFile) -> Result<Rules, Error> {
        let versions = self.versions();
        let known = self.rules_known()?;
        let set = file
            .compile(&known, &|spec| match versions.triggers.get(&spec.name) {
                Some((digest, version)) if *digest == digest_of(spec) => *version,
                Some((_, version)) => version + 1,
                None => 1,
            })
            .map_err(Error::Rules)?;
        Ok(Rules::new(set))
    }

    /// Each trigger's version in force.
    pub fn rules_versions(&self) -> BTreeMap<String, u32> {
        self.versions()
            .triggers
            .into_iter()
            .map(|(name, (_, version))| (name, version))
            .collect()
    }

    /// Validates `file` without saving it: the versions a save would give, and which triggers it would change.
    pub fn check_rules(&self, file: &RulesFile) -> Result<SavedRules, Error> {
        let rules = self.compile_rules(file)?;
        let versions = self.versions();
        Ok(SavedRules {
            changed: rules
                .set
                .triggers
                .iter()
                .filter(|t| {
                    versions.triggers.get(&t.name) != Some(&(digest_of(&t.spec), t.version))
                })
                .map(|t| t.name.clone())
                .collect(),
            versions: trigger_versions(&rules),
        })
    }

    /// Validates `file` and, if it holds, makes it the definitions in force: versions bumped for changed
    /// triggers, every version kept under `rules/history/`, `rules.toml` replaced atomically, and the running
    /// worker reloads. A set with any problem changes nothing.
    pub fn save_rules(&self, file: &RulesFile) -> Result<SavedRules, Error> {
        let _guard = self
            .rules
            .saving
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let rules = self.compile_rules(file)?;
        let mut versions = self.versions();
        let mut changed = Vec::new();
        let dir = self.rules_dir();
        let io = |error: std::io::Error| Error::Model(format!("{}: {error}", dir.display()));
        std::fs::create_dir_all(dir.join("history")).map_err(io)?;
        for trigger in &rules.set.triggers {
            let digest = digest_of(&trigger.spec);
            if versions.triggers.get(&trigger.name) != Some(&(digest, trigger.version)) {
                changed.push(trigger.name.clone());
                let one = RulesFile {
                    triggers: vec![trigger.spec.clone()],
                    ..RulesFile::default()
                };
                write_atomically(
                    &dir.join("history")
                        .join(format!("{}.v{}.toml", trigger.name, trigger.version)),
                    one.to_toml().as_bytes(),
                )
                .map_err(io)?;
            }
            versions
                .triggers
                .insert(trigger.name.clone(), (digest, trigger.version));
        }
        write_atomically(
            &dir.join("versions.json"),
            &serde_json::to_vec_pretty(&versions).unwrap_or_default(),
        )
        .map_err(io)?;
        write_atomically(&self.dir().join(RULES_FILE), file.to_toml().as_bytes()).map_err(io)?;
        self.wake_rules(Wake::Reload);
        Ok(SavedRules {
            versions: trigger_versions(&rules),
            changed,
        })
    }

    /// Adds one segment to the definitions in force, or replaces the one of the same name (a persona's
    /// condition saved to follow it live): the whole set is validated and saved as [`Engine::save_rules`] does,
    /// so a segment with a problem changes nothing. Returns whether one was replaced.
    pub fn save_segment(&self, segment: SegmentSpec) -> Result<bool, Error> {
        let mut file = self.rules_file()?;
        let replaced = match file.segments.iter_mut().find(|s| s.name == segment.name) {
            Some(existing) => {
                *existing = segment;
                true
            }
            None => {
                file.segments.push(segment);
                false
            }
        };
        self.save_rules(&file)?;
        Ok(replaced)
    }

    /// Runs `file` over the stored history on the data's own clock: events before `since` build facts and
    /// segments only; from `since` on, triggers are decided as the live worker would decide them when the same
    /// events arrive in the same order with `--rules-clock event-time`. Nothing is delivered.
    pub fn dry_run(
        &self,
        file: &RulesFile,
        since: Option<Since>,
        until: Option<i64>,
    ) -> Result<DryRun, Error> {
        let rules = self.compile_rules(file)?;
        let Replayed {
            decisions,
            state,
            since,
            until,
            events: counted,
        } = self.replay(&rules, since, until)?;
        let mut per: BTreeMap<String, (DryRunTrigger, BTreeSet<String>)> = rules
            .set
            .triggers
            .iter()
            .map(|t| {
                (
                    t.name.clone(),
                    (
                        DryRunTrigger {
                            trigger: t.name.clone(),
                            fired: 0,
                            capped: 0,
                            held_out: 0,
                            quiet: 0,
                            customers: 0,
                            sample: Vec::new(),
                        },
                        BTreeSet::new(),
                    ),
                )
            })
            .collect();
        let mut errors = 0;
        // An instance decided again under the same key is the same instance: the worker keeps it once.
        let mut keys = HashSet::new();
        for decision in &decisions {
            match decision {
                Decision::Trigger(instance) if !keys.insert(instance.key.as_str()) => {}
                Decision::Trigger(instance) => {
                    if let Some((entry, customers)) = per.get_mut(&instance.trigger) {
                        match instance.status {
                            Status::Fired => entry.fired += 1,
                            Status::Capped => entry.capped += 1,
                            Status::HeldOut => entry.held_out += 1,
                            Status::Quiet => entry.quiet += 1,
                        }
                        if customers.insert(instance.customer.clone()) && entry.sample.len() < 20 {
                            entry.sample.push(instance.customer.clone());
                        }
                    }
                }
                Decision::Error { .. } => errors += 1,
                _ => {}
            }
        }
        let segments = rules
            .set
            .segments
            .iter()
            .map(|s| (s.name.clone(), state.members(&s.name).count()))
            .collect();
        Ok(DryRun {
            since,
            until,
            events: counted,
            triggers: per
                .into_values()
                .map(|(mut entry, customers)| {
                    entry.customers = customers.len();
                    entry
                })
                .collect(),
            segments,
            evaluation_errors: errors,
        })
    }

    /// Replays the stored history through `rules` on the data's own clock, up to `until` (default: the latest
    /// event): events before `since` build facts and segments only (`Mode::Backfill`), later ones decide
    /// triggers too; the timers due by `until` are run at the end.
    fn replay(
        &self,
        rules: &Rules,
        since: Option<Since>,
        until: Option<i64>,
    ) -> Result<Replayed, Error> {
        let events = self.store.events_after(None, usize::MAX)?;
        let mut state = RulesState::default();
        let mut aliases = HashMap::new();
        let mut clock = i64::MIN;
        let mut decisions = Vec::new();
        let until = until.unwrap_or_else(|| {
            events
                .iter()
                .map(|e| e.event.timestamp.0)
                .max()
                .unwrap_or(0)
        });
        let since = since.map(|since| match since {
            Since::At(at) => at,
            Since::Last(span) => until.saturating_sub(span),
        });
        let mut identity = ArrivalIdentity::default();
        let mut counted = 0;
        for stored in &events {
            let at = stored.event.timestamp.0;
            if at > until {
                // Filed all the same: its identity links hold for the events that arrive after it.
                identity.customer_of(&stored.event);
                continue;
            }
            counted += 1;
            let mode = if since.is_some_and(|since| at < since) {
                Mode::Backfill
            } else {
                Mode::Live
            };
            let customer = follow_identity(
                rules,
                &mut state,
                &mut aliases,
                &mut identity,
                &stored.event,
                mode,
                &mut decisions,
            );
            decisions.extend(rules.on_event_in_event_time(
                &mut state,
                &customer,
                &stored.event,
                &mut clock,
                mode,
            ));
        }
        let mode = if since.is_some_and(|since| until < since) {
            Mode::Backfill
        } else {
            Mode::Live
        };
        decisions.extend(rules.tick(&mut state, until, mode));
        Ok(Replayed {
            decisions,
            state,
            since,
            until,
            events: counted,
        })
    }

    /// Each segment of the definitions in force with its members now: the running worker's when a server runs
    /// one, else the definitions replayed over the stored history (segments only; nothing is decided).
    pub fn segment_members(&self) -> Result<BTreeMap<String, HashSet<String>>, Error> {
        Ok(self.segments_now(false)?.members)
    }

    /// The members now and, with `history`, every entry and exit (from `rules/segments.log` when the worker
    /// runs, else from the replay).
    fn segments_now(&self, history: bool) -> Result<SegmentsNow, Error> {
        let file = self.rules_file()?;
        let names: Vec<String> = file.segments.iter().map(|s| s.name.clone()).collect();
        if self.rules_status().running {
            let members = {
                let live = self
                    .rules
                    .members
                    .read()
                    .unwrap_or_else(PoisonError::into_inner);
                names
                    .iter()
                    .map(|name| (name.clone(), live.get(name).cloned().unwrap_or_default()))
                    .collect()
            };
            let changes = if history {
                read_segment_log(&self.rules_dir().join("segments.log"))
            } else {
                Vec::new()
            };
            return Ok(SegmentsNow {
                file,
                members,
                changes,
                live: true,
            });
        }
        if names.is_empty() {
            return Ok(SegmentsNow {
                file,
                members: BTreeMap::new(),
                changes: Vec::new(),
                live: false,
            });
        }
        let rules = self.compile_rules(&RulesFile {
            triggers: Vec::new(),
            ..file.clone()
        })?;
        let replayed = self.replay(&rules, Some(Since::At(i64::MAX)), None)?;
        let members = names
            .iter()
            .map(|name| {
                let members = replayed.state.members(name).map(str::to_string).collect();
                (name.clone(), members)
            })
            .collect();
        Ok(SegmentsNow {
            file,
            members,
            changes: replayed.decisions,
            live: false,
        })
    }

    /// Every segment with its members now, and its size, entries and exits per calendar day (in the
    /// definitions' time zone) over the history.
    pub fn segments_report(&self, sample: usize) -> Result<SegmentsReport, Error> {
        let now = self.segments_now(true)?;
        let timezone: chrono_tz::Tz = now.file.settings.timezone.parse().unwrap_or(chrono_tz::UTC);
        let day_of = |at: i64| {
            chrono::DateTime::from_timestamp_micros(at)
                .map(|t| t.with_timezone(&timezone).date_naive().to_string())
                .unwrap_or_default()
        };
        // (segment, day) → (entered, exited), in day order.
        let mut per_day: HashMap<&str, BTreeMap<String, (u64, u64)>> = HashMap::new();
        for change in &now.changes {
            let (segment, at, entered) = match change {
                Decision::SegmentEntered { segment, at, .. } => (segment, *at, true),
                Decision::SegmentExited { segment, at, .. } => (segment, *at, false),
                _ => continue,
            };
            let day = per_day
                .entry(segment.as_str())
                .or_default()
                .entry(day_of(at))
                .or_default();
            if entered {
                day.0 += 1;
            } else {
                day.1 += 1;
            }
        }
        let segments = now
            .file
            .segments
            .iter()
            .map(|spec| {
                let members = now.members.get(&spec.name).cloned().unwrap_or_default();
                let mut size: i64 = 0;
                let days: Vec<SegmentDay> = per_day
                    .get(spec.name.as_str())
                    .map(|days| {
                        days.iter()
                            .map(|(day, (entered, exited))| {
                                size += *entered as i64 - *exited as i64;
                                SegmentDay {
                                    day: day.clone(),
                                    entered: *entered,
                                    exited: *exited,
                                    size: size.max(0) as u64,
                                }
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let mut listed: Vec<String> = members.iter().cloned().collect();
                listed.sort();
                listed.truncate(sample);
                SegmentReport {
                    name: spec.name.clone(),
                    description: spec.description.clone(),
                    condition: spec.condition.clone(),
                    members: members.len(),
                    entered: days.iter().map(|d| d.entered).sum(),
                    exited: days.iter().map(|d| d.exited).sum(),
                    sample: listed,
                    days,
                    column: format!("{SEGMENT_COLUMN}{}", spec.name),
                }
            })
            .collect();
        Ok(SegmentsReport {
            live: now.live,
            timezone: timezone.name().to_string(),
            segments,
        })
    }

    /// The members of segment `name` now, sorted, from `offset` (at most `limit`); `None` if no segment has
    /// that name.
    pub fn segment_members_of(
        &self,
        name: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Option<(usize, Vec<String>)>, Error> {
        let members = self.segment_members()?;
        Ok(members.get(name).map(|members| {
            let mut listed: Vec<String> = members.iter().cloned().collect();
            listed.sort();
            let total = listed.len();
            (total, listed.into_iter().skip(offset).take(limit).collect())
        }))
    }

    /// `journeys` with the segment columns `columns` (`segment:NAME`) added.
    pub(crate) fn with_segment_columns(
        &self,
        journeys: &waymark_model::JourneySet,
        columns: &[String],
    ) -> Result<waymark_model::JourneySet, Error> {
        let members = self.segment_members()?;
        let mut out = journeys.clone();
        for column in columns {
            let name = &column[SEGMENT_COLUMN.len()..];
            let Some(members) = members.get(name) else {
                return Err(Error::Analysis(waymark_analytics::AnalyticsError::field(
                    "filter",
                    format!(
                        "{column:?} names no segment; the segment columns are {}",
                        if members.is_empty() {
                            "none yet (define segments in rules.toml or PUT /v1/rules)".to_string()
                        } else {
                            members
                                .keys()
                                .map(|name| format!("{SEGMENT_COLUMN}{name}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        }
                    ),
                )));
            };
            let mut builder = waymark_model::PropertyColumnBuilder::new(column.clone());
            for index in 0..journeys.n_journeys() {
                let value =
                    serde_json::Value::Bool(members.contains(&journeys.customer_ids[index]));
                for _ in 0..journeys.journey(index).len() {
                    builder.push(Some(&value));
                }
            }
            out.properties.push(builder.finish());
        }
        Ok(out)
    }

    /// The segments the customer filed under any of `ids` is in, as the running worker holds them; `None` when
    /// no worker runs.
    pub(crate) fn live_segments_of(&self, ids: &HashSet<String>) -> Option<BTreeSet<String>> {
        if !self.rules_status().running {
            return None;
        }
        let live = self
            .rules
            .members
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        Some(
            live.iter()
                .filter(|(_, members)| ids.iter().any(|id| members.contains(id)))
                .map(|(name, _)| name.clone())
                .collect(),
        )
    }

    /// What the rules worker has done (not running when no server runs it).
    pub fn rules_status(&self) -> RulesStatus {
        let mut status = self
            .rules
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        status.events = self.rules.events.load(Ordering::Relaxed);
        let queue = self
            .rules
            .deliveries
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        status.pending_deliveries = queue.pending.len();
        status.dead_letters = queue.dead.len();
        status
    }

    /// The latest `limit` trigger instances (newest first), of `trigger` if given, with their deliveries; with
    /// `state` (`pending`, `delivered` or `dead`), only instances with a delivery in that state.
    pub fn trigger_log(
        &self,
        trigger: Option<&str>,
        state: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LoggedInstance>, Error> {
        let (instances, attempts) = read_journal(&self.rules_dir().join("journal.log"));
        // Each version's actions, read from its history file once.
        let mut actions_by_version: HashMap<(String, u32), Vec<ActionSpec>> = HashMap::new();
        let mut out: Vec<LoggedInstance> = instances
            .into_iter()
            .filter(|(_, instance)| trigger.is_none_or(|t| instance.trigger == t))
            .map(|(_, instance)| {
                let actions = actions_by_version
                    .entry((instance.trigger.clone(), instance.version))
                    .or_insert_with(|| self.actions_of(&instance));
                let deliveries = if instance.status == Status::Fired {
                    actions
                        .iter()
                        .enumerate()
                        .map(|(index, action)| {
                            let tried = attempts.get(&(instance.key.clone(), index));
                            let state = match tried.map(|t| t.2) {
                                Some(Outcome::Delivered) => "delivered",
                                Some(Outcome::Simulated) => "simulated",
                                Some(Outcome::Dead) => "dead",
                                _ => "pending",
                            };
                            Delivery {
                                action: index,
                                kind: action_kind(action).into(),
                                attempts: tried.map_or(0, |t| t.0),
                                state: state.into(),
                                last_error: tried.and_then(|t| t.1.clone()),
                            }
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                LoggedInstance {
                    instance,
                    deliveries,
                }
            })
            .collect();
        if let Some(state) = state {
            out.retain(|logged| logged.deliveries.iter().any(|d| d.state == state));
        }
        out.reverse();
        out.truncate(limit);
        Ok(out)
    }

    /// Sends a dead letter (instance `key`, every dead action of it) again. False when none is dead.
    pub fn replay_dead_letter(&self, key: &str) -> Result<bool, Error> {
        let queue = &self.rules.deliveries;
        let mut replayed = false;
        let mut inner = queue.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let dead: Vec<(String, usize)> = inner
            .dead
            .keys()
            .filter(|(k, _)| k == key)
            .cloned()
            .collect();
        for id in dead {
            if let Some(job) = inner.dead.remove(&id) {
                self.journal(&Record::Replayed {
                    key: id.0.clone(),
                    action: id.1,
                    at: now_us(),
                })?;
                inner
                    .heap
                    .push(std::cmp::Reverse((now_us(), id.0.clone(), id.1)));
                inner.pending.insert(id, Job { attempt: 0, ..job });
                replayed = true;
            }
        }
        drop(inner);
        queue.ready.notify_all();
        Ok(replayed)
    }

    fn actions_of(&self, instance: &Instance) -> Vec<ActionSpec> {
        if let Some(monitor) = instance.trigger.strip_prefix(MONITOR_PREFIX) {
            return self
                .rules_file()
                .ok()
                .and_then(|file| file.monitors.into_iter().find(|m| m.name == monitor))
                .map(|spec| spec.actions)
                .unwrap_or_default();
        }
        let history = self
            .rules_dir()
            .join("history")
            .join(format!("{}.v{}.toml", instance.trigger, instance.version));
        std::fs::read_to_string(history)
            .ok()
            .and_then(|text| RulesFile::from_toml(&text).ok())
            .and_then(|file| file.triggers.into_iter().next())
            .map(|spec| spec.actions)
            .unwrap_or_default()
    }

    fn wake_rules(&self, wake: Wake) {
        if let Some(sender) = self
            .rules
            .wake
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            let _ = sender.send(wake);
        }
    }

    /// Moves a rules worker on the event-time clock to `at` (µs) without an event, so the timers due by then
    /// fire (a simulation's waits after its last event); on the wall clock it changes nothing.
    pub fn advance_rules_clock(&self, at: i64) {
        self.wake_rules(Wake::Clock(at));
    }

    /// Tells a running rules worker that events were stored.
    pub(crate) fn rules_events_stored(&self) {
        self.wake_rules(Wake::Events);
    }

    /// Tells a running rules worker customers' new scores: (customer, every model's value, its last event time).
    pub(crate) fn rules_scores_changed(&self, changed: Vec<ScoreChange>) {
        if !changed.is_empty()
            && self
                .rules
                .wake
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_some()
        {
            self.wake_rules(Wake::Scores(changed));
        }
    }

    fn journal(&self, record: &Record) -> Result<(), Error> {
        let mut line = serde_json::to_vec(record).unwrap_or_default();
        line.push(b'\n');
        let mut guard = self
            .rules
            .journal
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let path = self.rules_dir().join("journal.log");
        let io = |error: std::io::Error| Error::Model(format!("{}: {error}", path.display()));
        if guard.is_none() {
            std::fs::create_dir_all(self.rules_dir()).map_err(io)?;
            *guard = Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(io)?,
            );
        }
        let file = guard.as_mut().expect("opened above");
        file.write_all(&line).map_err(io)?;
        file.sync_data().map_err(io)?;
        Ok(())
    }

    /// Starts the rules worker and the delivery threads: call once, from the process that serves.
    pub fn start_rules(self: &Arc<Engine>, options: RulesOptions) -> std::io::Result<()> {
        // A worker stopped before (a bulk load with live rules) may be started again.
        self.rules.stopping.store(false, Ordering::Release);
        let (sender, receiver) = mpsc::channel::<Wake>();
        *self
            .rules
            .wake
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(sender);
        let weak = Arc::downgrade(self);
        let worker_options = options.clone();
        // Events stored after this call are live, whenever the worker gets to them.
        let history_end = self.store.last_seq();
        let worker = std::thread::Builder::new()
            .name("rules".into())
            .spawn(move || {
                let mut worker = match weak.upgrade() {
                    Some(engine) => match Worker::start(&engine, worker_options, history_end) {
                        Ok(worker) => worker,
                        Err(error) => {
                            tracing::error!(%error, "the rules worker could not start");
                            return;
                        }
                    },
                    None => return,
                };
                loop {
                    let timeout = worker.wait();
                    let wake = receiver.recv_timeout(timeout);
                    let Some(engine) = weak.upgrade() else {
                        break;
                    };
                    if engine.rules.stopping.load(Ordering::Acquire) {
                        break;
                    }
                    let mut reload = false;
                    let mut clock = None;
                    let mut scores = Vec::new();
                    let mut forgets = Vec::new();
                    let mut handle = |wake: Wake| match wake {
                        Wake::Reload => reload = true,
                        Wake::Scores(changed) => scores.extend(changed),
                        Wake::Events => {}
                        Wake::Clock(at) => clock = clock.max(Some(at)),
                        Wake::Forget { customer, done } => forgets.push((customer, done)),
                    };
                    if let Ok(wake) = wake {
                        handle(wake);
                    }
                    for wake in receiver.try_iter() {
                        handle(wake);
                    }
                    for (customer, done) in forgets {
                        let _ = done.send(worker.forget(&engine, &customer));
                    }
                    if reload {
                        if let Err(error) = worker.reload(&engine) {
                            tracing::warn!(%error, "rules not reloaded");
                        }
                    }
                    if let (Some(at), RulesClock::EventTime) = (clock, worker.options.clock) {
                        worker.clock = worker.clock.max(at);
                    }
                    if let Err(error) = worker.step(&engine, scores) {
                        tracing::warn!(%error, "rules step failed; retrying");
                    }
                    if worker.last_snapshot.elapsed() >= worker.options.snapshot_every {
                        if let Err(error) = worker.snapshot(&engine) {
                            tracing::warn!(%error, "rules snapshot failed");
                        }
                    }
                }
                if let Some(engine) = weak.upgrade() {
                    // Monitors are read once more, to the clock as it stands: a stop is a check.
                    if let Some(due) = Instant::now().checked_sub(MONITOR_CHECK) {
                        worker.monitors_checked = due;
                    }
                    let _ = worker.step(&engine, Vec::new());
                    let _ = worker.snapshot(&engine);
                }
            })?;
        let mut threads = vec![worker];
        for index in 0..options.delivery_threads.max(1) {
            let weak = Arc::downgrade(self);
            let queue = Arc::clone(&self.rules.deliveries);
            let options = options.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("deliveries-{index}"))
                    .spawn(move || delivery_loop(weak, queue, options))?,
            );
        }
        self.rules
            .threads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(threads);
        Ok(())
    }

    /// Tells the rules worker that events were stored behind the collector's back (a bulk load).
    pub(crate) fn rules_catch_up_hint(&self) {
        self.wake_rules(Wake::Events);
    }

    /// Waits until the rules worker has read every stored event (including those its own actions wrote) and
    /// every action is delivered: how a bulk load with live rules ends.
    pub(crate) fn rules_settle(&self) -> Result<(), Error> {
        self.rules_settle_at(None)
    }

    /// [`Engine::rules_settle`], and on the event-time clock with `at`, once the clock has reached `at` (the
    /// timers due by then have fired and their actions are delivered).
    pub(crate) fn rules_settle_at(&self, at: Option<i64>) -> Result<(), Error> {
        let mut quiet_checks = 0;
        while quiet_checks < 3 {
            match at {
                Some(at) => self.wake_rules(Wake::Clock(at)),
                None => self.wake_rules(Wake::Events),
            }
            std::thread::sleep(Duration::from_millis(20));
            let status = self.rules_status();
            if !status.running {
                return Err(Error::Model(
                    "the rules worker stopped before it had read every event; see the log".into(),
                ));
            }
            if status.dead_letters > 0 {
                return Err(Error::Model(format!(
                    "{} actions could not be delivered; see `waymark rules log --state dead`",
                    status.dead_letters
                )));
            }
            let caught_up = status.through_seq == self.store.last_seq()
                && at.is_none_or(|at| status.clock_at.is_none_or(|clock| clock >= at));
            quiet_checks = if caught_up && status.pending_deliveries == 0 {
                quiet_checks + 1
            } else {
                0
            };
        }
        Ok(())
    }

    /// Stops the rules worker and the deliveries (a snapshot is written). The worker finishes the batch it is
    /// on but does not read on to the end of the store: the next start goes on from the snapshot's position, so a
    /// server far behind (a burst of ingest) still stops in seconds.
    pub fn stop_rules(&self) {
        self.rules.stopping.store(true, Ordering::Release);
        self.wake_rules(Wake::Events);
        self.rules.deliveries.ready.notify_all();
        let threads: Vec<_> = std::mem::take(
            &mut *self
                .rules
                .threads
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for thread in threads {
            let _ = thread.join();
        }
        self.rules
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .running = false;
    }
}

/// Drops a deleted customer from a rules state, its aliases and the identity it followed.
fn forget_in_state(
    state: &mut RulesState,
    aliases: &mut HashMap<String, String>,
    identity: &mut ArrivalIdentity,
    customer: &Forgetting,
) {
    state.forget(&customer.customers);
    aliases.retain(|key, id| !customer.keys.contains(key) && !customer.customers.contains(id));
    identity.forget(&customer.keys);
}

/// What the rules hold about one customer (for an export of its data).
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct CustomerRules {
    /// The segments it is in now.
    pub segments: Vec<String>,
    /// Its segment entries and exits, oldest first.
    pub segment_changes: Vec<Decision>,
    /// Its trigger instances, newest first, with their deliveries.
    pub trigger_instances: Vec<LoggedInstance>,
}

impl Engine {
    /// What the rules hold about the customer filed under any of `ids`.
    pub(crate) fn customer_rules(&self, ids: &HashSet<String>) -> Result<CustomerRules, Error> {
        let now = self.segments_now(true)?;
        let segments = now
            .members
            .iter()
            .filter(|(_, members)| members.iter().any(|member| ids.contains(member)))
            .map(|(name, _)| name.clone())
            .collect();
        let segment_changes = now
            .changes
            .into_iter()
            .filter(|decision| match decision {
                Decision::SegmentEntered { customer, .. }
                | Decision::SegmentExited { customer, .. } => ids.contains(customer),
                _ => false,
            })
            .collect();
        let trigger_instances = self
            .trigger_log(None, None, usize::MAX)?
            .into_iter()
            .filter(|logged| ids.contains(&logged.instance.customer))
            .collect();
        Ok(CustomerRules {
            segments,
            segment_changes,
            trigger_instances,
        })
    }

    /// Drops a deleted customer from the rules: its facts, memberships, trigger states and timers; its trigger
    /// instances and their delivery attempts in the journal; its segment entries and exits; the deliveries still
    /// due for it. The running worker does it on its own thread; without one, the files are rewritten here.
    pub(crate) fn forget_in_rules(&self, customer: Forgetting) -> Result<ForgottenRules, Error> {
        let running = self
            .rules
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .running;
        let sender = self
            .rules
            .wake
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let (true, Some(sender)) = (running, sender) {
            let (done, answer) = mpsc::channel();
            if sender.send(Wake::Forget { customer, done }).is_ok() {
                return answer.recv_timeout(Duration::from_secs(600)).map_err(|_| {
                    Error::Model(
                        "the rules worker did not confirm the deletion; it is applied at its next start"
                            .into(),
                    )
                })?;
            }
            return Err(Error::Model("the rules worker has stopped".into()));
        }
        // No worker: the snapshot it would start from is scrubbed too.
        let path = self.rules_dir().join("state.json.zst");
        if let Some(mut snapshot) = std::fs::read(&path)
            .ok()
            .and_then(|bytes| zstd::decode_all(&bytes[..]).ok())
            .and_then(|bytes| serde_json::from_slice::<Snapshot>(&bytes).ok())
        {
            forget_in_state(
                &mut snapshot.state,
                &mut snapshot.aliases,
                &mut snapshot.identity,
                &customer,
            );
            let io = |error: std::io::Error| Error::Model(format!("{}: {error}", path.display()));
            let json = serde_json::to_vec(&snapshot).unwrap_or_default();
            let compressed = zstd::encode_all(&json[..], 3).map_err(io)?;
            write_atomically(&path, &compressed).map_err(io)?;
        }
        Ok(self.forget_in_rules_files(&customer)?.0)
    }

    /// Rewrites the journal and the segment history without a deleted customer, and cancels its deliveries.
    /// Returns what went and the removed instances' keys.
    fn forget_in_rules_files(
        &self,
        customer: &Forgetting,
    ) -> Result<(ForgottenRules, HashSet<String>), Error> {
        let dir = self.rules_dir();
        let mut forgotten = ForgottenRules::default();
        let mut keys: HashSet<String> = HashSet::new();
        {
            // Held throughout, so no delivery attempt is written to the old file meanwhile.
            let mut journal = self
                .rules
                .journal
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let path = dir.join("journal.log");
            if let Ok(text) = std::fs::read_to_string(&path) {
                let mut records: Vec<Record> = text
                    .lines()
                    .filter_map(|line| serde_json::from_str(line).ok())
                    .collect();
                for record in &mut records {
                    if let Record::Instances { instances, .. } = record {
                        instances.retain(|instance| {
                            let gone = customer.customers.contains(&instance.customer);
                            if gone {
                                keys.insert(instance.key.clone());
                            }
                            !gone
                        });
                    }
                }
                forgotten.trigger_instances = keys.len();
                records.retain(|record| match record {
                    Record::Instances { .. } => true,
                    Record::Attempt { key, .. } | Record::Replayed { key, .. } => {
                        !keys.contains(key)
                    }
                });
                let mut out = Vec::with_capacity(text.len());
                for record in &records {
                    out.extend(serde_json::to_vec(record).unwrap_or_default());
                    out.push(b'\n');
                }
                let io =
                    |error: std::io::Error| Error::Model(format!("{}: {error}", path.display()));
                write_atomically(&path, &out).map_err(io)?;
                // Appends go to the new file from now on.
                *journal = None;
            }
        }
        let path = dir.join("segments.log");
        if let Ok(text) = std::fs::read_to_string(&path) {
            let mut out = Vec::with_capacity(text.len());
            for line in text.lines() {
                let Ok(decision) = serde_json::from_str::<Decision>(line) else {
                    continue;
                };
                let id = match &decision {
                    Decision::SegmentEntered { customer, .. }
                    | Decision::SegmentExited { customer, .. }
                    | Decision::Error { customer, .. } => customer,
                    Decision::Trigger(instance) => &instance.customer,
                };
                if customer.customers.contains(id) {
                    forgotten.segment_changes += 1;
                    continue;
                }
                out.extend_from_slice(line.as_bytes());
                out.push(b'\n');
            }
            let io = |error: std::io::Error| Error::Model(format!("{}: {error}", path.display()));
            write_atomically(&path, &out).map_err(io)?;
        }
        {
            let mut members = self
                .rules
                .members
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            for set in members.values_mut() {
                set.retain(|id| !customer.customers.contains(id));
            }
        }
        let mut queue = self
            .rules
            .deliveries
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mine = |job: &Job| customer.customers.contains(&job.instance.customer);
        let before = queue.pending.len() + queue.dead.len();
        queue.pending.retain(|_, job| !mine(job));
        queue.dead.retain(|_, job| !mine(job));
        forgotten.deliveries_cancelled = before - queue.pending.len() - queue.dead.len();
        let QueueInner { heap, pending, .. } = &mut *queue;
        heap.retain(|std::cmp::Reverse((_, key, action))| {
            pending.contains_key(&(key.clone(), *action))
        });
        Ok((forgotten, keys))
    }
}

/// The actions of the trigger or monitor (`monitor:NAME`) an instance belongs to, as the definitions in force
/// give them.
fn live_actions<'a>(rules: &'a Rules, trigger: &str) -> Option<&'a [ActionSpec]> {
    match trigger.strip_prefix(MONITOR_PREFIX) {
        Some(monitor) => rules
            .set
            .monitors
            .iter()
            .find(|m| m.name == monitor)
            .map(|m| m.actions.as_slice()),
        None => rules
            .set
            .triggers
            .iter()
            .find(|t| t.name == trigger)
            .map(|t| t.actions.as_slice()),
    }
}

fn action_kind(action: &ActionSpec) -> &'static str {
    match action {
        ActionSpec::Webhook { .. } => "webhook",
        ActionSpec::Event { .. } => "event",
        ActionSpec::Traits { .. } => "traits",
    }
}

/// Folds the state of an identifier's earlier customer into its customer now (an anonymous visitor who logged
/// in, two profiles merged).
/// Files `event` under its customer as the store did when it arrived (`identity`), and when that customer now
/// holds an identifier another customer held before, merges the two customers' rules state (the segment
/// changes that brings go to `decisions`). Returns the customer.
fn follow_identity(
    rules: &Rules,
    state: &mut RulesState,
    aliases: &mut HashMap<String, String>,
    identity: &mut ArrivalIdentity,
    event: &waymark_model::Event,
    mode: Mode,
    decisions: &mut Vec<Decision>,
) -> String {
    let customer = identity.customer_of(event);
    let customer = customer.as_str();
    let keys = event
        .user_id
        .iter()
        .map(|u| waymark_model::Identifier::user(u.as_str()).key())
        .chain(
            event
                .anonymous_id
                .iter()
                .map(|a| waymark_model::Identifier::anonymous(a.as_str()).key()),
        );
    for key in keys {
        match aliases.get(&key) {
            Some(previous) if previous != customer => {
                let previous = previous.clone();
                decisions.extend(rules.merge_customers(
                    state,
                    &previous,
                    customer,
                    event.timestamp.0,
                    mode,
                ));
                aliases.insert(key, customer.to_string());
            }
            Some(_) => {}
            None => {
                aliases.insert(key, customer.to_string());
            }
        }
    }
    customer.to_string()
}

/// The entries and exits in `rules/segments.log`, oldest first (a torn last line is skipped).
fn read_segment_log(path: &Path) -> Vec<Decision> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// Per (instance key, action): attempts made, the last error, and how the last attempt ended.
type Attempts = HashMap<(String, usize), (u32, Option<String>, Outcome)>;

/// Reads the journal: instances in order (with their line), and per (key, action) the attempts made, the last
/// error and the last outcome. A torn last line (a crash mid-write) is skipped.
pub(crate) fn read_journal(path: &Path) -> (Vec<(usize, Instance)>, Attempts) {
    let mut instances = Vec::new();
    let mut attempts: Attempts = HashMap::new();
    let Ok(file) = std::fs::File::open(path) else {
        return (instances, attempts);
    };
    for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
        let Ok(line) = line else { break };
        let Ok(record) = serde_json::from_str::<Record>(&line) else {
            continue;
        };
        match record {
            Record::Instances { instances: new, .. } => {
                instances.extend(new.into_iter().map(|i| (number, i)))
            }
            Record::Attempt {
                key,
                action,
                attempt,
                outcome,
                error,
                ..
            } => {
                let entry = attempts.entry((key, action)).or_insert((0, None, outcome));
                entry.0 = entry.0.max(attempt);
                entry.2 = outcome;
                if error.is_some() {
                    entry.1 = error;
                }
            }
            Record::Replayed { key, action, .. } => {
                if let Some(entry) = attempts.get_mut(&(key, action)) {
                    entry.2 = Outcome::Failed;
                }
            }
        }
    }
    (instances, attempts)
}

/// A customer's new scores: (customer, [(model, value)], latest event time).
pub(crate) type ScoreChange = (String, Vec<(String, f64)>, i64);

/// The rules worker's own state.
struct Worker {
    rules: Rules,
    state: RulesState,
    aliases: HashMap<String, String>,
    identity: ArrivalIdentity,
    through_seq: Option<u64>,
    /// Event time: the latest event time seen.
    clock: i64,
    known_keys: HashSet<String>,
    options: RulesOptions,
    digest: u64,
    last_snapshot: Instant,
    instances: u64,
    errors: u64,
    /// The clock through which monitors were checked (`None`: from now on, history does not fire).
    monitors_through: Option<i64>,
    monitors_checked: Instant,
}

/// How often (wall time) the worker reads its monitors.
const MONITOR_CHECK: Duration = Duration::from_secs(5);

fn rules_digest(file: &RulesFile, rules: &Rules) -> u64 {
    let versions: Vec<(String, u32)> = rules
        .set
        .triggers
        .iter()
        .map(|t| (t.name.clone(), t.version))
        .collect();
    xxhash_rust::xxh3::xxh3_64(format!("{}\u{1f}{versions:?}", file.to_toml()).as_bytes())
}

impl Worker {
    fn start(
        engine: &Arc<Engine>,
        options: RulesOptions,
        history_end: Option<u64>,
    ) -> Result<Worker, Error> {
        let (file, rules, definitions_error) = match engine
            .rules_file()
            .and_then(|file| engine.compile_rules(&file).map(|rules| (file, rules)))
        {
            Ok((file, rules)) => (file, rules, None),
            Err(error) => {
                tracing::warn!(%error, "the rules in {RULES_FILE} are not in force");
                let file = RulesFile::default();
                let rules = engine.compile_rules(&file)?;
                (file, rules, Some(error.to_string()))
            }
        };
        let digest = rules_digest(&file, &rules);
        let dir = engine.rules_dir();
        let snapshot: Option<Snapshot> = std::fs::read(dir.join("state.json.zst"))
            .ok()
            .and_then(|bytes| zstd::decode_all(&bytes[..]).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        let (instances, attempts) = read_journal(&dir.join("journal.log"));
        let known_keys: HashSet<String> = instances.iter().map(|(_, i)| i.key.clone()).collect();
        let mut worker = Worker {
            rules,
            state: RulesState::default(),
            aliases: HashMap::new(),
            identity: ArrivalIdentity::default(),
            through_seq: None,
            clock: i64::MIN,
            known_keys,
            options,
            digest,
            last_snapshot: Instant::now(),
            instances: instances.len() as u64,
            errors: 0,
            monitors_through: None,
            monitors_checked: Instant::now(),
        };
        match snapshot {
            Some(snapshot) if snapshot.digest == digest => {
                worker.state = snapshot.state;
                worker.aliases = snapshot.aliases;
                worker.identity = snapshot.identity;
                worker.through_seq = snapshot.through_seq;
                worker.clock = snapshot.clock;
                worker.monitors_through = snapshot.monitors_through;
            }
            other => {
                let old = other.map(|snapshot| snapshot.state);
                worker.backfill(engine, old, history_end)?;
            }
        }
        if worker.monitors_through.is_none() {
            // Alerts in the history do not fire: monitors are checked from the clock as it stands.
            worker.monitors_through = Some(match worker.options.clock {
                RulesClock::Wall => now_us(),
                RulesClock::EventTime => worker.clock,
            });
        }
        // Deliveries decided but not confirmed are due again.
        {
            let mut queue = engine
                .rules
                .deliveries
                .inner
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let mut actions_by_version: HashMap<(String, u32), Vec<ActionSpec>> = HashMap::new();
            for (_, instance) in instances {
                if instance.status != Status::Fired {
                    continue;
                }
                let actions = actions_by_version
                    .entry((instance.trigger.clone(), instance.version))
                    .or_insert_with(|| engine.actions_of(&instance))
                    .clone();
                for (index, action) in actions.into_iter().enumerate() {
                    let id = (instance.key.clone(), index);
                    let tried = attempts.get(&id);
                    let job = Job {
                        instance: Arc::new(instance.clone()),
                        action,
                        attempt: tried.map_or(0, |t| t.0),
                        identifiers: worker.identifiers_of(&instance.customer),
                    };
                    match tried.map(|t| t.2) {
                        Some(Outcome::Delivered | Outcome::Simulated) => {}
                        Some(Outcome::Dead) => {
                            queue.dead.insert(id, job);
                        }
                        _ => {
                            queue.heap.push(std::cmp::Reverse((
                                instance.deliver_at,
                                id.0.clone(),
                                id.1,
                            )));
                            queue.pending.insert(id, job);
                        }
                    }
                }
            }
        }
        engine.rules.deliveries.ready.notify_all();
        let mut status = engine
            .rules
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        status.running = true;
        status.clock = worker.options.clock;
        status.definitions_error = definitions_error;
        drop(status);
        worker.publish(engine);
        Ok(worker)
    }

    /// Rebuilds facts and segments from the whole history without deciding any trigger (history does not set
    /// triggers off), keeping `old`'s trigger states; then snapshots.
    fn backfill(
        &mut self,
        engine: &Engine,
        old: Option<RulesState>,
        end: Option<u64>,
    ) -> Result<(), Error> {
        let started = Instant::now();
        let mut state = RulesState::default();
        let mut aliases = HashMap::new();
        let mut identity = ArrivalIdentity::default();
        let mut through = None;
        let mut clock = i64::MIN;
        let mut segments_log = Vec::new();
        if !self.rules.follows_events() {
            through = end;
        }
        while self.rules.follows_events() {
            let batch = engine.store.events_after(through, 50_000)?;
            if batch.is_empty() || end.is_none() {
                break;
            }
            for stored in batch.iter().filter(|stored| Some(stored.seq) <= end) {
                let customer = follow_identity(
                    &self.rules,
                    &mut state,
                    &mut aliases,
                    &mut identity,
                    &stored.event,
                    Mode::Backfill,
                    &mut segments_log,
                );
                clock = clock.max(stored.event.timestamp.0);
                for decision in
                    self.rules
                        .on_event(&mut state, &customer, &stored.event, Mode::Backfill)
                {
                    if matches!(
                        decision,
                        Decision::SegmentEntered { .. } | Decision::SegmentExited { .. }
                    ) {
                        segments_log.push(decision);
                    }
                }
                through = Some(stored.seq);
            }
            if batch.iter().any(|stored| Some(stored.seq) >= end) {
                break;
            }
        }
        segments_log.retain(|decision| {
            matches!(
                decision,
                Decision::SegmentEntered { .. } | Decision::SegmentExited { .. }
            )
        });
        if let Some(old) = old {
            state.carry_triggers_from(old);
        }
        self.state = state;
        self.aliases = aliases;
        self.identity = identity;
        self.through_seq = through;
        self.clock = clock;
        *engine
            .rules
            .members
            .write()
            .unwrap_or_else(PoisonError::into_inner) = self
            .rules
            .set
            .segments
            .iter()
            .map(|segment| {
                let members = self
                    .state
                    .members(&segment.name)
                    .map(str::to_string)
                    .collect();
                (segment.name.clone(), members)
            })
            .collect();
        let path = engine.rules_dir().join("segments.log");
        let _ = std::fs::create_dir_all(engine.rules_dir());
        let mut text = Vec::new();
        for decision in segments_log {
            if let Ok(line) = serde_json::to_string(&decision) {
                text.extend_from_slice(line.as_bytes());
                text.push(b'\n');
            }
        }
        let _ = write_atomically(&path, &text);
        tracing::info!(
            seconds = started.elapsed().as_secs_f64(),
            customers = self.state.customers(),
            "rules state built from history"
        );
        self.snapshot(engine)
    }

    fn reload(&mut self, engine: &Arc<Engine>) -> Result<(), Error> {
        let file = engine.rules_file()?;
        let rules = engine.compile_rules(&file)?;
        self.digest = rules_digest(&file, &rules);
        self.rules = rules;
        let old = std::mem::take(&mut self.state);
        self.backfill(engine, Some(old), self.through_seq)?;
        let mut status = engine
            .rules
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        status.definitions_error = None;
        drop(status);
        self.publish(engine);
        Ok(())
    }

    fn snapshot(&mut self, engine: &Engine) -> Result<(), Error> {
        let snapshot = Snapshot {
            through_seq: self.through_seq,
            digest: self.digest,
            clock: self.clock,
            aliases: std::mem::take(&mut self.aliases),
            identity: std::mem::take(&mut self.identity),
            state: std::mem::take(&mut self.state),
            monitors_through: self.monitors_through,
        };
        let json = serde_json::to_vec(&snapshot).unwrap_or_default();
        self.aliases = snapshot.aliases;
        self.identity = snapshot.identity;
        self.state = snapshot.state;
        let dir = engine.rules_dir();
        let io = |error: std::io::Error| Error::Model(format!("{}: {error}", dir.display()));
        std::fs::create_dir_all(&dir).map_err(io)?;
        let compressed = zstd::encode_all(&json[..], 3).map_err(io)?;
        write_atomically(&dir.join("state.json.zst"), &compressed).map_err(io)?;
        self.last_snapshot = Instant::now();
        Ok(())
    }

    /// How long to wait for a wake-up: until the next timer on the wall clock, at most a second.
    /// Reads every monitor from where the last check ended to `now`: each alert that began since is an
    /// instance (`monitor:NAME`, keyed by the reading's time, so a restart does not send it twice).
    fn check_monitors(&mut self, engine: &Engine, now: i64) -> Vec<Decision> {
        self.monitors_checked = Instant::now();
        let from = self.monitors_through.unwrap_or(now);
        let mut decisions = Vec::new();
        for monitor in &self.rules.set.monitors {
            let readings = match engine.monitor_readings(monitor, from, now) {
                Ok(readings) => readings,
                Err(error) => {
                    self.errors += 1;
                    tracing::warn!(monitor = monitor.name, %error, "monitor not read");
                    continue;
                }
            };
            for judged in readings.iter().filter(|j| j.fired && j.reading.at > from) {
                let at = judged.reading.at;
                decisions.push(Decision::Trigger(Instance {
                    trigger: format!("{MONITOR_PREFIX}{}", monitor.name),
                    version: 1,
                    customer: String::new(),
                    at,
                    deliver_at: at,
                    key: format!("monitor.{}.{at}", monitor.name),
                    status: Status::Fired,
                    capped_by: None,
                    priority: 0,
                    cause: Cause::Monitor {
                        monitor: monitor.name.clone(),
                        value: judged.reading.value.unwrap_or_default(),
                        expected: judged.expected,
                    },
                }));
            }
        }
        self.monitors_through = Some(now);
        decisions
    }

    fn wait(&self) -> Duration {
        let second = Duration::from_secs(1);
        match (self.options.clock, self.rules.next_due(&self.state)) {
            (RulesClock::Wall, Some(due)) => {
                let wait = due - now_us();
                if wait <= 0 {
                    Duration::ZERO
                } else {
                    Duration::from_micros(wait as u64).min(second)
                }
            }
            _ => second,
        }
    }

    fn identifiers_of(&self, customer: &str) -> Vec<String> {
        self.state
            .customer(customer)
            .map(|c| c.identifiers().iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Processes the events stored since the last step, the scores that changed, and the timers due; writes
    /// the new instances to the journal, then hands their actions to the deliveries.
    fn step(&mut self, engine: &Arc<Engine>, scores: Vec<ScoreChange>) -> Result<(), Error> {
        let mut decisions = Vec::new();
        let mut through = self.through_seq;
        if !self.rules.follows_events() {
            // Nothing to follow: the position moves to the end without reading (a definition saved later is
            // built from the whole history by `reload`).
            through = through.max(engine.store.last_seq());
        }
        while self.rules.follows_events() {
            // A stop does not wait for the worker to catch up: the snapshot keeps its position, and the next
            // start goes on from there (the events after it are still live then).
            if engine.rules.stopping.load(Ordering::Acquire) && through != self.through_seq {
                break;
            }
            let batch = engine.store.events_after(through, 10_000)?;
            if batch.is_empty() {
                break;
            }
            for stored in &batch {
                let started = Instant::now();
                let customer = follow_identity(
                    &self.rules,
                    &mut self.state,
                    &mut self.aliases,
                    &mut self.identity,
                    &stored.event,
                    Mode::Live,
                    &mut decisions,
                );
                match self.options.clock {
                    RulesClock::EventTime => decisions.extend(self.rules.on_event_in_event_time(
                        &mut self.state,
                        &customer,
                        &stored.event,
                        &mut self.clock,
                        Mode::Live,
                    )),
                    RulesClock::Wall => {
                        self.clock = self.clock.max(stored.event.timestamp.0);
                        decisions.extend(self.rules.on_event(
                            &mut self.state,
                            &customer,
                            &stored.event,
                            Mode::Live,
                        ))
                    }
                }
                metrics::histogram!(RULES_EVENT_SECONDS).record(started.elapsed().as_secs_f64());
                through = Some(stored.seq);
            }
            engine
                .rules
                .events
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            metrics::counter!(RULES_EVALUATIONS).increment(batch.len() as u64);
            if batch.len() < 10_000 {
                break;
            }
        }
        let now = match self.options.clock {
            RulesClock::Wall => now_us(),
            RulesClock::EventTime => self.clock,
        };
        for (customer, values, _) in scores {
            for (model, value) in values {
                decisions.extend(self.rules.on_score(
                    &mut self.state,
                    &customer,
                    &model,
                    value,
                    now,
                    Mode::Live,
                ));
            }
        }
        decisions.extend(self.rules.tick(&mut self.state, now, Mode::Live));
        if !self.rules.set.monitors.is_empty() && self.monitors_checked.elapsed() >= MONITOR_CHECK {
            decisions.extend(self.check_monitors(engine, now));
        }
        let mut instances = Vec::new();
        let mut segment_lines = Vec::new();
        for decision in decisions {
            match decision {
                Decision::Trigger(instance) => {
                    if self.known_keys.insert(instance.key.clone()) {
                        metrics::counter!(RULES_INSTANCES, "trigger" => instance.trigger.clone(), "status" => format!("{:?}", instance.status).to_lowercase()).increment(1);
                        instances.push(instance);
                    }
                }
                Decision::Error {
                    rule,
                    customer,
                    message,
                } => {
                    self.errors += 1;
                    metrics::counter!(RULES_ERRORS).increment(1);
                    tracing::debug!(rule, customer, message, "condition not evaluated");
                }
                other => segment_lines.push(other),
            }
        }
        if !segment_lines.is_empty() {
            let mut members = engine
                .rules
                .members
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            for decision in &segment_lines {
                match decision {
                    Decision::SegmentEntered {
                        segment, customer, ..
                    } => {
                        members
                            .entry(segment.clone())
                            .or_default()
                            .insert(customer.clone());
                    }
                    Decision::SegmentExited {
                        segment, customer, ..
                    } => {
                        if let Some(set) = members.get_mut(segment) {
                            set.remove(customer);
                        }
                    }
                    _ => {}
                }
            }
            drop(members);
            let path = engine.rules_dir().join("segments.log");
            if let Ok(mut file) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                for decision in &segment_lines {
                    if let Ok(line) = serde_json::to_string(decision) {
                        let _ = writeln!(file, "{line}");
                    }
                }
            }
        }
        if !instances.is_empty() {
            // Durable before any action runs.
            engine.journal(&Record::Instances {
                through_seq: through,
                instances: instances.clone(),
            })?;
            self.instances += instances.len() as u64;
            let mut queue = engine
                .rules
                .deliveries
                .inner
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for instance in instances {
                if instance.status != Status::Fired {
                    continue;
                }
                let Some(actions) = live_actions(&self.rules, &instance.trigger) else {
                    continue;
                };
                let instance = Arc::new(instance);
                for (index, action) in actions.iter().enumerate() {
                    let id = (instance.key.clone(), index);
                    queue.heap.push(std::cmp::Reverse((
                        instance.deliver_at,
                        id.0.clone(),
                        index,
                    )));
                    queue.pending.insert(
                        id,
                        Job {
                            instance: Arc::clone(&instance),
                            action: action.clone(),
                            attempt: 0,
                            identifiers: self.identifiers_of(&instance.customer),
                        },
                    );
                }
            }
            drop(queue);
            engine.rules.deliveries.ready.notify_all();
        }
        self.through_seq = through;
        self.publish(engine);
        Ok(())
    }

    /// Drops a deleted customer from the worker's state and from the rules' files, then snapshots at once (so
    /// no file keeps it until the next periodic snapshot).
    fn forget(&mut self, engine: &Engine, customer: &Forgetting) -> Result<ForgottenRules, Error> {
        forget_in_state(
            &mut self.state,
            &mut self.aliases,
            &mut self.identity,
            customer,
        );
        let (forgotten, keys) = engine.forget_in_rules_files(customer)?;
        self.known_keys.retain(|key| !keys.contains(key));
        self.instances = self
            .instances
            .saturating_sub(forgotten.trigger_instances as u64);
        self.snapshot(engine)?;
        self.publish(engine);
        Ok(forgotten)
    }

    fn publish(&self, engine: &Engine) {
        let mut status = engine
            .rules
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        status.through_seq = self.through_seq;
        status.clock_at = (self.options.clock == RulesClock::EventTime).then_some(self.clock);
        status.customers = self.state.customers();
        status.timers = self.state.timers();
        status.segments = self.rules.set.segments.len();
        status.triggers = self.rules.set.triggers.len();
        status.instances = self.instances;
        status.evaluation_errors = self.errors;
    }
}

/// An action waiting for delivery.
#[derive(Clone)]
struct Job {
    instance: Arc<Instance>,
    action: ActionSpec,
    attempt: u32,
    /// The customer's identifier keys, for event and trait actions.
    identifiers: Vec<String>,
}

#[derive(Default)]
struct QueueInner {
    /// (due µs, key, action), soonest first.
    heap: BinaryHeap<std::cmp::Reverse<(i64, String, usize)>>,
    pending: HashMap<(String, usize), Job>,
    /// Being delivered now.
    taken: HashSet<(String, usize)>,
    dead: HashMap<(String, usize), Job>,
}

#[derive(Default)]
pub(crate) struct DeliveryQueue {
    inner: Mutex<QueueInner>,
    ready: Condvar,
}

fn delivery_loop(
    engine: std::sync::Weak<Engine>,
    queue: Arc<DeliveryQueue>,
    options: RulesOptions,
) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(options.request_timeout))
        .http_status_as_error(false)
        .build()
        .into();
    loop {
        let job = {
            let mut inner = queue.inner.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                if engine
                    .upgrade()
                    .is_none_or(|e| e.rules.stopping.load(Ordering::Acquire))
                {
                    return;
                }
                let now = now_us();
                match inner.heap.peek() {
                    Some(std::cmp::Reverse((due, _, _))) if *due <= now => {
                        let std::cmp::Reverse((_, key, action)) = inner.heap.pop().expect("peeked");
                        let id = (key, action);
                        if inner.taken.contains(&id) {
                            continue;
                        }
                        if let Some(job) = inner.pending.get(&id).cloned() {
                            inner.taken.insert(id.clone());
                            break (id, job);
                        }
                    }
                    Some(std::cmp::Reverse((due, _, _))) => {
                        let wait =
                            Duration::from_micros((*due - now) as u64).min(Duration::from_secs(1));
                        inner = queue
                            .ready
                            .wait_timeout(inner, wait)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0;
                    }
                    None => {
                        inner = queue
                            .ready
                            .wait_timeout(inner, Duration::from_secs(1))
                            .unwrap_or_else(PoisonError::into_inner)
                            .0;
                    }
                }
            }
        };
        let Some(engine) = engine.upgrade() else {
            return;
        };
        let (id, job) = job;
        let attempt = job.attempt + 1;
        let started = Instant::now();
        let simulated = !options.send_webhooks && matches!(job.action, ActionSpec::Webhook { .. });
        let result = if simulated {
            Ok(())
        } else {
            deliver(&engine, &agent, &id, &job)
        };
        metrics::histogram!(DELIVERY_SECONDS).record(started.elapsed().as_secs_f64());
        let (outcome, status, error) = match &result {
            Ok(()) if simulated => (Outcome::Simulated, None, None),
            Ok(()) => (Outcome::Delivered, None, None),
            Err((status, error)) if attempt >= options.max_attempts => {
                (Outcome::Dead, *status, Some(error.clone()))
            }
            Err((status, error)) => (Outcome::Failed, *status, Some(error.clone())),
        };
        metrics::counter!(DELIVERIES, "outcome" => format!("{outcome:?}").to_lowercase())
            .increment(1);
        let _ = engine.journal(&Record::Attempt {
            key: id.0.clone(),
            action: id.1,
            attempt,
            at: now_us(),
            outcome,
            status,
            error,
        });
        let mut inner = queue.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.taken.remove(&id);
        match outcome {
            Outcome::Delivered | Outcome::Simulated => {
                inner.pending.remove(&id);
            }
            Outcome::Dead => {
                if let Some(job) = inner.pending.remove(&id) {
                    inner.dead.insert(id, Job { attempt, ..job });
                }
            }
            Outcome::Failed => {
                let delay = backoff_delay(&options, attempt);
                if let Some(job) = inner.pending.get_mut(&id) {
                    job.attempt = attempt;
                }
                inner.heap.push(std::cmp::Reverse((
                    now_us() + delay.as_micros() as i64,
                    id.0.clone(),
                    id.1,
                )));
            }
        }
    }
}

/// The wait before attempt `attempt + 1`: exponential with jitter (backon's), capped.
fn backoff_delay(options: &RulesOptions, attempt: u32) -> Duration {
    backon::ExponentialBuilder::new()
        .with_min_delay(options.min_backoff)
        .with_max_delay(options.max_backoff)
        .with_jitter()
        .with_max_times(attempt as usize)
        .build()
        .nth(attempt.saturating_sub(1) as usize)
        .unwrap_or(options.max_backoff)
}

/// The payload a webhook receives for an instance.
pub fn webhook_body(instance: &Instance) -> serde_json::Value {
    let iso = |micros: i64| {
        chrono::DateTime::from_timestamp_micros(micros)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    };
    let kind = if instance.trigger.starts_with(MONITOR_PREFIX) {
        "monitor.fired"
    } else {
        "trigger.fired"
    };
    serde_json::json!({
        "type": kind,
        "timestamp": iso(instance.deliver_at),
        "data": {
            "trigger": instance.trigger,
            "version": instance.version,
            "customer": instance.customer,
            "key": instance.key,
            "at": iso(instance.at),
            "cause": instance.cause,
        }
    })
}

/// The Standard Webhooks signature of `body`: `v1,` + base64 HMAC-SHA256 of `id.timestamp.body` with the
/// secret's bytes (the base64 after `whsec_`).
pub fn sign_webhook(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, String> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|error| format!("the webhook secret is not base64 after `whsec_`: {error}"))?;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key)
        .map_err(|error| format!("the webhook secret cannot key an HMAC: {error}"))?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// One delivery attempt: `Err((HTTP status, message))`.
fn deliver(
    engine: &Engine,
    agent: &ureq::Agent,
    id: &(String, usize),
    job: &Job,
) -> Result<(), (Option<u16>, String)> {
    let instance = &job.instance;
    let delivery_id = format!("{}.{}", id.0, id.1);
    match &job.action {
        ActionSpec::Webhook {
            url,
            secret,
            secret_env,
        } => {
            let secret = match (secret, secret_env) {
                (Some(secret), _) => secret.clone(),
                (None, Some(name)) => std::env::var(name).map_err(|_| {
                    (
                        None,
                        format!(
                            "the environment variable {name} holding the webhook secret is not set"
                        ),
                    )
                })?,
                (None, None) => return Err((None, "the webhook has no secret".into())),
            };
            let body = serde_json::to_vec(&webhook_body(instance)).unwrap_or_default();
            let timestamp = now_us() / 1_000_000;
            let signature =
                sign_webhook(&secret, &delivery_id, timestamp, &body).map_err(|e| (None, e))?;
            let response = agent
                .post(url)
                .header("content-type", "application/json")
                .header("webhook-id", &delivery_id)
                .header("webhook-timestamp", &timestamp.to_string())
                .header("webhook-signature", &signature)
                .send(&body[..])
                .map_err(|error| (None, error.to_string()))?;
            let status = response.status().as_u16();
            if (200..300).contains(&status) {
                Ok(())
            } else {
                Err((Some(status), format!("the receiver answered {status}")))
            }
        }
        ActionSpec::Event {
            name,
            channel,
            properties,
        } => {
            let mut properties = properties.clone();
            properties.insert("trigger".into(), instance.trigger.clone().into());
            properties.insert("trigger_version".into(), instance.version.into());
            properties.insert("trigger_instance".into(), instance.key.clone().into());
            let event = action_event(
                job,
                "track",
                Some(name),
                channel,
                properties,
                Default::default(),
            );
            engine.ingest_action(event, &delivery_id)
        }
        ActionSpec::Traits { traits } => {
            let event = action_event(
                job,
                "identify",
                None,
                "other",
                Default::default(),
                traits.clone(),
            );
            engine.ingest_action(event, &delivery_id)
        }
    }
}

fn action_event(
    job: &Job,
    kind: &str,
    name: Option<&String>,
    channel: &str,
    properties: serde_json::Map<String, serde_json::Value>,
    traits: serde_json::Map<String, serde_json::Value>,
) -> serde_json::Value {
    let identifier = job
        .identifiers
        .iter()
        .find(|k| k.starts_with("user:"))
        .or_else(|| job.identifiers.first())
        .cloned()
        .unwrap_or_else(|| format!("user:{}", job.instance.customer));
    let time = chrono::DateTime::from_timestamp_micros(job.instance.deliver_at)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut event = serde_json::json!({
        "type": kind,
        "timestamp": time,
        "context": {"channel": channel},
    });
    if let Some(user) = identifier.strip_prefix("user:") {
        event["userId"] = user.into();
    } else if let Some(anonymous) = identifier.strip_prefix("anon:") {
        event["anonymousId"] = anonymous.into();
    }
    if let Some(name) = name {
        event["event"] = name.clone().into();
    }
    if !properties.is_empty() {
        event["properties"] = properties.into();
    }
    if !traits.is_empty() {
        event["traits"] = traits.into();
    }
    event
}

impl Engine {
    /// Stores an action's event with a `messageId` derived from the delivery id, so a retry is kept once.
    fn ingest_action(
        &self,
        mut event: serde_json::Value,
        delivery_id: &str,
    ) -> Result<(), (Option<u16>, String)> {
        event["messageId"] = format!("wm-{delivery_id}").into();
        let context = waymark_model::IngestContext::at(waymark_model::Timestamp(now_us()));
        let event = waymark_model::Event::from_segment_value(event, &context)
            .map_err(|error| (None, error.to_string()))?;
        self.store
            .append(vec![event], Vec::new())
            .map_err(|error| (None, error.to_string()))?;
        self.rules_events_stored();
        Ok(())
    }
}

use waymark_store::write_file_atomically as write_atomically;
