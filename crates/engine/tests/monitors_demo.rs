//! The demo's planted incident, caught: Android login failures jump for one day, and the monitors on that
//! step's failure rate fire within their window on that day and on no other.

use waymark_engine::demo::{DemoConfig, Plant, INCIDENT_DAY};
use waymark_engine::Engine;
use waymark_store::StoreOptions;

#[test]
fn the_incident_monitors_fire_on_the_incident_day_only() {
    let dir = tempfile::tempdir().unwrap();
    let engine = std::sync::Arc::new(Engine::open(dir.path(), StoreOptions::default()).unwrap());
    engine
        .ingest_demo(
            DemoConfig {
                customers: 20_000,
                seed: 5,
                plant: Plant {
                    intervention: false,
                    incident: true,
                },
                ..Default::default()
            },
            &mut || {},
        )
        .unwrap();
    let board = engine.monitors_report(None).unwrap();
    assert_eq!(board.monitors.len(), 2);
    for monitor in &board.monitors {
        let days: Vec<String> = monitor
            .fired
            .iter()
            .map(|at| waymark_model::Timestamp(*at).to_rfc3339()[..10].to_string())
            .collect();
        assert_eq!(
            days,
            vec![INCIDENT_DAY.to_string()],
            "{}: {}",
            monitor.name,
            monitor.headline
        );
        assert!(!monitor.alert, "{}", monitor.headline);
        let judged = monitor.readings.iter().filter(|j| j.judged).count();
        // Judged on most days (the anomaly test after its four weeks of history), not only around the incident.
        assert!(
            judged > monitor.readings.len() / 3,
            "{}: {judged} of {} readings judged",
            monitor.name,
            monitor.readings.len()
        );
    }
    // The same data without the incident: silence.
    let quiet_dir = tempfile::tempdir().unwrap();
    let quiet =
        std::sync::Arc::new(Engine::open(quiet_dir.path(), StoreOptions::default()).unwrap());
    quiet
        .ingest_demo(
            DemoConfig {
                customers: 20_000,
                seed: 5,
                ..Default::default()
            },
            &mut || {},
        )
        .unwrap();
    let text = waymark_engine::demo::INCIDENT_RULES;
    let file = waymark_engine::rules::RulesFile::from_toml(text).unwrap();
    let board = quiet.monitors_report(Some(&file)).unwrap();
    for monitor in &board.monitors {
        assert!(
            monitor.fired.is_empty(),
            "{}: {}",
            monitor.name,
            monitor.headline
        );
    }
}
