//! Command-line flags of `dead-letters`: a subcommand, and the flags every
//! binary shares (config file, broker URL, prefix), accepted before or after
//! the subcommand.

use std::{collections::BTreeSet, ffi::OsString};

use clap::{ArgGroup, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use rabbit_gather::{Settings, cli::SharedArgs};

use super::replay::Selection;

/// Inspects, replays and purges the dead-letter queue `<prefix>.dead`.
///
/// The broker and prefix come from the same settings as `producer` and
/// `consumer` (`--config`, `GREETINGS_*` variables, `AMQP_URL`, `--amqp-url`,
/// `--prefix`), TLS and password files included.
#[derive(Debug, Parser)]
#[command(name = "dead-letters", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Config file, broker URL and prefix.
    #[command(flatten)]
    pub shared: SharedArgs,
}

/// The subcommands.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Prints one line per letter (oldest first): correlation id, origin
    /// queue, deaths, age, reason, body. Removes nothing: the letters go back
    /// to their places, marked redelivered.
    List {
        /// One JSON object per letter instead.
        #[arg(long)]
        json: bool,
        /// Most letters to show.
        #[arg(long, value_name = "N", default_value_t = 100,
              value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
    },
    /// Republishes letters to the request exchange as fresh attempts (new
    /// timestamp, no expiration, no death or failure headers); a letter
    /// leaves the queue only once its replay is confirmed and routed.
    Replay(ReplayArgs),
    /// Deletes every letter in the queue, for good.
    Purge {
        /// Yes, delete them.
        #[arg(long)]
        yes: bool,
    },
}

/// Which letters to replay.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
#[command(group(ArgGroup::new("which").required(true).args(["all", "ids"])))]
pub struct ReplayArgs {
    /// Every letter in the queue.
    #[arg(long)]
    pub all: bool,
    /// The letters with this correlation id (repeat, or list several).
    #[arg(long = "id", value_name = "CORRELATION_ID", num_args = 1..,
          value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub ids: Vec<String>,
}

impl ReplayArgs {
    /// The selection these flags make.
    #[must_use]
    pub fn selection(&self) -> Selection {
        if self.all {
            Selection::All
        } else {
            Selection::Ids(self.ids.iter().cloned().collect::<BTreeSet<_>>())
        }
    }
}

const EXIT_CODES: &str = "\
Exit codes:
  0  done (replay: every selected letter replayed)
  1  unexpected failure (e.g. stdout closed)
  2  bad usage (bad flags or settings, including an invalid broker URL), or purge without --yes
  3  replay: a letter's replay was nacked, or a requested id is not in the queue
  4  broker unreachable, connection lost, or refused (credentials, permissions)
  5  nothing for this prefix: the dead-letter queue or the request exchange does not exist,
     or (replay) no queue is bound to the request exchange, so the letters were kept
  130 interrupted (replay stops between two letters; the rest stay in the queue)";

/// Ids of [`SharedArgs`]' flags, made global so that they may follow the
/// subcommand (`dead-letters list --prefix p`) as well as precede it.
const SHARED_FLAGS: [&str; 3] = ["config", "amqp_url", "prefix"];

impl Cli {
    /// Parses the process's arguments; on bad flags prints clap's message
    /// and exits 2 (`--help` and `--version` exit 0).
    #[must_use]
    pub fn parse_args() -> Self {
        Self::try_parse_args(std::env::args_os()).unwrap_or_else(|error| error.exit())
    }

    /// Parses `args` (the program name first).
    ///
    /// # Errors
    /// clap's error for flags that do not parse.
    pub fn try_parse_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let command = Self::command().mut_args(|arg| {
            if SHARED_FLAGS.contains(&arg.get_id().as_str()) {
                arg.global(true)
            } else {
                arg
            }
        });
        let mut matches = command.try_get_matches_from(args)?;
        Self::from_arg_matches_mut(&mut matches)
    }

    /// Loads the layered settings and applies the shared flags on top.
    ///
    /// # Errors
    /// A message naming the bad setting, or saying why the broker URL is
    /// invalid.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let settings = self.shared.load()?;
        settings.validate()?;
        // A URL that cannot parse is bad usage (exit 2), found before
        // anything connects.
        rabbit_gather::amqp::uri(&settings.amqp)?;
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_args(std::iter::once("dead-letters").chain(args.iter().copied()))
    }

    #[test]
    fn shared_flags_go_before_or_after_the_subcommand() {
        let before = parse(&["--prefix", "p", "list"]).expect("parses");
        let after = parse(&["list", "--prefix", "p", "--amqp-url", "amqp://h"]).expect("parses");
        assert_eq!(before.shared.prefix.as_deref(), Some("p"));
        assert_eq!(after.shared.prefix.as_deref(), Some("p"));
        assert_eq!(after.shared.amqp_url.as_deref(), Some("amqp://h"));
        assert_eq!(
            after.command,
            Command::List {
                json: false,
                limit: 100
            }
        );
    }

    #[test]
    fn replay_needs_all_or_ids_but_not_both() {
        assert!(parse(&["replay"]).is_err());
        assert!(parse(&["replay", "--all", "--id", "a"]).is_err());
        assert!(parse(&["replay", "--id", ""]).is_err());
        let Command::Replay(args) = parse(&["replay", "--id", "a", "b", "--id", "c"])
            .expect("parses")
            .command
        else {
            panic!("not replay");
        };
        assert_eq!(
            args.selection(),
            Selection::Ids(["a", "b", "c"].map(str::to_owned).into())
        );
        let Command::Replay(args) = parse(&["replay", "--all"]).expect("parses").command else {
            panic!("not replay");
        };
        assert_eq!(args.selection(), Selection::All);
    }

    #[test]
    fn a_limit_of_zero_is_bad_usage() {
        let error = parse(&["list", "--limit", "0"]).expect_err("refused");
        assert_eq!(error.exit_code(), 2);
    }
}
