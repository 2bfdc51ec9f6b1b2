//! The "when to stop" part of graceful shutdown, as a
//! [`CancellationToken`]: unlike a plain future it can be asked any number of
//! times (`is_cancelled()`, or `cancelled().await` in every `select!` of a
//! loop) and answers at once once it has fired. Binaries pass
//! [`on_signal`]'s token to `run`; tests pass a token they cancel themselves.

pub use tokio_util::sync::CancellationToken;

/// A token cancelled on the first Ctrl+C (SIGINT) or, on Unix, SIGTERM.
///
/// The signal handlers are installed before this returns, so a signal that
/// arrives at any later point is seen. Must be called inside a tokio runtime.
#[must_use]
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let signal = shutdown_signal();
    let cancel = token.clone();
    tokio::spawn(async move {
        signal.await;
        cancel.cancel();
    });
    token
}

/// Completes on the first Ctrl+C (SIGINT) or, on Unix, SIGTERM.
///
/// If a handler cannot be installed, that signal source is ignored (and
/// logged) rather than ending the service at once.
fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    // SIGTERM's handler is installed now, not when first polled.
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    async move {
        let ctrl_c = async {
            if let Err(error) = ctrl_c.await {
                tracing::error!(%error, "cannot listen for Ctrl+C");
                std::future::pending::<()>().await;
            }
        };
        #[cfg(unix)]
        let terminate = async {
            match terminate {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(error) => {
                    tracing::error!(%error, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            () = ctrl_c => tracing::info!("received Ctrl+C, shutting down"),
            () = terminate => tracing::info!("received SIGTERM, shutting down"),
        }
    }
}
