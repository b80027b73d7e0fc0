//! The demo business: a seeded smart-home retailer selling on web, app, chat, SMS, e-mail, phone and in store,
//! with friction planted on purpose so that analyses have something true to find. `docs/demo.md` documents the
//! ground truth; keep the two in step.
//!
//! Planted friction:
//! 1. **Login failure loop on the Android app**: a login attempt fails 55 % of the time on `android_app`
//!    (6 % elsewhere); after repeated failures customers call the contact centre (`Call Started`,
//!    `reason=login_problem`) or give up.
//! 2. **Unhelpful help article**: `Help: Reset Smart Lock` is rated unhelpful 80 % of the time (others 15 %);
//!    unhelpful ratings lead to a call and often a repeat call within three days.
//! 3. **Slow installation**: `Installation Scheduled` → `Installation Completed` has a 72 h standard time; in the
//!    `North` region it takes 5–12 days.
//! 4. **Shipping-cost dead end**: 35 % of checkouts end at `Shipping Options Viewed`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use waymark_model::Timestamp;

/// The first instant of the demo period (2026-08-01T00:00:00Z).
pub const DEMO_START_SECS: i64 = 1_785_542_400;
/// Length of the period over which customers arrive: 90 days.
pub const DEMO_SPAN_SECS: i64 = 90 * 86_400;
/// Standard time of the installation step, in seconds (72 h).
pub const INSTALLATION_STANDARD_SECS: i64 = 72 * 3_600;

/// The planted moments of truth (docs/demo.md): reading reviews makes an online checkout more likely to be paid,
/// a chatbot conversation makes adding to the cart more likely, and the login failure rates drive customers away.
pub const PAY_RATE: f64 = 0.65;
pub const PAY_RATE_AFTER_REVIEWS: f64 = 0.85;
pub const CART_RATE: f64 = 0.75;
pub const CART_RATE_AFTER_CHATBOT: f64 = 0.92;
pub const REVIEWS_RATE: f64 = 0.6;
pub const CHATBOT_RATE: f64 = 0.25;
pub const ANDROID_LOGIN_FAILURE_RATE: f64 = 0.55;
pub const LOGIN_FAILURE_RATE: f64 = 0.06;
/// After two or more failed logins a customer gives up with this chance after each further failure; of those who
/// give up this share call the contact centre, and the reset link they get works this often.
pub const GIVE_UP_RATE: f64 = 0.5;
pub const CALL_AFTER_GIVING_UP_RATE: f64 = 0.6;
pub const RESET_SUCCESS_RATE: f64 = 0.8;
/// A store purchase instead of an online checkout, after adding to the cart.
pub const STORE_RATE: f64 = 0.1;
/// An online checkout started, when not buying in store.
pub const CHECKOUT_RATE: f64 = 0.85;
/// An abandoned checkout gets the SMS offer, and the offer's link is clicked (then the order is paid).
pub const SMS_OFFER_RATE: f64 = 0.4;
pub const SMS_CLICK_RATE: f64 = 0.35;

pub mod planted;
pub mod telecom;

/// Which business a demo data set is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Business {
    /// The smart-home retailer (`docs/demo.md`).
    #[default]
    Retail,
    /// The fibre broadband provider (`docs/telecom.md`).
    Telecom,
}

impl std::str::FromStr for Business {
    type Err = String;
    fn from_str(text: &str) -> Result<Business, String> {
        match text {
            "retail" => Ok(Business::Retail),
            "telecom" => Ok(Business::Telecom),
            other => Err(format!(
                "{other:?} is not a demo business: use retail or telecom"
            )),
        }
    }
}

/// Business, size and seed of a generated data set, and what is planted in it beyond its standing friction.
#[derive(Debug, Clone, Copy)]
pub struct DemoConfig {
    pub customers: usize,
    pub seed: u64,
    pub business: Business,
    pub plant: Plant,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            customers: 50_000,
            seed: 42,
            business: Business::Retail,
            plant: Plant::default(),
        }
    }
}

/// What a demo plants on request (docs/demo.md, "Planted on request"); the retailer only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Plant {
    /// The checkout-reminder trigger ([`INTERVENTION_RULES`]) runs while the demo is ingested, holding out
    /// [`REMINDER_HOLDOUT`] of the customers; its SMS truly brings [`REMINDER_RETURN_RATE`] of the treated
    /// abandoners back to pay.
    pub intervention: bool,
    /// Android login failures jump to [`INCIDENT_FAILURE_RATE`] for one day, [`INCIDENT_DAY`].
    pub incident: bool,
}

