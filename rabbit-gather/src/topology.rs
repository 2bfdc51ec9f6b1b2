//! Exchange and queue names derived from the configured prefix, and their
//! idempotent declaration (docs/wire-contract.md, "Topology").
//!
//! ```text
//! <prefix>              fanout, durable   requests
//! <prefix>.<word>       durable queue     bound to <prefix>, x-dead-letter-exchange=
//!                                         <prefix>.<word>.retry (key `dead`),
//!                                         x-expires=queue_expires, x-max-length=max_length
//! <prefix>.<word>.due   durable queue     consumed with <prefix>.<word>: retries whose delay is
//!                                         over and replays, bound to <prefix>.<word>.retry (key
//!                                         `due`); as <prefix>.<word> but never bounded by
//!                                         max_length (a retry is never dropped by it)
//! <prefix>.<word>.retry durable queue     bound to the exchange of the same name (key `wait`),
//!                                         no x-expires;
//!                                         delayed retries wait here (per-message expiration),
//!                                         then go to <prefix>.<word>.due (x-dead-letter-exchange
//!                                         <prefix>.<word>.retry, routing key `due`)
//! <prefix>.<word>.retry direct exchange,  the word's own: retry copies (key `wait`), expired
//!                       durable           retries (key `due`) and dead letters (key `dead`)
//! <prefix>.dlx          fanout, durable   dead letters of queues declared before 2026-12
//! <prefix>.dead         durable queue     bound to <prefix>.dlx and to every
//!                                         <prefix>.<word>.retry (key `dead`), x-max-length,
//!                                         x-message-ttl
//! <prefix>.reply        direct, durable   replies to reply queues
//! <reply_prefix><id>    exclusive queue   one client connection's replies, bound to
//!                                         <prefix>.reply (key: its own name)
//! ```
//!
//! The shared objects (`<prefix>`, `<prefix>.dlx`, `<prefix>.dead` and
//! `<prefix>.reply`) are declared only where they do not exist yet: under
//! least privilege the operator's definitions declare them, and no service
//! may configure (so delete) them.
//!
//! Services publish only to exchanges they are allowed to write to (the
//! request exchange, their own retry exchange, the dead-letter and reply
//! exchanges), never through the default exchange unless they answer direct
//! reply-to: a stolen service credential cannot aim a message at another
//! word's queue.
//!
//! The bounds (`x-expires`, `x-max-length`, `x-message-ttl`) are
//! best-effort on a queue that already exists without them or with other
//! values: RabbitMQ refuses to redeclare a queue with other arguments, so the
//! service then uses the queue as it is and logs how to migrate it (docs/operations.md,
//! "Migrating queues"). Any other argument must match.

use std::time::Duration;

use lapin::{
    Channel, Connection, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    protocol::{AMQPErrorKind, AMQPSoftError},
    types::{AMQPValue, FieldTable},
};

pub use crate::naming::{InvalidWord, Word, is_valid_prefix};
use crate::{
    protocol::names::{DEAD_KEY, RETRY_DUE_KEY, RETRY_WAIT_KEY},
    settings::{QueueType, TopologySettings},
};

/// The names of every exchange and queue under one prefix, and the bounds
/// the consumers declare their queues with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    prefix: String,
    queue_expires: Duration,
    dead_letter_max_length: u32,
    dead_letter_ttl: Duration,
    queue_type: QueueType,
    delivery_limit: u32,
    max_length: u32,
}

