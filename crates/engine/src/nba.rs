//! Next best action: the catalogue (`catalogue.toml` in the data directory; `waymark catalogue`, `/v1/catalogue`)
//! and the decision for one customer (`GET /v1/customers/{id}/next-best-action`, `waymark customer nba`).
//!
//! A decision reads the customer's journey as stored now (their events, the segments the rules worker holds them
//! in, the live scores) and ranks the catalogue with `waymark_rules::catalogue`. Each item's first offer to a
//! customer — shown, or held out — is recorded in `nba/offers.log` (JSON lines, one write per first offer, so a
//! repeat request writes nothing); the lift report reads it as it reads the triggers' journal, each item as
//! `offer:ID` with its version, its treated customers those offered it, its control those held out.
//! Impressions and clicks come back as the events the offer names (`Promotion Viewed`, `Promotion Clicked` by
//! default) through the collector, like any other event.

use crate::{Engine, Error};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;
use waymark_model::Timestamp;
use waymark_rules::catalogue::Catalogue;
pub use waymark_rules::catalogue::{
    CatalogueFile, Excluded, HeldOut, ItemSpec, Offer, Reason, OFFER_PREFIX,
};
use waymark_rules::defs::Stage;
use waymark_rules::Known;

/// The catalogue's file in the data directory.
pub const CATALOGUE_FILE: &str = "catalogue.toml";

/// The state a serving process keeps: the compiled catalogue (rebuilt when a file it depends on changes) and
/// which first offers are recorded.
#[derive(Default)]
pub(crate) struct NbaLive {
    compiled: Mutex<Option<Compiled>>,
    offers: Mutex<Option<Offers>>,
}

struct Compiled {
    stamps: Vec<Option<SystemTime>>,
    catalogue: Arc<Catalogue>,
    stages: Arc<Vec<Stage>>,
}

struct Offers {
    file: std::fs::File,
    recorded: HashSet<(String, String, u32)>,
}

/// One recorded first offer (a line of `nba/offers.log`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OfferRecord {
    /// When it was decided (µs).
    pub at: i64,
    pub customer: String,
    pub item: String,
    pub version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<String>,
    pub rank: usize,
    /// In the item's holdout: not shown.
    pub held_out: bool,
}

/// `GET /v1/customers/{id}/next-best-action` query, `waymark customer nba` flags.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NbaRequest {
    /// Where the items will be shown (`home`, `checkout`); items for other placements are left out. Default:
    /// every item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<String>,
    /// How many items (1–100). Default: the catalogue's `settings.limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Also say why every other item was left out.
    #[serde(default)]
    pub explain: bool,
    /// A preview (the UI, a colleague checking what a customer would see): nothing is recorded, so it does not
    /// count as an offer in the lift report.
    #[serde(default)]
    pub preview: bool,
}

/// The decision for one customer.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct NextBestAction {
    pub customer_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<String>,
    /// When it was decided.
    pub at: Timestamp,
    /// The customer's current stage, when a stage matches their latest steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_stage: Option<String>,
    /// The customer's attributes as the catalogue derives them (newest value first).
    pub attributes: BTreeMap<String, Vec<String>>,
    pub segments: Vec<String>,
    /// The ranked items, best first.
    pub items: Vec<Offer>,
    /// Items that ranked within the limit but are held out for this customer (the lift's control).
    pub held_out: Vec<HeldOut>,
    /// With `explain`: every other item and why it was left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded: Vec<Excluded>,
}

/// What saving a catalogue did.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SavedCatalogue {
    /// Each item's version in force.
    pub versions: BTreeMap<String, u32>,
    /// Items whose definition changed (a new version).
    pub changed: Vec<String>,
}

/// `GET /v1/catalogue`: the catalogue in force, as data and as its TOML file.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CatalogueView {
    pub catalogue: CatalogueFile,
    pub versions: BTreeMap<String, u32>,
    pub toml: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Versions {
    /// Item → (digest of its definition, version).
    items: BTreeMap<String, (u64, u32)>,
}

fn digest_of(item: &ItemSpec) -> u64 {
    xxhash_rust::xxh3::xxh3_64(serde_json::to_string(item).unwrap_or_default().as_bytes())
}

fn io_error(path: &std::path::Path, error: std::io::Error) -> Error {
    Error::Model(format!("{}: {error}", path.display()))
}

impl Engine {
    fn nba_dir(&self) -> PathBuf {
        self.dir().join("nba")
    }

