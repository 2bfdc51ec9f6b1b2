//! W3C trace context (`traceparent`, `tracestate`) in AMQP message headers.
//!
//! The producer starts one trace per name and puts its context on each
//! request; a consumer continues it (a child span of its own, with the same
//! trace id) and puts that span's context on the reply. A request without a
//! valid `traceparent` (absent, malformed, not UTF-8) starts a new trace:
//! trace context is advice, never a reason to fail a request. Parsing and
//! formatting are OpenTelemetry's W3C propagator; spans are not exported.

use opentelemetry::{
    Context,
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::{SpanContext, TraceContextExt, TraceFlags, TraceId, TraceState},
};
use opentelemetry_sdk::{
    propagation::TraceContextPropagator,
    trace::{IdGenerator, RandomIdGenerator},
};

use lapin::types::{AMQPValue, FieldTable};

/// The header names the W3C propagator reads and writes.
pub const TRACEPARENT: &str = "traceparent";
/// See [`TRACEPARENT`].
pub const TRACESTATE: &str = "tracestate";

/// One span's place in a trace: what goes into `traceparent`.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace(SpanContext);

impl Trace {
    /// A new trace, sampled, with random ids.
    #[must_use]
    pub fn root() -> Self {
        let ids = RandomIdGenerator::default();
        Self::with_ids(ids.new_trace_id(), None)
    }

    /// A new trace whose id is `trace_id` (e.g. a call's correlation id, so
    /// that a call's retries share one trace); a zero id gets a random one.
    #[must_use]
    pub fn root_with_id(trace_id: u128) -> Self {
        if trace_id == 0 {
            return Self::root();
        }
        Self::with_ids(TraceId::from(trace_id), None)
    }

    /// A child of the trace in `headers` (`traceparent`, `tracestate`), or a
    /// new trace when they hold no valid one.
    #[must_use]
    pub fn continue_from(headers: Option<&FieldTable>) -> Self {
        let parent = headers.map(|headers| {
            TraceContextPropagator::new()
                .extract(&HeaderExtractor::new(headers))
                .span()
                .span_context()
                .clone()
        });
        match parent {
            Some(parent) if parent.is_valid() => Self::with_ids(parent.trace_id(), Some(&parent)),
            _ => Self::root(),
        }
    }

    fn with_ids(trace_id: TraceId, parent: Option<&SpanContext>) -> Self {
        let span_id = RandomIdGenerator::default().new_span_id();
        let (flags, state) = parent.map_or((TraceFlags::SAMPLED, TraceState::default()), |p| {
            (p.trace_flags(), p.trace_state().clone())
        });
        Self(SpanContext::new(trace_id, span_id, flags, false, state))
    }

    /// The trace id, 32 lowercase hex digits.
    #[must_use]
    pub fn trace_id(&self) -> String {
        self.0.trace_id().to_string()
    }

    /// This span's id, 16 lowercase hex digits.
    #[must_use]
    pub fn span_id(&self) -> String {
        self.0.span_id().to_string()
    }

    /// Writes `traceparent` (and `tracestate` when not empty) into `headers`.
    pub fn inject(&self, headers: &mut FieldTable) {
        let context = Context::new().with_remote_span_context(self.0.clone());
        TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
    }

    /// Headers holding only this trace context.
    #[must_use]
    pub fn headers(&self) -> FieldTable {
        let mut headers = FieldTable::default();
        self.inject(&mut headers);
        headers
    }
}

impl Eq for Trace {}

impl Default for Trace {
    fn default() -> Self {
        Self::root()
    }
}

/// Reads string headers for the propagator; other types and non-UTF-8 bytes
/// count as absent.
struct HeaderExtractor<'a> {
    headers: &'a FieldTable,
}

impl<'a> HeaderExtractor<'a> {
    fn new(headers: &'a FieldTable) -> Self {
        Self { headers }
    }
}

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match self.headers.inner().get(key)? {
            AMQPValue::LongString(value) => std::str::from_utf8(value.as_bytes()).ok(),
            AMQPValue::ShortString(value) => Some(value.as_str()),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        self.headers.inner().keys().map(|k| k.as_str()).collect()
    }
}

struct HeaderInjector<'a>(&'a mut FieldTable);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0
            .insert(key.to_owned().into(), AMQPValue::LongString(value.into()));
    }
}

/// The trace id in `headers`' `traceparent`, if it holds a valid one (for
/// tests and tools reading replies).
#[must_use]
pub fn trace_id_of(headers: Option<&FieldTable>) -> Option<String> {
    let headers = headers?;
    let context = TraceContextPropagator::new().extract(&HeaderExtractor::new(headers));
    let span = context.span();
    let span_context = span.span_context();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers_with(value: AMQPValue) -> FieldTable {
        let mut headers = FieldTable::default();
        headers.insert(TRACEPARENT.into(), value);
        headers
    }

    #[test]
    fn a_valid_traceparent_is_continued_with_a_new_span() {
        let headers = headers_with(AMQPValue::LongString(PARENT.into()));
        let child = Trace::continue_from(Some(&headers));
        assert_eq!(child.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(child.span_id(), "00f067aa0ba902b7");
        let out = child.headers();
        assert_eq!(
            trace_id_of(Some(&out)).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        let Some(AMQPValue::LongString(value)) = out.inner().get(TRACEPARENT) else {
            panic!("no traceparent: {out:?}");
        };
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        assert_eq!(
            value,
            format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01", child.span_id())
        );
    }

    #[test]
    fn a_malformed_or_absent_traceparent_starts_a_new_trace() {
        let malformed = [
            AMQPValue::LongString("garbage".into()),
            AMQPValue::LongString("00-00000000000000000000000000000000-00f067aa0ba902b7-01".into()),
            AMQPValue::LongString(b"\xff\xfe"[..].into()),
            AMQPValue::LongLongInt(7),
        ];
        for value in malformed {
            let headers = headers_with(value.clone());
            let trace = Trace::continue_from(Some(&headers));
            assert_eq!(trace.trace_id().len(), 32, "{value:?}");
            assert_ne!(trace.trace_id(), "0".repeat(32), "{value:?}");
            assert_eq!(trace_id_of(Some(&headers)), None, "{value:?}");
        }
        assert_ne!(
            Trace::continue_from(None).trace_id(),
            Trace::continue_from(None).trace_id()
        );
    }

    #[test]
    fn a_root_with_an_id_keeps_it() {
        let trace = Trace::root_with_id(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736);
        assert_eq!(trace.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(Trace::root_with_id(0).trace_id().len(), 32);
    }
}