impl std::str::FromStr for Plant {
    type Err = String;
    /// A comma-separated list: `intervention`, `incident`.
    fn from_str(text: &str) -> Result<Plant, String> {
        let mut plant = Plant::default();
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "intervention" => plant.intervention = true,
                "incident" => plant.incident = true,
                other => {
                    return Err(format!(
                        "{other:?} is not something the demo plants: use intervention, incident or both"
                    ))
                }
            }
        }
        Ok(plant)
    }
}

/// The planted intervention's trigger: an abandoned checkout (no payment within an hour of seeing the shipping
/// options) gets a reminder SMS, written into the journey; a fifth of the customers are held out.
pub const INTERVENTION_RULES: &str = r#"# The demo's planted intervention (docs/demo.md): `waymark rules lift` measures it against the holdout.
[[triggers]]
name = "checkout-reminder"
on = "absence"
after = "Shipping Options Viewed"
missing = "Payment Submitted"
within = "1h"
holdout = 0.2
expect_steps = ["Shipping Options Viewed", "Payment Submitted"]

[[triggers.actions]]
type = "event"
name = "Checkout Reminder Sent"
channel = "sms"
"#;
/// The planted incident's monitors: the Android app's failed logins per attempt over a sliding day, against a
/// threshold and against the same hour of the previous four weeks.
pub const INCIDENT_RULES: &str = r#"[[monitors]]
name = "android-login-failures"
description = "Failed logins per login attempt on the Android app, over the last day"
metric = "rate"
events = { step = "Login Failed" }
of = { step = "Login Attempted" }
where = { property = "context.device.type", op = "=", value = "android_app" }
window = "1d"
every = "1h"
above = 0.75
expect_steps = ["Login Failed", "Login Attempted"]

[[monitors]]
name = "android-login-anomaly"
description = "The same rate against its own history at this hour of the week"
metric = "rate"
events = { step = "Login Failed" }
of = { step = "Login Attempted" }
where = { property = "context.device.type", op = "=", value = "android_app" }
window = "1d"
every = "1h"
anomaly = { sd = 4, weeks = 4, direction = "above" }
expect_steps = ["Login Failed", "Login Attempted"]
"#;

/// The retailer's designed purchase journey, saved as `blueprints/purchase.toml` by the demo.
pub const PURCHASE_BLUEPRINT: &str = include_str!("purchase.toml");

/// The retailer's content and offers, saved as `catalogue.toml` by the demo.
pub const RETAIL_CATALOGUE: &str = include_str!("catalogue.toml");

/// The catalogue a demo business comes with (TOML), if any.
pub fn catalogue(business: Business) -> Option<&'static str> {
    match business {
        Business::Retail => Some(RETAIL_CATALOGUE),
        Business::Telecom => None,
    }
}

/// The blueprints a demo business comes with (TOML).
pub fn blueprints(business: Business) -> &'static [&'static str] {
    match business {
        Business::Retail => &[PURCHASE_BLUEPRINT],
        Business::Telecom => &[],
    }
}

/// The definitions a plant brings (none without one).
pub fn planted_rules(plant: Plant) -> Option<String> {
    let mut text = String::new();
    if plant.intervention {
        text.push_str(INTERVENTION_RULES);
    }
    if plant.incident {
        text.push_str(INCIDENT_RULES);
    }
    (!text.is_empty()).then_some(text)
}

/// The trigger's name, its holdout share and its wait, as [`INTERVENTION_RULES`] defines them.
pub const REMINDER_TRIGGER: &str = "checkout-reminder";
pub const REMINDER_HOLDOUT: f64 = 0.2;
pub const REMINDER_WAIT_SECS: f64 = 3_600.0;
/// Of the treated abandoners, this share comes back after the reminder and pays.
pub const REMINDER_RETURN_RATE: f64 = 0.3;
/// The incident's day (2026-09-15, UTC) and the Android login failure rate on it.
pub const INCIDENT_DAY: &str = "2026-09-15";
pub const INCIDENT_DAY_START_SECS: i64 = DEMO_START_SECS + 45 * 86_400;
pub const INCIDENT_FAILURE_RATE: f64 = 0.9;

