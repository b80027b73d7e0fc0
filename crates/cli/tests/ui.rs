//! The web UI in a real headless Chromium (Debian's `chromium`, installed by `.ci/run`) over a small demo store:
//! every page renders its chart with the numbers the API returns, filters in the URL change them, and a funnel
//! drop-off lists the right customers with links to their timelines. A 1440×900 screenshot of each page is saved
//! under the cargo target's temporary directory (`ui-screenshots/`).

mod common;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

fn chromium() -> PathBuf {
    for candidate in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(output) = Command::new("which").arg(candidate).output() {
            if output.status.success() {
                return PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
            }
        }
    }
    panic!("these tests drive a real browser: install Debian's `chromium` (apt-get install chromium), as .ci/run does");
}

/// Loads `url` in headless Chromium, waits for the page's scripts (virtual time), saves a screenshot, and returns
/// the rendered DOM.
fn render(url: &str, screenshot: &Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let common_args = |command: &mut Command| {
        command.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--window-size=1440,900",
            "--virtual-time-budget=20000",
        ]);
        command.arg(format!("--user-data-dir={}", profile.path().display()));
    };
    let mut dump = Command::new(chromium());
    common_args(&mut dump);
    let output = dump.arg("--dump-dom").arg(url).output().unwrap();
    assert!(
        output.status.success(),
        "chromium failed on {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut shot = Command::new(chromium());
    common_args(&mut shot);
    let status = shot
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(url)
        .output()
        .unwrap();
    assert!(
        status.status.success() && screenshot.exists(),
        "no screenshot of {url}"
    );
    let dom = String::from_utf8(output.stdout).unwrap();
    assert!(
        dom.contains("data-state=\"ready\""),
        "{url} did not finish rendering:\n{}",
        &dom[..dom.len().min(3000)]
    );
    dom
}

/// A minimal W3C WebDriver client for `chromedriver` (Debian's `chromium-driver`): enough to load pages, find,
/// click and type, the way a person drives the UI.
struct Browser {
    driver: std::process::Child,
    base: String,
    session: String,
}

