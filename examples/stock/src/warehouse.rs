//! A warehouse: its inventory, read from a spec such as `apple=3,pear=5`,
//! and the handler that answers a [`StockQuery`] from it.

use std::{collections::HashMap, fmt, str::FromStr};

use rabbit_gather::service::{Context, Handler, HandlerError};

use crate::query::{ItemError, StockLevel, StockQuery, check_item};

/// One warehouse's inventory: units per item. Cheap to clone for a few
/// items; the service keeps one for its lifetime.
///
/// As a [`Handler`] it answers the level of the item asked about (0 for an
/// item it does not stock), or refuses an invalid item name (empty or longer
/// than [`MAX_ITEM_CHARS`](crate::MAX_ITEM_CHARS)) with a permanent error:
/// no retry could make such a name valid, so the request is dead-lettered at
/// once and the caller gets a `request_failed` error from this warehouse.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Warehouse {
    inventory: HashMap<String, u64>,
}

impl Warehouse {
    /// A warehouse holding `inventory`.
    #[must_use]
    pub fn new(inventory: HashMap<String, u64>) -> Self {
        Self { inventory }
    }

    /// Units of `item` in stock (0 when it is not stocked).
    #[must_use]
    pub fn units(&self, item: &str) -> u64 {
        self.inventory.get(item).copied().unwrap_or(0)
    }

    /// The inventory.
    #[must_use]
    pub fn inventory(&self) -> &HashMap<String, u64> {
        &self.inventory
    }
}

impl Handler<StockQuery, StockLevel> for Warehouse {
    async fn handle(&self, query: StockQuery, _: Context) -> Result<StockLevel, HandlerError> {
        check_item(&query.item).map_err(|error| HandlerError::permanent(error.to_string()))?;
        Ok(StockLevel {
            units: self.units(&query.item),
            item: query.item,
        })
    }
}

/// A stock spec that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// An entry is not `ITEM=UNITS`.
    #[error("{entry:?} is not ITEM=UNITS (e.g. apple=3)")]
    NotAPair {
        /// The entry.
        entry: String,
    },
    /// The units are not a whole number from 0 to 2^64-1.
    #[error("{entry:?}: the units are not a whole number")]
    Units {
        /// The entry.
        entry: String,
    },
    /// The item name is invalid.
    #[error("{entry:?}: {error}")]
    Item {
        /// The entry.
        entry: String,
        /// Why.
        #[source]
        error: ItemError,
    },
    /// The item appears twice.
    #[error("{item:?} is listed twice")]
    Duplicate {
        /// The item.
        item: String,
    },
}

/// Reads `apple=3,pear=5` (comma-separated `ITEM=UNITS`; spaces around
/// either side are ignored). The empty spec is an empty warehouse.
impl FromStr for Warehouse {
    type Err = SpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let mut inventory = HashMap::new();
        for entry in spec.split(',').filter(|e| !e.trim().is_empty()) {
            let Some((item, units)) = entry.split_once('=') else {
                return Err(SpecError::NotAPair {
                    entry: entry.to_owned(),
                });
            };
            let item = item.trim();
            check_item(item).map_err(|error| SpecError::Item {
                entry: entry.to_owned(),
                error,
            })?;
            let units = units.trim().parse().map_err(|_| SpecError::Units {
                entry: entry.to_owned(),
            })?;
            if inventory.insert(item.to_owned(), units).is_some() {
                return Err(SpecError::Duplicate {
                    item: item.to_owned(),
                });
            }
        }
        Ok(Self { inventory })
    }
}

/// Writes the spec back, items sorted: `apple=3,pear=5`.
impl fmt::Display for Warehouse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut items: Vec<_> = self.inventory.iter().collect();
        items.sort();
        for (i, (item, units)) in items.into_iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{item}={units}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rabbit_gather::{service::Retry, topology::Word, trace::Trace};

    use super::*;

    fn context() -> Context {
        Context {
            word: Word::parse("east").expect("valid"),
            correlation_id: None,
            deadline: None,
            attempt: 1,
            trace: Trace::root(),
        }
    }

    #[test]
    fn a_spec_round_trips_and_bad_ones_say_why() {
        let warehouse: Warehouse = " pear = 5, apple=3,".parse().expect("parses");
        assert_eq!(warehouse.to_string(), "apple=3,pear=5");
        assert_eq!(warehouse.units("apple"), 3);
        assert_eq!("".parse::<Warehouse>(), Ok(Warehouse::default()));
        assert!(matches!(
            "apple".parse::<Warehouse>(),
            Err(SpecError::NotAPair { .. })
        ));
        assert!(matches!(
            "apple=-1".parse::<Warehouse>(),
            Err(SpecError::Units { .. })
        ));
        assert!(matches!(
            "=3".parse::<Warehouse>(),
            Err(SpecError::Item { .. })
        ));
        assert_eq!(
            "apple=1,apple=2".parse::<Warehouse>(),
            Err(SpecError::Duplicate {
                item: "apple".to_owned()
            })
        );
    }

    #[tokio::test]
    async fn a_warehouse_answers_its_level_zero_for_unknown_items_and_refuses_bad_names_for_good() {
        let warehouse: Warehouse = "apple=3".parse().expect("parses");
        let ask = |item: &str| {
            warehouse.handle(
                StockQuery {
                    item: item.to_owned(),
                },
                context(),
            )
        };
        assert_eq!(
            ask("apple").await,
            Ok(StockLevel {
                item: "apple".to_owned(),
                units: 3
            })
        );
        assert_eq!(ask("kiwi").await.map(|level| level.units), Ok(0));
        let refused = ask("").await.expect_err("refused");
        assert_eq!(refused.retry, Retry::Permanent);
        assert_eq!(refused.message, "the item name is empty");
    }
}
