//! The OpenAPI 3.1 document, generated from the request and response types (their JSON schemas come from
//! `schemars`), so it cannot drift from what the handlers take and give. Analyses come from the engine's registry:
//! a new analysis is documented the moment it is registered.

use crate::error::ErrorCode;
use crate::routes::CreateKeyRequest;
use schemars::{JsonSchema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::sync::OnceLock;
use waymark_engine::keys::{Access, CreatedKey, KeyInfo, Role};
use waymark_engine::{
    CustomerDoc, FailedEvent, IngestOutcome, MergeEdge, MergeOutcome, StoreStats,
};

/// The error body every failure has.
#[derive(Serialize, JsonSchema)]
pub struct ErrorBody {
    /// A stable code: `invalid_json`, `invalid_query`, `not_found`, `missing_write_key`, …
    pub code: String,
    /// What went wrong and what to change.
    pub message: String,
    /// `invalid_request`, `auth` or `internal`.
    #[serde(rename = "type")]
    pub kind: String,
    /// For `invalid_rules`: every problem, each naming its field and, in a condition or a file, the line and
    /// column.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<waymark_engine::rules::DefinitionError>,
}

/// `GET /v1/identity/edges`.
#[derive(Serialize, JsonSchema)]
pub struct EdgesResponse {
    pub edges: Vec<MergeEdge>,
}

/// `GET /v1/failed`.
#[derive(Serialize, JsonSchema)]
pub struct FailedResponse {
    pub failed: Vec<FailedEvent>,
}

/// `GET /v1/models`.
#[derive(Serialize, JsonSchema)]
pub struct ModelsResponse {
    pub models: Vec<waymark_engine::models::ModelInfo>,
    /// The live scorer: whether every customer has been scored since start, how many, re-scored since.
    pub live: waymark_engine::live::LiveStatus,
}

/// `GET /v1/models/{name}/scores`.
#[derive(Serialize, JsonSchema)]
pub struct ScoresResponse {
    pub model: waymark_engine::models::ModelInfo,
    /// The customers with the highest scores now (for P(goal): among those who have not reached it).
    pub scores: Vec<waymark_engine::models::CustomerScore>,
}

/// `POST /v1/identity/merge` body.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    /// An identifier (`userId`, `anonymousId`, or `user:…` / `anon:…`).
    pub a: String,
    pub b: String,
}

/// `POST /v1/identity/unmerge` body.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UnmergeRequest {
    /// The merge edge's id (see `GET /v1/identity/edges`).
    pub edge: u32,
}

/// `POST /v1/identity/unmerge` answer.
#[derive(Serialize, JsonSchema)]
pub struct UnmergeResponse {
    pub unmerged: bool,
    pub edge: u32,
}

/// `GET /v1/rules`.
#[derive(Serialize, JsonSchema)]
pub struct RulesResponse {
    /// The definitions in force (segments, triggers, stages, settings), as `PUT /v1/rules` takes them.
    pub definitions: waymark_engine::rules::RulesFile,
    /// The same, as the data directory's `rules.toml`.
    pub toml: String,
    /// Each trigger's version in force.
    pub versions: std::collections::BTreeMap<String, u32>,
    /// The rules worker: running, how far it has read, instances, pending and dead deliveries.
    pub status: waymark_engine::rules::RulesStatus,
}

/// `POST /v1/rules/dry-run` body.
#[derive(Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct DryRunRequest {
    /// The definitions to try; absent: those in force.
    #[serde(default)]
    pub definitions: Option<waymark_engine::rules::RulesFile>,
    /// The definitions to try as rules.toml text (instead of `definitions`); a problem names its line and column.
    #[serde(default)]
    pub toml: Option<String>,
    /// Where counting starts: a span before `until` (`7d`) or an RFC 3339 instant; absent: all history.
    #[serde(default)]
    pub since: Option<String>,
    /// Where the run ends (RFC 3339); absent: the latest event.
    #[serde(default)]
    pub until: Option<String>,
}

/// `GET /v1/rules/log`.
#[derive(Serialize, JsonSchema)]
pub struct TriggerLogResponse {
    /// Newest first.
    pub instances: Vec<waymark_engine::rules::LoggedInstance>,
}

