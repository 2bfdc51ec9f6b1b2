//! `dead-letters replay`: republish selected letters as fresh attempts,
//! removing a letter only once its replay is stored.
//!
//! A letter goes back to the one word it came from: it arrived through that
//! word's own exchange (`<prefix>.<word>.retry`, which the broker names in
//! the delivery and only that word's user may write to), and its replay is
//! published there with the key that routes to the word's queue alone. A
//! stolen word credential can therefore fill the dead-letter queue with
//! forged letters, but a replay sends them to no other word. Letters of
//! queues declared before that route existed came through `<prefix>.dlx`
//! (which no service may write to under the generated definitions); they
//! are replayed to the request exchange, reaching every word, once per
//! request.
//!
//! The letters are taken with `basic.get` and held unacknowledged on one
//! channel while the queue is walked once; each selected letter is published
//! (`mandatory`, on a confirm-mode channel of its own) and acked only when
//! the broker confirms the replay and routed it to at least one queue. Every
//! other letter (not selected, nacked, returned for want of a bound queue)
//! stays held and goes back to its place in the queue at the end (`basic.nack`
//! with requeue), or when the channel or connection closes, however the run
//! ends. A lost connection between a confirm and its ack leaves the letter
//! in place after it was replayed: replaying is at least once.

use std::{
    collections::{BTreeSet, HashSet},
    hash::{BuildHasher, RandomState},
    io::Write,
    time::{SystemTime, UNIX_EPOCH},
};

use lapin::{
    Channel, Confirmation, Connection,
    message::Delivery,
    options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions},
};
use rabbit_gather::{
    protocol::names::RETRY_DUE_KEY,
    shutdown::CancellationToken,
    topology::{Topology, Word},
};

use super::{
    attempt::replay_properties,
    error::{DeadLettersError, broker},
    exit,
    held::requeue_held,
    letter::Letter,
    text::escaped,
};

/// Which letters to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every letter in the queue when the replay starts.
    All,
    /// Letters with one of these correlation ids.
    Ids(BTreeSet<String>),
}

impl Selection {
    fn takes(&self, letter: &Delivery) -> bool {
        match self {
            Self::All => true,
            Self::Ids(ids) => letter
                .properties
                .correlation_id()
                .as_ref()
                .is_some_and(|id| ids.contains(id.as_str())),
        }
    }
}

/// What a replay did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    /// Letters replayed and removed from the dead-letter queue.
    pub replayed: u64,
    /// Letters kept because no queue is bound to the request exchange.
    pub returned: u64,
    /// Letters kept because the broker nacked their replay.
    pub nacked: u64,
    /// Requested correlation ids no letter had.
    pub not_found: Vec<String>,
    /// Stopped early by Ctrl+C or SIGTERM (the rest kept).
    pub interrupted: bool,
}

impl ReplayReport {
    /// The documented exit code: 5 when a replay found no bound queue, 130
    /// when interrupted, 3 when a letter was nacked or an id not found.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        if self.returned > 0 {
            exit::NO_ROUTE
        } else if self.interrupted {
            exit::INTERRUPTED
        } else if self.nacked > 0 || !self.not_found.is_empty() {
            exit::INCOMPLETE
        } else {
            exit::OK
        }
    }
}

/// One request, however many word queues dead-lettered it: the request
/// exchange fans a replay out to every word, so replaying each copy would
/// have every consumer handle it once per copy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RequestKey {
    correlation_id: String,
    message_id: Option<String>,
    body_len: usize,
    /// The body under two independently keyed hashes: 128 bits an outsider
    /// cannot aim at, so two different bodies never pass for one.
    body_hash: (u64, u64),
}

struct Dedup {
    seeds: (RandomState, RandomState),
    replayed: HashSet<RequestKey>,
}

impl Dedup {
    fn new() -> Self {
        Self {
            seeds: (RandomState::new(), RandomState::new()),
            replayed: HashSet::new(),
        }
    }

    /// `None` for a letter without a correlation id: never deduplicated.
    fn key(&self, letter: &Delivery) -> Option<RequestKey> {
        let correlation_id = letter.properties.correlation_id().as_ref()?.to_string();
        let hash = |seed: &RandomState| seed.hash_one(&letter.data);
        Some(RequestKey {
            correlation_id,
            message_id: letter
                .properties
                .message_id()
                .as_ref()
                .map(ToString::to_string),
            body_len: letter.data.len(),
            body_hash: (hash(&self.seeds.0), hash(&self.seeds.1)),
        })
    }
}