    fn catalogue_versions(&self) -> Versions {
        std::fs::read(self.nba_dir().join("versions.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// The catalogue in force (an empty one, with the default attributes, when there is no file).
    pub fn catalogue_file(&self) -> Result<CatalogueFile, Error> {
        let path = self.dir().join(CATALOGUE_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => CatalogueFile::from_toml(&text).map_err(Error::Catalogue),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                Ok(CatalogueFile::default())
            }
            Err(error) => Err(io_error(&path, error)),
        }
    }

    /// The catalogue in force with each item's version.
    pub fn catalogue_view(&self) -> Result<CatalogueView, Error> {
        let catalogue = self.catalogue_file()?;
        let versions = self.catalogue_versions();
        Ok(CatalogueView {
            toml: catalogue.to_toml(),
            versions: catalogue
                .items
                .iter()
                .map(|item| {
                    (
                        item.id.clone(),
                        versions.items.get(&item.id).map(|v| v.1).unwrap_or(1),
                    )
                })
                .collect(),
            catalogue,
        })
    }

    fn compile_catalogue(&self, file: &CatalogueFile, known: &Known) -> Result<Catalogue, Error> {
        let versions = self.catalogue_versions();
        let segments: BTreeSet<String> = self
            .rules_file()?
            .segments
            .into_iter()
            .map(|s| s.name)
            .collect();
        let catalogue = file
            .compile(
                known,
                &segments,
                &|item| match versions.items.get(&item.id) {
                    Some((digest, version)) if *digest == digest_of(item) => *version,
                    Some((_, version)) => version + 1,
                    None => 1,
                },
            )
            .map_err(Error::Catalogue)?;
        if let Some(name) = &file.settings.blueprint {
            // The blueprint must exist to give stages.
            self.blueprint(name).map_err(|error| {
                Error::Catalogue(waymark_rules::DefinitionErrors(vec![
                    waymark_rules::DefinitionError {
                        field: "settings.blueprint".into(),
                        line: None,
                        column: None,
                        message: error.to_string(),
                    },
                ]))
            })?;
        }
        Ok(catalogue)
    }

    /// Validates `file` against the stored steps, the saved models and the segments defined, without saving.
    pub fn check_catalogue(&self, file: &CatalogueFile) -> Result<SavedCatalogue, Error> {
        let catalogue = self.compile_catalogue(file, &self.rules_known()?)?;
        let versions = self.catalogue_versions();
        Ok(SavedCatalogue {
            changed: catalogue
                .items
                .iter()
                .filter(|item| {
                    versions.items.get(&item.spec.id)
                        != Some(&(digest_of(&item.spec), item.version))
                })
                .map(|item| item.spec.id.clone())
                .collect(),
            versions: catalogue
                .items
                .iter()
                .map(|item| (item.spec.id.clone(), item.version))
                .collect(),
        })
    }

    /// Validates `file` and, if it holds, makes it the catalogue in force (versions bumped for changed items,
    /// the file replaced atomically). A catalogue with any problem changes nothing.
    pub fn save_catalogue(&self, file: &CatalogueFile) -> Result<SavedCatalogue, Error> {
        let saved = self.check_catalogue(file)?;
        let dir = self.nba_dir();
        std::fs::create_dir_all(&dir).map_err(|error| io_error(&dir, error))?;
        let mut versions = self.catalogue_versions();
        for item in &file.items {
            versions
                .items
                .insert(item.id.clone(), (digest_of(item), saved.versions[&item.id]));
        }
        let path = dir.join("versions.json");
        waymark_store::write_file_atomically(
            &path,
            &serde_json::to_vec_pretty(&versions).unwrap_or_default(),
        )
        .map_err(|error| Error::Model(format!("{}: {error}", path.display())))?;
        let path = self.dir().join(CATALOGUE_FILE);
        waymark_store::write_file_atomically(&path, file.to_toml().as_bytes())
            .map_err(|error| Error::Model(format!("{}: {error}", path.display())))?;
        *self
            .nba
            .compiled
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        Ok(saved)
    }

    /// The compiled catalogue and the stages it reads, rebuilt when the catalogue, the rules or the blueprint
    /// it names changed on disk.
    fn compiled_catalogue(&self) -> Result<(Arc<Catalogue>, Arc<Vec<Stage>>), Error> {
        let stamp = |path: PathBuf| std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let file_stamp = stamp(self.dir().join(CATALOGUE_FILE));
        let rules_stamp = stamp(self.dir().join(crate::rules::RULES_FILE));
        let mut cache = self
            .nba
            .compiled
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(compiled) = cache.as_ref() {
            let blueprint_stamp = compiled
                .catalogue
                .file
                .settings
                .blueprint
                .as_ref()
                .and_then(|name| self.blueprint_path(name).ok())
                .and_then(stamp);
            if compiled.stamps == [file_stamp, rules_stamp, blueprint_stamp] {
                return Ok((
                    Arc::clone(&compiled.catalogue),
                    Arc::clone(&compiled.stages),
                ));
            }
        }
        let file = self.catalogue_file()?;
        // What was saved was checked then; a step or model gone since does not stop serving it.
        let catalogue = Arc::new(self.compile_catalogue(&file, &Known::default())?);
        let (stages, blueprint_stamp) = match &file.settings.blueprint {
            // A blueprint deleted since the catalogue was saved gives no stages; it does not stop the decisions.
            Some(name) => (
                match self.blueprint(name) {
                    Ok(blueprint) => blueprint
                        .stage_patterns()
                        .into_iter()
                        .map(|(name, patterns)| Stage::new(name, patterns))
                        .collect(),
                    Err(error) => {
                        tracing::warn!(%error, "the catalogue's blueprint gives no stages");
                        Vec::new()
                    }
                },
                self.blueprint_path(name).ok().and_then(stamp),
            ),
            None => (
                self.rules_file()?
                    .stages
                    .into_iter()
                    .map(|stage| Stage::new(stage.name, stage.steps))
                    .collect(),
                None,
            ),
        };
        let stages = Arc::new(stages);
        *cache = Some(Compiled {
            stamps: vec![file_stamp, rules_stamp, blueprint_stamp],
            catalogue: Arc::clone(&catalogue),
            stages: Arc::clone(&stages),
        });
        Ok((catalogue, stages))
    }

    /// The next best actions for the customer `identifier` belongs to, now; `None` when no customer has it.
    pub fn next_best_action(
        &self,
        identifier: &str,
        request: &NbaRequest,
    ) -> Result<Option<NextBestAction>, Error> {
        self.next_best_action_at(identifier, request, Timestamp::now().0)
    }

    /// [`Engine::next_best_action`] at `now` (µs): the clock the conditions' windows and the items' dates read.
    pub fn next_best_action_at(
        &self,
        identifier: &str,
        request: &NbaRequest,
        now: i64,
    ) -> Result<Option<NextBestAction>, Error> {
        if let Some(limit) = request.limit {
            if !(1..=100).contains(&limit) {
                return Err(waymark_analytics::AnalyticsError::field(
                    "limit",
                    format!("limit: {limit} is not from 1 to 100"),
                )
                .into());
            }
        }
        if let Some(placement) = &request.placement {
            if placement.trim().is_empty() {
                return Err(waymark_analytics::AnalyticsError::field(
                    "placement",
                    "placement: empty; name a placement (home, checkout) or leave it out for every item",
                )
                .into());
            }
        }
        let (catalogue, stages) = self.compiled_catalogue()?;
        let Some(view) = self.store.customer(identifier)? else {
            return Ok(None);
        };
        let events: Vec<waymark_model::Event> =
            view.events.into_iter().map(|entry| entry.event).collect();
        let mut facts = catalogue.facts(&view.customer_id, &events, &stages);
        let ids = crate::rights::filed_ids(&view.identifiers, &view.customer_id);
        facts.segments = self.segments_of(&ids)?;
        facts.scores = self.scores_of(&view.customer_id, identifier)?;
        let ranking = catalogue.rank(&facts, request.placement.as_deref(), now, request.limit);
        let offered = ranking
            .items
            .iter()
            .map(|offer| (offer.id.as_str(), offer.version, offer.rank, false))
            .chain(
                ranking
                    .held_out
                    .iter()
                    .map(|held| (held.id.as_str(), held.version, held.rank, true)),
            );
        if !request.preview {
            self.record_offers(
                &view.customer_id,
                request.placement.as_deref(),
                now,
                offered,
            )?;
        }
        Ok(Some(NextBestAction {
            customer_id: view.customer_id,
            placement: request.placement.clone(),
            at: Timestamp(now),
            current_stage: facts.current_stage.clone(),
            attributes: facts.attributes.clone(),
            segments: facts.segments.iter().cloned().collect(),
            items: ranking.items,
            held_out: ranking.held_out,
            excluded: if request.explain {
                ranking.excluded
            } else {
                Vec::new()
            },
        }))
    }

    /// The segments the customer filed under any of `ids` is in now (from the running worker without copying
    /// its memberships).
    fn segments_of(&self, ids: &HashSet<String>) -> Result<BTreeSet<String>, Error> {
        if let Some(segments) = self.live_segments_of(ids) {
            return Ok(segments);
        }
        Ok(self
            .segment_members()?
            .into_iter()
            .filter(|(_, members)| ids.iter().any(|id| members.contains(id)))
            .map(|(name, _)| name)
            .collect())
    }

    /// Every model's score of the customer: the live values while a server scores, else scored now.
    fn scores_of(
        &self,
        customer_id: &str,
        identifier: &str,
    ) -> Result<BTreeMap<String, f64>, Error> {
        let live = self.live_values(customer_id);
        if !live.is_empty() || self.live_status()?.ready {
            return Ok(live.into_iter().collect());
        }
        Ok(self
            .customer_scores(identifier)?
            .unwrap_or_default()
            .into_iter()
            .map(|score| (score.model, score.value))
            .collect())
    }

    /// Appends the first offer of each item (version) to this customer to `nba/offers.log`.
    fn record_offers<'a>(
        &self,
        customer: &str,
        placement: Option<&str>,
        at: i64,
        offered: impl Iterator<Item = (&'a str, u32, usize, bool)>,
    ) -> Result<(), Error> {
        let mut guard = self
            .nba
            .offers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut lines = String::new();
        let mut new = Vec::new();
        for (item, version, rank, held_out) in offered {
            let key = (customer.to_string(), item.to_string(), version);
            if guard.as_ref().is_some_and(|o| o.recorded.contains(&key)) {
                continue;
            }
            if guard.is_none() {
                *guard = Some(self.open_offers()?);
                if guard.as_ref().is_some_and(|o| o.recorded.contains(&key)) {
                    continue;
                }
            }
            let record = OfferRecord {
                at,
                customer: customer.to_string(),
                item: item.to_string(),
                version,
                placement: placement.map(str::to_string),
                rank,
                held_out,
            };
            lines.push_str(&serde_json::to_string(&record).unwrap_or_default());
            lines.push('\n');
            new.push(key);
        }
        if lines.is_empty() {
            return Ok(());
        }
        let offers = guard.as_mut().expect("opened above");
        let path = self.nba_dir().join("offers.log");
        offers
            .file
            .write_all(lines.as_bytes())
            .map_err(|error| io_error(&path, error))?;
        offers.recorded.extend(new);
        Ok(())
    }

    fn open_offers(&self) -> Result<Offers, Error> {
        let dir = self.nba_dir();
        std::fs::create_dir_all(&dir).map_err(|error| io_error(&dir, error))?;
        let path = dir.join("offers.log");
        let recorded = read_offers(&path)
            .into_iter()
            .map(|record| (record.customer, record.item, record.version))
            .collect();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|error| io_error(&path, error))?;
        Ok(Offers { file, recorded })
    }

    /// Every recorded first offer, oldest first.
    pub fn offer_records(&self) -> Vec<OfferRecord> {
        read_offers(&self.nba_dir().join("offers.log"))
    }

    /// Drops a deleted customer's offer records (filed under any of `ids`): the log is rewritten without them.
    pub(crate) fn forget_offers(&self, ids: &HashSet<String>) -> Result<usize, Error> {
        let mut guard = self
            .nba
            .offers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let path = self.nba_dir().join("offers.log");
        let records = read_offers(&path);
        let kept: Vec<&OfferRecord> = records
            .iter()
            .filter(|record| !ids.contains(&record.customer))
            .collect();
        let removed = records.len() - kept.len();
        if removed == 0 {
            return Ok(0);
        }
        let mut text = String::new();
        for record in kept {
            text.push_str(&serde_json::to_string(record).unwrap_or_default());
            text.push('\n');
        }
        waymark_store::write_file_atomically(&path, text.as_bytes())
            .map_err(|error| Error::Model(format!("{}: {error}", path.display())))?;
        // Reopened (and re-read) at the next offer.
        *guard = None;
        Ok(removed)
    }

    /// The first offers per item version, as the lift report reads them: customer → (first time, held out).
    pub(crate) fn offer_exposures(&self) -> BTreeMap<(String, u32), HashMap<String, (i64, bool)>> {
        let mut out: BTreeMap<(String, u32), HashMap<String, (i64, bool)>> = BTreeMap::new();
        for record in self.offer_records() {
            let entry = out
                .entry((format!("{OFFER_PREFIX}{}", record.item), record.version))
                .or_default()
                .entry(record.customer)
                .or_insert((record.at, record.held_out));
            if record.at < entry.0 {
                *entry = (record.at, record.held_out);
            }
        }
        out
    }

    /// The holdout share of an item in force, for the lift report.
    pub(crate) fn offer_holdout(&self, item: &str) -> Option<f64> {
        self.catalogue_file()
            .ok()?
            .items
            .into_iter()
            .find(|spec| spec.id == item)
            .map(|spec| spec.holdout)
    }
}

/// Reads `nba/offers.log`; a torn last line (a crash mid-write) is skipped.
fn read_offers(path: &std::path::Path) -> Vec<OfferRecord> {
    let Ok(file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    std::io::BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| serde_json::from_str(&line).ok())
        .collect()
}
