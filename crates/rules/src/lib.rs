//! Waymark's journey management rules, pure: CEL conditions over the event, the customer and facts of the
//! customer's journey; segments whose membership follows every event and the passing of time; triggers on an
//! event, on an absence, on a segment entry or on a score crossing, with re-entry modes, frequency caps per
//! calendar day in the customer's time zone, quiet hours, end dates and a holdout. Events, scores and a clock go
//! in; decisions (segment entries and exits, fired, capped and held-out trigger instances) come out. No IO: the
//! engine persists the state and performs the actions. The catalogue ranks content and offers for a customer
//! (next best action) from the same conditions.

pub mod expr;

pub use expr::{Condition, ExprError, Fact, Vocabulary};
pub mod catalogue;
pub mod defs;
pub mod monitors;
pub mod runtime;

pub use catalogue::{Catalogue, CatalogueFile, CustomerFacts, Ranking};
pub use defs::{
    line_column, position_in_toml, DefinitionError, DefinitionErrors, Known, RuleSet, RulesFile,
};
pub use runtime::{Cause, Decision, Instance, Mode, Rules, RulesState, Status};

#[cfg(test)]
mod tests;
