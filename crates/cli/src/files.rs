//! Commands that move events through files: `import`, and `generate` (the demo as JSON Lines, or benchmark
//! journeys as Parquet).

use crate::{print_json, progress_bar, UsageError};
use anyhow::{Context, Result};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;
use waymark_engine::demo::{self, DemoConfig};
use waymark_engine::import::ImportOptions;
use waymark_engine::Engine;

pub fn generate(out: &Path, config: DemoConfig, json_output: bool) -> Result<()> {
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let bar = progress_bar(
        json_output,
        config.customers as u64,
        "{msg} {bar:40} {pos}/{len} customers ({per_sec}, {eta})",
    );
    bar.set_message("generating");
    let started = Instant::now();
    let writing = || format!("writing {}", out.display());
    let n_events = if out.extension().is_some_and(|extension| extension == "gz") {
        // Buffered in front of the compressor too: deflate fed one JSON token at a time is many times slower.
        let gzip = flate2::write::GzEncoder::new(
            std::io::BufWriter::with_capacity(1 << 20, file),
            flate2::Compression::default(),
        );
        let mut writer = std::io::BufWriter::with_capacity(1 << 18, gzip);
        let n_events = write_demo(&mut writer, config, &bar).with_context(writing)?;
        // Finished explicitly, so that a failure writing the gzip trailer is reported, not dropped.
        writer
            .into_inner()
            .map_err(std::io::IntoInnerError::into_error)
            .and_then(flate2::write::GzEncoder::finish)
            .and_then(|mut file| file.flush())
            .with_context(writing)?;
        n_events
    } else {
        let mut writer = std::io::BufWriter::with_capacity(1 << 20, file);
        let n_events = write_demo(&mut writer, config, &bar).with_context(writing)?;
        writer.flush().with_context(writing)?;
        n_events
    };
    bar.finish_and_clear();
    if json_output {
        print_json(
            &json!({ "file": out, "events": n_events, "customers": config.customers, "seconds": started.elapsed().as_secs_f64() }),
        );
    } else {
        println!(
            "Wrote {n_events} events of {} customers to {} in {:.1} s",
            config.customers,
            out.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Writes the demo's events to `writer` as JSON Lines, one customer at a time; how many were written.
fn write_demo(
    writer: &mut impl Write,
    config: DemoConfig,
    bar: &indicatif::ProgressBar,
) -> std::io::Result<u64> {
    let mut n_events = 0u64;
    let mut write_error = None;
    for customer_index in 0..config.customers {
        demo::generate_customer(config, customer_index, &mut |value| {
            if write_error.is_none() {
                if let Err(error) = serde_json::to_writer(&mut *writer, &value)
                    .map_err(std::io::Error::from)
                    .and_then(|_| writer.write_all(b"\n"))
                {
                    write_error = Some(error);
                }
            }
            n_events += 1;
        });
        bar.inc(1);
        if let Some(error) = write_error {
            return Err(error);
        }
    }
    Ok(n_events)
}

pub fn import(
    store: &Engine,
    files: &[PathBuf],
    options: &ImportOptions,
    json_output: bool,
) -> Result<()> {
    let mut reports = Vec::new();
    for file in files {
        if !file.exists() {
            return Err(UsageError(format!("{}: no such file", file.display())).into());
        }
        let total = std::fs::metadata(file).map(|meta| meta.len()).unwrap_or(0);
        let bar = progress_bar(
            json_output,
            total,
            "{msg} {bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        );
        bar.set_message(
            file.file_name()
                .map(|name| name.to_string_lossy().to_string())
                .unwrap_or_default(),
        );
        let started = Instant::now();
        let report = store.import_file(file, options, &|done, _| bar.set_position(done))?;
        bar.finish_and_clear();
        let seconds = started.elapsed().as_secs_f64();
        if !json_output {
            println!(
                "{}: {} rows → {} new events, {} already stored, {} invalid in {:.2} s ({:.0} rows/s)",
                file.display(),
                report.rows,
                report.accepted,
                report.duplicates,
                report.invalid,
                seconds,
                report.rows as f64 / seconds.max(1e-9)
            );
            println!(
                "  columns: customer={} step={} time={} channel={}",
                report.customer_column.as_deref().unwrap_or("-"),
                report.step_column.as_deref().unwrap_or("-"),
                report.time_column.as_deref().unwrap_or("-"),
                report.channel_column.as_deref().unwrap_or("-")
            );
            for problem in &report.problems {
                println!("  skipped {problem}");
            }
        }
        reports.push(json!({ "report": report, "seconds": seconds }));
    }
    // The rows are durable in the log already; writing them out as segments can take a while after a big file,
    // so say so instead of leaving the command silent.
    let started = Instant::now();
    store.flush()?;
    let flush_seconds = started.elapsed().as_secs_f64();
    if json_output {
        print_json(
            &json!({ "imports": reports, "flush_seconds": flush_seconds, "stats": store.stats() }),
        );
    } else if flush_seconds >= 0.1 {
        println!("  written to segments in {flush_seconds:.2} s");
    }
    Ok(())
}

pub fn generate_zipf(out: &Path, events: usize, seed: u64, json_output: bool) -> Result<()> {
    if out.extension().and_then(|extension| extension.to_str()) != Some("parquet") {
        return Err(UsageError(format!(
            "{}: --shape zipf writes Parquet; name the file *.parquet",
            out.display()
        ))
        .into());
    }
    let started = Instant::now();
    let journeys = waymark_engine::synthetic::journeys(events, seed);
    let bar = progress_bar(
        json_output,
        events as u64,
        "{msg} {bar:40} {pos}/{len} events ({per_sec}, {eta})",
    );
    bar.set_message("writing");
    waymark_engine::synthetic::write_parquet(&journeys, out, &mut |rows| {
        bar.set_position(rows as u64)
    })
    .map_err(|error| anyhow::anyhow!("writing {}: {error}", out.display()))?;
    bar.finish_and_clear();
    if json_output {
        print_json(
            &json!({ "out": out, "events": journeys.n_events(), "customers": journeys.n_journeys(), "seconds": started.elapsed().as_secs_f64() }),
        );
    } else {
        println!(
            "Wrote {} events of {} customers to {} in {:.1} s.",
            journeys.n_events(),
            journeys.n_journeys(),
            out.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
