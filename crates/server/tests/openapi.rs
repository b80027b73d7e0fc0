//! The OpenAPI document is generated from the types, and real responses of every documented endpoint validate
//! against it: successes against their 200 schema, failures against the error schema of their status. A handler
//! whose answer drifts from its type's schema fails here.

mod common;

use common::spawn_app;
use serde_json::{json, Value};
use std::collections::BTreeSet;

struct Document {
    document: Value,
}

impl Document {
    /// Checks `body` against the schema the document gives for `method path` answered with `status`.
    fn check(&self, method: &str, path: &str, status: u16, body: &Value) {
        let responses = &self.document["paths"][path][method]["responses"];
        assert!(responses.is_object(), "{method} {path} is not documented");
        let response = &responses[status.to_string()];
        assert!(
            response.is_object(),
            "{method} {path} answered {status}, which is not documented: {body}"
        );
        let mut schema = response["content"]["application/json"]["schema"].clone();
        schema["components"] = self.document["components"].clone();
        let validator = jsonschema::validator_for(&schema).unwrap_or_else(|error| {
            panic!("{method} {path}: the schema does not compile: {error}")
        });
        let problems: Vec<String> = validator
            .iter_errors(body)
            .take(5)
            .map(|error| format!("{} at {}", error, error.instance_path()))
            .collect();
        assert!(
            problems.is_empty(),
            "{method} {path} {status}: the response does not match its schema: {problems:?}\n{body}"
        );
    }
}

