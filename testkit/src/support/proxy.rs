//! A TCP proxy for fault injection: "the network is cut, but nobody closes
//! anything".
//!
//! [`Proxy::start`] listens on `127.0.0.1:<free port>` and forwards every
//! accepted connection to an upstream address (normally the test broker).
//! At runtime it can be switched between:
//!
//! - [`Mode::Forward`]: bytes flow both ways; a FIN from one side is passed
//!   on as a FIN to the other, a reset as a reset.
//! - [`Mode::Blackhole`] ([`Proxy::blackhole`]): every connection, existing
//!   or new, stays open, but every byte in both directions is read and
//!   discarded. Nothing is written, and no FIN or RST is passed on, not even
//!   when a peer closes or resets its side: each peer only ever sees silence,
//!   as in a network partition. A connection accepted while blackholed is not
//!   even connected upstream (the broker sees nothing of it).
//! - Forward again ([`Proxy::heal`]): NEW connections go through again.
//!   Connections that were open at any time during the blackhole are RESET
//!   by the heal, not resumed: bytes were dropped out of the middle of their
//!   streams, so resuming would hand each peer a desynchronised AMQP stream
//!   (a protocol error, a different fault than the one simulated). By then
//!   AMQP peers have given up on them by heartbeat anyway. Connections opened
//!   after the heal are untouched.
//!
//! [`Proxy::cut_all`] resets (RST) every current connection at once, whatever
//! the mode; dropping the [`Proxy`] stops the listener and resets every
//! connection.

use std::{
    io,
    net::SocketAddr,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
};

use lapin::uri::AMQPUri;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};
use tokio_util::sync::CancellationToken;

use crate::broker::amqp_url;

/// What the proxy does with the bytes of every connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Bytes flow both ways.
    Forward,
    /// Bytes are read and discarded in both directions; nothing is closed.
    Blackhole,
}

/// A fault-injecting TCP proxy in front of one upstream address.
pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
}

struct Shared {
    mode: watch::Sender<Mode>,
    /// Cancelled by `Drop`: stops the listener and every connection.
    shutdown: CancellationToken,
    /// The token that cuts the current generation of connections; replaced
    /// by a fresh child of `shutdown` whenever that generation is cut. The
    /// accept loop takes its token and its mode under this same lock, so a
    /// connection belongs to exactly one side of every cut.
    generation: Mutex<CancellationToken>,
    accepted: AtomicUsize,
}

impl Shared {
    fn generation(&self) -> MutexGuard<'_, CancellationToken> {
        self.generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Resets every connection of the current generation and starts a new one.
    fn cut(&self, generation: &mut CancellationToken) {
        generation.cancel();
        *generation = self.shutdown.child_token();
    }
}

impl Proxy {
    /// Listens on `127.0.0.1:<free port>`, forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy listener");
        let port = listener.local_addr().expect("proxy local address").port();
        let shutdown = CancellationToken::new();
        let shared = Arc::new(Shared {
            mode: watch::channel(Mode::Forward).0,
            generation: Mutex::new(shutdown.child_token()),
            shutdown,
            accepted: AtomicUsize::new(0),
        });
        tokio::spawn(accept_loop(listener, upstream, Arc::clone(&shared)));
        Self { port, shared }
    }

    /// Starts a proxy in front of the test broker (`AMQP_URL`).
    pub async fn to_broker() -> Self {
        Self::start(broker_addr().await).await
    }

    /// The port the proxy listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The test broker's URL (`AMQP_URL`: credentials, vhost, query) with its
    /// host and port pointing at this proxy, e.g.
    /// `amqp://guest:guest@127.0.0.1:<port>/%2f`.
    pub fn amqp_url(&self) -> String {
        self.uri().to_string()
    }

    /// [`Self::amqp_url`] asking for a `heartbeat` of `seconds`; the broker
    /// and lapin settle on the lower of this and the broker's value.
    pub fn amqp_url_with_heartbeat(&self, seconds: u16) -> String {
        let mut uri = self.uri();
        uri.query.heartbeat = Some(seconds);
        uri.to_string()
    }

    fn uri(&self) -> AMQPUri {
        let mut uri: AMQPUri = amqp_url().parse().expect("AMQP_URL parses");
        uri.authority.host = "127.0.0.1".to_owned();
        uri.authority.port = self.port;
        uri
    }

    /// Silently drops every byte of every connection, existing and new.
    pub fn blackhole(&self) {
        let _generation = self.shared.generation();
        self.shared.mode.send_replace(Mode::Blackhole);
    }

    /// Forwards again: new connections go through; connections that lived
    /// through the blackhole are reset (see the module docs). Healing a proxy
    /// that is not blackholed does nothing.
    pub fn heal(&self) {
        let mut generation = self.shared.generation();
        if *self.shared.mode.borrow() == Mode::Blackhole {
            // Cut first: a pump that sees `Forward` also sees its token cancelled.
            self.shared.cut(&mut generation);
        }
        self.shared.mode.send_replace(Mode::Forward);
    }

    /// Resets (RST) every current connection, in any mode; new ones are
    /// accepted as usual.
    pub fn cut_all(&self) {
        let mut generation = self.shared.generation();
        self.shared.cut(&mut generation);
    }

    /// How many client connections the proxy has accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    /// Stops the listener (freeing the port) and resets every connection.
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}

