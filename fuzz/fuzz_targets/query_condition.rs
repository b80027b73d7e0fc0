#![no_main]
// The function is shared with `crates/engine/tests/fuzz_corpus.rs`, which replays this target's corpus in `cargo test`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| waymark_engine::fuzzing::query_condition(data));
