//! The consumer's HTTP endpoint for operators (off unless
//! `consumer.http_addr` is set): `/healthz`, `/readyz` and `/metrics`, and
//! [`probe`], the HTTP GET behind `consumer --probe URL` (container health
//! checks need no `curl` in the image).
//!
//! Metrics are read from the service's own counters at each scrape (a
//! `prometheus-client` collector), so the service counts once, in one place,
//! and several services in one process never share a global registry.

use std::{fmt::Write as _, net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use http_body_util::{BodyExt, Empty};
use hyper::{Request, Uri, body::Bytes, header};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge},
    registry::{Registry, Unit},
};
use rabbit_gather::service::{Health, ServiceCounters};
use rabbit_gather::shutdown::CancellationToken;
use tokio::net::TcpListener;

/// The content type of `/metrics` (OpenMetrics text, which Prometheus reads).
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `outcome` label values of `greetings_requests_total`, in order.
pub const OUTCOMES: [&str; 7] = [
    "ok",
    "invalid",
    "expired",
    "forbidden_reply_to",
    "failed",
    "dead_lettered",
    "requeued",
];

/// What the endpoint reports on: one service.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The service's readiness.
    pub health: Arc<Health>,
    /// The service's counters.
    pub counters: Arc<ServiceCounters>,
    /// The route it answers on, `topology.prefix` (the `route` label of
    /// every metric).
    pub route: String,
    /// The word it answers for (the `word` label of every metric).
    pub word: String,
}

/// Binds the endpoint's address.
///
/// # Errors
/// The address cannot be bound (in use, not local, no permission).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves the endpoint on `listener` until `stop` is cancelled.
///
/// # Errors
/// The listener fails.
pub async fn serve(
    listener: TcpListener,
    observed: Observed,
    stop: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(observed))
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
}

/// The endpoint's routes.
pub fn router(observed: Observed) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Arc::new(observed))
}