#[derive(Clone)]
struct Device {
    anonymous_id: String,
    platform: &'static str,
    channel: &'static str,
    os: &'static str,
    model: &'static str,
}

const PLATFORMS: [(&str, &str, &str, &str); 4] = [
    ("ios_app", "app", "iOS", "iPhone 15"),
    ("android_app", "app", "Android", "Pixel 8"),
    ("mac_web", "web", "macOS", "MacBook Air"),
    ("windows_web", "web", "Windows", "Office PC"),
];

const PRODUCTS: [(&str, &str, f64); 4] = [
    ("Smart Lock", "security", 229.0),
    ("Security Camera", "security", 149.0),
    ("Video Doorbell", "security", 179.0),
    ("Smart Thermostat", "climate", 199.0),
];

const REGIONS: [&str; 4] = ["North", "South", "East", "West"];

/// Builds one customer's events in time order.
struct CustomerWriter<'a> {
    rng: ChaCha8Rng,
    customer_index: usize,
    seed: u64,
    plant: Plant,
    user_id: String,
    time_secs: f64,
    n_events: usize,
    emit: &'a mut dyn FnMut(Value),
}

impl CustomerWriter<'_> {
    fn advance(&mut self, min_secs: f64, max_secs: f64) {
        self.time_secs += self.rng.random_range(min_secs..max_secs);
    }

    fn chance(&mut self, probability: f64) -> bool {
        self.rng.random::<f64>() < probability
    }

    fn base(&mut self, kind: &str) -> Value {
        self.n_events += 1;
        let micros = (self.time_secs * 1_000.0).round() as i64 * 1_000;
        json!({
            "type": kind,
            "messageId": format!("demo-{}-{}-{}", self.seed, self.customer_index, self.n_events),
            "timestamp": Timestamp(micros).to_rfc3339(),
        })
    }

    /// A call of type `kind` on a device: anonymous until `logged_in`, then carrying both ids (as browser and app
    /// SDKs do).
    fn device_call(
        &mut self,
        kind: &str,
        device: &Device,
        logged_in: bool,
        properties: Value,
    ) -> Value {
        let mut value = self.base(kind);
        value["anonymousId"] = device.anonymous_id.clone().into();
        if logged_in {
            value["userId"] = self.user_id.clone().into();
        }
        value["properties"] = properties;
        value["context"] = device_context(device);
        value
    }

    fn on_device(&mut self, device: &Device, logged_in: bool, event: &str, properties: Value) {
        let mut value = self.device_call("track", device, logged_in, properties);
        value["event"] = event.into();
        (self.emit)(value);
    }

    /// A `page` on the web, a `screen` in the app.
    fn page(&mut self, device: &Device, logged_in: bool, name: &str, properties: Value) {
        let kind = if device.channel == "app" {
            "screen"
        } else {
            "page"
        };
        let mut value = self.device_call(kind, device, logged_in, properties);
        value["name"] = name.into();
        (self.emit)(value);
    }

    fn identify(&mut self, device: &Device, traits: Value) {
        let mut value = self.base("identify");
        value["userId"] = self.user_id.clone().into();
        value["anonymousId"] = device.anonymous_id.clone().into();
        value["traits"] = traits;
        value["context"] = device_context(device);
        (self.emit)(value);
    }

    /// An event from a back-office channel (contact centre, store, SMS, e-mail) that knows the customer id only.
    fn known(&mut self, channel: &str, event: &str, properties: Value) {
        let mut value = self.base("track");
        value["event"] = event.into();
        value["userId"] = self.user_id.clone().into();
        value["properties"] = properties;
        value["context"] = json!({ "channel": channel });
        (self.emit)(value);
    }

    fn feedback(
        &mut self,
        device: &Device,
        rated_step: &str,
        helpful: bool,
        article: Option<&str>,
    ) {
        let mut properties = json!({ "rated_step": rated_step, "helpful": helpful, "question": "Was this helpful?" });
        if let Some(article) = article {
            properties["article"] = article.into();
        }
        self.on_device(device, true, "Feedback Submitted", properties);
    }
}

fn device_context(device: &Device) -> Value {
    let library = if device.channel == "app" {
        "analytics-ios"
    } else {
        "analytics.js"
    };
    json!({
        "channel": device.channel,
        "device": { "model": device.model, "type": device.platform },
        "os": { "name": device.os },
        "library": { "name": library, "version": "5.0.0" },
    })
}