#[test]
fn every_endpoint_answers_as_its_schema_says() {
    let app = spawn_app();
    let (status, text) = app.get("/v1/openapi.json");
    assert_eq!(status, 200);
    let doc = Document {
        document: serde_json::from_str(&text).unwrap(),
    };
    let checked: std::cell::RefCell<BTreeSet<(String, String)>> = Default::default();
    let post = |path: &str, documented: &str, body: Value| -> Value {
        let (status, answer) = app.post(path, body.to_string());
        doc.check("post", documented, status, &answer);
        checked
            .borrow_mut()
            .insert(("post".into(), documented.into()));
        answer
    };
    let events = json!({"batch": [
        {"type": "track", "userId": "ann", "anonymousId": "d1", "event": "Viewed", "timestamp": "2026-01-01T10:00:00Z", "context": {"device": {"type": "ios"}}},
        {"type": "track", "userId": "ann", "event": "Bought", "timestamp": "2026-01-01T10:05:00Z", "properties": {"revenue": 20}},
        {"type": "page", "anonymousId": "d2", "name": "Home", "timestamp": "2026-01-02T09:00:00Z"},
        {"type": "track", "anonymousId": "d2", "event": "Viewed", "timestamp": "2026-01-02T09:01:00Z"},
        {"type": "track", "event": "No identifier"}
    ]});
    let answer = post("/v1/batch", "/v1/batch", events.clone());
    assert_eq!(
        (answer["accepted"].as_u64(), answer["failed"].as_u64()),
        (Some(4), Some(1)),
        "{answer}"
    );
    post(
        "/v1/import",
        "/v1/import",
        json!({"batch": [{"type": "identify", "userId": "bob", "traits": {"plan": "pro"}}]}),
    );
    post(
        "/v1/feedback",
        "/v1/feedback",
        json!({"userId": "ann", "properties": {"helpful": true, "rated_step": "Viewed"}}),
    );
    post(
        "/v1/feedback",
        "/v1/feedback",
        json!({"userId": "ann", "properties": {"helpful": "yes"}}),
    );
    post(
        "/v1/track",
        "/v1/track",
        json!({"userId": "cy", "event": "Viewed", "timestamp": "2026-01-03T09:00:00Z"}),
    );
    post("/v1/track", "/v1/track", json!({"userId": "cy"}));
    post(
        "/v1/identify",
        "/v1/identify",
        json!({"userId": "cy", "traits": {"plan": "free"}}),
    );
    post(
        "/v1/page",
        "/v1/page",
        json!({"anonymousId": "d3", "name": "Pricing"}),
    );
    post(
        "/v1/screen",
        "/v1/screen",
        json!({"anonymousId": "d3", "name": "Cart"}),
    );
    post(
        "/v1/group",
        "/v1/group",
        json!({"userId": "cy", "groupId": "acme"}),
    );
    post(
        "/v1/alias",
        "/v1/alias",
        json!({"userId": "cy", "previousId": "d3"}),
    );
    let merged = post(
        "/v1/identity/merge",
        "/v1/identity/merge",
        json!({"a": "user:bob", "b": "anon:d2"}),
    );
    post(
        "/v1/identity/merge",
        "/v1/identity/merge",
        json!({"a": "user:bob"}),
    );
    post(
        "/v1/identity/merge",
        "/v1/identity/merge",
        json!({"a": "user:nobody", "b": "anon:none"}),
    );
    let edge = merged["edge"].as_u64().expect("merged");
    post(
        "/v1/identity/unmerge",
        "/v1/identity/unmerge",
        json!({"edge": edge}),
    );
    post(
        "/v1/identity/unmerge",
        "/v1/identity/unmerge",
        json!({"edge": 99_999}),
    );
    post(
        "/v1/identity/unmerge",
        "/v1/identity/unmerge",
        json!({"edge": "one"}),
    );

    let requests: &[(&str, Value)] = &[
        ("overview", json!({})),
        ("process-map", json!({"filter": {"channels": ["web"]}})),
        ("variants", json!({"top": 2})),
        (
            "funnel",
            json!({"steps": ["Viewed", "Bought"], "window": "1d", "breakdown": {"property": "context.device.type"}}),
        ),
        ("flows", json!({"anchor": "Viewed", "depth": 2})),
        ("friction", json!({"goals": ["Bought"]})),
        (
            "moments",
            json!({"goals": ["Bought"], "properties": ["context.device.type"], "include_insignificant": true, "min_customers": 1}),
        ),
        (
            "retention",
            json!({"start": "Viewed", "return": "Bought", "period": "day"}),
        ),
        (
            "attribution",
            json!({"goals": ["Bought"], "by": "step", "order": 2, "transition_matrix": true}),
        ),
        ("step-counts", json!({"top": 3})),
        (
            "conformance",
            json!({"blueprint": {"name": "buying", "goal": "Bought", "stages": [
                {"name": "Browse", "steps": ["Viewed"]},
                {"name": "Buy", "steps": [{"one_of": ["Bought"]}], "channels": ["web"], "standard_time": "1d"}
            ]}}),
        ),
        ("personas", json!({"k": 2, "examples": 2})),
        (
            "feedback",
            json!({"search": "slow", "blueprint": {"name": "buying", "stages": [{"name": "Browse", "steps": ["Viewed"]}]}}),
        ),
    ];
    let (status, listed) = app.get_json("/v1/analyses");
    doc.check("get", "/v1/analyses", status, &listed);
    checked
        .borrow_mut()
        .insert(("get".into(), "/v1/analyses".into()));
    let names: BTreeSet<&str> = listed["analyses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        requests.iter().map(|(name, _)| *name).collect(),
        "every registered analysis is exercised here"
    );
    for (name, request) in requests {
        let path = format!("/v1/analyses/{name}");
        let report = post(&path, &path, request.clone());
        assert!(report.get("code").is_none(), "{name}: {report}");
        // A request of the wrong shape and one with a bad value are documented failures too.
        post(&path, &path, json!({"no_such_field": 1}));
    }
    post(
        "/v1/analyses/funnel",
        "/v1/analyses/funnel",
        json!({"steps": ["Viewed"], "window": "soon"}),
    );
    // A filter that cannot match: the report carries its notes, as documented.
    let noted = post(
        "/v1/analyses/overview",
        "/v1/analyses/overview",
        json!({"filter": {"channels": ["webb"]}}),
    );
    assert_eq!(
        noted["filter_notes"].as_array().map(Vec::len),
        Some(1),
        "{noted}"
    );
    let (status, unknown) = app.post("/v1/analyses/moments-of-magic", "{}");
    assert_eq!(
        (status, unknown["code"].as_str()),
        (404, Some("unknown_analysis")),
        "{unknown}"
    );

    let get = |path: &str, documented: &str| {
        let (status, body) = app.get_json(path);
        doc.check("get", documented, status, &body);
        checked
            .borrow_mut()
            .insert(("get".into(), documented.into()));
    };
    // A saved model: its listing, its top scores, and every customer's scores.
    let spec = serde_json::from_value(json!({"target": "goal", "goals": ["Bought"]})).unwrap();
    app.store
        .train_model("buyers", &spec, &|_, _, _| {})
        .unwrap();
    get("/v1/models", "/v1/models");
    get("/v1/models/buyers/scores?top=5", "/v1/models/{name}/scores");
    get("/v1/models/nothing/scores", "/v1/models/{name}/scores");
    get("/v1/models/buyers/scores?top=0", "/v1/models/{name}/scores");
    let (_, customer) = app.get_json("/v1/customers/d2");
    assert_eq!(customer["scores"][0]["model"], "buyers", "{customer}");
    get("/v1/customers/ann", "/v1/customers/{identifier}");
    get("/v1/customers/nobody", "/v1/customers/{identifier}");
    get("/v1/identity/edges", "/v1/identity/edges");
    get("/v1/failed?limit=10", "/v1/failed");
    get("/v1/stats", "/v1/stats");
    // Rules: a bad set is a 422 with its errors, a good one is saved; dry run, status, log and replay answer.
    let put_rules = |content_type: &str, body: &str| {
        let (status, answer) = app.put("/v1/rules", content_type, body);
        doc.check("put", "/v1/rules", status, &answer);
        checked
            .borrow_mut()
            .insert(("put".into(), "/v1/rules".into()));
        answer
    };
    let bad = put_rules(
        "application/toml",
        "[[triggers]]\nname = \"x\"\non = \"event\"\nstep = \"Nope\"\n",
    );
    assert_eq!(bad["code"], "invalid_rules", "{bad}");
    put_rules("text/csv", "a,b");
    let rules = json!({
        "segments": [{"name": "buyers", "condition": "count(\"Bought\") >= 1"}],
        "triggers": [{"name": "thanks", "on": "event", "step": "Bought",
                      "actions": [{"type": "event", "name": "Thanked"}]}]
    });
    let saved = put_rules("application/json", &rules.to_string());
    assert_eq!(saved["versions"]["thanks"], 1, "{saved}");
    post("/v1/rules/validate", "/v1/rules/validate", rules.clone());
    post(
        "/v1/rules/validate",
        "/v1/rules/validate",
        json!({"triggers": [{"name": 3}]}),
    );
    post(
        "/v1/rules/dry-run",
        "/v1/rules/dry-run",
        json!({"since": "30d"}),
    );
    post(
        "/v1/rules/dry-run",
        "/v1/rules/dry-run",
        json!({"since": "soon"}),
    );
    post(
        "/v1/rules/dry-run",
        "/v1/rules/dry-run",
        json!({"definitions": rules}),
    );
    post(
        "/v1/rules/lift",
        "/v1/rules/lift",
        json!({"goals": ["Bought"]}),
    );
    post(
        "/v1/rules/lift",
        "/v1/rules/lift",
        json!({"window": "soon", "goals": ["Bought"]}),
    );
    post(
        "/v1/rules/lift",
        "/v1/rules/lift",
        json!({"trigger": "nope", "goals": ["Bought"]}),
    );
    post(
        "/v1/rules/dead-letters/nope/replay",
        "/v1/rules/dead-letters/{key}/replay",
        json!({}),
    );
    get("/v1/segments", "/v1/segments");
    get("/v1/segments?sample=5000", "/v1/segments");
    get(
        "/v1/segments/buyers/members?limit=2",
        "/v1/segments/{name}/members",
    );
    get("/v1/segments/nobody/members", "/v1/segments/{name}/members");
    get(
        "/v1/segments/buyers/members?limit=0",
        "/v1/segments/{name}/members",
    );
    get("/v1/rules", "/v1/rules");
    get("/v1/rules/status", "/v1/rules/status");
    get("/v1/monitors", "/v1/monitors");
    get("/v1/rules/log?trigger=thanks&limit=5", "/v1/rules/log");
    get("/v1/rules/log?state=lost", "/v1/rules/log");
    get("/v1/rules/log?limit=0", "/v1/rules/log");
    get("/healthz", "/healthz");
    get("/v1/openapi.json", "/v1/openapi.json");
    get("/v1/session", "/v1/session");
    get("/v1/keys", "/v1/keys");
    // A write key: creating a read or admin key would close the server to the calls above.
    let created = post(
        "/v1/keys",
        "/v1/keys",
        json!({"role": "write", "name": "schema check"}),
    );
    post(
        "/v1/keys",
        "/v1/keys",
        json!({"role": "owner", "name": "schema check"}),
    );
    let delete = |path: &str, documented: &str| {
        let mut response = app.agent.delete(&app.url(path)).call().unwrap();
        let status = response.status().as_u16();
        let body: Value =
            serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
        doc.check("delete", documented, status, &body);
        checked
            .borrow_mut()
            .insert(("delete".into(), documented.into()));
        body
    };
    let revoked = delete(
        &format!("/v1/keys/{}", created["id"].as_str().unwrap()),
        "/v1/keys/{id}",
    );
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    delete("/v1/keys/nope", "/v1/keys/{id}");
    // Blueprints: saved (created, then replaced), refused, listed, shown, traced for a customer.
    let put = |path: &str, documented: &str, media: &str, body: &str| -> Value {
        let (status, answer) = app.put(path, media, body);
        doc.check("put", documented, status, &answer);
        checked
            .borrow_mut()
            .insert(("put".into(), documented.into()));
        answer
    };
    let design = "goal = \"Bought\"\n[[stages]]\nname = \"Buy\"\nsteps = [\"Viewed\", \"Bought\", \"Thanked\"]\n";
    put(
        "/v1/blueprints/buying",
        "/v1/blueprints/{name}",
        "application/toml",
        design,
    );
    let replaced = put(
        "/v1/blueprints/buying",
        "/v1/blueprints/{name}",
        "application/toml",
        design,
    );
    assert_eq!(replaced["unknown_steps"], json!(["Thanked"]), "{replaced}");
    put(
        "/v1/blueprints/buying",
        "/v1/blueprints/{name}",
        "application/json",
        r#"{"stages": []}"#,
    );
    put(
        "/v1/blueprints/Bad%20Name",
        "/v1/blueprints/{name}",
        "application/json",
        r#"{"stages": []}"#,
    );
    get("/v1/blueprints", "/v1/blueprints");
    get("/v1/blueprints/buying", "/v1/blueprints/{name}");
    get("/v1/blueprints/nope", "/v1/blueprints/{name}");
    get(
        "/v1/customers/ann/conformance?blueprint=buying",
        "/v1/customers/{identifier}/conformance",
    );
    get(
        "/v1/customers/ann/conformance?blueprint=nope",
        "/v1/customers/{identifier}/conformance",
    );
    get(
        "/v1/customers/ann/conformance",
        "/v1/customers/{identifier}/conformance",
    );
    let status = app
        .agent
        .delete(&app.url("/v1/blueprints/buying"))
        .call()
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 204);
    // The catalogue: saved, refused, validated, shown; next best action for a customer.
    let catalogue = "[[items]]\nid = \"ios-kit\"\ntitle = \"A kit for iOS\"\neligible = '\"ios\" in customer.attributes.device'\naffinity = { device = [\"ios\"] }\n[[items]]\nid = \"anyone\"\ntitle = \"For anyone\"\nplacements = [\"home\"]\n";
    let saved = put(
        "/v1/catalogue",
        "/v1/catalogue",
        "application/toml",
        catalogue,
    );
    assert_eq!(saved["versions"]["ios-kit"], 1, "{saved}");
    let refused = put(
        "/v1/catalogue",
        "/v1/catalogue",
        "application/json",
        r#"{"items": [{"id": "x", "title": "x", "eligible": "count(\"Nope\") > 1"}]}"#,
    );
    assert_eq!(refused["code"], "invalid_catalogue", "{refused}");
    assert_eq!(
        refused["errors"][0]["field"], "items[x].eligible",
        "{refused}"
    );
    post(
        "/v1/catalogue/validate",
        "/v1/catalogue/validate",
        json!({"items": [{"id": "y", "title": "Y"}]}),
    );
    post(
        "/v1/catalogue/validate",
        "/v1/catalogue/validate",
        json!({"items": [{"id": "Bad id", "title": "Y"}]}),
    );
    get("/v1/catalogue", "/v1/catalogue");
    get(
        "/v1/customers/ann/next-best-action?placement=home&explain=true",
        "/v1/customers/{identifier}/next-best-action",
    );
    let (_, nba) = app.get_json("/v1/customers/ann/next-best-action?placement=home");
    assert_eq!(nba["items"][0]["id"], "ios-kit", "{nba}");
    assert_eq!(
        nba["items"][0]["reasons"][0]["text"], "device is ios",
        "{nba}"
    );
    get(
        "/v1/customers/nobody/next-best-action",
        "/v1/customers/{identifier}/next-best-action",
    );
    get(
        "/v1/customers/ann/next-best-action?limit=0",
        "/v1/customers/{identifier}/next-best-action",
    );
    // One segment added, replaced, refused.
    let added = put(
        "/v1/segments/viewers",
        "/v1/segments/{name}",
        "application/json",
        r#"{"condition": "did(\"Viewed\")", "description": "Viewed something"}"#,
    );
    assert_eq!(added["replaced"], false, "{added}");
    put(
        "/v1/segments/viewers",
        "/v1/segments/{name}",
        "application/json",
        r#"{"condition": "did(\"Viewed\") && count(\"Bought\") == 0"}"#,
    );
    let refused = put(
        "/v1/segments/broken",
        "/v1/segments/{name}",
        "application/json",
        r#"{"condition": "did(\"Vewed\")"}"#,
    );
    assert_eq!(refused["code"], "invalid_rules", "{refused}");
    put(
        "/v1/segments/viewers",
        "/v1/segments/{name}",
        "application/json",
        r#"{"conditions": "x"}"#,
    );
    // A customer's data exported, then deleted (last: the calls above read it).
    get(
        "/v1/customers/ann/export",
        "/v1/customers/{identifier}/export",
    );
    get(
        "/v1/customers/nobody/export",
        "/v1/customers/{identifier}/export",
    );
    let deleted = delete("/v1/customers/ann", "/v1/customers/{identifier}");
    assert!(
        deleted["store"]["events"].as_u64().unwrap() > 0,
        "{deleted}"
    );
    delete("/v1/customers/ann", "/v1/customers/{identifier}");

    // Every documented JSON endpoint was called; the rest (metrics, pages) are text.
    for (path, methods) in doc.document["paths"].as_object().unwrap() {
        for (method, operation) in methods.as_object().unwrap() {
            let json_answer = operation["responses"]["200"]["content"]
                .get("application/json")
                .is_some();
            if json_answer {
                assert!(
                    checked.borrow().contains(&(method.clone(), path.clone())),
                    "{method} {path} is documented but this test never checks it"
                );
            }
        }
    }
}
