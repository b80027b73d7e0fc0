//! `waymark serve` and `waymark demo`: the server in the foreground, and the demo retailer ingested first.

use crate::config::Effective;
use crate::progress_bar;
use anyhow::{Context, Result};
use serde_json::json;
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;
use waymark_engine::demo::{Business, DemoConfig};
use waymark_engine::rules::RulesOptions;
use waymark_engine::Engine;

pub fn serve(
    store: Arc<Engine>,
    effective: &Effective,
    json_output: bool,
    demo_summary: Option<serde_json::Value>,
    warm_up: bool,
) -> Result<()> {
    let listen = effective.listen;
    let write_keys = effective.write_keys.clone();
    let generated = effective.generated_key;
    let reads_protected =
        waymark_engine::keys::Keys::open(store.dir(), Vec::new())?.reads_protected();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let server_config = waymark_server::ServerConfig {
        listen,
        write_keys: write_keys.clone(),
        warm_up,
        rules: Some(RulesOptions {
            clock: effective.rules_clock,
            ..RulesOptions::default()
        }),
        http: effective.http.clone(),
        tls: effective.tls.clone(),
        rate_limits: effective.rate_limits,
    };
    let scheme = if effective.tls.is_some() {
        "https"
    } else {
        "http"
    };
    runtime
        .block_on(waymark_server::serve(
            Arc::clone(&store),
            server_config,
            |address| {
                let url = format!("{scheme}://{address}/");
                if json_output {
                    let mut line = json!({ "url": url, "write_keys": write_keys, "reads_protected": reads_protected });
                    if let Some(summary) = &demo_summary {
                        line["demo"] = summary.clone();
                    }
                    println!("{line}");
                } else {
                    println!("Waymark is serving at {url}");
                    println!("  Write key:  {}{}", write_keys.join(", "), if generated { "  (generated; set --write-key or write_keys in waymark.toml to keep one)" } else { "" });
                    println!("  Track:      curl -u {}: -H 'Content-Type: application/json' -d '{{\"userId\":\"u1\",\"event\":\"Signed Up\"}}' {url}v1/track", write_keys[0]);
                    if reads_protected {
                        println!("  Reading:    needs a read or admin key (`Authorization: Bearer KEY`; the UI asks for it)");
                        if demo_summary.is_some() {
                            println!("  Customer:   curl -H 'Authorization: Bearer KEY' {url}v1/customers/cust-000001");
                        }
                    } else {
                        println!("  Reading:    open to anyone on this machine (no read or admin key exists; `waymark keys create --role admin --name NAME` closes it)");
                        if demo_summary.is_some() {
                            println!("  Customer:   curl {url}v1/customers/cust-000001");
                        }
                    }
                    println!("  Press Ctrl-C to stop.");
                }
                let _ = std::io::stdout().flush();
            },
            waymark_server::shutdown_signal(),
        ))
        .with_context(|| format!("serving on {listen}"))?;
    store.close()?;
    Ok(())
}

pub fn ingest_demo(
    store: &Arc<Engine>,
    config: DemoConfig,
    json_output: bool,
) -> Result<serde_json::Value> {
    let existing = store.stats();
    if existing.events > 0 {
        if !json_output {
            println!("The data directory already holds {} events of {} customers; serving them (remove it to regenerate).", existing.events, existing.customers);
        }
        return Ok(
            json!({ "events": existing.events, "customers": existing.customers, "generated": false }),
        );
    }
    let started = Instant::now();
    let bar = progress_bar(
        json_output,
        config.customers as u64,
        "{msg} {bar:40} {pos}/{len} customers ({per_sec}, {eta})",
    );
    let (business, truth) = match config.business {
        Business::Retail => ("retailer", "docs/demo.md"),
        Business::Telecom => ("broadband provider", "docs/telecom.md"),
    };
    bar.set_message(format!("generating and ingesting the demo {business}"));
    store.ingest_demo(config, &mut || bar.inc(1))?;
    bar.finish_and_clear();
    let stats = store.stats();
    let seconds = started.elapsed().as_secs_f64();
    if !json_output {
        println!(
            "Demo {business} ingested: {} customers, {} events in {:.1} s ({:.0} events/s). Ground truth: {truth}",
            stats.customers,
            stats.events,
            seconds,
            stats.events as f64 / seconds
        );
    }
    Ok(
        json!({ "events": stats.events, "customers": stats.customers, "seconds": seconds, "generated": true }),
    )
}
