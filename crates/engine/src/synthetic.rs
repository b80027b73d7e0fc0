//! Synthetic journeys for benchmarks: customers with heavy-tailed journey lengths (Pareto, mean ≈ 50 events), 50
//! step names drawn Zipf(1.1), 5 channels, gaps from seconds to days — seeded and deterministic. The same events as
//! a [`JourneySet`] (for in-memory benchmarks) or as a flat Parquet file (`customer_id, timestamp, step, channel`)
//! that Waymark and its peers load alike.

use arrow::array::{ArrayRef, RecordBatch, StringBuilder, TimestampMicrosecondBuilder};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use std::sync::Arc;
use waymark_model::JourneySet;

/// Step names in the generated data: `step 00` (the most frequent) … `step 49`.
pub const STEPS: usize = 50;
/// Channels in the generated data.
pub const CHANNELS: [&str; 5] = ["web", "app", "email", "call_center", "store"];
/// The first event's earliest time: 2026-05-28 (µs since the epoch).
const START_US: i64 = 1_780_000_000_000_000;

/// A count as people write it: `250000`, `100k`, `10M`, `1G`.
pub fn parse_count(text: &str) -> Result<usize, String> {
    let upper = text.trim().to_uppercase();
    let (number, scale) = match upper.chars().last() {
        Some('K') => (&upper[..upper.len() - 1], 1e3),
        Some('M') => (&upper[..upper.len() - 1], 1e6),
        Some('G' | 'B') => (&upper[..upper.len() - 1], 1e9),
        _ => (upper.as_str(), 1.0),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a count; write e.g. 1M, 10M or 250000"))?;
    Ok((value * scale) as usize)
}

/// Exactly `events` events of generated customers (the last journey is cut to fit).
pub fn journeys(events: usize, seed: u64) -> JourneySet {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let weights: Vec<f64> = (1..=STEPS)
        .map(|rank| 1.0 / (rank as f64).powf(1.1))
        .collect();
    let total: f64 = weights.iter().sum();
    let mut cumulative = Vec::with_capacity(STEPS);
    let mut running = 0.0;
    for weight in &weights {
        running += weight / total;
        cumulative.push(running);
    }
    let mut set = JourneySet {
        offsets: vec![0],
        step_names: (0..STEPS).map(|step| format!("step {step:02}")).collect(),
        channel_names: CHANNELS.iter().map(|name| name.to_string()).collect(),
        ..JourneySet::default()
    };
    set.ts.reserve(events);
    set.step.reserve(events);
    set.channel.reserve(events);
    let mut customer = 0usize;
    while set.ts.len() < events {
        let pareto = 17.0 / rng.random::<f64>().max(1e-9).powf(1.0 / 1.5);
        let length = (pareto as usize).clamp(1, 5_000).min(events - set.ts.len());
        let mut time: i64 = START_US + rng.random_range(0..90 * 86_400_000_000i64);
        for _ in 0..length {
            let draw: f64 = rng.random();
            let step = cumulative
                .partition_point(|edge| *edge < draw)
                .min(STEPS - 1);
            set.ts.push(time);
            set.step.push(step as u32);
            set.channel.push(rng.random_range(0..CHANNELS.len()) as u16);
            time += if rng.random_bool(0.05) {
                rng.random_range(86_400_000_000..5 * 86_400_000_000)
            } else {
                rng.random_range(1_000_000..600_000_000)
            };
        }
        set.customer_ids.push(&format!("c{customer:09}"));
        set.offsets.push(set.ts.len());
        customer += 1;
    }
    set
}

/// Writes `set` as Parquet, one row per event in journey order: `customer_id`, `timestamp` (µs, UTC), `step`,
/// `channel`; `progress` gets the rows written so far.
pub fn write_parquet(
    set: &JourneySet,
    path: &Path,
    progress: &mut dyn FnMut(usize),
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Utf8, false),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("step", DataType::Utf8, false),
        Field::new("channel", DataType::Utf8, false),
    ]));
    let file = std::fs::File::create(path)?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer = ArrowWriter::try_new(file, Arc::clone(&schema), Some(properties))?;
    const BATCH: usize = 262_144;
    let mut start = 0;
    let mut journey = 0;
    while start < set.n_events() {
        let end = (start + BATCH).min(set.n_events());
        let mut customers = StringBuilder::new();
        let mut times = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        let mut steps = StringBuilder::new();
        let mut channels = StringBuilder::new();
        for event in start..end {
            while set.offsets[journey + 1] <= event {
                journey += 1;
            }
            customers.append_value(&set.customer_ids[journey]);
            times.append_value(set.ts[event]);
            steps.append_value(&set.step_names[set.step[event] as usize]);
            channels.append_value(&set.channel_names[set.channel[event] as usize]);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(customers.finish()),
            Arc::new(times.finish()),
            Arc::new(steps.finish()),
            Arc::new(channels.finish()),
        ];
        writer.write(&RecordBatch::try_new(Arc::clone(&schema), columns)?)?;
        progress(end);
        start = end;
    }
    writer.close()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_as_people_write_them() {
        assert_eq!(parse_count("250000"), Ok(250_000));
        assert_eq!(parse_count("100k"), Ok(100_000));
        assert_eq!(parse_count(" 10M "), Ok(10_000_000));
        assert_eq!(parse_count("1.5G"), Ok(1_500_000_000));
        assert!(parse_count("lots").unwrap_err().contains("1M"));
    }

    #[test]
    fn generates_exactly_the_events_asked_for_deterministically() {
        let a = journeys(10_000, 7);
        assert_eq!(a.n_events(), 10_000);
        assert_eq!(a, journeys(10_000, 7));
        let mean = a.n_events() as f64 / a.n_journeys() as f64;
        assert!((20.0..90.0).contains(&mean), "mean journey length {mean}");
        let first = a.step.iter().filter(|step| **step == 0).count();
        let last = a.step.iter().filter(|step| **step == 49).count();
        assert!(first > 10 * last, "Zipf: step 00 {first} vs step 49 {last}");
        assert!(
            (1..a.n_journeys()).all(|j| a.customer_ids[j - 1] < a.customer_ids[j]),
            "customer ids sort in journey order"
        );
    }
}