impl Topology {
    /// Names under `prefix` (already validated by the settings), with no
    /// queue bounds: enough for a producer, which declares only the exchange.
    #[must_use]
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            queue_expires: Duration::ZERO,
            dead_letter_max_length: 0,
            dead_letter_ttl: Duration::ZERO,
            queue_type: QueueType::Classic,
            delivery_limit: 0,
            max_length: 0,
        }
    }

    /// Names and queue bounds from the settings.
    #[must_use]
    pub fn from_settings(settings: &TopologySettings) -> Self {
        Self {
            queue_expires: settings.queue_expires,
            dead_letter_max_length: settings.dead_letter_max_length,
            dead_letter_ttl: settings.dead_letter_ttl,
            queue_type: settings.queue_type,
            max_length: settings.max_length,
            ..Self::new(&settings.prefix)
        }
    }

    /// With quorum queues, the broker's `x-delivery-limit` for a word's
    /// queue: deliveries of one message (the consumer's own failure count
    /// usually dead-letters it first; this catches a message that crashes
    /// the consumer before it can count). Zero: none.
    #[must_use]
    pub fn with_delivery_limit(mut self, limit: u32) -> Self {
        self.delivery_limit = limit;
        self
    }

    /// Whether a queue that exists with other arguments fails the
    /// declaration (quorum) rather than being used as it is (classic).
    fn strict(&self) -> bool {
        self.queue_type == QueueType::Quorum
    }

    /// The arguments every queue of this topology gets for its type: none
    /// for classic queues (existing deployments keep declaring them as they
    /// always did); for quorum queues the type, and for a queue that
    /// dead-letters (`dead_letters`), at-least-once dead-lettering, which
    /// RabbitMQ allows only with `overflow = reject-publish`.
    fn type_arguments(&self, arguments: &mut FieldTable, dead_letters: bool) {
        if self.queue_type != QueueType::Quorum {
            return;
        }
        arguments.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        if dead_letters {
            arguments.insert(
                "x-dead-letter-strategy".into(),
                AMQPValue::LongString("at-least-once".into()),
            );
            arguments.insert(
                "x-overflow".into(),
                AMQPValue::LongString("reject-publish".into()),
            );
        }
    }

    /// The fanout exchange requests are published to.
    #[must_use]
    pub fn exchange(&self) -> String {
        self.prefix.clone()
    }

    /// The queue owned by the consumers of `word`.
    #[must_use]
    pub fn queue(&self, word: &Word) -> String {
        format!("{}.{}", self.prefix, word)
    }

    /// Where requests of `word` wait out the delay before a retry.
    #[must_use]
    pub fn retry_queue(&self, word: &Word) -> String {
        format!("{}.{}.retry", self.prefix, word)
    }

    /// Where `word`'s retries come back when their delay is over (and
    /// replays go): consumed with the word's queue, but never bounded by
    /// `max_length`, so that a retry coming back to a full queue is never
    /// dropped (the broker's dead-lettering into a classic queue is at most
    /// once).
    #[must_use]
    pub fn due_queue(&self, word: &Word) -> String {
        format!("{}.{}.due", self.prefix, word)
    }

    /// The direct exchange of `word`'s retries, named as its retry queue:
    /// copies go to the retry queue ([`RETRY_WAIT_KEY`]), expired ones back to
    /// the word's queue ([`RETRY_DUE_KEY`]). One per word, so that a word's
    /// user may write to its own and to no other word's queue.
    #[must_use]
    pub fn retry_exchange(&self, word: &Word) -> String {
        self.retry_queue(word)
    }

    /// The direct exchange replies to reply queues are published to, routed
    /// by the queue's name.
    #[must_use]
    pub fn reply_exchange(&self) -> String {
        format!("{}.reply", self.prefix)
    }

    /// The dead-letter exchange.
    #[must_use]
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dlx", self.prefix)
    }

    /// The queue that keeps dead letters for inspection.
    #[must_use]
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dead", self.prefix)
    }

    /// Makes sure the request exchange exists (what a producer needs):
    /// used as it is when it does (see `ensure_exchange`).
    ///
    /// # Errors
    /// The broker's refusal, e.g. no exchange and no permission to declare it.
    pub async fn declare_exchange(&self, connection: &Connection) -> lapin::Result<()> {
        ensure_exchange(connection, &self.exchange(), ExchangeKind::Fanout).await
    }

    /// Makes sure the reply exchange exists, then declares an exclusive
    /// reply queue named `queue`, bound to it by its own name (what a client
    /// in exclusive reply-queue mode needs). The queue goes with the
    /// connection.
    ///
    /// # Errors
    /// The broker's refusal, e.g. no permission to configure `queue`.
    pub async fn declare_reply_queue(
        &self,
        connection: &Connection,
        queue: &str,
    ) -> lapin::Result<()> {
        let exchange = self.reply_exchange();
        ensure_exchange(connection, &exchange, ExchangeKind::Direct).await?;
        let mut arguments = FieldTable::default();
        // Exclusive queues are classic on every broker; saying so keeps a
        // vhost whose default queue type is quorum from refusing it.
        arguments.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("classic".into()),
        );
        let channel = connection.create_channel().await?;
        channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    exclusive: true,
                    ..QueueDeclareOptions::default()
                },
                arguments,
            )
            .await?;
        bind(&channel, queue, &exchange, queue).await?;
        let _ = channel.close(200, "declared".into()).await;
        Ok(())
    }

    /// Declares everything a consumer of `word` uses. Idempotent: every
    /// service runs it at start. Opens its own channels on `connection` (a
    /// refused declare closes its channel).
    ///
    /// The shared objects (request exchange, dead-letter exchange and queue)
    /// are used as they are when they exist, declared only when they do not:
    /// under least privilege the operator's definitions declare and bind
    /// them (`scripts/gen-definitions.sh`), and a word's user has no
    /// configure permission on them, so it cannot delete them. The word's
    /// own objects (its queue, retry queue and retry exchange) are declared
    /// with their arguments checked.
    ///
    /// # Errors
    /// The broker's refusal, e.g. a queue that exists with another
    /// dead-letter exchange (bounds alone never fail it: see the module docs).
    pub async fn declare_for_consumer(
        &self,
        connection: &Connection,
        word: &Word,
    ) -> lapin::Result<()> {
        self.declare_exchange(connection).await?;
        ensure_exchange(
            connection,
            &self.dead_letter_exchange(),
            ExchangeKind::Fanout,
        )
        .await?;
        let retry_exchange = self.retry_exchange(word);
        let channel = connection.create_channel().await?;
        declare_exchange(&channel, &retry_exchange, ExchangeKind::Direct).await?;
        let _ = channel.close(200, "declared".into()).await;

        let dead = self.dead_letter_queue();
        if !queue_exists(connection, &dead).await? {
            let mut dead_bounds = FieldTable::default();
            if self.dead_letter_max_length > 0 {
                dead_bounds.insert(
                    "x-max-length".into(),
                    AMQPValue::LongLongInt(i64::from(self.dead_letter_max_length)),
                );
            }
            if let Some(ms) = millis(self.dead_letter_ttl) {
                dead_bounds.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ms));
            }
            let mut dead_arguments = FieldTable::default();
            self.type_arguments(&mut dead_arguments, false);
            declare_queue(
                connection,
                &dead,
                dead_arguments,
                dead_bounds,
                self.strict(),
            )
            .await?;
        }

        let mut expires = FieldTable::default();
        if let Some(ms) = millis(self.queue_expires) {
            expires.insert("x-expires".into(), AMQPValue::LongLongInt(ms));
        }
        let mut bounds = expires;
        if self.max_length > 0 {
            bounds.insert(
                "x-max-length".into(),
                AMQPValue::LongLongInt(i64::from(self.max_length)),
            );
            bounds.insert(
                "x-overflow".into(),
                AMQPValue::LongString("reject-publish".into()),
            );
        }
        let queue = self.queue(word);
        // The broker dead-letters the word's queue through the word's own
        // exchange (key `dead`), as the consumer does with its own letters.
        let dead_letters_to = |exchange: &str, key: Option<&str>| {
            let mut arguments = FieldTable::default();
            arguments.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(exchange.into()),
            );
            if let Some(key) = key {
                arguments.insert(
                    "x-dead-letter-routing-key".into(),
                    AMQPValue::LongString(key.into()),
                );
            }
            self.type_arguments(&mut arguments, true);
            if self.queue_type == QueueType::Quorum && self.delivery_limit > 0 {
                arguments.insert(
                    "x-delivery-limit".into(),
                    AMQPValue::LongLongInt(i64::from(self.delivery_limit)),
                );
            }
            arguments
        };
        match declare_queue(
            connection,
            &queue,
            dead_letters_to(&retry_exchange, Some(DEAD_KEY)),
            bounds.clone(),
            self.strict(),
        )
        .await
        {
            Ok(()) => {}
            Err(error) if is_precondition_failed(&error) && names_dead_letters(&error) => {
                // A queue declared before the dead-letter route moved to the
                // word's exchange: it keeps working through `<prefix>.dlx`.
                tracing::warn!(
                    queue = queue.as_str(),
                    %error,
                    "the queue dead-letters through {} (declared by an older version); its \
                     letters are replayed to every word, not to this one alone. To migrate: \
                     stop its consumers, let it drain, delete it and start them again \
                     (docs/operations.md, Migrating queues)",
                    self.dead_letter_exchange()
                );
                declare_queue(
                    connection,
                    &queue,
                    dead_letters_to(&self.dead_letter_exchange(), None),
                    bounds,
                    self.strict(),
                )
                .await?;
            }
            Err(error) => return Err(error),
        }

        // Retries come back to a queue of their own, consumed with the
        // word's queue: not bounded by max_length, so never dropped by it.
        let due_queue = self.due_queue(word);
        let mut due_bounds = FieldTable::default();
        if let Some(ms) = millis(self.queue_expires) {
            due_bounds.insert("x-expires".into(), AMQPValue::LongLongInt(ms));
        }
        declare_queue(
            connection,
            &due_queue,
            dead_letters_to(&retry_exchange, Some(DEAD_KEY)),
            due_bounds,
            self.strict(),
        )
        .await?;

        // Expired retries go back through the word's retry exchange: never
        // through the default exchange, which a word's user may not write to.
        let mut retry = FieldTable::default();
        retry.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(retry_exchange.as_str().into()),
        );
        retry.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(RETRY_DUE_KEY.into()),
        );
        self.type_arguments(&mut retry, true);
        // No x-expires: nothing consumes a retry queue and publishes do not
        // renew a lease, so it expired under a running consumer with the
        // retries waiting in it (issue 17). A lease renewed by passive
        // declares works on classic queues only (quorum queues count only a
        // consumer as use). A retired word's retry queue stays, empty, until
        // an operator deletes it (docs/operations.md, Migrating queues, retiring a word).
        let retry_queue = self.retry_queue(word);
        declare_queue(
            connection,
            &retry_queue,
            retry,
            FieldTable::default(),
            self.strict(),
        )
        .await?;

        let channel = connection.create_channel().await?;
        bind(&channel, &queue, &self.exchange(), "").await?;
        bind(&channel, &retry_queue, &retry_exchange, RETRY_WAIT_KEY).await?;
        bind(&channel, &due_queue, &retry_exchange, RETRY_DUE_KEY).await?;
        // Before 2026-12 retries came back to the word's queue itself.
        channel
            .queue_unbind(
                queue.as_str().into(),
                retry_exchange.as_str().into(),
                RETRY_DUE_KEY.into(),
                FieldTable::default(),
            )
            .await?;
        let _ = channel.close(200, "declared".into()).await;

        // Binding the dead-letter queue takes write permission on it, which
        // a word's user has only where no operator declared the shared
        // objects (a development broker). Refused, the operator's
        // definitions bind it; a letter that finds no binding is returned
        // (mandatory) and its request requeued, never dropped.
        let channel = connection.create_channel().await?;
        for (exchange, key) in [
            (self.dead_letter_exchange(), ""),
            (retry_exchange, DEAD_KEY),
        ] {
            match bind(&channel, &dead, &exchange, key).await {
                Ok(()) => {}
                Err(error) if is_access_refused(&error) => {
                    tracing::debug!(
                        %error,
                        "no permission to bind {dead}: the operator's definitions bind it"
                    );
                    return Ok(());
                }
                Err(error) => return Err(error),
            }
        }
        let _ = channel.close(200, "declared".into()).await;
        Ok(())
    }
}

