//! Analyses over a store: take the journeys as they are now and run an analysis on every core.

use waymark_analytics::Analysis;
use waymark_store::Store;

/// Threads to use: the machine's available parallelism.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |threads| threads.get())
}

/// Runs `analysis` over every journey in `store`.
pub fn run_on_store<A: Analysis>(store: &Store, analysis: &A) -> A::Report {
    let journeys = store.journeys();
    waymark_analytics::run(analysis, &journeys, default_threads())
}