/// `POST /v1/rules/dead-letters/{key}/replay` answer.
#[derive(Serialize, JsonSchema)]
pub struct ReplayResponse {
    pub replayed: bool,
    pub key: String,
}

/// `GET /v1/segments/{name}/members`.
#[derive(Serialize, JsonSchema)]
pub struct SegmentMembersResponse {
    pub segment: String,
    /// Members now.
    pub total: usize,
    pub offset: usize,
    /// Customer ids, sorted.
    pub customers: Vec<String>,
}

/// `GET /healthz`.
#[derive(Serialize, JsonSchema)]
pub struct Health {
    /// `ok`, or `degraded` while the disk refuses writes (reads are still served).
    pub status: String,
    pub events: u64,
    pub customers: u64,
    /// Why writes are refused, while they are: the disk is full or read-only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// One analysis of `GET /v1/analyses`.
#[derive(Serialize, JsonSchema)]
pub struct AnalysisInfo {
    pub name: String,
    pub help: String,
    /// A typical `waymark query` command line.
    pub example: String,
    /// The request with every field at its default.
    pub defaults: Value,
}

/// `GET /v1/analyses`.
#[derive(Serialize, JsonSchema)]
pub struct AnalysesResponse {
    pub analyses: Vec<AnalysisInfo>,
}

/// The analyses the registry holds, as `GET /v1/analyses` lists them.
pub fn analyses() -> AnalysesResponse {
    AnalysesResponse {
        analyses: waymark_engine::registry::ANALYSES
            .iter()
            .map(|entry| AnalysisInfo {
                name: entry.name().into(),
                help: entry.help().into(),
                example: format!("waymark query {} {}", entry.name(), entry.example()),
                defaults: entry.defaults(),
            })
            .collect(),
    }
}

/// A Segment tracking-API event, as the collector takes it (the Segment spec's fields; unknown ones are kept).
fn segment_event() -> Value {
    json!({
        "type": "object",
        "description": "A Segment-spec event: userId or anonymousId required; `event` for track, `name` for page and screen, `groupId` for group, `previousId` for alias.",
        "properties": {
            "type": {"type": "string", "enum": ["track", "identify", "page", "screen", "group", "alias"]},
            "event": {"type": "string"},
            "name": {"type": "string"},
            "userId": {"type": ["string", "number"]},
            "anonymousId": {"type": ["string", "number"]},
            "previousId": {"type": ["string", "number"]},
            "groupId": {"type": ["string", "number"]},
            "messageId": {"type": "string"},
            "timestamp": {"type": "string", "format": "date-time"},
            "sentAt": {"type": "string", "format": "date-time"},
            "properties": {"type": "object"},
            "traits": {"type": "object"},
            "context": {"type": "object"},
            "writeKey": {"type": "string"}
        }
    })
}

fn json_content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

fn errors(codes: &[u16]) -> Map<String, Value> {
    codes
        .iter()
        .map(|status| {
            let names: Vec<&str> = ErrorCode::ALL
                .iter()
                .filter(|code| code.status().as_u16() == *status)
                .map(|code| code.code())
                .collect();
            (
                status.to_string(),
                json!({
                    "description": format!("Error: {}", names.join(", ")),
                    "content": json_content(json!({"$ref": "#/components/schemas/ErrorBody"})),
                }),
            )
        })
        .collect()
}

fn operation(
    summary: &str,
    tag: &str,
    request: Option<Value>,
    response: Value,
    error_codes: &[u16],
) -> Value {
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        json!({"description": "OK", "content": json_content(response)}),
    );
    responses.extend(errors(error_codes));
    let mut op = json!({"summary": summary, "tags": [tag], "responses": responses});
    if let Some(request) = request {
        op["requestBody"] = json!({"required": false, "content": json_content(request)});
    }
    op
}

fn text_operation(summary: &str, tag: &str, media: &str) -> Value {
    json!({"summary": summary, "tags": [tag], "responses": {"200": {"description": "OK", "content": {media: {"schema": {"type": "string"}}}}}})
}

fn schema_value<T: JsonSchema>(generator: &mut SchemaGenerator) -> Value {
    serde_json::to_value(generator.subschema_for::<T>()).expect("schemas serialise")
}