/// Where a letter's replay goes.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    /// Back to the word whose exchange the letter came through, by that
    /// exchange with the key of the word's queue.
    Word { word: Word, exchange: String },
    /// To the request exchange: a letter of a queue that dead-letters
    /// through `<prefix>.dlx` (declared by an older version).
    Everyone { exchange: &'a str },
}

impl<'a> Route<'a> {
    fn of(letter: &Delivery, plan: Plan<'a>) -> Self {
        let came_through = letter.exchange.as_str();
        let word = came_through
            .strip_prefix(plan.topology.exchange().as_str())
            .and_then(|rest| rest.strip_prefix('.'))
            .and_then(|rest| rest.strip_suffix(".retry"))
            .and_then(|word| Word::parse(word).ok())
            .filter(|word| plan.topology.retry_exchange(word) == came_through);
        match word {
            Some(word) => Self::Word {
                exchange: plan.topology.retry_exchange(&word),
                word,
            },
            None => Self::Everyone {
                exchange: plan.exchange,
            },
        }
    }
}

/// What became of one selected letter's replay.
enum Replayed {
    Stored,
    Returned,
    Nacked,
}

/// What to replay, from where, to where.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan<'a> {
    /// The dead-letter queue.
    pub(crate) queue: &'a str,
    /// The names under the prefix.
    pub(crate) topology: &'a Topology,
    /// The request exchange.
    pub(crate) exchange: &'a str,
    /// Letters ready in the queue when it was counted: the walk takes no
    /// more (later ones are left for the next run).
    pub(crate) letters_at_start: u32,
    /// Which letters.
    pub(crate) selection: &'a Selection,
}

/// Replays the letters `plan` selects, printing a line per selected letter
/// and a summary to `out`, ids not found to `err`. Walks the queue once;
/// stops between two letters when `shutdown` is cancelled.
///
/// # Errors
/// [`DeadLettersError::Broker`] when the connection or a channel fails (the
/// letter in hand and every one not yet replayed stay in the queue);
/// [`DeadLettersError::Output`] when `out` cannot be written.
pub(crate) async fn replay<O: Write, E: Write>(
    connection: &Connection,
    plan: Plan<'_>,
    out: &mut O,
    err: &mut E,
    shutdown: &CancellationToken,
) -> Result<ReplayReport, DeadLettersError> {
    let held = connection
        .create_channel()
        .await
        .map_err(broker("opening a channel"))?;
    let publisher = connection
        .create_channel()
        .await
        .map_err(broker("opening a channel"))?;
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(broker("enabling publisher confirms"))?;
    let mut walk = Walk {
        held: &held,
        publisher: &publisher,
        plan,
        last_tag: None,
        report: ReplayReport::default(),
        dedup: Dedup::new(),
    };
    let walked = walk.run(out, shutdown).await;
    let Walk {
        last_tag, report, ..
    } = walk;
    requeue_held(&held, last_tag).await;
    let _ = publisher.close(200, "replayed".into()).await;
    walked?;
    for id in &report.not_found {
        writeln!(
            err,
            "dead-letters: no letter with correlation id \"{}\" in {}",
            escaped(id, true),
            plan.queue
        )?;
    }
    writeln!(
        out,
        "replayed {}, kept {} (no queue bound {}, nacked {}), not found {}{}",
        report.replayed,
        report.returned + report.nacked,
        report.returned,
        report.nacked,
        report.not_found.len(),
        if report.interrupted {
            "; interrupted, the rest kept"
        } else {
            ""
        }
    )?;
    Ok(report)
}

/// One pass over the queue.
struct Walk<'a> {
    held: &'a Channel,
    publisher: &'a Channel,
    plan: Plan<'a>,
    /// The newest tag of a letter kept (taken, not acked): every held letter
    /// up to it goes back. (A `multiple` nack naming an acked tag would be
    /// refused, closing the channel.)
    last_tag: Option<u64>,
    report: ReplayReport,
    dedup: Dedup,
}