/// `Some(ms)` for a non-zero duration (already range-checked by the settings).
fn millis(duration: Duration) -> Option<i64> {
    (!duration.is_zero()).then(|| i64::try_from(duration.as_millis()).unwrap_or(i64::MAX))
}

/// Declares a durable queue with its `required` arguments and its `bounds`.
/// When the queue already exists with other bounds (or none), the broker
/// answers PRECONDITION_FAILED; the queue is then declared with the required
/// arguments only, passively if need be, and a warning says how to migrate.
/// `strict` (quorum queues, new with their type: no old deployment to spare)
/// and a refusal naming `x-queue-type` fail instead, saying how to migrate.
async fn declare_queue(
    connection: &Connection,
    name: &str,
    required: FieldTable,
    bounds: FieldTable,
    strict: bool,
) -> lapin::Result<()> {
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let mut arguments = required.clone();
    for (key, value) in bounds.inner() {
        arguments.insert(key.clone(), value.clone());
    }
    let channel = connection.create_channel().await?;
    match channel.queue_declare(name.into(), durable, arguments).await {
        Ok(_) => {
            let _ = channel.close(200, "declared".into()).await;
            return Ok(());
        }
        Err(error) if is_precondition_failed(&error) && (strict || names_queue_type(&error)) => {
            tracing::error!(
                queue = name,
                %error,
                "the queue exists with other arguments than this topology (another queue type, \
                 or other bounds). To migrate: stop its consumers, let it drain (or move its \
                 messages, e.g. with a shovel), delete it, and start the consumers with the new \
                 settings; or keep its settings (docs/operations.md, Migrating queues)"
            );
            return Err(error);
        }
        Err(error) if is_precondition_failed(&error) && !bounds.inner().is_empty() => {
            tracing::warn!(
                queue = name,
                %error,
                "queue exists with other bounds (x-expires, x-max-length or x-message-ttl); \
                 using it as it is. To apply the configured bounds, delete it once drained, or \
                 set a policy (docs/operations.md, Migrating queues)"
            );
        }
        Err(error) => return Err(error),
    }
    // The refused declare closed that channel. The queue's other arguments
    // must still be what the contract says: a passive declare cannot check
    // them, so check by declaring with the required arguments alone when the
    // queue has no bounds, and fall back to passive when it has others.
    let channel = connection.create_channel().await?;
    match channel.queue_declare(name.into(), durable, required).await {
        Ok(_) => {}
        Err(error) if is_precondition_failed(&error) => {
            let channel = connection.create_channel().await?;
            channel
                .queue_declare(
                    name.into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await?;
            let _ = channel.close(200, "declared".into()).await;
            return Ok(());
        }
        Err(error) => return Err(error),
    }
    let _ = channel.close(200, "declared".into()).await;
    Ok(())
}

/// Whether the broker's refusal is about `x-queue-type` (a queue of another
/// type exists under the name).
fn names_queue_type(error: &lapin::Error) -> bool {
    error.to_string().contains("x-queue-type")
}

/// Whether the broker's refusal is about the dead-letter arguments.
fn names_dead_letters(error: &lapin::Error) -> bool {
    error.to_string().contains("x-dead-letter")
}

fn is_soft_error(error: &lapin::Error, kind: AMQPSoftError) -> bool {
    matches!(
        error.kind(),
        lapin::ErrorKind::ProtocolError(e) if e.kind() == &AMQPErrorKind::Soft(kind)
    )
}

fn is_precondition_failed(error: &lapin::Error) -> bool {
    is_soft_error(error, AMQPSoftError::PRECONDITIONFAILED)
}

fn is_not_found(error: &lapin::Error) -> bool {
    is_soft_error(error, AMQPSoftError::NOTFOUND)
}

fn is_access_refused(error: &lapin::Error) -> bool {
    is_soft_error(error, AMQPSoftError::ACCESSREFUSED)
}

/// Makes sure exchange `name` exists: a passive declare first, which takes
/// no permission, so that a user may use an exchange the operator declared
/// without the configure permission that would also let it delete it; only
/// when there is none, a declaration of `kind` (which takes that
/// permission). An existing exchange is used as it is, whatever its kind.
async fn ensure_exchange(
    connection: &Connection,
    name: &str,
    kind: ExchangeKind,
) -> lapin::Result<()> {
    let channel = connection.create_channel().await?;
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..ExchangeDeclareOptions::default()
    };
    match channel
        .exchange_declare(name.into(), kind.clone(), passive, FieldTable::default())
        .await
    {
        Ok(()) => {
            let _ = channel.close(200, "declared".into()).await;
            Ok(())
        }
        Err(error) if is_not_found(&error) => {
            let channel = connection.create_channel().await?;
            declare_exchange(&channel, name, kind).await?;
            let _ = channel.close(200, "declared".into()).await;
            Ok(())
        }
        Err(error) => Err(error),
    }
}

/// Whether queue `name` exists (a passive declare: takes no permission).
async fn queue_exists(connection: &Connection, name: &str) -> lapin::Result<bool> {
    let channel = connection.create_channel().await?;
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    match channel
        .queue_declare(name.into(), passive, FieldTable::default())
        .await
    {
        Ok(_) => {
            let _ = channel.close(200, "declared".into()).await;
            Ok(true)
        }
        Err(error) if is_not_found(&error) => Ok(false),
        Err(error) => Err(error),
    }
}

async fn declare_exchange(channel: &Channel, name: &str, kind: ExchangeKind) -> lapin::Result<()> {
    channel
        .exchange_declare(
            name.into(),
            kind,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
}

async fn bind(channel: &Channel, queue: &str, exchange: &str, key: &str) -> lapin::Result<()> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_contract() {
        let t = Topology::new("greetings");
        let hello = Word::parse("hello").expect("valid");
        assert_eq!(t.exchange(), "greetings");
        assert_eq!(t.queue(&hello), "greetings.hello");
        assert_eq!(t.dead_letter_exchange(), "greetings.dlx");
        assert_eq!(t.dead_letter_queue(), "greetings.dead");
        assert_eq!(t.retry_queue(&hello), "greetings.hello.retry");
    }
}
