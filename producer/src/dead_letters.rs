//! The `dead-letters` binary's logic: list, replay and purge the letters in
//! `<prefix>.dead` (docs/operations.md, "Dead letters").
//!
//! `src/bin/dead-letters.rs` only parses flags and maps the result to an exit
//! code; tests call [`run`] directly or run the binary.

pub mod attempt;
pub mod cli;
mod error;
pub mod exit;
mod held;
pub mod letter;
mod list;
pub mod replay;
mod run;
pub mod text;

pub use cli::{Cli, Command, ReplayArgs};
pub use error::DeadLettersError;
pub use letter::Letter;
pub use replay::{ReplayReport, Selection};
pub use run::run;