/// Generates the demo data set as Segment-spec JSON events, customer by customer, each customer's events in time
/// order. Deterministic for a given config.
/// Generates the demo into `store` in batches, calling `on_customer` after each generated customer, then flushes.
///
/// With the planted intervention the whole demo is generated first and stored in time order, as a live business
/// would collect it (the rules worker's clock is the data's), `on_batch` after each stored batch.
pub fn ingest(
    store: &waymark_store::Store,
    config: DemoConfig,
    on_customer: &mut dyn FnMut(),
    on_batch: &mut dyn FnMut(),
) -> Result<(), DemoError> {
    if config.plant.intervention {
        let mut events = Vec::new();
        for customer_index in 0..config.customers {
            let mut failure = None;
            generate_customer(config, customer_index, &mut |value| {
                let context = waymark_model::IngestContext::at(Timestamp::now());
                match waymark_model::Event::from_segment_value(value, &context) {
                    Ok(event) => events.push(event),
                    Err(error) => failure = Some(DemoError::Invalid(error.to_string())),
                }
            });
            if let Some(error) = failure {
                return Err(error);
            }
            on_customer();
        }
        events.sort_by_key(|event| event.timestamp.0);
        let mut events = events.into_iter().peekable();
        while events.peek().is_some() {
            store.append(events.by_ref().take(20_000).collect(), vec![])?;
            on_batch();
        }
        store.flush()?;
        return Ok(());
    }
    let mut batch: Vec<waymark_model::Event> = Vec::with_capacity(20_000);
    let mut failure: Option<DemoError> = None;
    for customer_index in 0..config.customers {
        generate_customer(config, customer_index, &mut |value| {
            if failure.is_some() {
                return;
            }
            let context = waymark_model::IngestContext::at(Timestamp::now());
            match waymark_model::Event::from_segment_value(value, &context) {
                Ok(event) => batch.push(event),
                Err(error) => failure = Some(DemoError::Invalid(error.to_string())),
            }
            if batch.len() >= 20_000 {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(20_000));
                if let Err(error) = store.append(full, vec![]) {
                    failure = Some(error.into());
                }
            }
        });
        on_customer();
        if let Some(error) = failure {
            return Err(error);
        }
    }
    store.append(batch, vec![])?;
    store.flush()?;
    Ok(())
}

/// Why the demo could not be ingested.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("the demo generator produced an invalid event: {0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] waymark_store::StoreError),
}

pub fn generate(config: DemoConfig, emit: &mut dyn FnMut(Value)) {
    for customer_index in 0..config.customers {
        generate_customer(config, customer_index, emit);
    }
}

