//! The official, unmodified Segment and RudderStack Python SDKs (from PyPI) pointed at a live Waymark server:
//! their events, identities and merges must appear in `GET /v1/customers/{id}`.
//!
//! The SDKs live in a virtualenv outside the repository (`$WAYMARK_SDK_VENV`, default
//! `~/.cache/waymark-sdk-venv`); `.ci/run` installs them, and this test creates the virtualenv itself when missing.

mod common;

use common::{spawn_app, WRITE_KEY};
use std::path::PathBuf;
use std::process::Command;

const SCRIPT: &str = r#"
import sys
host, write_key, sdk = sys.argv[1], sys.argv[2], sys.argv[3]
if sdk == "segment":
    import segment.analytics as analytics
else:
    import rudderstack.analytics as analytics
    analytics.dataPlaneUrl = host
analytics.write_key = write_key
analytics.host = host
analytics.sync_mode = True
errors = []
analytics.on_error = lambda error, batch: errors.append(repr(error))
p = sdk
analytics.page(anonymous_id=p + "-mac", name="Pricing", properties={"path": "/pricing"})
analytics.track(anonymous_id=p + "-mac", event="Searched", properties={"query": "smart lock"})
analytics.identify(user_id=p + "-ann", anonymous_id=p + "-mac", traits={"email": "ann@example.com"})
analytics.track(user_id=p + "-ann", event="Call Started", context={"channel": "call_center"})
analytics.screen(anonymous_id=p + "-phone", name="Home")
analytics.alias(previous_id=p + "-phone", user_id=p + "-ann")
analytics.track(user_id=p + "-ann", anonymous_id=p + "-phone", event="Order Completed", properties={"revenue": 229})
analytics.flush()
if errors:
    print("SDK errors:", errors)
    sys.exit(1)
print("sent")
"#;

fn sdk_python() -> PathBuf {
    let venv = std::env::var_os("WAYMARK_SDK_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").expect("HOME is set"))
                .join(".cache/waymark-sdk-venv")
        });
    let python = venv.join("bin/python");
    let has_sdks = |python: &PathBuf| {
        Command::new(python)
            .args(["-c", "import segment.analytics, rudderstack.analytics"])
            .status()
            .is_ok_and(|status| status.success())
    };
    if !has_sdks(&python) {
        let created = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status();
        assert!(
            created.is_ok_and(|status| status.success()),
            "could not create a virtualenv at {}: install python3-venv (see .ci/run)",
            venv.display()
        );
        let installed = Command::new(venv.join("bin/pip"))
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "segment-analytics-python",
                "rudder-sdk-python",
            ])
            .status();
        assert!(
            installed.is_ok_and(|status| status.success()),
            "pip could not install the SDKs into {}",
            venv.display()
        );
    }
    assert!(
        has_sdks(&python),
        "the Segment and RudderStack SDKs are not importable from {}",
        python.display()
    );
    python
}

#[test]
fn official_segment_and_rudderstack_python_sdks_work_unmodified() {
    let python = sdk_python();
    let app = spawn_app();
    let host = format!("http://{}", app.address);
    for sdk in ["segment", "rudderstack"] {
        let output = Command::new(&python)
            .args(["-c", SCRIPT, &host, WRITE_KEY, sdk])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{sdk} SDK failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let (status, customer) = app.get_json(&format!("/v1/customers/{sdk}-ann"));
        assert_eq!(status, 200, "{sdk}: {customer}");
        assert_eq!(customer["customer_id"], format!("{sdk}-ann"));
        let steps: Vec<&str> = customer["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|event| event["step"].as_str().unwrap())
            .collect();
        assert_eq!(
            steps,
            [
                "page:Pricing",
                "Searched",
                "identify",
                "Call Started",
                "screen:Home",
                "alias",
                "Order Completed"
            ],
            "{sdk}: every call arrives, in order, and the anonymous ones joined the customer"
        );
        let mut identifiers: Vec<String> = customer["identifiers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| id["value"].as_str().unwrap().to_string())
            .collect();
        identifiers.sort();
        assert!(
            identifiers.contains(&format!("{sdk}-mac"))
                && identifiers.contains(&format!("{sdk}-phone")),
            "{sdk}: {identifiers:?}"
        );
        let reasons: Vec<&str> = customer["merges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|edge| edge["reason"].as_str().unwrap())
            .collect();
        assert!(
            reasons.contains(&"identify") && reasons.contains(&"alias"),
            "{sdk}: {reasons:?}"
        );
        let call = &customer["events"][3];
        assert_eq!(call["channel"], "call_center", "{sdk}: {call}");
        assert_eq!(customer["events"][6]["properties"]["revenue"], 229);
    }
}