fn build() -> Value {
    let settings = schemars::generate::SchemaSettings::draft2020_12().with(|settings| {
        settings.definitions_path = "/components/schemas/".into();
        settings.meta_schema = None;
    });
    let mut generator = SchemaGenerator::new(settings);
    let ingest = schema_value::<IngestOutcome>(&mut generator);
    let event = segment_event();
    let batch = json!({
        "type": "object",
        "required": ["batch"],
        "properties": {"batch": {"type": "array", "items": event.clone()}, "writeKey": {"type": "string"}, "sentAt": {"type": "string"}, "context": {"type": "object"}}
    });
    let mut paths = Map::new();
    let mut add = |path: &str, method: &str, op: Value| {
        paths
            .entry(path.to_string())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("path items are objects")
            .insert(method.into(), op);
    };
    let collector = [
        ("track", "Record an action (`event` required)"),
        (
            "identify",
            "Tie a userId to an anonymousId and record traits",
        ),
        ("page", "Record a web page view"),
        ("screen", "Record an app screen view"),
        (
            "group",
            "Associate the customer with a group (`groupId` required)",
        ),
        (
            "alias",
            "Declare `previousId` and `userId` the same customer (an explicit merge)",
        ),
    ];
    for (name, summary) in collector {
        let op = operation(
            summary,
            "collector",
            Some(event.clone()),
            ingest.clone(),
            &[400, 401, 413, 503],
        );
        add(&format!("/v1/{name}"), "post", op);
    }
    for (path, summary) in [
        ("/v1/batch", "Several events in one request; invalid events go to the failed-events log, the rest are accepted"),
        ("/v1/import", "Alias of /v1/batch (Segment's import endpoint)"),
    ] {
        let op = operation(summary, "collector", Some(batch.clone()), ingest.clone(), &[400, 401, 413, 503]);
        add(path, "post", op);
    }
    let mut feedback_event = event.clone();
    feedback_event["description"] = json!("A Segment track call carrying an answer; `event` defaults to \"Feedback Submitted\". properties: helpful (boolean), rating (0–10), comment (text, ≤ 4000 characters), rated_message_id (the rated event's messageId: its step is recorded as rated_step) or rated_step (the rated step's name); without either the answer rates the customer's previous step");
    add(
        "/v1/feedback",
        "post",
        operation(
            "Record feedback on a step (\"was this helpful?\", a rating, a comment), linked to the rated event",
            "collector",
            Some(feedback_event),
            ingest.clone(),
            &[400, 401, 413, 503],
        ),
    );
    let mut customer = operation(
        "A customer by any identifier: identifiers, merge history, refused merges and the time-ordered journey",
        "customers",
        None,
        schema_value::<CustomerDoc>(&mut generator),
        &[404],
    );
    customer["parameters"] = json!([{"name": "identifier", "in": "path", "required": true, "schema": {"type": "string"}, "description": "A userId, an anonymousId, or user:… / anon:…"}]);
    let identifier_parameter = customer["parameters"].clone();
    add("/v1/customers/{identifier}", "get", customer);
    let mut delete = operation(
        "Delete the customer everywhere: events, identifiers and merges, refused events, rules state, segment history, trigger instances and deliveries due, live scores (and models that kept a value only it had are trained again); later events with its identifiers are not stored",
        "customers",
        None,
        schema_value::<waymark_engine::rights::CustomerDeletion>(&mut generator),
        &[404],
    );
    delete["parameters"] = identifier_parameter.clone();
    add("/v1/customers/{identifier}", "delete", delete);
    let mut export = operation(
        "Everything held about the customer: identifiers, merges, every event with its properties and traits, feedback, scores, segments and their history, trigger instances with their deliveries, refused events naming it",
        "customers",
        None,
        schema_value::<waymark_engine::rights::CustomerExport>(&mut generator),
        &[404],
    );
    export["parameters"] = identifier_parameter.clone();
    add("/v1/customers/{identifier}/export", "get", export);
    let mut traced = operation(
        "The customer's journey replayed on a saved blueprint: fitness, the stages it entered and how long it stayed, every deviation in journey order, and where it first left the design",
        "blueprints",
        None,
        schema_value::<waymark_engine::blueprints::CustomerConformance>(&mut generator),
        &[404],
    );
    let mut traced_parameters = identifier_parameter.clone();
    traced_parameters.as_array_mut().expect("a list").push(json!({"name": "blueprint", "in": "query", "required": true, "schema": {"type": "string"}, "description": "A saved blueprint's name (GET /v1/blueprints)"}));
    traced["parameters"] = traced_parameters;
    add("/v1/customers/{identifier}/conformance", "get", traced);
    let mut nba = operation(
        "The next best actions for the customer now: the catalogue's items ranked for them (eligibility, placement, dates, impression caps and clicks applied; points from priority, affinities, boosts and model scores, each a reason), the items held out for them, and with explain=true why every other item is left out. Each item says which events to send back when it is shown and clicked; its first offer is recorded for the lift report",
        "next best action",
        None,
        schema_value::<waymark_engine::nba::NextBestAction>(&mut generator),
        &[400, 404],
    );
    let mut nba_parameters = identifier_parameter.clone();
    nba_parameters.as_array_mut().expect("a list").extend([
        json!({"name": "placement", "in": "query", "required": false, "schema": {"type": "string", "minLength": 1}, "description": "Where the items will be shown (home, checkout, …); items for other placements are left out. Default: every item"}),
        json!({"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 100}, "description": "How many items; default the catalogue's settings.limit"}),
        json!({"name": "explain", "in": "query", "required": false, "schema": {"type": "boolean", "default": false}, "description": "Also list every other item with why it is left out"}),
        json!({"name": "preview", "in": "query", "required": false, "schema": {"type": "boolean", "default": false}, "description": "Decide without recording the offers (a colleague checking what the customer would see): not counted in the lift report"}),
    ]);
    nba["parameters"] = nba_parameters;
    add("/v1/customers/{identifier}/next-best-action", "get", nba);
    add(
        "/v1/catalogue",
        "get",
        operation(
            "The catalogue of content and offers in force, as JSON and as catalogue.toml, with each item's version",
            "next best action",
            None,
            schema_value::<waymark_engine::nba::CatalogueView>(&mut generator),
            &[422],
        ),
    );
    let catalogue_schema = schema_value::<waymark_engine::nba::CatalogueFile>(&mut generator);
    let saved_catalogue = schema_value::<waymark_engine::nba::SavedCatalogue>(&mut generator);
    for (method, path, summary) in [
        ("put", "/v1/catalogue", "Replace the whole catalogue (JSON, or TOML as application/toml); a catalogue with any problem is refused whole (422, every problem with its field, line and column) and nothing changes; changed items get a new version"),
        ("post", "/v1/catalogue/validate", "Check a catalogue as PUT would, without saving: the versions it would give and the items it would change, or 422 with every problem"),
    ] {
        let mut op = operation(summary, "next best action", Some(catalogue_schema.clone()), saved_catalogue.clone(), &[400, 413, 415, 422]);
        op["requestBody"]["required"] = json!(true);
        op["requestBody"]["content"]["application/toml"] = json!({"schema": {"type": "string"}});
        add(path, method, op);
    }
    add(
        "/v1/blueprints",
        "get",
        operation(
            "The saved blueprints (designed journeys): name, description, goal, stages",
            "blueprints",
            None,
            schema_value::<crate::blueprints::BlueprintsResponse>(&mut generator),
            &[],
        ),
    );
    let name_parameter = json!([{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}, "description": "The blueprint's name: lower-case letters, digits, - and _"}]);
    let mut shown = operation(
        "A saved blueprint, as JSON and as its TOML file",
        "blueprints",
        None,
        schema_value::<crate::blueprints::BlueprintResponse>(&mut generator),
        &[404],
    );
    shown["parameters"] = name_parameter.clone();
    add("/v1/blueprints/{name}", "get", shown);
    let blueprint_schema = schema_value::<waymark_engine::blueprints::Blueprint>(&mut generator);
    let saved_schema = schema_value::<waymark_engine::blueprints::SavedBlueprint>(&mut generator);
    let mut put = operation(
        "Save a blueprint under this name (JSON, or TOML as application/toml), replacing one of the same name (200) or creating it (201); a blueprint with a problem is refused (422, naming the field or line) and nothing changes. Designed steps no event has yet are listed",
        "blueprints",
        Some(blueprint_schema),
        saved_schema.clone(),
        &[400, 413, 415, 422],
    );
    put["requestBody"]["required"] = json!(true);
    put["requestBody"]["content"]["application/toml"] = json!({"schema": {"type": "string"}});
    put["responses"]["201"] = put["responses"]["200"].clone();
    put["parameters"] = name_parameter.clone();
    add("/v1/blueprints/{name}", "put", put);
    let mut removed = json!({"summary": "Delete a saved blueprint", "tags": ["blueprints"], "responses": {"204": {"description": "Deleted"}}});
    removed["responses"]
        .as_object_mut()
        .expect("an object")
        .extend(errors(&[404]));
    removed["parameters"] = name_parameter;
    add("/v1/blueprints/{name}", "delete", removed);
    add(
        "/v1/models",
        "get",
        operation(
            "The saved models (`waymark model train`): target, spec, training window and evaluation, and the live scorer's state",
            "predictions",
            None,
            schema_value::<ModelsResponse>(&mut generator),
            &[],
        ),
    );
    let mut scores = operation(
        "The customers a model scores highest now (most at risk, likeliest to convert), each with the features that drove the score",
        "predictions",
        None,
        schema_value::<ScoresResponse>(&mut generator),
        &[400, 404],
    );
    scores["parameters"] = json!([
        {"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
        {"name": "top", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 20}}
    ]);
    add("/v1/models/{name}/scores", "get", scores);
    add(
        "/v1/identity/edges",
        "get",
        operation(
            "Every merge edge with its provenance, active and undone",
            "identity",
            None,
            schema_value::<EdgesResponse>(&mut generator),
            &[],
        ),
    );
    let merge_request = schema_value::<MergeRequest>(&mut generator);
    add(
        "/v1/identity/merge",
        "post",
        operation(
            "Force two identifiers into one customer, bypassing the guards",
            "identity",
            Some(merge_request),
            schema_value::<MergeOutcome>(&mut generator),
            &[400, 404],
        ),
    );
    let unmerge_request = schema_value::<UnmergeRequest>(&mut generator);
    add(
        "/v1/identity/unmerge",
        "post",
        operation(
            "Undo one merge edge; the pair stays apart unless a merge is forced",
            "identity",
            Some(unmerge_request),
            schema_value::<UnmergeResponse>(&mut generator),
            &[400, 404],
        ),
    );
    let definitions = schema_value::<waymark_engine::rules::RulesFile>(&mut generator);
    add(
        "/v1/rules",
        "get",
        operation(
            "The segment and trigger definitions in force, as JSON and as rules.toml, with each trigger's version and the rules worker's state",
            "rules",
            None,
            schema_value::<RulesResponse>(&mut generator),
            &[422],
        ),
    );
    let saved = schema_value::<waymark_engine::rules::SavedRules>(&mut generator);
    for (method, path, summary) in [
        ("put", "/v1/rules", "Replace the whole definition set (JSON, or TOML as application/toml); a set with any problem is refused whole (422, every problem with its field, line and column) and nothing changes; changed triggers get a new version"),
        ("post", "/v1/rules/validate", "Check a definition set as PUT would, without saving: the versions it would give and the triggers it would change, or 422 with every problem"),
    ] {
        let mut op = operation(summary, "rules", Some(definitions.clone()), saved.clone(), &[400, 413, 415, 422]);
        op["requestBody"]["content"]["application/toml"] = json!({"schema": {"type": "string"}});
        add(path, method, op);
    }
    add(
        "/v1/rules/dry-run",
        "post",
        operation(
            "Run definitions (given, or those in force) over the stored history on the data's clock: per trigger how often it would have fired, been capped, held out or kept quiet, on which customers; segment sizes at the end. Nothing is delivered",
            "rules",
            Some(schema_value::<DryRunRequest>(&mut generator)),
            schema_value::<waymark_engine::rules::DryRun>(&mut generator),
            &[400, 422],
        ),
    );
    add(
        "/v1/rules/lift",
        "post",
        operation(
            "Each trigger version's treated customers against its holdout, from the instances the rules worker decided: goal rate and time to goal per arm, the difference with its confidence interval and p-value, and a headline (empty body: the usual goal within 7d, 95% intervals)",
            "rules",
            Some(schema_value::<waymark_engine::lift::LiftRequest>(&mut generator)),
            schema_value::<waymark_engine::lift::LiftReport>(&mut generator),
            &[400, 404],
        ),
    );
    add(
        "/v1/monitors",
        "get",
        operation(
            "The KPI board: every monitor of the definitions in force read along the stored history (each reading judged against its threshold or its own history at the same hour of the week), whether it is in alert, and the moments it fired",
            "rules",
            None,
            schema_value::<waymark_engine::monitors::MonitorsReport>(&mut generator),
            &[422],
        ),
    );
    add(
        "/v1/rules/status",
        "get",
        operation(
            "The rules worker: running, the clock it follows, how far it has read, customers, timers, instances, pending deliveries and dead letters",
            "rules",
            None,
            schema_value::<waymark_engine::rules::RulesStatus>(&mut generator),
            &[],
        ),
    );
    let mut log = operation(
        "Trigger instances, newest first, each with its actions' delivery state, attempts and last error",
        "rules",
        None,
        schema_value::<TriggerLogResponse>(&mut generator),
        &[400],
    );
    log["parameters"] = json!([
        {"name": "trigger", "in": "query", "required": false, "schema": {"type": "string"}},
        {"name": "state", "in": "query", "required": false, "schema": {"type": "string", "enum": ["dead", "pending", "delivered", "simulated"]}},
        {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 100}}
    ]);
    add("/v1/rules/log", "get", log);
    let mut replay = operation(
        "Send a dead letter's actions again (attempts start over)",
        "rules",
        None,
        schema_value::<ReplayResponse>(&mut generator),
        &[404],
    );
    replay["parameters"] = json!([{"name": "key", "in": "path", "required": true, "schema": {"type": "string"}, "description": "The trigger instance's idempotency key"}]);
    add("/v1/rules/dead-letters/{key}/replay", "post", replay);
    let mut segments = operation(
        "Every segment of the definitions in force: members now (live while the worker runs), entries and exits, and its size at the end of each day with a change; filter and break down any analysis by its `segment:NAME` property",
        "rules",
        None,
        schema_value::<waymark_engine::rules::SegmentsReport>(&mut generator),
        &[400],
    );
    segments["parameters"] = json!([{"name": "sample", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0, "maximum": 1000, "default": 20}, "description": "Members listed per segment"}]);
    add("/v1/segments", "get", segments);
    let mut members = operation(
        "A segment's members now, sorted, a page at a time",
        "rules",
        None,
        schema_value::<SegmentMembersResponse>(&mut generator),
        &[400, 404],
    );
    members["parameters"] = json!([
        {"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
        {"name": "offset", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0, "default": 0}},
        {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 100}}
    ]);
    add("/v1/segments/{name}/members", "get", members);
    let mut segment_put = operation(
        "Add one segment to the definitions in force, or replace the one of this name (a persona's condition, to follow it live): validated with the whole set, a problem is refused (422 invalid_rules, every problem with its field and position) and nothing changes; 201 when added, 200 when replaced",
        "rules",
        Some(schema_value::<crate::routes::SegmentBody>(&mut generator)),
        schema_value::<crate::routes::SavedSegment>(&mut generator),
        &[400, 413, 415, 422],
    );
    segment_put["requestBody"]["required"] = json!(true);
    segment_put["responses"]["201"] = segment_put["responses"]["200"].clone();
    segment_put["parameters"] = json!([{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}, "description": "The segment's name: lower-case letters, digits, - and _"}]);
    add("/v1/segments/{name}", "put", segment_put);
    let mut failed = operation(
        "Refused events with their reasons, oldest first",
        "operations",
        None,
        schema_value::<FailedResponse>(&mut generator),
        &[],
    );
    failed["parameters"] = json!([{"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0, "maximum": 10000, "default": 100}}]);
    add("/v1/failed", "get", failed);
    add(
        "/v1/stats",
        "get",
        operation(
            "Counts of events, customers, identifiers, segments and bytes",
            "operations",
            None,
            schema_value::<StoreStats>(&mut generator),
            &[],
        ),
    );
    add(
        "/v1/analyses",
        "get",
        operation(
            "Every analysis: name, help, a CLI example and the request's defaults",
            "analyses",
            None,
            schema_value::<AnalysesResponse>(&mut generator),
            &[],
        ),
    );
    for (name, request, report) in waymark_engine::registry::schemas(&mut generator) {
        let entry = waymark_engine::registry::analysis(name).expect("registered");
        let summary = format!(
            "{} (the same document as `waymark query {name} --json`)",
            entry.help().trim_end_matches('.')
        );
        add(
            &format!("/v1/analyses/{name}"),
            "post",
            operation(
                &summary,
                "analyses",
                Some(serde_json::to_value(request).expect("schemas serialise")),
                // Every report may carry notes on its filter.
                json!({"allOf": [
                    serde_json::to_value(report).expect("schemas serialise"),
                    {"type": "object", "properties": {waymark_engine::registry::FILTER_NOTES: {
                        "type": "array", "items": {"type": "string"},
                        "description": "What the filter cannot match — a property no event has, a value it never takes, a step or channel pattern that matches nothing — each with the closest existing name; absent when there is nothing to say"
                    }}}
                ]}),
                &[400, 404, 503],
            ),
        );
    }
    add(
        "/v1/openapi.json",
        "get",
        operation(
            "This document",
            "operations",
            None,
            json!({"type": "object"}),
            &[],
        ),
    );
    add(
        "/healthz",
        "get",
        operation(
            "Liveness, with event and customer counts",
            "operations",
            None,
            schema_value::<Health>(&mut generator),
            &[],
        ),
    );
    add(
        "/metrics",
        "get",
        text_operation(
            "Prometheus metrics (ingested, rejected by reason, ingest latency, store gauges)",
            "operations",
            "text/plain",
        ),
    );
    add("/", "get", text_operation("The web UI", "ui", "text/html"));
    add(
        "/ui/app.js",
        "get",
        text_operation("The web UI's script", "ui", "text/javascript"),
    );
    add(
        "/ui/app.css",
        "get",
        text_operation("The web UI's style sheet", "ui", "text/css"),
    );
    add(
        "/status",
        "get",
        text_operation("The store's status page", "ui", "text/html"),
    );
    add(
        "/v1/session",
        "get",
        operation(
            "Who the presented key belongs to (its role), or that the server is open; the UI asks once after login",
            "keys",
            None,
            schema_value::<SessionResponse>(&mut generator),
            &[],
        ),
    );
    add(
        "/v1/keys",
        "get",
        operation(
            "Every key: id, name, role, a hint of its text, when it was created and revoked (never the secret or its hash)",
            "keys",
            None,
            schema_value::<Vec<KeyInfo>>(&mut generator),
            &[503],
        ),
    );
    let mut create = operation(
        "Create a key; the answer holds its text, shown only this once",
        "keys",
        Some(schema_value::<CreateKeyRequest>(&mut generator)),
        schema_value::<CreatedKey>(&mut generator),
        &[400, 503],
    );
    let created = create["responses"]["200"].take();
    create["responses"]
        .as_object_mut()
        .expect("responses are an object")
        .remove("200");
    create["responses"]["201"] = created;
    add("/v1/keys", "post", create);
    let mut revoke = operation(
        "Revoke a key: from now on it is refused with `revoked_key` (other processes notice within a second)",
        "keys",
        None,
        schema_value::<KeyInfo>(&mut generator),
        &[404, 503],
    );
    revoke["parameters"] = json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}, "description": "The key's id (`waymark keys list`)"}]);
    add("/v1/keys/{id}", "delete", revoke);
    secure(&mut paths);
    let _ = schema_value::<ErrorBody>(&mut generator);
    let schemas = generator.take_definitions(true);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Waymark API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Collector (Segment tracking-API compatible), customers, identity, analyses and operations. Every error is JSON {code, message, type}. Generated from the types the handlers use."
        },
        "tags": [
            {"name": "collector", "description": "Segment-compatible tracking API"},
            {"name": "customers"}, {"name": "predictions"}, {"name": "rules", "description": "Segments, triggers, their dry runs and deliveries"}, {"name": "identity"}, {"name": "analyses"}, {"name": "keys", "description": "Keys and their roles: write (collect), read, admin"}, {"name": "operations"}, {"name": "ui"}
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "writeKey": {"type": "http", "scheme": "basic", "description": "A key as the basic-auth user name, empty password (as Segment's SDKs send a write key)"},
                "bearerKey": {"type": "http", "scheme": "bearer", "description": "A key as `Authorization: Bearer KEY`: write keys collect, read keys read, admin keys do everything (`waymark keys create`)"}
            },
            "schemas": schemas,
        }
    })
}

