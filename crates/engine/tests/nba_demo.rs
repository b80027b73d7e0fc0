//! Next best action on the demo's catalogue (`engine/src/demo/catalogue.toml`): an iPhone owner gets iPhone
//! accessories first and an Android owner never does; impressions retire an item; first offers are recorded
//! once and measured against their holdout in the lift report; a bad catalogue changes nothing; deleting a
//! customer deletes their offers.

mod common;

use serde_json::json;
use waymark_engine::ingest;
use waymark_engine::nba::{CatalogueFile, NbaRequest, NextBestAction};
use waymark_engine::Engine;
use waymark_model::Timestamp;

const DAY: i64 = 86_400_000_000;

fn home() -> NbaRequest {
    NbaRequest {
        placement: Some("home".into()),
        ..NbaRequest::default()
    }
}

/// The decision two days after the customer's latest event (a returning customer opening the home page).
fn decide(engine: &Engine, customer: &str, request: &NbaRequest) -> NextBestAction {
    let last = engine
        .customer(customer)
        .unwrap()
        .unwrap()
        .events
        .last()
        .unwrap()
        .time
        .0;
    engine
        .next_best_action_at(customer, request, last + 2 * DAY)
        .unwrap()
        .unwrap()
}

fn has(nba: &NextBestAction, attribute: &str, prefix: &str) -> bool {
    nba.attributes[attribute]
        .iter()
        .any(|v| v.starts_with(prefix))
}

#[test]
fn iphone_owners_get_iphone_accessories_first_and_android_owners_never() {
    let (_dir, engine) = common::demo_engine(1_500);
    let customers: Vec<String> = {
        let journeys = engine.journeys();
        (0..journeys.n_journeys())
            .map(|j| journeys.customer_ids[j].to_string())
            .collect()
    };
    let (mut iphone, mut android) = (0, 0);
    for customer in &customers {
        let nba = decide(&engine, customer, &home());
        let ids: Vec<&str> = nba.items.iter().map(|o| o.id.as_str()).collect();
        let iphone_owner = has(&nba, "device", "iPhone");
        let android_owner = has(&nba, "platform", "Android");
        if iphone_owner && !android_owner {
            iphone += 1;
            assert_eq!(ids[0], "iphone-accessories", "{customer}: {nba:#?}");
            let reasons: Vec<&str> = nba.items[0]
                .reasons
                .iter()
                .map(|r| r.text.as_str())
                .collect();
            assert_eq!(reasons, ["editorial priority", "platform is iOS"]);
        }
        if android_owner && !iphone_owner {
            android += 1;
            assert!(!ids.contains(&"iphone-accessories"), "{customer}: {ids:?}");
            assert_eq!(ids[0], "android-accessories", "{customer}: {ids:?}");
        }
    }
    assert!(
        iphone > 100 && android > 100,
        "{iphone} iPhone, {android} Android owners"
    );

    // The stage comes from the purchase blueprint; the account page offers what the stage calls for.
    let delivered = customers
        .iter()
        .map(|c| {
            decide(
                &engine,
                c,
                &NbaRequest {
                    placement: Some("account".into()),
                    explain: true,
                    ..NbaRequest::default()
                },
            )
        })
        .find(|nba| nba.current_stage.as_deref() == Some("Deliver"))
        .expect("a customer whose latest stage is Deliver");
    let booking = &delivered.items[0];
    assert_eq!(booking.id, "installation-booking", "{delivered:#?}");
    assert!(booking
        .reasons
        .iter()
        .any(|r| r.text == "current stage is Deliver"));
    // Explained: the home items are not for this placement.
    assert!(delivered
        .excluded
        .iter()
        .any(|e| e.id == "iphone-accessories" && e.why.starts_with("not for placement 'account'")));
}

fn post(engine: &Engine, events: &[serde_json::Value]) {
    let body = serde_json::to_vec(&json!({ "batch": events })).unwrap();
    engine
        .ingest(ingest::parse_batch(&body, Timestamp::now()).unwrap())
        .unwrap();
}