impl Walk<'_> {
    async fn run<O: Write>(
        &mut self,
        out: &mut O,
        shutdown: &CancellationToken,
    ) -> Result<(), DeadLettersError> {
        let selection = self.plan.selection;
        let mut found: BTreeSet<String> = BTreeSet::new();
        for _ in 0..self.plan.letters_at_start {
            if shutdown.is_cancelled() {
                self.report.interrupted = true;
                break;
            }
            let taken = self
                .held
                .basic_get(self.plan.queue.into(), BasicGetOptions { no_ack: false })
                .await
                .map_err(broker("taking a letter"))?;
            let Some(taken) = taken else { break };
            let letter = taken.delivery;
            if !selection.takes(&letter) {
                self.last_tag = Some(letter.delivery_tag);
                continue;
            }
            if let Some(id) = letter.properties.correlation_id() {
                found.insert(id.to_string());
            }
            let line = self.replay_one(&letter).await?;
            writeln!(out, "{line}")?;
        }
        // Interrupted, the ids not seen may still be further on.
        if let (Selection::Ids(ids), false) = (selection, self.report.interrupted) {
            self.report.not_found = ids.difference(&found).cloned().collect();
        }
        Ok(())
    }

    /// Replays one selected letter, acking it once its replay is stored;
    /// the line to print about it.
    async fn replay_one(&mut self, letter: &Delivery) -> Result<String, DeadLettersError> {
        let shown = Letter::read(&letter.properties, &[], false, SystemTime::now());
        let field = |v: Option<&str>| v.map_or_else(|| "-".to_owned(), |v| escaped(v, true));
        let shown = format!(
            "id={} queue={}",
            field(shown.correlation_id.as_deref()),
            field(shown.queue.as_deref())
        );
        let route = Route::of(letter, self.plan);
        let key = match route {
            Route::Word { .. } => None,
            Route::Everyone { .. } => self.dedup.key(letter),
        };
        if key
            .as_ref()
            .is_some_and(|k| self.dedup.replayed.contains(k))
        {
            // The replay of an earlier copy already reached every word.
            ack(letter).await?;
            self.report.replayed += 1;
            return Ok(format!(
                "replayed {shown} (the same request as a letter replayed above: sent once)"
            ));
        }
        Ok(match self.publish(letter, &route).await? {
            Replayed::Stored => {
                ack(letter).await?;
                self.report.replayed += 1;
                if let Some(key) = key {
                    self.dedup.replayed.insert(key);
                }
                format!("replayed {shown}")
            }
            Replayed::Returned => {
                self.last_tag = Some(letter.delivery_tag);
                self.report.returned += 1;
                match route {
                    Route::Word { word, .. } => format!(
                        "kept {shown}: no queue of word {word} is bound (no consumer of it has run \
                         since it was deleted)"
                    ),
                    Route::Everyone { exchange } => format!(
                        "kept {shown}: no queue is bound to {exchange} (no consumer is running)"
                    ),
                }
            }
            Replayed::Nacked => {
                self.last_tag = Some(letter.delivery_tag);
                self.report.nacked += 1;
                format!("kept {shown}: the broker nacked the replay")
            }
        })
    }

    async fn publish(
        &self,
        letter: &Delivery,
        route: &Route<'_>,
    ) -> Result<Replayed, DeadLettersError> {
        let (exchange, key) = match route {
            Route::Word { exchange, .. } => (exchange.as_str(), RETRY_DUE_KEY),
            Route::Everyone { exchange } => (*exchange, ""),
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let confirmation = async {
            self.publisher
                .basic_publish(
                    exchange.into(),
                    key.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &letter.data,
                    replay_properties(&letter.properties, now),
                )
                .await?
                .await
        }
        .await
        .map_err(broker("replaying a letter"))?;
        Ok(match confirmation {
            Confirmation::Ack(None) => Replayed::Stored,
            Confirmation::Ack(Some(_returned)) => Replayed::Returned,
            // Confirms are on: NotRequested cannot happen, and is no proof.
            Confirmation::Nack(_) | Confirmation::NotRequested => Replayed::Nacked,
        })
    }
}

async fn ack(letter: &Delivery) -> Result<(), DeadLettersError> {
    letter
        .ack(BasicAckOptions::default())
        .await
        .map(drop)
        .map_err(broker("removing a replayed letter"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_outcome_decides_the_exit_code() {
        let report = |returned, interrupted, nacked, missing: &[&str]| ReplayReport {
            replayed: 1,
            returned,
            nacked,
            not_found: missing.iter().map(|s| (*s).to_owned()).collect(),
            interrupted,
        };
        assert_eq!(report(0, false, 0, &[]).exit_code(), exit::OK);
        assert_eq!(report(0, false, 1, &[]).exit_code(), exit::INCOMPLETE);
        assert_eq!(report(0, false, 0, &["x"]).exit_code(), exit::INCOMPLETE);
        assert_eq!(report(0, true, 1, &["x"]).exit_code(), exit::INTERRUPTED);
        assert_eq!(report(1, true, 1, &["x"]).exit_code(), exit::NO_ROUTE);
    }
}