/// Generates the events of one customer, in time order. Customers are independent of each other, so callers can
/// report progress per customer or generate ranges in parallel.
pub fn generate_customer(config: DemoConfig, customer_index: usize, emit: &mut dyn FnMut(Value)) {
    if config.business == Business::Telecom {
        return telecom::generate_customer(config, customer_index, emit);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(
        config.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ customer_index as u64,
    );
    let n_devices =
        1 + usize::from(rng.random::<f64>() < 0.45) + usize::from(rng.random::<f64>() < 0.15);
    let mut devices: Vec<Device> = (0..n_devices)
        .map(|_| {
            let (platform, channel, os, model) = PLATFORMS[rng.random_range(0..PLATFORMS.len())];
            Device {
                anonymous_id: format!("{:016x}", rng.random::<u64>()),
                platform,
                channel,
                os,
                model,
            }
        })
        .collect();
    // One household in a hundred shares a tablet between two customers: the identity guard must keep them apart.
    if customer_index % 100 == 37 {
        let tablet = Device {
            anonymous_id: format!("tablet-{customer_index}"),
            platform: "ios_app",
            channel: "app",
            os: "iPadOS",
            model: "iPad",
        };
        devices.push(tablet);
    } else if customer_index % 100 == 38 {
        devices.push(Device {
            anonymous_id: format!("tablet-{}", customer_index - 1),
            platform: "ios_app",
            channel: "app",
            os: "iPadOS",
            model: "iPad",
        });
    }
    let start = DEMO_START_SECS as f64 + rng.random_range(0.0..DEMO_SPAN_SECS as f64);
    let region = REGIONS[rng.random_range(0..REGIONS.len())];
    let mut writer = CustomerWriter {
        rng,
        customer_index,
        seed: config.seed,
        plant: config.plant,
        user_id: format!("cust-{customer_index:06}"),
        time_secs: start,
        n_events: 0,
        emit,
    };
    customer_journey(&mut writer, &devices, region);
}

fn customer_journey(w: &mut CustomerWriter, devices: &[Device], region: &str) {
    let first = devices[0].clone();
    let (product, category, price) = PRODUCTS[w.rng.random_range(0..PRODUCTS.len())];
    let query = match category {
        "security" => {
            ["home security systems", "smart lock", "video doorbell"][w.rng.random_range(0..3)]
        }
        _ => "smart thermostat",
    };
    // Discovery: search or an ad, a landing page, maybe the chatbot, product pages, reviews.
    if w.chance(0.4) {
        // The click lands on the visitor's device, anonymously; it joins the customer when they log in.
        let properties = json!({ "campaign": "autumn-security", "query": query });
        let mut value = w.device_call("track", &first, false, properties);
        value["event"] = "Ad Clicked".into();
        value["context"]["channel"] = "ads".into();
        (w.emit)(value);
    } else {
        w.on_device(
            &first,
            false,
            "Searched",
            json!({ "query": query, "source": "google" }),
        );
    }
    w.advance(2.0, 20.0);
    w.page(
        &first,
        false,
        &format!(
            "Landing: {}",
            if category == "security" {
                "Security Cameras"
            } else {
                "Climate"
            }
        ),
        json!({ "utm_source": "google" }),
    );
    // A chatbot conversation on the landing page answers the visitor's question (it raises adding to the cart).
    let chatted = w.chance(CHATBOT_RATE);
    if chatted {
        w.advance(30.0, 300.0);
        let mut value = w.base("track");
        value["event"] = "Chatbot Conversation".into();
        value["anonymousId"] = first.anonymous_id.clone().into();
        value["properties"] = json!({ "topic": "compatibility", "product": product });
        value["context"] = json!({ "channel": "chat", "os": { "name": first.os } });
        (w.emit)(value);
    }

    for _ in 0..w.rng.random_range(1..4) {
        w.advance(10.0, 120.0);
        w.page(
            &first,
            false,
            &format!("Product: {product}"),
            json!({ "product": product, "price": price }),
        );
    }
    let read_reviews = w.chance(REVIEWS_RATE);
    if read_reviews {
        w.advance(20.0, 200.0);
        w.on_device(
            &first,
            false,
            "Reviews Read",
            json!({ "product": product, "rating_shown": 4.4 }),
        );
    }
    // Login, with the planted Android failure loop.
    w.advance(60.0, 600.0);
    let incident = w.plant.incident
        && (INCIDENT_DAY_START_SECS as f64..(INCIDENT_DAY_START_SECS + 86_400) as f64)
            .contains(&w.time_secs);
    let failure_rate = match first.platform {
        "android_app" if incident => INCIDENT_FAILURE_RATE,
        "android_app" => ANDROID_LOGIN_FAILURE_RATE,
        _ => LOGIN_FAILURE_RATE,
    };
    let mut failures = 0;
    let mut logged_in = false;
    for _ in 0..4 {
        w.on_device(
            &first,
            false,
            "Login Attempted",
            json!({ "method": "password" }),
        );
        w.advance(2.0, 15.0);
        if w.chance(failure_rate) {
            failures += 1;
            w.on_device(&first, false, "Login Failed", json!({ "error": if first.platform == "android_app" { "token_refresh_failed" } else { "wrong_password" } }));
            w.advance(5.0, 60.0);
            if failures >= 2 && w.chance(GIVE_UP_RATE) {
                break;
            }
        } else {
            logged_in = true;
            break;
        }
    }
    if !logged_in {
        if failures >= 2 && w.chance(CALL_AFTER_GIVING_UP_RATE) {
            // Channel jump: the customer calls for help with the login.
            w.advance(300.0, 3_600.0);
            contact_centre_call(w, "login_problem", 600.0, 1_500.0);
            w.advance(60.0, 600.0);
            w.known(
                "email",
                "Password Reset Sent",
                json!({ "template": "password-reset" }),
            );
            w.advance(120.0, 1_800.0);
            w.on_device(
                &first,
                false,
                "Login Attempted",
                json!({ "method": "reset_link" }),
            );
            logged_in = w.chance(RESET_SUCCESS_RATE);
        }
        if !logged_in {
            return; // Dropped off at login.
        }
    }
    w.identify(&first, json!({ "email": format!("{}@example.com", w.user_id), "region": region, "platform": first.platform }));
    w.advance(1.0, 5.0);
    w.on_device(&first, true, "Logged In", json!({}));

    // Cart and checkout, with the shipping-cost dead end and an SMS win-back.
    w.advance(30.0, 600.0);
    if !w.chance(if chatted {
        CART_RATE_AFTER_CHATBOT
    } else {
        CART_RATE
    }) {
        browsing_sessions(w, devices, true);
        return;
    }
    w.on_device(
        &first,
        true,
        "Added to Cart",
        json!({ "product": product, "price": price }),
    );
    w.advance(20.0, 400.0);
    let mut purchased = false;
    if w.chance(STORE_RATE) {
        w.advance(86_400.0, 4.0 * 86_400.0);
        w.known(
            "store",
            "Store Visit",
            json!({ "store": format!("{region} Mall") }),
        );
        w.advance(300.0, 1_800.0);
        w.known(
            "store",
            "Order Completed",
            json!({ "product": product, "revenue": price, "payment": "card" }),
        );
        purchased = true;
    } else if w.chance(CHECKOUT_RATE) {
        w.on_device(
            &first,
            true,
            "Checkout Started",
            json!({ "product": product, "value": price }),
        );
        w.advance(10.0, 120.0);
        w.on_device(
            &first,
            true,
            "Shipping Options Viewed",
            json!({ "shipping_cost": 14.99 }),
        );
        if w.chance(if read_reviews {
            PAY_RATE_AFTER_REVIEWS
        } else {
            PAY_RATE
        }) {
            w.advance(30.0, 300.0);
            pay_and_complete(w, &first, json!({ "product": product, "revenue": price }));
            purchased = true;
        } else if w.plant.intervention
            && !waymark_rules::runtime::in_holdout(REMINDER_TRIGGER, &w.user_id, REMINDER_HOLDOUT)
            && w.chance(REMINDER_RETURN_RATE)
        {
            // The reminder the rules worker sends an hour later brings this customer back.
            w.advance(
                REMINDER_WAIT_SECS + 600.0,
                REMINDER_WAIT_SECS + 6.0 * 3_600.0,
            );
            pay_and_complete(w, &first, json!({ "product": product, "revenue": price }));
            purchased = true;
        } else if w.chance(SMS_OFFER_RATE) {
            w.advance(86_400.0, 2.0 * 86_400.0);
            w.known("sms", "SMS Offer Sent", json!({ "offer": "free-shipping" }));
            if w.chance(SMS_CLICK_RATE) {
                w.advance(300.0, 7_200.0);
                w.known(
                    "sms",
                    "SMS Link Clicked",
                    json!({ "offer": "free-shipping" }),
                );
                w.advance(60.0, 600.0);
                let order = json!({ "product": product, "revenue": price - 14.99, "offer": "free-shipping" });
                pay_and_complete(w, &first, order);
                purchased = true;
            }
        }
    }
    browsing_sessions(w, devices, true);
    if !purchased {
        return;
    }

    // Delivery and installation, with the planted slow step in the North region.
    w.advance(3_600.0, 86_400.0);
    w.known("email", "Delivery Scheduled", json!({ "carrier": "DHL" }));
    w.advance(2.0 * 86_400.0, 4.0 * 86_400.0);
    w.known("email", "Order Delivered", json!({ "product": product }));
    if product != "Security Camera" || w.chance(0.5) {
        w.advance(3_600.0, 86_400.0);
        w.known(
            "call_center",
            "Installation Scheduled",
            json!({ "region": region, "standard_time_hours": 72 }),
        );
        let (low, high) = if region == "North" {
            (5.0 * 86_400.0, 12.0 * 86_400.0)
        } else {
            (86_400.0, 2.9 * 86_400.0)
        };
        w.advance(low, high);
        w.known(
            "store",
            "Installation Completed",
            json!({ "region": region }),
        );
    }

    // Support: "device not working" → help article → was it helpful? → maybe calls.
    if w.chance(0.35) {
        w.advance(2.0 * 86_400.0, 20.0 * 86_400.0);
        let device = devices[w.rng.random_range(0..devices.len())].clone();
        if device.anonymous_id != first.anonymous_id {
            w.identify(&device, json!({ "platform": device.platform }));
            w.advance(1.0, 5.0);
        }
        w.on_device(
            &device,
            true,
            "Device Not Working",
            json!({ "product": product }),
        );
        w.advance(20.0, 120.0);
        let (article, slug, helpful_rate) = match product {
            "Smart Lock" => ("Help: Reset Smart Lock", "reset-smart-lock", 0.2),
            "Smart Thermostat" => ("Help: Thermostat Wiring", "thermostat-wiring", 0.85),
            _ => ("Help: Pair Camera", "pair-camera", 0.85),
        };
        w.page(&device, true, article, json!({ "article": slug }));
        w.advance(60.0, 400.0);
        let helpful = w.chance(helpful_rate);
        let rated_step = format!(
            "{}:{article}",
            if device.channel == "app" {
                "screen"
            } else {
                "page"
            }
        );
        w.feedback(&device, &rated_step, helpful, Some(slug));
        if helpful {
            w.advance(60.0, 600.0);
            w.on_device(
                &device,
                true,
                "Issue Resolved",
                json!({ "resolution": "self_service", "article": slug }),
            );
        } else {
            w.advance(600.0, 7_200.0);
            contact_centre_call(w, "device_issue", 480.0, 2_400.0);
            let repeat_rate = if slug == "reset-smart-lock" {
                0.55
            } else {
                0.15
            };
            if w.chance(repeat_rate) {
                w.advance(86_400.0 * 0.5, 86_400.0 * 3.0);
                contact_centre_call(w, "device_issue", 480.0, 2_400.0);
            }
            w.advance(600.0, 86_400.0);
            if w.chance(0.75) {
                w.known(
                    "call_center",
                    "Issue Resolved",
                    json!({ "resolution": "agent" }),
                );
            }
            let csat = if w.chance(0.5) { 2 } else { 3 };
            w.known(
                "email",
                "CSAT Survey Answered",
                json!({ "csat": csat, "rated_step": "Call Ended" }),
            );
        }
    }
}

/// The end of an online checkout: payment, then the order (the goal).
fn pay_and_complete(w: &mut CustomerWriter, device: &Device, order: Value) {
    w.on_device(
        device,
        true,
        "Payment Submitted",
        json!({ "method": "card" }),
    );
    w.advance(2.0, 20.0);
    w.on_device(device, true, "Order Completed", order);
}

fn contact_centre_call(w: &mut CustomerWriter, reason: &str, min_secs: f64, max_secs: f64) {
    w.known(
        "call_center",
        "Call Started",
        json!({ "reason": reason, "queue": "support" }),
    );
    let duration = w.rng.random_range(min_secs..max_secs);
    w.advance(duration, duration + 1.0);
    w.known(
        "call_center",
        "Call Ended",
        json!({ "reason": reason, "duration_secs": duration.round() }),
    );
}

/// Repeat visits that make up most of the traffic: home, blog and product pages on any device.
fn browsing_sessions(w: &mut CustomerWriter, devices: &[Device], logged_in: bool) {
    const PAGES: [&str; 8] = [
        "Home",
        "Blog: Securing Your Home",
        "Product: Smart Lock",
        "Product: Security Camera",
        "Product: Video Doorbell",
        "Product: Smart Thermostat",
        "Compare Products",
        "Deals",
    ];
    let sessions = w.rng.random_range(1..8);
    for _ in 0..sessions {
        w.advance(3_600.0, 6.0 * 86_400.0);
        let device = devices[w.rng.random_range(0..devices.len())].clone();
        for _ in 0..w.rng.random_range(2..9) {
            let page = PAGES[w.rng.random_range(0..PAGES.len())];
            w.page(
                &device,
                logged_in && device.anonymous_id == devices[0].anonymous_id,
                page,
                json!({}),
            );
            w.advance(5.0, 180.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_sized() {
        let config = DemoConfig {
            customers: 300,
            seed: 7,
            business: Business::Retail,
            ..Default::default()
        };
        let mut first = Vec::new();
        generate(config, &mut |value| first.push(value));
        let mut second = Vec::new();
        generate(config, &mut |value| second.push(value));
        assert_eq!(first, second);
        let per_customer = first.len() as f64 / 300.0;
        assert!(
            (25.0..60.0).contains(&per_customer),
            "{per_customer} events per customer"
        );
    }
}