/// Sets each operation's `security` and `x-waymark-access` from the one route table, and documents its 401 and
/// 403 answers: what the authorization layer enforces is what the document says.
fn secure(paths: &mut Map<String, Value>) {
    let auth_error = |text: &str| json!({"description": text, "content": json_content(json!({"$ref": "#/components/schemas/ErrorBody"}))});
    for (path, item) in paths.iter_mut() {
        for (method, op) in item.as_object_mut().expect("path items are objects") {
            let method = axum::http::Method::from_bytes(method.to_uppercase().as_bytes())
                .expect("operations use HTTP methods");
            let access = crate::auth::access(&method, crate::auth::route_pattern(path));
            let (security, name) = match access {
                Access::Public => (json!([]), "public"),
                Access::Collect => (json!([{"writeKey": []}, {"bearerKey": []}]), "collect"),
                Access::Authenticated => (json!([{"bearerKey": []}, {"writeKey": []}]), "any_key"),
                Access::Read => (json!([{"bearerKey": []}, {"writeKey": []}]), "read"),
                Access::Admin => (json!([{"bearerKey": []}, {"writeKey": []}]), "admin"),
            };
            op["security"] = security;
            op["x-waymark-access"] = json!(name);
            if access != Access::Public {
                op["responses"]["401"] = auth_error("Error: missing_key, invalid_key, revoked_key, invalid_authorization, missing_write_key, invalid_write_key: no key, or not one of this server's active keys");
            }
            if matches!(access, Access::Read | Access::Admin | Access::Collect) {
                op["responses"]["403"] =
                    auth_error("Error: forbidden: the key is valid but its role may not do this");
            }
            if access != Access::Public {
                let mut limited = auth_error("Error: rate_limited: the key made more requests a second than its role's limit (`serve --rate-limit-read|admin|write`); retry after the Retry-After header's seconds");
                limited["headers"] = json!({"Retry-After": {"description": "Seconds to wait before the next request is accepted.", "schema": {"type": "integer", "minimum": 1}}});
                op["responses"]["429"] = limited;
            }
            let reads_query = op["parameters"]
                .as_array()
                .is_some_and(|parameters| parameters.iter().any(|p| p["in"] == "query"));
            let reads_path = op["parameters"]
                .as_array()
                .is_some_and(|parameters| parameters.iter().any(|p| p["in"] == "path"));
            if (reads_query || reads_path) && op["responses"].get("400").is_none() {
                op["responses"]["400"] = auth_error("Error: invalid_query, invalid_path: a query parameter could not be read (the message names it and its value), or a path segment is not UTF-8");
            }
            if op.get("requestBody").is_some() {
                op["responses"]["408"] = auth_error("Error: request_timeout: the request body did not arrive within the server's body timeout (`serve --body-timeout`)");
            }
        }
    }
}

/// The document, built once.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(build)
}

/// `GET /v1/session`: who is calling.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SessionResponse {
    /// `write`, `read` or `admin` (`admin` when the server is open).
    pub role: Role,
    /// The key's id; absent when the server is open.
    pub key_id: Option<String>,
    /// The key's name.
    pub name: String,
    /// True when no read or admin key exists: whoever reaches the server (on loopback) may do everything.
    pub open: bool,
    /// Whether reading needs a key.
    pub reads_protected: bool,
}
