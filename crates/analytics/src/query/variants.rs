//! `variants`: distinct journeys.

use super::{run_plan, DataInfo, Query, Scope, Spec};
use crate::{AnalyticsError, Runner, Variants, VariantsReport};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use waymark_model::JourneySet;

/// `variants` options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantsRequest {
    /// Keep the K most frequent variants (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top: Option<usize>,
    /// Keep the most frequent variants until they cover this share of the journeys, 0–1 (with `top` too,
    /// whichever keeps fewer): the view Disco and Celonis give with their variant slider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<f64>,
    #[serde(default)]
    pub filter: Scope,
}

impl Spec for Variants {
    type Report = VariantsReport;
    fn run(
        &self,
        journeys: &JourneySet,
        runner: &Runner,
    ) -> Result<VariantsReport, AnalyticsError> {
        run_plan(Ok(*self), journeys, runner)
    }
}

impl Query for VariantsRequest {
    const NAME: &'static str = "variants";
    const HELP: &'static str =
        "Distinct step sequences with counts, share and cumulative coverage.";
    const EXAMPLE: &'static str = "--top 10";
    type Report = VariantsReport;
    type Spec = Variants;

    fn scope(&self) -> &Scope {
        &self.filter
    }

    fn spec(&self, _data: &DataInfo<'_>) -> Result<Variants, AnalyticsError> {
        if let Some(coverage) = self.coverage.filter(|c| !(0.0..=1.0).contains(c)) {
            return Err(AnalyticsError::field(
                "coverage",
                format!("{coverage} is not a share: give a number from 0 to 1 (0.5 for half the journeys)"),
            ));
        }
        Ok(Variants {
            top: self.top,
            coverage: self.coverage,
        })
    }

    fn text(&self, variants: &VariantsReport, rows: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} journeys, {} variants\n",
            variants.cases, variants.n_variants
        );
        let _ = writeln!(
            out,
            "{:>8}  {:>6}  {:>8}  steps",
            "count", "share", "coverage"
        );
        for variant in variants.variants.iter().take(rows) {
            let _ = writeln!(
                out,
                "{:>8}  {:>5.1}%  {:>7.1}%  {}",
                variant.count,
                variant.share * 100.0,
                variant.coverage * 100.0,
                variant.steps.join(" → ")
            );
        }
        super::text::more(&mut out, variants.variants.len(), rows, "variants");
        out
    }
}