impl Browser {
    fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("these tests drive Chromium through chromedriver: install Debian's `chromium-driver`, as .ci/run does");
        let base = format!("http://127.0.0.1:{port}");
        let capabilities = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": chromium(),
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1440,900"]}}}});
        let started = std::time::Instant::now();
        let session = loop {
            match ureq::post(&format!("{base}/session")).send(capabilities.to_string()) {
                Ok(mut response) => {
                    let value: Value =
                        serde_json::from_str(&response.body_mut().read_to_string().unwrap())
                            .unwrap();
                    break value["value"]["sessionId"].as_str().unwrap().to_string();
                }
                Err(_) if started.elapsed().as_secs() < 20 => {
                    std::thread::sleep(std::time::Duration::from_millis(200))
                }
                Err(error) => panic!("chromedriver did not start a session: {error}"),
            }
        };
        Browser {
            driver,
            base,
            session,
        }
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut response = match method {
            "GET" => agent.get(&url).call(),
            _ => agent.post(&url).send(body.to_string()),
        }
        .unwrap_or_else(|error| panic!("webdriver {method} {path}: {error}"));
        let status = response.status().as_u16();
        let value: Value =
            serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
        assert!(
            status < 400,
            "webdriver {method} {path}: {status} {}",
            value["value"]["message"]
        );
        value["value"].clone()
    }

    fn open(&self, url: &str) {
        self.call("POST", "/url", json!({"url": url}));
        self.wait_ready();
    }

    /// Waits until the page has rendered its view.
    fn wait_ready(&self) {
        self.wait_for("document.getElementById('page').dataset.state === 'ready'");
    }

    /// Waits until `condition` (a JavaScript expression) holds and the page has rendered.
    fn wait_for(&self, condition: &str) {
        // Ready for the current address: the hash changes before the page starts re-rendering for it.
        let script = format!(
            "const page = document.getElementById('page'); return !!({condition}) && page.dataset.state === 'ready' \
             && (page.dataset.hash === undefined || page.dataset.hash === location.hash)"
        );
        // A minute: the test build is unoptimised, and a page like Personas clusters every customer.
        let started = std::time::Instant::now();
        while started.elapsed().as_secs() < 60 {
            if self.script(&script) == json!(true) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("timed out waiting for {condition}");
    }

    fn find(&self, css: &str) -> String {
        let element = self.call(
            "POST",
            "/element",
            json!({"using": "css selector", "value": css}),
        );
        element
            .as_object()
            .and_then(|object| object.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element matches {css}: {element}"))
            .to_string()
    }

    fn click(&self, css: &str) {
        let element = self.find(css);
        self.call("POST", &format!("/element/{element}/click"), json!({}));
    }

    /// Types `text` into the element `css`, as a person would.
    fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css);
        self.call(
            "POST",
            &format!("/element/{element}/value"),
            json!({"text": text}),
        );
    }

    /// Saves a PNG of the window.
    fn screenshot(&self, path: &Path) {
        use base64::Engine as _;
        let png = self.call("GET", "/screenshot", json!({}));
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// Waits until `condition` (a JavaScript expression) holds, whatever the page's state.
    fn wait_until(&self, condition: &str) {
        let started = std::time::Instant::now();
        while started.elapsed().as_secs() < 20 {
            if self.script(&format!("return !!({condition})")) == json!(true) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("timed out waiting for {condition}");
    }

    fn script(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = ureq::delete(&format!("{}/session/{}", self.base, self.session)).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn post(url: &str, path: &str, body: Value) -> Value {
    let mut response = ureq::post(&format!("{url}{path}"))
        .content_type("application/json")
        .send(body.to_string())
        .unwrap();
    serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap()
}

/// `1667009` → `1,667,009`, as the UI prints counts.
fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A data directory holding the demo retailer with `customers` customers and `extra` flags (`--plant …`).
fn demo_store(customers: &str, extra: &[&str]) -> tempfile::TempDir {
    let data = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_waymark"))
        .arg("--data")
        .arg(data.path())
        .args(["--json", "demo", "--no-serve", "--customers", customers])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    data
}

/// Where the tests' screenshots go.
fn screenshots() -> PathBuf {
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    shots
}

#[test]
fn every_page_renders_real_numbers_filters_and_drill_downs() {
    let data = demo_store("2500", &[]);
    let (mut server, url) = common::start_server(data.path(), "k");
    let shots = screenshots();
    let page = |route: &str, name: &str| {
        render(
            &format!("{url}/#/{route}"),
            &shots.join(format!("{name}.png")),
        )
    };

    // Overview: the counts the API gives, and the top friction.
    let overview = post(&url, "/v1/analyses/overview", json!({}));
    let dom = page("overview", "overview");
    assert!(
        dom.contains(&thousands(overview["customers"].as_u64().unwrap())),
        "customers"
    );
    assert!(
        dom.contains(&thousands(overview["events"].as_u64().unwrap())),
        "events"
    );
    assert!(dom.contains("Events per day by channel") && dom.contains("<svg"));
    let friction = post(&url, "/v1/analyses/friction", json!({"top": 5}));
    assert!(
        dom.contains(friction["findings"][0]["title"].as_str().unwrap()),
        "top friction finding"
    );

    // Filters live in the URL and change the numbers.
    let web = post(
        &url,
        "/v1/analyses/overview",
        json!({"filter": {"channels": ["web"]}}),
    );
    assert_ne!(web["customers"], overview["customers"]);
    let dom = page("overview?f_channels=web", "overview-web");
    assert!(
        dom.contains(&thousands(web["customers"].as_u64().unwrap())),
        "filtered customers"
    );
    assert!(dom.contains("1 filter active"));
    // A filter that cannot match says so above the page, with the value it may have meant.
    let dom = page(
        "overview?f_where=context.os.name%3Dandroid",
        "overview-unknown-value",
    );
    assert!(
        dom.contains("data-filter-notes=\"1\""),
        "the filter note is shown"
    );
    assert!(dom.contains("did you mean `Android`?"));

    // Journey map: the Sankey of the flows API.
    let flows = post(
        &url,
        "/v1/analyses/flows",
        json!({"anchor": "Login Attempted", "depth": 3, "top": 5}),
    );
    let dom = page(
        "journeys?anchor=Login%20Attempted&depth=3&top=5",
        "journey-map",
    );
    assert!(dom.contains(&format!(
        "{} customers after their first",
        thousands(flows["customers"].as_u64().unwrap())
    )));
    let first_level = flows["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|node| node["level"] == 1)
        .unwrap();
    assert!(dom.contains(&format!(
        "{} · {}",
        first_level["step"].as_str().unwrap(),
        thousands(first_level["count"].as_u64().unwrap())
    )));

    // Process map.
    let map = post(&url, "/v1/analyses/process-map", json!({}));
    let dom = page("process?views=show", "process-map-with-views");
    assert!(dom.contains(&format!(
        "{} journeys, {} events",
        thousands(map["cases"].as_u64().unwrap()),
        thousands(map["events"].as_u64().unwrap())
    )));
    assert!(dom.contains("Process map: steps and the transitions between them"));
    let dom = page("process", "process-map");
    let drawn = dom
        .split("Process map: steps and the transitions between them")
        .nth(1)
        .and_then(|rest| rest.split("</svg>").next())
        .unwrap();
    assert!(
        dom.contains("Hide page and screen views") && !drawn.contains(">page:"),
        "views are hidden by default"
    );
    // Satisfaction on the rated steps, the hidden help pages included, least helpful first.
    let feedback = post(&url, "/v1/analyses/feedback", json!({}));
    assert!(dom.contains("Satisfaction at each rated step, least helpful first"));
    let least = dom.split("least helpful first").nth(1).unwrap();
    assert!(
        least.find("Help: Reset Smart Lock").unwrap() < least.find("Help: Pair Camera").unwrap(),
        "the unhelpful article comes first"
    );

    // Feedback: the headline names the least helpful step; the counts are the API's.
    let dom = page("feedback", "feedback");
    assert!(
        dom.contains("Help: Reset Smart Lock” is rated not helpful in"),
        "feedback headline"
    );
    assert!(dom.contains(&thousands(
        feedback["overall"]["responses"].as_u64().unwrap()
    )));

    // Blueprint: the demo's purchase design, its stages and the dead end at the shipping options.
    let conformance = post(
        &url,
        "/v1/analyses/conformance",
        json!({"blueprint": "purchase", "top": 50}),
    );
    let dom = page("blueprint", "blueprint");
    assert!(dom.contains(&format!(
        "of {} journeys left the design",
        thousands(conformance["journeys"].as_u64().unwrap())
    )));
    for stage in ["Discover", "Sign in", "Buy", "Deliver", "Install"] {
        assert!(dom.contains(&format!(">{stage}<")), "stage {stage}");
    }
    assert!(dom.contains("went no further than Shipping Options Viewed (Buy)"));

    // Funnel, and a drop-off drill-down that lists the customers the API names, each linking to their timeline.
    let steps = ["Added to Cart", "Checkout Started", "Order Completed"];
    let funnel = post(
        &url,
        "/v1/analyses/funnel",
        json!({"steps": steps, "window": "7d"}),
    );
    let dom = page(
        "funnel?steps=Added%20to%20Cart,Checkout%20Started,Order%20Completed&window=7d&drop=2",
        "funnel",
    );
    for step in funnel["steps"].as_array().unwrap() {
        assert!(
            dom.contains(&thousands(step["count"].as_u64().unwrap())),
            "{step}"
        );
    }
    let dropped = funnel["steps"][1]["dropped_customers"].as_array().unwrap();
    assert!(!dropped.is_empty());
    for id in dropped {
        let id = id.as_str().unwrap();
        assert!(
            dom.contains(&format!("data-customer=\"{id}\"")),
            "drill-down lists {id}"
        );
    }

    // A step named like nothing in the data is pointed out, with the name it probably meant.
    let typo = post(
        &url,
        "/v1/analyses/funnel",
        json!({"steps": ["added to cart", "Checkout Started"], "window": "7d"}),
    );
    let warning = typo["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("did you mean \"Added to Cart\"?"),
        "{warning}"
    );
    let dom = page(
        "funnel?steps=added%20to%20cart,Checkout%20Started&window=7d",
        "funnel-typo",
    );
    assert!(
        dom.contains("class=\"notice\"") && dom.contains("matches no step in the data"),
        "the funnel page shows the warning"
    );

    // Friction, variants, customer timeline.
    let dom = page("friction", "friction");
    assert!(dom.contains(friction["findings"][1]["title"].as_str().unwrap()));
    // The page's defaults: page and screen views hidden, repeats collapsed, variants covering half the journeys.
    let variants = post(
        &url,
        "/v1/analyses/variants",
        json!({"top": 200, "coverage": 0.5, "filter": {"collapse_repeats": true, "step_rules": [
            {"match": "page:*", "exclude": true}, {"match": "screen:*", "exclude": true}]}}),
    );
    let dom = page("variants", "variants");
    assert!(dom.contains(&format!(
        "{} journeys follow {} distinct paths",
        thousands(variants["cases"].as_u64().unwrap()),
        thousands(variants["n_variants"].as_u64().unwrap())
    )));
    // Retention: the cohort matrix of the same request over HTTP.
    let retention = post(
        &url,
        "/v1/analyses/retention",
        json!({"start": "Order Completed", "return": "page:Home", "period": "week", "periods": 8}),
    );
    let dom = page(
        "retention?start=Order%20Completed&return=page%3AHome&period=week",
        "retention",
    );
    let cohorts = retention["cohorts"].as_array().unwrap().len();
    assert!(cohorts > 1, "{retention}");
    assert!(
        dom.contains(&format!(
            "{} customers did “Order Completed” in {cohorts} weekly cohorts",
            thousands(retention["customers"].as_u64().unwrap())
        )),
        "the retention page states its cohorts"
    );
    assert!(dom.contains(&format!("data-retention=\"{cohorts}\"")));
    // Moments of truth and attribution: the numbers of the same requests over HTTP.
    let moments = post(&url, "/v1/analyses/moments", json!({"entry": "*Landing*"}));
    let dom = page("moments?entry=%2ALanding%2A", "moments");
    assert!(
        dom.contains(&format!(
            "Of {} customers, {} (",
            thousands(moments["customers"].as_u64().unwrap()),
            thousands(moments["reached"].as_u64().unwrap())
        )),
        "the moments page states its population"
    );
    let first = moments["positive"][0]["label"].as_str().unwrap();
    assert!(dom.contains(first), "{first} is on the moments page");
    let attribution = post(&url, "/v1/analyses/attribution", json!({}));
    let dom = page("attribution", "attribution");
    assert!(dom.contains(&format!(
        "{} conversions after {} distinct channel paths",
        thousands(attribution["conversions"].as_u64().unwrap()),
        thousands(attribution["paths"].as_u64().unwrap())
    )));
    let customer = dropped[0].as_str().unwrap();
    let dom = page(&format!("customer?id={customer}"), "customer");
    let mut response = ureq::get(&format!("{url}/v1/customers/{customer}"))
        .call()
        .unwrap();
    let view: Value = serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    assert!(dom.contains(&format!(
        "Timeline — {} events",
        view["events"].as_array().unwrap().len()
    )));
    assert!(dom.contains(&format!(
        "data-customer-id=\"{}\"",
        view["customer_id"].as_str().unwrap()
    )));

    // Next best action on the customer page: the items the API ranks at the busiest placement (home), in order,
    // as a preview (the page records no offer).
    let mut response = ureq::get(&format!(
        "{url}/v1/customers/{customer}/next-best-action?placement=home&preview=true"
    ))
    .call()
    .unwrap();
    let nba: Value = serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    let ranked: Vec<&str> = nba["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap())
        .collect();
    assert!(!ranked.is_empty(), "{nba}");
    assert!(
        dom.contains(&format!("data-nba=\"{}\"", ranked.join(","))),
        "the customer page shows {ranked:?}"
    );
    assert!(
        !data.path().join("nba/offers.log").exists(),
        "viewing a customer records no offer"
    );

    // The demo's starter models: their scores on the customer page, their evaluation on the Predictions page
    // (the API's AUC beside the baselines, a calibration plot), the in-flight customers the API ranks.
    let scores = view["scores"].as_array().unwrap();
    assert_eq!(scores.len(), 2, "{view}");
    assert!(dom.contains("Predictions") && dom.contains("get-stuck") && dom.contains("reach-goal"));
    let mut response = ureq::get(&format!("{url}/v1/models")).call().unwrap();
    let models: Value =
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    let stuck = models["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|model| model["name"] == "get-stuck")
        .unwrap();
    let dom = page("predictions?model=get-stuck", "predictions");
    let evaluation = &stuck["evaluation"];
    for auc in [
        &evaluation["model"]["auc"],
        &evaluation["baseline_current_step"]["auc"],
    ] {
        assert!(
            dom.contains(&format!("{:.3}", auc.as_f64().unwrap())),
            "{auc}"
        );
    }
    assert!(
        dom.contains("P(stuck within 1 day)") && dom.contains("Calibration: predicted probability")
    );
    let mut response = ureq::get(&format!("{url}/v1/models/get-stuck/scores?top=15"))
        .call()
        .unwrap();
    let ranked: Value =
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    for score in ranked["scores"].as_array().unwrap() {
        let id = score["customer_id"].as_str().unwrap();
        assert!(dom.contains(&format!("data-customer=\"{id}\"")), "{id}");
    }

    // Errors are shown, not swallowed.
    let dom = page("customer?id=nobody-at-all", "customer-missing");
    assert!(dom.contains("role=\"alert\""));

    // Driven like a person: click a funnel drop-off, then one of its customers; click a journey-map step to anchor
    // on it; type a filter into the filter bar and apply it.
    let browser = Browser::start();
    browser.open(&format!(
        "{url}/#/funnel?steps=Added%20to%20Cart,Checkout%20Started,Order%20Completed&window=7d"
    ));
    browser.click("g[aria-label*='after Checkout Started']");
    browser.wait_for("document.querySelector('[data-dropped]')");
    let listed = browser.script("return [...document.querySelectorAll('[data-dropped] [data-customer]')].map(e => e.dataset.customer)");
    let expected: Vec<Value> = funnel["steps"][1]["dropped_customers"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        listed.as_array().unwrap(),
        &expected,
        "the drop-off after step 2 lists the API's customers"
    );
    browser.click("[data-dropped] a[data-customer]");
    browser.wait_for("document.querySelector('[data-customer-id]')");
    let shown =
        browser.script("return document.querySelector('[data-customer-id]').dataset.customerId");
    let first_dropped = expected[0].as_str().unwrap();
    let mut response = ureq::get(&format!("{url}/v1/customers/{first_dropped}"))
        .call()
        .unwrap();
    let view: Value = serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(
        shown, view["customer_id"],
        "the link opens that customer's timeline"
    );

    browser.open(&format!(
        "{url}/#/journeys?anchor=Login%20Attempted&depth=3&top=5"
    ));
    // The first level-1 step (the anchor itself is the first clickable node).
    let step = browser.script("return document.querySelectorAll('g.bar-click')[1].getAttribute('aria-label').replace('Anchor the map on ', '')");
    let step = step.as_str().unwrap().to_string();
    let nodes = browser.call(
        "POST",
        "/elements",
        json!({"using": "css selector", "value": "g.bar-click rect"}),
    );
    let second = nodes[1]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    browser.call("POST", &format!("/element/{second}/click"), json!({}));
    browser.wait_for(&format!(
        "new URLSearchParams(location.hash.split('?')[1]).get('anchor') === {}",
        serde_json::to_string(&step).unwrap()
    ));
    let lead = browser.script("return document.querySelector('.lead').textContent");
    assert!(
        lead.as_str()
            .unwrap()
            .contains(&format!("after their first “{step}”")),
        "{lead}"
    );

    browser.open(&format!("{url}/#/overview"));
    let channels = browser.find("#filters input[name=channels]");
    browser.call(
        "POST",
        &format!("/element/{channels}/value"),
        json!({"text": "web"}),
    );
    browser.click("#filters button[type=submit]");
    browser.wait_for("location.hash.includes('f_channels=web')");
    let customers =
        browser.script("return document.querySelector('[data-stat=customers] b').textContent");
    assert_eq!(
        customers,
        json!(thousands(web["customers"].as_u64().unwrap())),
        "the filter bar filters"
    );
    drop(browser);

    server.kill().unwrap();
    server.wait().unwrap();

    // The one-file report renders offline from file://, with the same numbers.
    let report = data.path().join("report.html");
    let output = Command::new(env!("CARGO_BIN_EXE_waymark"))
        .arg("--data")
        .arg(data.path())
        .args(["report", "--out"])
        .arg(&report)
        .args([
            "--funnel-steps",
            "Added to Cart,Checkout Started,Order Completed",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(
        !html.contains("src=\"/") && !html.contains("href=\"/ui"),
        "nothing is fetched from a server"
    );
    let dom = render(
        &format!("file://{}", report.display()),
        &shots.join("report.png"),
    );
    assert!(dom.contains("Customer journeys — report"));
    for step in funnel["steps"].as_array().unwrap() {
        assert!(
            dom.contains(&thousands(step["count"].as_u64().unwrap())),
            "report funnel {step}"
        );
    }
    assert!(dom.contains(friction["findings"][0]["title"].as_str().unwrap()));
}

/// `text` as the DOM dump prints it.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[test]
fn management_pages_show_segments_triggers_lift_and_monitors() {
    let data = demo_store("3000", &["--plant", "intervention,incident"]);
    let (mut server, url) = common::start_server(data.path(), "k");
    let shots = screenshots();
    // A segment added to the planted definitions through the API, as the Triggers page's Save does.
    let mut response = ureq::get(&format!("{url}/v1/rules")).call().unwrap();
    let rules: Value =
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    let toml = format!(
        "{}\n[[segments]]\nname = \"abandoners\"\ndescription = \"saw the shipping cost, never paid\"\ncondition = 'did(\"Shipping Options Viewed\") && !did(\"Payment Submitted\")'\n",
        rules["toml"].as_str().unwrap()
    );
    ureq::put(&format!("{url}/v1/rules"))
        .content_type("application/toml")
        .send(toml)
        .unwrap();

    // The worker rebuilds its memberships from the history after a save: wait until they hold still.
    let read = |path: &str| -> Value {
        let mut response = ureq::get(&format!("{url}{path}")).call().unwrap();
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap()
    };
    let mut segments = read("/v1/segments");
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let again = read("/v1/segments");
        if read("/v1/rules/status")["segments"] == 1 && again == segments {
            break;
        }
        segments = again;
    }
    let members = segments["segments"][0]["members"].as_u64().unwrap();
    assert!(members > 50, "{segments}");
    let dom = render(&format!("{url}/#/segments"), &shots.join("segments.png"));
    assert!(
        dom.contains(&format!("{} members now", thousands(members))),
        "segment size"
    );
    assert!(dom.contains("segment:abandoners=true") && dom.contains("<svg"));

    let lift = post(&url, "/v1/rules/lift", json!({}));
    let headline = lift["triggers"][0]["headline"].as_str().unwrap();
    assert!(
        headline.starts_with("checkout-reminder v1 raises"),
        "{headline}"
    );
    let dom = render(&format!("{url}/#/triggers"), &shots.join("triggers.png"));
    assert!(dom.contains(&escaped(headline)), "the lift headline");
    assert!(dom.contains("Delivery log") && dom.contains("checkout-reminder v1"));
    assert!(
        dom.contains("name = \"checkout-reminder\""),
        "the editor holds the definitions"
    );

    let mut board = ureq::get(&format!("{url}/v1/monitors")).call().unwrap();
    let board: Value = serde_json::from_str(&board.body_mut().read_to_string().unwrap()).unwrap();
    let dom = render(&format!("{url}/#/monitors"), &shots.join("monitors.png"));
    for monitor in board["monitors"].as_array().unwrap() {
        assert!(
            dom.contains(&escaped(monitor["headline"].as_str().unwrap())),
            "{monitor}"
        );
    }
    assert!(
        dom.contains("Fired: 2026-09-15"),
        "the incident day is marked"
    );
    let _ = server.kill();
}

#[test]
fn the_ui_asks_for_a_key_then_works_with_a_read_key_and_shows_no_admin_action() {
    let data = demo_store("400", &["--plant", "intervention"]);
    let waymark = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_waymark"));
        command.arg("--data").arg(data.path()).arg("--json");
        command
    };
    let create = |role: &str| -> String {
        let output = waymark()
            .args([
                "keys",
                "create",
                "--role",
                role,
                "--name",
                &format!("UI {role}"),
            ])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let created: Value = serde_json::from_slice(&output.stdout).unwrap();
        created["key"].as_str().unwrap().to_string()
    };
    let read_key = create("read");
    let write_key = create("write");
    let (mut server, url) = common::start_server(data.path(), "k");
    let shots = screenshots();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    assert_eq!(
        agent
            .get(&format!("{url}/v1/stats"))
            .call()
            .unwrap()
            .status()
            .as_u16(),
        401
    );

    let browser = Browser::start();
    browser.call("POST", "/url", json!({"url": format!("{url}/#/overview")}));
    browser.wait_until("document.getElementById('page').dataset.state === 'login'");
    browser.screenshot(&shots.join("login.png"));
    assert_eq!(
        browser.script("return document.getElementById('filters').hidden"),
        json!(true)
    );

    // A write key only sends events: the login page says so and stays.
    browser.type_into("#login-key", &write_key);
    browser.click("#login button[type=submit]");
    browser.wait_until("document.querySelector('#login .error') && document.querySelector('#login .error').textContent.includes('write key')");

    browser.type_into("#login-key", &read_key);
    browser.click("#login button[type=submit]");
    browser.wait_ready();
    let overview = browser.script("return document.getElementById('page').textContent");
    assert!(
        overview.as_str().unwrap().contains("customers"),
        "{overview}"
    );
    assert!(browser
        .script("return document.getElementById('session').textContent")
        .as_str()
        .unwrap()
        .contains("UI read"));
    // The key is kept for the tab's session, never in the address.
    assert_eq!(
        browser.script("return sessionStorage.getItem('waymark.key')"),
        json!(read_key)
    );
    assert!(!browser
        .script("return location.href")
        .as_str()
        .unwrap()
        .contains(&read_key));

    // The triggers page: validate and dry-run, but no Save and no replay for a read key.
    browser.call("POST", "/url", json!({"url": format!("{url}/#/triggers")}));
    browser.wait_ready();
    browser.screenshot(&shots.join("triggers-read-key.png"));
    let buttons = browser
        .script("return [...document.querySelectorAll('#page button')].map((b) => b.textContent)");
    let buttons: Vec<&str> = buttons
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap())
        .collect();
    assert!(
        buttons.contains(&"Validate") && buttons.contains(&"Dry run"),
        "{buttons:?}"
    );
    assert!(
        !buttons.contains(&"Save") && !buttons.contains(&"Send again"),
        "{buttons:?}"
    );
    assert!(browser
        .script("return document.getElementById('page').textContent")
        .as_str()
        .unwrap()
        .contains("Saving needs an admin key"));

    // A customer: its data may be exported, not deleted, with a read key.
    browser.call(
        "POST",
        "/url",
        json!({"url": format!("{url}/#/customer?id=cust-000000")}),
    );
    browser.wait_ready();
    browser.screenshot(&shots.join("customer-read-key.png"));
    let buttons = browser
        .script("return [...document.querySelectorAll('#page button')].map((b) => b.textContent)");
    let buttons: Vec<&str> = buttons
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap())
        .collect();
    assert!(buttons.contains(&"Export all data (JSON)"), "{buttons:?}");
    assert!(!buttons.contains(&"Delete this customer"), "{buttons:?}");

    // Revoked while the tab is open: the next page asks for a key again.
    let id = read_key.split('_').nth(2).unwrap();
    assert!(waymark()
        .args(["keys", "revoke", id])
        .output()
        .unwrap()
        .status
        .success());
    std::thread::sleep(std::time::Duration::from_millis(1200));
    browser.call("POST", "/url", json!({"url": format!("{url}/#/funnel")}));
    browser.wait_until("document.getElementById('page').dataset.state === 'login'");
    assert!(browser
        .script("return document.querySelector('#login .error').textContent")
        .as_str()
        .unwrap()
        .contains("revoked"));
    drop(browser);
    server.kill().unwrap();
    let _ = server.wait();
}

/// What makes a page's charts hard to read, found by the browser: chart text rendered under 11 px, and pairs of
/// labels whose boxes overlap (each as a line of text naming them).
const LEGIBILITY: &str = r#"
const problems = [];
for (const svg of document.querySelectorAll('#page svg.chart')) {
  const matrix = svg.getScreenCTM();
  const scale = matrix ? Math.hypot(matrix.a, matrix.b) : 1;
  const texts = [...svg.querySelectorAll('text')].filter((t) => t.textContent.trim()).map((t) => [t, t.getBoundingClientRect()])
    .filter(([, box]) => box.width > 0 && box.height > 0);
  for (const [t] of texts) {
    const size = parseFloat(getComputedStyle(t).fontSize) * scale;
    if (size < 10.95) problems.push(`text under 11 px (${size.toFixed(1)} px): ${t.textContent}`);
  }
  for (let i = 0; i < texts.length; i++) for (let j = i + 1; j < texts.length; j++) {
    const [a, p] = texts[i], [b, q] = texts[j];
    const w = Math.min(p.right, q.right) - Math.max(p.left, q.left), h = Math.min(p.bottom, q.bottom) - Math.max(p.top, q.top);
    if (w > 1 && h > 1) problems.push(`labels overlap: "${a.textContent}" and "${b.textContent}"`);
  }
}
return problems.slice(0, 30);
"#;

#[test]
fn every_chart_stays_legible_at_two_widths_and_the_process_map_runs_top_down() {
    let data = demo_store("1200", &[]);
    let (mut server, url) = common::start_server(data.path(), "k");
    let shots = screenshots();
    let browser = Browser::start();
    browser.open(&format!("{url}/#/overview"));
    let pages: Vec<String> =
        serde_json::from_value(browser.script(
            "return [...document.querySelectorAll('.top nav a')].map((a) => a.dataset.page)",
        ))
        .unwrap();
    assert!(pages.len() >= 15, "{pages:?}");
    // A customer with feedback: one who found a help article unhelpful.
    let friction = post(&url, "/v1/analyses/friction", json!({"top": 40}));
    let rater = friction["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|finding| finding["kind"] == "negative_feedback")
        .and_then(|finding| finding["example_customers"][0].as_str())
        .expect("the demo has unhelpful help articles")
        .to_string();
    let mut problems = Vec::new();
    for width in [1400, 900] {
        browser.call(
            "POST",
            "/window/rect",
            json!({"width": width, "height": 1000}),
        );
        for page in &pages {
            let route = match page.as_str() {
                "customer" => format!("customer?id={rater}"),
                "process" => "process?views=show".to_string(),
                // One k instead of the search over 3–8, which takes minutes in this unoptimised build.
                "personas" => "personas?k=4".to_string(),
                other => other.to_string(),
            };
            browser.open(&format!("{url}/#/{route}"));
            browser.screenshot(&shots.join(format!("legible-{page}-{width}.png")));
            let found: Vec<String> = serde_json::from_value(browser.script(LEGIBILITY)).unwrap();
            problems.extend(
                found
                    .into_iter()
                    .map(|problem| format!("{page} at {width} px: {problem}")),
            );
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // The process map draws the demo's main path in order, top to bottom, with page views shown and hidden.
    let main_path = [
        "Searched",
        "Reviews Read",
        "Login Attempted",
        "Logged In",
        "Added to Cart",
        "Checkout Started",
        "Shipping Options Viewed",
        "Payment Submitted",
        "Order Completed",
    ];
    for route in ["process?views=show", "process"] {
        browser.open(&format!("{url}/#/{route}"));
        let heights: Value = browser.script(
            "return Object.fromEntries([...document.querySelectorAll('g[data-step]')].map((g) => [g.dataset.step, Number(g.dataset.y)]))",
        );
        let ys: Vec<(&str, f64)> = main_path
            .iter()
            .map(|step| {
                let y = heights[*step]
                    .as_f64()
                    .unwrap_or_else(|| panic!("{route}: {step} is not on the map: {heights}"));
                (*step, y)
            })
            .collect();
        assert!(
            ys.windows(2).all(|pair| pair[0].1 < pair[1].1),
            "{route}: the main path is not drawn top to bottom: {ys:?}"
        );
    }

    // Variants: by default the most frequent cover at least half of the journeys; the step rules and exclusions are
    // in the form and in the URL, and change the paths.
    browser.open(&format!("{url}/#/variants"));
    let covered: f64 = serde_json::from_value::<String>(
        browser.script("return document.querySelector('[data-coverage]').dataset.coverage"),
    )
    .unwrap()
    .parse()
    .unwrap();
    assert!(covered >= 0.5, "the default variants cover {covered}");
    browser.open(&format!(
        "{url}/#/variants?exclude=Login%20Failed&rules=Logged%20In%3DSigned%20in&views=group"
    ));
    let form = browser.script(
        "return [document.querySelector('input[name=exclude]').value, document.querySelector('textarea[name=rules]').value, document.querySelector('select[name=views]').value]",
    );
    assert_eq!(
        form,
        json!(["Login Failed", "Logged In=Signed in", "group"])
    );
    let chips: String = serde_json::from_value(browser.script(
        "return [...document.querySelectorAll('#page .chip')].map((c) => c.textContent).join('|')",
    ))
    .unwrap();
    assert!(
        !chips.contains("Login Failed")
            && chips.contains("Signed in")
            && !chips.contains("Logged In"),
        "{chips}"
    );
    assert!(
        chips.contains("page:Product"),
        "page views grouped by section: {chips}"
    );

    // The customer page shows the answer and each event's properties.
    browser.open(&format!("{url}/#/customer?id={rater}"));
    let shown = browser.script(
        "return [document.querySelectorAll('[data-feedback]').length, document.querySelectorAll('.props[data-properties]').length]",
    );
    assert!(
        shown[0].as_u64().unwrap() >= 1 && shown[1].as_u64().unwrap() >= 3,
        "feedback and properties on the customer page: {shown}"
    );
    let dom: String =
        serde_json::from_value(browser.script("return document.getElementById('page').innerText"))
            .unwrap();
    assert!(dom.contains("not helpful"), "{dom}");
    server.kill().unwrap();
}
