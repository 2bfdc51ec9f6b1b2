//! The sum of one call's answers: how many units the warehouses that
//! answered hold together, and who did not answer or failed.

use rabbit_gather::{
    protocol::{Outcome, Reply},
    rpc::Gathered,
};

use crate::query::StockLevel;

/// What a call's answers add up to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Total {
    /// Units held by the warehouses in [`answered`](Self::answered)
    /// together (saturating at `u64::MAX`).
    pub units: u64,
    /// Warehouses that answered with a level, sorted by name.
    pub answered: Vec<String>,
    /// Warehouses expected that did not answer by the deadline, in the
    /// order the call names them (sorted, with `Until::Live`).
    pub missing: Vec<String>,
    /// Warehouses that answered with an error, sorted by name, each with
    /// `code: message`.
    pub errors: Vec<(String, String)>,
}

impl Total {
    /// Every expected warehouse answered with a level.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.errors.is_empty()
    }
}

/// Sums the levels in `gathered` and names the missing and failed
/// warehouses.
#[must_use]
pub fn total(gathered: &Gathered<StockLevel>) -> Total {
    let mut total = Total {
        missing: gathered.missing.clone(),
        ..Total::default()
    };
    for Reply { consumer, outcome } in &gathered.replies {
        match outcome {
            Outcome::Ok(level) => {
                total.units = total.units.saturating_add(level.units);
                total.answered.push(consumer.clone());
            }
            Outcome::Error { code, message } => {
                total
                    .errors
                    .push((consumer.clone(), format!("{code}: {message}")));
            }
        }
    }
    total.answered.sort();
    total.errors.sort();
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(consumer: &str, units: u64) -> Reply<StockLevel> {
        Reply {
            consumer: consumer.to_owned(),
            outcome: Outcome::Ok(StockLevel {
                item: "apple".to_owned(),
                units,
            }),
        }
    }

    #[test]
    fn levels_are_summed_and_missing_and_failed_warehouses_are_named() {
        let gathered = Gathered {
            replies: vec![
                level("west", 5),
                Reply {
                    consumer: "north".to_owned(),
                    outcome: Outcome::Error {
                        code: "request_failed".to_owned(),
                        message: "the item name is empty".to_owned(),
                    },
                },
                level("east", 3),
                level("south", u64::MAX),
            ],
            missing: vec!["up".to_owned()],
            duplicates: 0,
        };
        let total = total(&gathered);
        assert_eq!(total.units, u64::MAX, "saturates");
        assert_eq!(total.answered, ["east", "south", "west"]);
        assert_eq!(total.missing, ["up"]);
        assert_eq!(
            total.errors,
            [(
                "north".to_owned(),
                "request_failed: the item name is empty".to_owned()
            )]
        );
        assert!(!total.is_complete());
    }

    #[test]
    fn nothing_gathered_is_zero_units_and_complete() {
        let total = total(&Gathered::empty(&[]));
        assert_eq!(total, Total::default());
        assert!(total.is_complete());
    }
}
