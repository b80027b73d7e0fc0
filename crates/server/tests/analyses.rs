//! Analyses over HTTP and the OpenAPI document that describes every route.

mod common;

use common::spawn_app;
use serde_json::{json, Value};

/// Sends each customer's steps, a minute apart from 10:00 on 2026-01-01, as one batch.
fn send_journeys(app: &common::TestApp, journeys: &[(&str, &[&str])]) {
    let events: Vec<Value> = journeys
        .iter()
        .flat_map(|(user, steps)| {
            steps.iter().enumerate().map(move |(index, step)| {
                json!({"type": "track", "userId": user, "event": step, "timestamp": format!("2026-01-01T10:0{index}:00Z")})
            })
        })
        .collect();
    assert_eq!(
        app.post("/v1/batch", json!({ "batch": events }).to_string())
            .0,
        200
    );
}

#[test]
fn process_map_and_variants_over_http() {
    let app = spawn_app();
    send_journeys(
        &app,
        &[
            ("ann", &["view", "cart", "buy"]),
            ("bob", &["view", "cart", "call"]),
            ("cy", &["view", "cart", "buy"]),
        ],
    );

    let (status, map) = app.post("/v1/analyses/process-map", "");
    assert_eq!(status, 200, "{map}");
    assert_eq!(
        (map["cases"].as_u64(), map["events"].as_u64()),
        (Some(3), Some(9))
    );
    assert_eq!(map["start"], json!({"view": 3}));
    assert_eq!(map["end"], json!({"buy": 2, "call": 1}));
    let first_edges: Vec<(String, u64)> = map["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edge| {
            (
                format!(
                    "{}>{}",
                    edge["from"].as_str().unwrap(),
                    edge["to"].as_str().unwrap()
                ),
                edge["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        first_edges,
        [
            ("view>cart".to_string(), 3),
            ("cart>buy".to_string(), 2),
            ("cart>call".to_string(), 1)
        ]
    );
    assert_eq!(
        map["edges"][1],
        json!({"from": "cart", "to": "buy", "count": 2, "mean_secs": 60.0, "median_secs": 60.0, "p90_secs": 60.0})
    );

    let (status, variants) = app.post("/v1/analyses/variants", r#"{"top": 1}"#);
    assert_eq!(status, 200, "{variants}");
    assert_eq!(variants["n_variants"], 2);
    assert_eq!(
        variants["variants"],
        json!([{"steps": ["view", "cart", "buy"], "count": 2, "share": 2.0 / 3.0, "coverage": 2.0 / 3.0}])
    );

    let (status, error) = app.post("/v1/analyses/variants", r#"{"top": "ten"}"#);
    assert_eq!(
        (status, error["code"].as_str()),
        (400, Some("invalid_json")),
        "{error}"
    );
    let (status, error) = app.post("/v1/analyses/process-map", r#"{"depth": 3}"#);
    assert_eq!(status, 400, "unknown options are refused: {error}");
}

#[test]
fn funnels_over_http_with_modes_breakdown_and_filters() {
    let app = spawn_app();
    let journeys: [(&str, &str, &[&str]); 4] = [
        ("ann", "ios", &["view", "cart", "buy"]),
        ("bob", "android", &["view", "help", "cart", "buy"]),
        ("cy", "android", &["view", "cart"]),
        ("dee", "ios", &["help"]),
    ];
    let events: Vec<Value> = journeys
        .iter()
        .flat_map(|(user, device, steps)| {
            steps.iter().enumerate().map(move |(index, step)| {
                json!({"type": "track", "userId": user, "event": step, "properties": {"device": device},
                       "timestamp": format!("2026-01-01T10:0{index}:00Z")})
            })
        })
        .collect();
    assert_eq!(
        app.post("/v1/batch", json!({ "batch": events }).to_string())
            .0,
        200
    );

    let (status, report) = app.post(
        "/v1/analyses/funnel",
        r#"{"steps": ["view", "cart", "buy"], "window": "1h", "breakdown": {"property": "device"}}"#,
    );
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (report["units"].as_str(), report["total"].as_u64()),
        (Some("customers"), Some(4))
    );
    let counts: Vec<u64> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| step["count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [3, 3, 2]);
    assert_eq!(report["steps"][1]["dropped_customers"], json!(["cy"]));
    assert_eq!(
        report["steps"][1]["next_steps"],
        json!([{"step": "(journey ended)", "count": 1}])
    );
    assert_eq!(
        report["steps"][2]["time_to_convert"]["median_secs"], 150.0,
        "ann 2 min, bob 3 min"
    );
    assert_eq!(
        report["breakdown"]["groups"],
        json!([{"value": "android", "counts": [2, 2, 1], "conversion": 0.5}, {"value": "ios", "counts": [1, 1, 1], "conversion": 1.0}])
    );

    // strict_order: bob's `help` between view and cart stops his chain at step 1.
    let (_, strict) = app.post(
        "/v1/analyses/funnel",
        r#"{"steps": ["view", "cart", "buy"], "window": "1h", "modes": ["strict_order"]}"#,
    );
    assert_eq!(strict["steps"][1]["count"], 2, "{strict}");
    // A filter on a property narrows the customers; a window too short converts no one past step 1.
    let (_, ios) = app.post(
        "/v1/analyses/funnel",
        r#"{"steps": ["view", "buy"], "filter": {"where": [{"property": "device", "op": "=", "value": "ios"}]}}"#,
    );
    assert_eq!(
        (ios["total"].as_u64(), ios["steps"][1]["count"].as_u64()),
        (Some(2), Some(1)),
        "{ios}"
    );
    let (_, short) = app.post(
        "/v1/analyses/funnel",
        r#"{"steps": ["view", "buy"], "window": "90s"}"#,
    );
    assert_eq!(short["steps"][1]["count"], 0);

    // Step rules and instance splits apply to every analysis.
    let (status, grouped) = app.post(
        "/v1/analyses/variants",
        r#"{"filter": {"step_rules": [{"match": "help", "exclude": true}, {"regex": "^(cart|buy)$", "step": "purchase: $1"}], "split_after": {"step": "purchase: cart"}}}"#,
    );
    assert_eq!(status, 200, "{grouped}");
    let sequences: Vec<Value> = grouped["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|variant| variant["steps"].clone())
        .collect();
    assert!(
        sequences.contains(&json!(["view", "purchase: cart"])),
        "{grouped}"
    );
    assert!(
        sequences.contains(&json!(["purchase: buy"])),
        "the instance after cart: {grouped}"
    );
    let (status, error) = app.post(
        "/v1/analyses/variants",
        r#"{"filter": {"step_rules": [{"regex": "(", "step": "x"}]}}"#,
    );
    assert_eq!(
        (status, error["code"].as_str()),
        (400, Some("invalid_query")),
        "{error}"
    );

    let (status, friction) = app.post("/v1/analyses/friction", r#"{"goals": ["buy"], "top": 5}"#);
    assert_eq!(status, 200, "{friction}");
    assert_eq!(
        (friction["customers"].as_u64(), friction["goals"].clone()),
        (Some(4), json!(["buy"]))
    );
    assert!(friction["findings"].is_array());
    let (status, error) = app.post("/v1/analyses/friction", "");
    assert_eq!(
        (status, error["code"].as_str()),
        (400, Some("invalid_query")),
        "no usual goal name in this data: {error}"
    );
    assert!(error["message"].as_str().unwrap().contains("goal"));

    for (body, code, hint) in [
        (
            r#"{"steps": ["view"], "window": "7 parsecs"}"#,
            "invalid_query",
            "90s",
        ),
        (
            r#"{"steps": ["view", "buy"], "modes": ["allow_reentry"]}"#,
            "invalid_query",
            "strict_order",
        ),
        (
            r#"{"steps": ["view"], "modes": ["strict"]}"#,
            "invalid_json",
            "strict_order",
        ),
        (r#"{"steps": []}"#, "invalid_query", "at least one step"),
        (r#"{"window": "1d"}"#, "invalid_json", "steps"),
        (
            r#"{"steps": ["view"], "filter": {"from": "2026-02-01", "to": "2026-01-01"}}"#,
            "invalid_query",
            "empty",
        ),
    ] {
        let (status, error) = app.post("/v1/analyses/funnel", body);
        assert_eq!(
            (status, error["code"].as_str()),
            (400, Some(code)),
            "{body}: {error}"
        );
        assert!(
            error["message"].as_str().unwrap().contains(hint),
            "{body}: {error}"
        );
    }
}

#[test]
fn every_documented_route_exists() {
    let app = spawn_app();
    let (status, text) = app.get("/v1/openapi.json");
    assert_eq!(status, 200);
    let document: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() >= 19, "{} paths documented", paths.len());
    for (path, methods) in paths {
        let concrete = path.replace("{identifier}", "nobody");
        for method in methods.as_object().unwrap().keys() {
            let mut response = match method.as_str() {
                "get" => app.agent.get(&app.url(&concrete)).call().unwrap(),
                "post" => app
                    .agent
                    .post(&app.url(&concrete))
                    .header("Content-Type", "application/json")
                    .send("{}")
                    .unwrap(),
                "put" => app
                    .agent
                    .put(&app.url(&concrete))
                    .header("Content-Type", "application/json")
                    .send("{}")
                    .unwrap(),
                "delete" => app.agent.delete(&app.url(&concrete)).call().unwrap(),
                other => panic!("undocumented method {other}"),
            };
            let body = response.body_mut().read_to_string().unwrap();
            assert!(
                !body.contains("no such endpoint"),
                "{method} {path} is documented but not routed"
            );
            assert_ne!(response.status().as_u16(), 405, "{method} {path}");
        }
    }
}

#[test]
fn blueprints_are_saved_traced_and_named_in_analyses_over_http() {
    let app = spawn_app();
    send_journeys(
        &app,
        &[
            ("ann", &["view", "cart", "buy"]),
            ("bob", &["view", "help", "cart"]),
        ],
    );
    assert_eq!(app.get_json("/v1/blueprints").1, json!({"blueprints": []}));

    let toml =
        "goal = \"buy\"\n[[stages]]\nname = \"Shop\"\nsteps = [\"view\", \"cart\", \"buy\"]\n";
    let (status, saved) = app.put("/v1/blueprints/shop", "application/toml", toml);
    assert_eq!(status, 201, "{saved}");
    assert_eq!(saved["blueprint"]["stages"], json!(["Shop"]));
    let (status, again) = app.put(
        "/v1/blueprints/shop",
        "application/json",
        &json!({"goal": "buy", "stages": [{"name": "Shop", "steps": ["view", "cart", "buy", "thanks"]}]}).to_string(),
    );
    assert_eq!((status, &again["replaced"]), (200, &json!(true)), "{again}");
    assert_eq!(again["unknown_steps"], json!(["thanks"]));
    let (status, shown) = app.get_json("/v1/blueprints/shop");
    assert_eq!(status, 200);
    assert!(
        shown["toml"].as_str().unwrap().contains("name = \"Shop\""),
        "{shown}"
    );

    // Refused whole, naming the field; the saved one is unchanged.
    let (status, refused) = app.put(
        "/v1/blueprints/shop",
        "application/json",
        &json!({"stages": [{"name": "Shop", "steps": ["view"], "standard_time": "soon"}]})
            .to_string(),
    );
    assert_eq!(
        (status, refused["code"].as_str()),
        (422, Some("invalid_blueprint")),
        "{refused}"
    );
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("stages[0].standard_time"),
        "{refused}"
    );
    let (status, refused) = app.put(
        "/v1/blueprints/shop",
        "application/json",
        &json!({"name": "other", "stages": []}).to_string(),
    );
    assert_eq!(status, 422, "{refused}");
    assert_eq!(
        app.get_json("/v1/blueprints").1["blueprints"][0]["steps"],
        4
    );

    // The analysis takes the saved blueprint by name.
    let (status, report) = app.post(
        "/v1/analyses/conformance",
        json!({"blueprint": "shop"}).to_string(),
    );
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (
            report["journeys"].as_u64(),
            report["fitness"]["fitting_journeys"].as_u64()
        ),
        (Some(2), Some(0))
    );
    let (status, missing) = app.post(
        "/v1/analyses/conformance",
        json!({"blueprint": "nope"}).to_string(),
    );
    assert_eq!((status, missing["code"].as_str()), (404, Some("not_found")));
    assert!(missing["message"]
        .as_str()
        .unwrap()
        .contains("the saved ones are shop"));

    // Where one customer left the design.
    let (status, traced) = app.get_json("/v1/customers/bob/conformance?blueprint=shop");
    assert_eq!(status, 200, "{traced}");
    assert_eq!(traced["left_design_at"]["kind"], "unexpected");
    assert_eq!(traced["left_design_at"]["step"], "help");
    assert_eq!(traced["reached_goal"], false);
    assert_eq!(
        app.get_json("/v1/customers/nobody/conformance?blueprint=shop")
            .0,
        404
    );

    assert_eq!(app.delete("/v1/blueprints/shop"), 204);
    assert_eq!(app.delete("/v1/blueprints/shop"), 404);
}

#[test]
fn feedback_is_linked_to_the_rated_event_and_counted_on_its_step() {
    let app = spawn_app();
    let events = json!({"batch": [
        {"type": "track", "userId": "ann", "event": "Article Read", "messageId": "m-1", "timestamp": "2026-01-01T10:00:00Z", "context": {"channel": "web"}},
        {"type": "track", "userId": "ann", "event": "Checkout Started", "messageId": "m-2", "timestamp": "2026-01-01T10:05:00Z"},
        {"type": "track", "userId": "bob", "event": "Article Read", "messageId": "m-3", "timestamp": "2026-01-01T11:00:00Z"}
    ]});
    assert_eq!(app.post("/v1/batch", events.to_string()).0, 200);
    // Ann rates the article after starting the checkout: the messageId links the answer to it.
    let (status, answer) = app.post(
        "/v1/feedback",
        json!({"userId": "ann", "timestamp": "2026-01-01T10:06:00Z", "properties": {"helpful": false, "rating": 2, "comment": "Too vague", "rated_message_id": "m-1"}}).to_string(),
    );
    assert_eq!(
        (status, answer["accepted"].as_u64()),
        (200, Some(1)),
        "{answer}"
    );
    let (status, _) = app.post(
        "/v1/feedback",
        json!({"userId": "bob", "timestamp": "2026-01-01T11:01:00Z", "properties": {"helpful": true, "rating": 5}}).to_string(),
    );
    assert_eq!(status, 200);
    let (_, customer) = app.get_json("/v1/customers/ann");
    let stored = customer["events"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        (
            stored["step"].as_str(),
            stored["properties"]["rated_step"].as_str()
        ),
        (Some("Feedback Submitted"), Some("Article Read"))
    );

    let (status, report) = app.post(
        "/v1/analyses/feedback",
        json!({"search": "vague"}).to_string(),
    );
    assert_eq!(status, 200, "{report}");
    let article = &report["steps"][0];
    assert_eq!(article["step"], "Article Read");
    assert_eq!(
        (
            article["responses"].as_u64(),
            article["helpful_rate"].as_f64(),
            article["csat"].as_f64()
        ),
        (Some(2), Some(0.5), Some(50.0))
    );
    assert_eq!(article["latest_comments"][0]["text"], "Too vague");

    // Each problem names its field; nothing is stored.
    for (body, field) in [
        (
            json!({"userId": "ann", "properties": {"helpful": "maybe"}}),
            "properties.helpful",
        ),
        (
            json!({"userId": "ann", "properties": {"rating": 11}}),
            "properties.rating",
        ),
        (
            json!({"userId": "ann", "properties": {}}),
            "properties: give the answer",
        ),
        (
            json!({"userId": "ann", "properties": {"helpful": true, "rated_message_id": "m-3"}}),
            "properties.rated_message_id",
        ),
    ] {
        let (status, error) = app.post("/v1/feedback", body.to_string());
        assert_eq!(
            (status, error["code"].as_str()),
            (400, Some("invalid_feedback")),
            "{error}"
        );
        assert!(
            error["message"].as_str().unwrap().starts_with(field),
            "{error}"
        );
    }
    let (_, customer) = app.get_json("/v1/customers/ann");
    assert_eq!(customer["events"].as_array().unwrap().len(), 3);
}