/// Address of the test broker named by `AMQP_URL`.
pub async fn broker_addr() -> SocketAddr {
    let uri: AMQPUri = amqp_url().parse().expect("AMQP_URL parses");
    let authority = (uri.authority.host.as_str(), uri.authority.port);
    tokio::net::lookup_host(authority)
        .await
        .expect("resolve the broker host")
        .next()
        .expect("the broker host has an address")
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    loop {
        let client = tokio::select! {
            () = shared.shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => client,
                Err(_) => continue,
            },
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        let (cut, mode) = {
            let generation = shared.generation();
            (generation.clone(), shared.mode.subscribe())
        };
        tokio::spawn(serve(client, upstream, mode, cut));
    }
}

/// One proxied connection, until both sides have closed, either side fails
/// while forwarding, or its generation is cut.
async fn serve(
    mut client: TcpStream,
    upstream: SocketAddr,
    mode: watch::Receiver<Mode>,
    cut: CancellationToken,
) {
    let _ = client.set_nodelay(true);
    // Partitioned from the start: the upstream never hears of this connection.
    let mut server = if *mode.borrow() == Mode::Blackhole {
        None
    } else {
        let connected = tokio::select! {
            () = cut.cancelled() => None,
            connected = TcpStream::connect(upstream) => connected.ok(),
        };
        let Some(server) = connected else {
            // Upstream refused or we were cut meanwhile: refuse the client too.
            reset(&client);
            return;
        };
        let _ = server.set_nodelay(true);
        Some(server)
    };

    let finished = {
        let (client_read, client_write) = client.split();
        match server.as_mut() {
            Some(server) => {
                let (server_read, server_write) = server.split();
                let up = pump(client_read, Some(server_write), mode.clone(), &cut);
                let down = pump(server_read, Some(client_write), mode, &cut);
                tokio::select! {
                    biased;
                    () = cut.cancelled() => Err(()),
                    done = async { tokio::try_join!(up, down) } => done.map(|_| ()).map_err(|_| ()),
                }
            }
            None => {
                let up = pump(
                    client_read,
                    None::<tokio::net::tcp::WriteHalf<'_>>,
                    mode,
                    &cut,
                );
                tokio::select! {
                    biased;
                    () = cut.cancelled() => Err(()),
                    done = up => done.map_err(|_| ()),
                }
            }
        }
    };
    // Both sides closed cleanly: just drop. Cut, or a side failed while
    // forwarding: reset both sides.
    if finished.is_err() {
        reset(&client);
        if let Some(server) = &server {
            reset(server);
        }
    }
}

/// Makes dropping `stream` send an RST instead of a FIN.
fn reset(stream: &TcpStream) {
    let _ = stream.set_zero_linger();
}

/// Copies `from` to `to` while forwarding; reads and discards while
/// blackholed (or when there is no `to`). Ends on EOF, passing the FIN on
/// only while forwarding. A read error while blackholed ends the pump as
/// quietly as EOF; while forwarding it fails the connection.
async fn pump<R, W>(
    mut from: R,
    mut to: Option<W>,
    mut mode: watch::Receiver<Mode>,
    cut: &CancellationToken,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buffer = vec![0_u8; 16 * 1024];
    loop {
        let read = from.read(&mut buffer).await;
        // `heal` cancels `cut` before switching to Forward: checking the mode
        // first, then the token, never forwards a byte of a cut connection.
        let forwarding = *mode.borrow_and_update() == Mode::Forward && !cut.is_cancelled();
        let n = match read {
            Ok(n) => n,
            Err(e) if forwarding => return Err(e),
            Err(_) => return Ok(()),
        };
        let Some(to) = to.as_mut().filter(|_| forwarding) else {
            if n == 0 {
                return Ok(());
            }
            continue;
        };
        if n == 0 {
            return to.shutdown().await;
        }
        // A peer that stops reading must not keep us writing once blackholed:
        // the rest of the chunk is dropped like everything else.
        tokio::select! {
            written = to.write_all(&buffer[..n]) => written?,
            _ = mode.wait_for(|m| *m == Mode::Blackhole) => {}
        }
    }
}