async fn readyz(State(observed): State<Arc<Observed>>) -> impl IntoResponse {
    match observed.health.ready() {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

async fn metrics(State(observed): State<Arc<Observed>>) -> impl IntoResponse {
    match metrics_text(&observed) {
        Ok(text) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
            text,
        )
            .into_response(),
        Err(error) => {
            tracing::warn!(%error, "cannot encode metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The metrics of `observed`, in OpenMetrics text.
///
/// # Errors
/// Encoding failed (it writes to a `String`, so it does not in practice).
pub fn metrics_text(observed: &Observed) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix_and_labels(
        "greetings",
        [
            ("route".into(), observed.route.clone().into()),
            ("word".into(), observed.word.clone().into()),
        ]
        .into_iter(),
    );
    registry.register_collector(Box::new(ServiceCollector(observed.clone())));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

/// Encodes one service's counters at scrape time.
#[derive(Debug)]
struct ServiceCollector(Observed);

impl Collector for ServiceCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Observed {
            health, counters, ..
        } = &self.0;
        let stats = counters.snapshot();
        let counts = [
            stats.ok,
            stats.invalid,
            stats.expired,
            stats.forbidden_reply_to,
            stats.retries_scheduled,
            stats.dead_lettered,
            stats.requeued_after_nack,
        ];
        let requests = ConstCounter::new(0u64);
        let mut family = encoder.encode_descriptor(
            "requests",
            "Requests settled, by outcome: ok (answered), invalid, expired, \
             forbidden_reply_to (dead-lettered by the broker), failed (handler \
             failed; retried later), dead_lettered (by the service, with a \
             reason), requeued (a publish it needed was nacked)",
            None,
            requests.metric_type(),
        )?;
        for (outcome, count) in OUTCOMES.into_iter().zip(counts) {
            ConstCounter::new(count).encode(family.encode_family(&[("outcome", outcome)])?)?;
        }
        let counters_of = [
            (
                "redeliveries",
                "Deliveries the broker marked as redelivered",
                stats.redeliveries,
            ),
            (
                "replies",
                "Replies published and confirmed by the broker",
                stats.replies,
            ),
            (
                "batch_names",
                "Names answered in batch requests (contract v1.1)",
                stats.batch_names,
            ),
            (
                "replies_refused",
                "Replies the broker refused (a reply_to it would not route to)",
                stats.replies_refused,
            ),
            (
                "replies_returned",
                "Replies returned because the caller's reply queue is gone",
                stats.replies_returned,
            ),
            (
                "publish_nacks",
                "Publishes (replies, retry and dead-letter copies) the broker nacked, each attempt",
                stats.publish_nacks,
            ),
            (
                "reconnects",
                "Broker sessions opened again after a fault",
                stats.reconnects,
            ),
        ];
        for (name, help, value) in counters_of {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        let histogram = counters.handling_seconds();
        histogram.encode(encoder.encode_descriptor(
            "request_handling",
            "Time from a delivery's arrival to its ack, reject or requeue",
            Some(&Unit::Seconds),
            histogram.metric_type(),
        )?)?;
        let gauges = [
            (
                "deliveries_in_hand",
                "Deliveries being handled now",
                stats.in_hand,
            ),
            (
                "broker_connected",
                "1 while a broker session is open",
                i64::from(health.connected()),
            ),
            (
                "broker_blocked",
                "1 while the broker blocks the publishing connection (alarm)",
                i64::from(health.blocked()),
            ),
            (
                "ready",
                "1 while /readyz answers 200",
                i64::from(health.ready().is_ok()),
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

/// Why [`probe`] could not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Not an `http://host:port/path` URL.
    #[error("not an http://HOST:PORT/PATH URL: {0:?}")]
    BadUrl(String),
    /// No answer within the timeout.
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    /// Connecting or the exchange failed.
    #[error("{0}")]
    Failed(String),
}

/// `GET url` over HTTP/1.1: the status code and the body.
///
/// # Errors
/// [`ProbeError`] for a bad URL, no answer in `timeout`, or a failed exchange.
pub async fn probe(url: &str, timeout: Duration) -> Result<(u16, String), ProbeError> {
    let uri: Uri = url
        .parse()
        .map_err(|_| ProbeError::BadUrl(url.to_owned()))?;
    if uri.scheme_str() != Some("http") {
        return Err(ProbeError::BadUrl(url.to_owned()));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| ProbeError::BadUrl(url.to_owned()))?
        .clone();
    let address = format!(
        "{}:{}",
        authority.host(),
        authority.port_u16().unwrap_or(80)
    );
    let exchange = async {
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            let mut line = String::new();
            let _ = write!(line, "{what} {address}: {e}");
            ProbeError::Failed(line)
        };
        let stream = tokio::net::TcpStream::connect(&address)
            .await
            .map_err(|e| failed("cannot connect to", &e))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| failed("HTTP handshake with", &e))?;
        tokio::spawn(connection);
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let request = Request::get(path)
            .header(header::HOST, authority.as_str())
            .body(Empty::<Bytes>::new())
            .map_err(|e| failed("cannot build a request for", &e))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| failed("no answer from", &e))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| failed("cannot read the answer of", &e))?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| ProbeError::TimedOut(timeout))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_url_that_is_not_http_is_refused_before_connecting() {
        for url in ["https://127.0.0.1:1/readyz", "127.0.0.1:8080", "not a url"] {
            let error = probe(url, Duration::from_secs(1)).await.unwrap_err();
            assert!(matches!(error, ProbeError::BadUrl(_)), "{url}: {error:?}");
        }
    }

    #[test]
    fn metrics_name_every_outcome_with_the_route_and_word_labels() {
        let observed = Observed {
            health: Arc::default(),
            counters: Arc::default(),
            route: "greetings".to_owned(),
            word: "hello".to_owned(),
        };
        let text = metrics_text(&observed).expect("encode");
        for outcome in OUTCOMES {
            let line = format!(
                "greetings_requests_total{{route=\"greetings\",word=\"hello\",outcome=\"{outcome}\"}} 0"
            );
            assert!(text.contains(&line), "{line} missing in:\n{text}");
        }
        assert!(
            text.contains("greetings_ready{route=\"greetings\",word=\"hello\"} 0"),
            "{text}"
        );
    }
}
