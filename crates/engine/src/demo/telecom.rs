//! The second demo business: a seeded fibre broadband provider (web, app, contact centre, e-mail, SMS and field
//! engineers), shaped unlike the retailer — a sign-up with an identity check, then weeks of aftersales
//! (activation, router set-up, number porting, the first bill) where most of its friction lives. `docs/telecom.md`
//! documents the ground truth; keep the two in step.
//!
//! Planted friction, before the goal (`Contract Signed`):
//! 1. **Identity check loop**: an upload of a passport fails 50 % of the time (other documents 5 %); after two
//!    failures customers give up half the time per failure, and half of those call sales, who verify 70 % of them.
//! 2. **Installation-fee drop-off**: 25 % of checkouts end at `Installation Fee Shown`.
//!
//! And after it:
//! 3. **Slow activation for gigabit**: `Engineer Visit Booked` → `Line Activated` takes 12–25 days on the `gigabit`
//!    plan (a trait; 35 % of customers), 2–5 days otherwise. No event carries a standard time.
//! 4. **Unhelpful router article**: `Help: Router Lights` is rated 1–2 of 5 by 75 % of its readers (other articles
//!    10 %); 70 % of the unhappy readers call, and 55 % of those call again within 1–4 days (10 % for other calls).
//! 5. **Number porting stuck**: a quarter of the port requests never complete (48 h is the business's standard,
//!    given in the request, not in the data).
//!
//! Not friction, and planted to check that it is not reported: 30 % of visitors compare plans two or three times,
//! and they sign more often. Identity calls (`identify`, `group` for business customers, `alias`) are sprinkled
//! through; one customer's phone sends an event dated in 2031.

use super::{CustomerWriter, DemoConfig, Device};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

/// The first instant of the telecom period (2026-06-01T00:00:00Z), and its length: 120 days.
pub const TELECOM_START_SECS: i64 = 1_780_272_000;
pub const TELECOM_SPAN_SECS: i64 = 120 * 86_400;

pub const PASSPORT_FAILURE_RATE: f64 = 0.5;
pub const DOCUMENT_FAILURE_RATE: f64 = 0.05;
pub const FEE_DROP_OFF_RATE: f64 = 0.25;
pub const GIGABIT_SHARE: f64 = 0.35;
pub const ROUTER_ARTICLE_UNHAPPY_RATE: f64 = 0.75;
pub const ARTICLE_UNHAPPY_RATE: f64 = 0.1;
pub const PORT_STUCK_RATE: f64 = 0.25;

const PLATFORMS: [(&str, &str, &str, &str); 3] = [
    ("ios_app", "app", "iOS", "iPhone 15"),
    ("android_app", "app", "Android", "Galaxy S24"),
    ("windows_web", "web", "Windows", "Laptop"),
];

const ARTICLES: [&str; 3] = ["Help: Router Lights", "Help: Wi-Fi Setup", "Help: Billing"];

/// Generates the events of one telecom customer, in time order.
pub fn generate_customer(
    config: DemoConfig,
    customer_index: usize,
    emit: &mut dyn FnMut(serde_json::Value),
) {
    let mut rng = ChaCha8Rng::seed_from_u64(
        config.seed.wrapping_mul(0xd1b5_4a32_d192_ed03) ^ customer_index as u64,
    );
    let (platform, channel, os, model) = PLATFORMS[rng.random_range(0..PLATFORMS.len())];
    let device = Device {
        anonymous_id: format!("{:016x}", rng.random::<u64>()),
        platform,
        channel,
        os,
        model,
    };
    let start = TELECOM_START_SECS as f64 + rng.random_range(0.0..TELECOM_SPAN_SECS as f64);
    let mut w = CustomerWriter {
        rng,
        customer_index,
        seed: config.seed,
        plant: super::Plant::default(),
        user_id: format!("acct-{customer_index:06}"),
        time_secs: start,
        n_events: 0,
        emit,
    };
    journey(&mut w, &device);
}

