//! The payload: what a client asks ([`StockQuery`]) and what each warehouse
//! answers ([`StockLevel`]), and the one rule on item names.

use serde::{Deserialize, Serialize};

/// Longest item name, in characters. A longer one is refused for good
/// (nothing is stocked under it, and a retry would not change that).
pub const MAX_ITEM_CHARS: usize = 128;

/// "How many units of `item` do you hold?"
///
/// Item names are compared exactly (case and spaces included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockQuery {
    /// The item asked about, e.g. `apple`.
    pub item: String,
}

impl StockQuery {
    /// A query for `item`, checked with [`check_item`].
    ///
    /// # Errors
    /// [`ItemError`] when the name is empty or too long.
    pub fn new(item: impl Into<String>) -> Result<Self, ItemError> {
        let item = item.into();
        check_item(&item)?;
        Ok(Self { item })
    }
}

/// One warehouse's answer: how many units of `item` it holds (0 for an item
/// it has never stocked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLevel {
    /// The item asked about.
    pub item: String,
    /// Units in stock.
    pub units: u64,
}

/// An item name that cannot name anything a warehouse stocks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ItemError {
    /// Empty, or only whitespace.
    #[error("the item name is empty")]
    Empty,
    /// Longer than [`MAX_ITEM_CHARS`].
    #[error("the item name has {chars} characters, more than the {MAX_ITEM_CHARS} allowed")]
    TooLong {
        /// How many characters it has.
        chars: usize,
    },
}

/// Checks an item name: 1 to [`MAX_ITEM_CHARS`] characters, not all
/// whitespace.
///
/// # Errors
/// [`ItemError`] saying which rule it breaks.
pub fn check_item(item: &str) -> Result<(), ItemError> {
    if item.trim().is_empty() {
        return Err(ItemError::Empty);
    }
    let chars = item.chars().count();
    if chars > MAX_ITEM_CHARS {
        return Err(ItemError::TooLong { chars });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_names_are_one_to_max_characters_and_not_blank() {
        assert_eq!(check_item("apple"), Ok(()));
        assert_eq!(check_item(&"é".repeat(MAX_ITEM_CHARS)), Ok(()));
        assert_eq!(check_item(""), Err(ItemError::Empty));
        assert_eq!(check_item(" \t"), Err(ItemError::Empty));
        assert_eq!(
            check_item(&"x".repeat(MAX_ITEM_CHARS + 1)),
            Err(ItemError::TooLong {
                chars: MAX_ITEM_CHARS + 1
            })
        );
        assert!(StockQuery::new("").is_err());
    }
}