#[test]
fn impressions_and_clicks_come_back_as_events_and_offers_are_measured_against_their_holdout() {
    let (dir, engine) = common::demo_engine(1_000);
    let customers: Vec<String> = {
        let journeys = engine.journeys();
        (0..journeys.n_journeys())
            .map(|j| journeys.customer_ids[j].to_string())
            .collect()
    };
    let mut held_out = 0;
    let mut shown: Vec<(String, i64)> = Vec::new();
    for customer in &customers {
        let nba = decide(&engine, customer, &home());
        if nba.held_out.iter().any(|h| h.id == "first-order-offer") {
            held_out += 1;
            assert!(nba.items.iter().all(|o| o.id != "first-order-offer"));
        }
        if let Some(offer) = nba.items.iter().find(|o| o.id == "first-order-offer") {
            assert_eq!(offer.tracking.impression.event, "Promotion Viewed");
            assert_eq!(
                offer.tracking.impression.properties["promotion_id"],
                "first-order-offer"
            );
            shown.push((customer.clone(), nba.at.0));
        }
    }
    assert!(
        held_out > 20 && shown.len() > 100,
        "{held_out} held out, {} shown",
        shown.len()
    );
    let log = dir.path().join("nba/offers.log");
    let lines = std::fs::read_to_string(&log).unwrap().lines().count();
    // A repeat decision records nothing new; previews of every placement neither.
    decide(&engine, &customers[0], &home());
    let preview = NbaRequest {
        preview: true,
        ..NbaRequest::default()
    };
    let mut previewed = 0;
    for customer in &customers[..50] {
        previewed += decide(&engine, customer, &preview).items.len();
    }
    assert!(
        previewed > 50,
        "every placement's items were previewed: {previewed}"
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap().lines().count(),
        lines
    );

    // Twenty of the shown customers see the offer, five click; one sees the iPhone item five times.
    let event = |customer: &str, step: &str, item: &str, at: i64, n: usize| {
        json!({"type": "track", "userId": customer, "event": step,
               "messageId": format!("nba-{customer}-{step}-{item}-{n}"),
               "timestamp": Timestamp(at).to_rfc3339(),
               "properties": {"promotion_id": item, "position": "home"}})
    };
    let mut events = Vec::new();
    for (n, (customer, at)) in shown.iter().take(20).enumerate() {
        events.push(event(
            customer,
            "Promotion Viewed",
            "first-order-offer",
            at + 1_000_000,
            n,
        ));
        if n < 5 {
            events.push(event(
                customer,
                "Promotion Clicked",
                "first-order-offer",
                at + 2_000_000,
                n,
            ));
        }
    }
    post(&engine, &events);
    let lift = engine
        .rules_lift(&waymark_engine::lift::LiftRequest {
            trigger: Some("offer:first-order-offer".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(lift.triggers.len(), 1);
    let offer = &lift.triggers[0];
    assert_eq!(offer.trigger, "offer:first-order-offer");
    assert_eq!(offer.delivered, 20);
    assert_eq!(offer.clicked, Some(5));
    assert_eq!(offer.holdout, Some(0.2));
    assert_eq!(offer.stats.held_out.customers as usize, held_out);
    assert_eq!(offer.stats.treated.customers as usize, shown.len());

    // Five impressions retire an item with max_impressions = 5; a click retires it at once.
    let clicked = &shown[0].0;
    let nba = decide(
        &engine,
        clicked,
        &NbaRequest {
            placement: Some("home".into()),
            explain: true,
            ..NbaRequest::default()
        },
    );
    assert!(nba.items.iter().all(|o| o.id != "first-order-offer"));
    assert!(nba
        .excluded
        .iter()
        .any(|e| e.id == "first-order-offer" && e.why.starts_with("clicked already")));

    // Deleting a customer deletes their offers.
    let deletion = engine.delete_customer(clicked).unwrap().unwrap();
    assert!(deletion.offers >= 1);
    assert!(engine
        .offer_records()
        .iter()
        .all(|r| &r.customer != clicked));
}

#[test]
fn a_catalogue_with_a_problem_is_refused_whole_and_the_one_in_force_stays() {
    let (_dir, engine) = common::demo_engine(200);
    let before = engine.catalogue_view().unwrap();
    assert_eq!(before.catalogue.items.len(), 8);
    let bad = CatalogueFile::from_toml(
        r#"
[[items]]
id = "fine"
title = "Fine"
[[items]]
id = "broken"
title = "Broken"
eligible = 'count("Login Faild") > 1'
"#,
    )
    .unwrap();
    let error = engine.save_catalogue(&bad).unwrap_err();
    assert_eq!(error.code(), "invalid_catalogue");
    let text = error.to_string();
    assert!(
        text.contains("items[broken].eligible at 1:7: unknown step 'Login Faild' (did you mean 'Login Failed'?)"),
        "{text}"
    );
    assert_eq!(engine.catalogue_view().unwrap().catalogue, before.catalogue);

    // A changed item gets a new version; the others keep theirs.
    let mut file = before.catalogue.clone();
    file.items[0].priority += 1.0;
    let saved = engine.save_catalogue(&file).unwrap();
    assert_eq!(saved.changed, ["iphone-accessories"]);
    assert_eq!(saved.versions["iphone-accessories"], 2);
    assert_eq!(saved.versions["android-accessories"], 1);
}
