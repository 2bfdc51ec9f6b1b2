//! Removal of a test's topology: the exchanges and queues of a prefix and
//! its words, on a thread and runtime of its own (it runs from `Drop`, when
//! the test's runtime may be shutting down or the test has panicked).

use lapin::{Connection, ConnectionProperties, options::QueueDeleteOptions};
use rabbit_gather::topology::{Topology, Word};

/// What to delete: every name the library declares for `prefix` and the
/// `words` served under it, plus queues a test declared itself.
#[derive(Debug, Clone)]
pub struct Doomed {
    /// Queues to delete.
    pub queues: Vec<String>,
    /// Exchanges to delete.
    pub exchanges: Vec<String>,
}

impl Doomed {
    /// The library's names for `prefix` and `words`, and `extra_queues`.
    pub fn topology(prefix: &str, words: &[Word], extra_queues: &[String]) -> Self {
        let topology = Topology::new(prefix);
        let mut queues = vec![topology.dead_letter_queue()];
        let mut exchanges = vec![
            topology.exchange(),
            topology.reply_exchange(),
            topology.dead_letter_exchange(),
        ];
        for word in words {
            queues.extend([
                topology.queue(word),
                topology.retry_queue(word),
                topology.due_queue(word),
            ]);
            exchanges.push(topology.retry_exchange(word));
        }
        queues.extend(extra_queues.iter().cloned());
        Self { queues, exchanges }
    }

    /// Deletes them on the broker at `url`, best effort (a name already gone,
    /// or a broker gone, is no failure: the test has its verdict already).
    pub fn delete(self, url: &str) {
        let url = url.to_owned();
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let Ok(connection) =
                    Connection::connect(&url, ConnectionProperties::default()).await
                else {
                    return;
                };
                let Ok(channel) = connection.create_channel().await else {
                    return;
                };
                for queue in self.queues {
                    let _ = channel
                        .queue_delete(queue.into(), QueueDeleteOptions::default())
                        .await;
                }
                for exchange in self.exchanges {
                    let _ = channel
                        .exchange_delete(exchange.into(), Default::default())
                        .await;
                }
                let _ = connection.close(200, "cleanup".into()).await;
            });
        });
        let _ = cleanup.join();
    }
}
