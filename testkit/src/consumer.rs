//! Consumer services run in process: [`RunningConsumer`] (started by
//! [`TestApp`](crate::TestApp)), handlers a test plugs in, and one greetings
//! call made the way a test usually makes it.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::{FutureExt, future::BoxFuture};
use rabbit_gather::{
    Settings,
    protocol::{Contract, MalformedReply, Name, Reply},
    rpc::{Gathered, RpcClient},
    service::{ConsumerService, Context, HandlerError, ServiceCounters, ServiceError},
    shutdown::CancellationToken,
};
use tokio::{
    sync::watch,
    task::{AbortHandle, JoinHandle},
};

use crate::{lines::Lines, wait::EVENT_TIMEOUT};

/// A handler a test plugs into an in-process greetings consumer.
pub type TestHandler =
    Box<dyn Fn(Name, Context) -> BoxFuture<'static, Result<String, HandlerError>> + Send + Sync>;

/// A [`TestHandler`] from a plain function of the name and context.
pub fn test_handler<F>(f: F) -> TestHandler
where
    F: Fn(&Name, &Context) -> Result<String, HandlerError> + Send + Sync + 'static,
{
    Box::new(move |name, cx| {
        let result = f(&name, &cx);
        async move { result }.boxed()
    })
}

/// An in-process consumer service.
pub struct RunningConsumer {
    name: String,
    stop: CancellationToken,
    handle: JoinHandle<Result<(), ServiceError>>,
    printed: Lines,
    sessions: watch::Receiver<u64>,
    losses: watch::Receiver<u64>,
    /// The service's counters (handled, refused, ...).
    pub counters: Arc<ServiceCounters>,
}

impl RunningConsumer {
    /// Spawns `service` (serving `name`) on the current runtime, its printed
    /// lines collected.
    pub(crate) fn spawn(name: &str, service: ConsumerService) -> Self {
        let printed: Lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&printed);
        let service =
            service.with_printer(move |line| sink.lock().expect("lock").push(line.to_owned()));
        let sessions = service.sessions();
        let losses = service.losses();
        let counters = service.counters();
        let stop = CancellationToken::new();
        let handle = tokio::spawn(service.run(stop.clone()));
        Self {
            name: name.to_owned(),
            stop,
            handle,
            printed,
            sessions,
            losses,
            counters,
        }
    }

    /// What stops it: its token and its task's abort handle.
    pub(crate) fn handles(&self) -> (CancellationToken, AbortHandle) {
        (self.stop.clone(), self.handle.abort_handle())
    }

    /// Waits until the service has started consuming `n` times (1 = up,
    /// 2 = recovered once, ...).
    pub async fn wait_for_sessions(&self, n: u64) {
        let mut sessions = self.sessions.clone();
        let reached = tokio::time::timeout(EVENT_TIMEOUT, sessions.wait_for(|s| *s >= n)).await;
        assert!(
            matches!(reached, Ok(Ok(_))),
            "the {} consumer did not reach {n} consuming sessions (it has {})",
            self.name,
            *self.sessions.borrow()
        );
    }

    /// Sessions started so far.
    pub fn sessions_now(&self) -> watch::Ref<'_, u64> {
        self.sessions.borrow()
    }

    /// Waits until `n` sessions have ended with a broker fault.
    pub async fn wait_for_losses(&self, n: u64) {
        let mut losses = self.losses.clone();
        let reached = tokio::time::timeout(EVENT_TIMEOUT, losses.wait_for(|s| *s >= n)).await;
        assert!(
            matches!(reached, Ok(Ok(_))),
            "the {} consumer did not notice {n} broker faults",
            self.name
        );
    }

    /// The `W NAME` lines the service has printed so far.
    pub fn printed(&self) -> Vec<String> {
        self.printed.lock().expect("lock").clone()
    }

    /// Signals shutdown and waits for a clean stop.
    pub async fn stop(self) {
        self.stop.cancel();
        let result = tokio::time::timeout(EVENT_TIMEOUT, self.handle)
            .await
            .unwrap_or_else(|_| panic!("the {} consumer did not stop in time", self.name))
            .expect("consumer task did not panic");
        assert!(
            result.is_ok(),
            "the {} consumer ended with {result:?}",
            self.name
        );
    }
}

/// A greetings reply body decoded, its greeting as text.
pub fn greeting_reply(body: &[u8]) -> Result<Reply<String>, MalformedReply> {
    let reply = Reply::decode(&Contract::GREETINGS, body)?;
    Ok(Reply {
        consumer: reply.consumer,
        outcome: reply.outcome.decode(),
    })
}

/// One call for "Ada" waiting for `words`, on a client of its own made with
/// `settings` (closed afterwards).
pub async fn call_ada(settings: &Settings, words: &[&str]) -> Gathered<String> {
    let (client, gathered) = client_and_call_ada(settings, words).await;
    client.close().await;
    gathered
}

/// A greetings client made with `settings`, and what its first call, for
/// "Ada" waiting for `words` (10 s at most), gathered.
pub async fn client_and_call_ada(
    settings: &Settings,
    words: &[&str],
) -> (RpcClient, Gathered<String>) {
    let client = RpcClient::connect_with(settings, Contract::GREETINGS)
        .await
        .expect("RPC client connects");
    let expect: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
    let gathered = client
        .call::<_, String>(
            &Name::parse("Ada").expect("valid"),
            &expect,
            Duration::from_secs(10),
        )
        .await
        .expect("call");
    (client, gathered)
}

/// Stops every consumer, one after the other, each as
/// [`RunningConsumer::stop`] does.
pub async fn stop_all(consumers: impl IntoIterator<Item = RunningConsumer>) {
    for consumer in consumers {
        consumer.stop().await;
    }
}