fn journey(w: &mut CustomerWriter, device: &Device) {
    let plan = if w.chance(GIGABIT_SHARE) {
        "gigabit"
    } else if w.chance(0.5) {
        "fibre_500"
    } else {
        "fibre_150"
    };
    let document = match w.rng.random_range(0..20) {
        0..8 => "passport",
        8..17 => "driving_licence",
        _ => "national_id",
    };
    let business = w.chance(0.1);
    // Discovery.
    w.page(device, false, "Plans", json!({}));
    w.advance(20.0, 200.0);
    w.page(device, false, "Coverage Map", json!({}));
    w.advance(10.0, 90.0);
    let available = w.chance(0.95);
    w.on_device(
        device,
        false,
        "Address Checked",
        json!({ "available": available }),
    );
    if !available {
        return;
    }
    // Comparing plans is what the keenest do: they sign more often (not friction).
    let compares = w.chance(0.3);
    for _ in 0..if compares {
        w.rng.random_range(2..4)
    } else {
        0
    } {
        w.advance(30.0, 300.0);
        w.on_device(device, false, "Plans Compared", json!({ "plans": 3 }));
    }
    w.advance(30.0, 400.0);
    w.page(
        device,
        false,
        &format!("Plan: {plan}"),
        json!({ "plan": plan }),
    );
    if !w.chance(if compares { 0.9 } else { 0.75 }) {
        return;
    }
    w.advance(20.0, 200.0);
    w.on_device(device, false, "Checkout Started", json!({ "plan": plan }));
    w.advance(10.0, 60.0);
    w.on_device(
        device,
        false,
        "Installation Fee Shown",
        json!({ "fee": 99.0, "currency": "EUR" }),
    );
    if w.chance(FEE_DROP_OFF_RATE) {
        return;
    }
    w.advance(20.0, 120.0);
    w.identify(
        device,
        json!({ "email": format!("{}@example.net", w.user_id), "plan": plan, "segment": if business { "business" } else { "consumer" } }),
    );
    if business {
        w.advance(1.0, 5.0);
        let mut value = w.base("group");
        value["userId"] = w.user_id.clone().into();
        value["groupId"] = format!("company-{}", w.customer_index % 500).into();
        value["traits"] = json!({ "employees": 12 });
        (w.emit)(value);
    }
    // The identity check, with the planted passport failures.
    let failure_rate = if document == "passport" {
        PASSPORT_FAILURE_RATE
    } else {
        DOCUMENT_FAILURE_RATE
    };
    let mut failures = 0;
    let mut verified = false;
    let mut by_phone = false;
    for _ in 0..4 {
        w.advance(30.0, 240.0);
        w.on_device(
            device,
            true,
            "Identity Check Started",
            json!({ "document_type": document }),
        );
        w.advance(10.0, 60.0);
        if w.chance(failure_rate) {
            failures += 1;
            w.on_device(
                device,
                true,
                "Identity Check Failed",
                json!({ "document_type": document, "reason": "image_unreadable" }),
            );
            if failures >= 2 && w.chance(0.5) {
                break;
            }
        } else {
            w.on_device(
                device,
                true,
                "Identity Verified",
                json!({ "document_type": document }),
            );
            verified = true;
            break;
        }
    }
    if !verified {
        if !(failures >= 2 && w.chance(0.5)) {
            return;
        }
        w.advance(600.0, 7_200.0);
        call(w, "identity_check");
        if !w.chance(0.7) {
            return;
        }
        w.known(
            "call_center",
            "Identity Verified",
            json!({ "document_type": document, "by": "agent" }),
        );
        by_phone = true;
    }
    w.advance(30.0, 300.0);
    let properties = json!({ "plan": plan, "monthly_price": match plan { "gigabit" => 59.0, "fibre_500" => 45.0, _ => 32.0 } });
    if by_phone {
        w.known("call_center", "Contract Signed", properties);
    } else {
        w.on_device(device, true, "Contract Signed", properties);
    }
    if w.chance(0.2) {
        w.advance(1.0, 10.0);
        let mut value = w.base("alias");
        value["userId"] = w.user_id.clone().into();
        value["previousId"] = device.anonymous_id.clone().into();
        (w.emit)(value);
    }

    // Aftersales: the router, then the engineer visit the customer books on its arrival, and the activation (slow
    // for gigabit).
    w.advance(20_000.0, 86_400.0);
    w.known("email", "Router Shipped", json!({ "carrier": "post" }));
    w.advance(86_400.0, 3.0 * 86_400.0);
    w.known("email", "Router Delivered", json!({}));
    w.advance(600.0, 12.0 * 3_600.0);
    w.on_device(
        device,
        true,
        "Engineer Visit Booked",
        json!({ "slot": "morning" }),
    );
    let (low, high) = if plan == "gigabit" {
        (12.0, 25.0)
    } else {
        (2.0, 5.0)
    };
    w.advance(low * 86_400.0, high * 86_400.0);
    w.known("field", "Line Activated", json!({ "plan": plan }));

    // Help articles after activation, rated; the router article is the bad one.
    if w.chance(0.5) {
        w.advance(3_600.0, 2.0 * 86_400.0);
        let article = if w.chance(0.5) {
            ARTICLES[0]
        } else {
            ARTICLES[w.rng.random_range(1..ARTICLES.len())]
        };
        w.page(device, true, article, json!({}));
        w.advance(30.0, 300.0);
        let unhappy = w.chance(if article == ARTICLES[0] {
            ROUTER_ARTICLE_UNHAPPY_RATE
        } else {
            ARTICLE_UNHAPPY_RATE
        });
        let rating = if unhappy {
            w.rng.random_range(1..3)
        } else {
            w.rng.random_range(3..6)
        };
        w.on_device(
            device,
            true,
            "Feedback Submitted",
            json!({ "rated_step": article, "rating": rating, "question": "How helpful was this?" }),
        );
        if unhappy && w.chance(0.7) {
            w.advance(600.0, 6.0 * 3_600.0);
            call(w, "no_connection");
            let again = if article == ARTICLES[0] { 0.55 } else { 0.1 };
            if w.chance(again) {
                w.advance(86_400.0, 4.0 * 86_400.0);
                call(w, "no_connection");
            }
        }
    }
    // Number porting: a quarter of the requests never complete, and those journeys end there.
    if w.chance(0.4) {
        w.advance(3_600.0, 86_400.0);
        w.on_device(
            device,
            true,
            "Number Port Requested",
            json!({ "donor": "other_operator" }),
        );
        if w.chance(PORT_STUCK_RATE) {
            return;
        }
        w.advance(4.0 * 3_600.0, 40.0 * 3_600.0);
        w.known("sms", "Number Ported", json!({}));
    }
    // One customer's phone clock is years ahead.
    if w.customer_index == 7 {
        let mut value = w.base("track");
        value["event"] = "Speed Test Run".into();
        value["userId"] = w.user_id.clone().into();
        value["timestamp"] = "2031-03-01T12:00:00.000Z".into();
        value["context"] = json!({ "channel": device.channel });
        (w.emit)(value);
    }
    w.advance(25.0 * 86_400.0, 32.0 * 86_400.0);
    w.known("email", "First Bill Issued", json!({ "amount": 45.0 }));
    w.advance(86_400.0, 10.0 * 86_400.0);
    w.on_device(device, true, "Bill Paid", json!({ "method": "card" }));
}

fn call(w: &mut CustomerWriter, reason: &str) {
    w.known(
        "call_center",
        "Call Started",
        json!({ "reason": reason, "queue": "support" }),
    );
    let duration = w.rng.random_range(300.0..1_500.0);
    w.advance(duration, duration + 1.0);
    w.known(
        "call_center",
        "Call Ended",
        json!({ "reason": reason, "duration_secs": duration.round() }),
    );
}
