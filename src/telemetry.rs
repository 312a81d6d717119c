//! Traces over OTLP (`serve --otlp-endpoint URL`): a job's spans from submit to the worker's
//! report, joined to the submitter's trace by the W3C `traceparent` it sent.
//!
//! Job spans are made with the OpenTelemetry API directly, because one job's spans start and
//! end in different tasks (the submit handler, the Work stream that leases it, the report):
//! - `taskhive.submit` (server kind), a child of the submitter's `traceparent`, from the
//!   request to its acknowledgement; with a child `taskhive.commit` for the durable write;
//! - `taskhive.dispatch` when a worker is handed the job; the worker is given this span's
//!   context as the job's `traceparent`, so the worker's span is its child;
//! - `taskhive.run` from the lease to the worker's report (on the Work stream), with the
//!   outcome.
//!
//! The job keeps the submit span's context (or, with tracing off, the caller's own
//! `traceparent`), in memory and in the store, so dispatch on another node or after a restart
//! continues the same trace. Load executions are `tracing` spans with target
//! [`OTEL_TARGET`], exported by the `tracing-opentelemetry` layer.
//!
//! Off by default: with no endpoint, [`enabled`] is false and nothing here builds a span.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use opentelemetry::global::{self, BoxedSpan, BoxedTracer};
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt as _, TraceFlags, TraceId,
    TraceState, Tracer as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracerProvider;

use crate::scheduler::trace::TraceParent;

/// The `tracing` target whose spans go to the OTLP exporter (and only those).
pub const OTEL_TARGET: &str = "taskhive::otel";

/// The header (HTTP) and metadata key (gRPC) of the W3C trace context.
pub const TRACEPARENT: &str = "traceparent";

static ON: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported.
pub(crate) fn enabled() -> bool {
    ON.load(Ordering::Relaxed)
}

/// The exporter; dropping it flushes the spans not yet sent.
pub struct Exporter {
    provider: SdkTracerProvider,
}

impl Exporter {
    /// Starts exporting to `endpoint` (OTLP/gRPC, e.g. `http://collector:4317`). Call inside
    /// the Tokio runtime: the gRPC client lives on it.
    pub fn start(endpoint: &str, node: &str) -> Result<Exporter, String> {
        use opentelemetry_otlp::WithExportConfig;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .map_err(|e| format!("otlp-endpoint: {e}"))?;
        let mut resource = opentelemetry_sdk::Resource::builder().with_service_name("taskhive");
        if !node.is_empty() {
            resource =
                resource.with_attribute(KeyValue::new("service.instance.id", node.to_string()));
        }
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build();
        global::set_tracer_provider(provider.clone());
        ON.store(true, Ordering::Relaxed);
        Ok(Exporter { provider })
    }

    /// The `tracing` layer that exports spans of target [`OTEL_TARGET`].
    pub fn layer<S>(&self) -> impl tracing_subscriber::Layer<S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        use opentelemetry::trace::TracerProvider as _;
        use tracing_subscriber::Layer as _;
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("taskhive"))
            .with_filter(
                tracing_subscriber::filter::Targets::new()
                    .with_target(OTEL_TARGET, tracing::Level::INFO),
            )
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        ON.store(false, Ordering::Relaxed);
        let _ = self.provider.shutdown();
    }
}

fn tracer() -> BoxedTracer {
    global::tracer("taskhive")
}

/// The trace context a request carries (`traceparent` header or metadata); a malformed one
/// is ignored.
pub(crate) fn incoming(headers: &http::HeaderMap) -> Option<TraceParent> {
    headers
        .get(TRACEPARENT)?
        .to_str()
        .ok()
        .and_then(TraceParent::parse)
}

/// The trace context of a gRPC call's metadata.
pub(crate) fn incoming_grpc(meta: &tonic::metadata::MetadataMap) -> Option<TraceParent> {
    meta.get(TRACEPARENT)?
        .to_str()
        .ok()
        .and_then(TraceParent::parse)
}

fn context_of(t: &TraceParent) -> Context {
    Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from_bytes(t.trace_id),
        SpanId::from_bytes(t.span_id),
        TraceFlags::new(t.flags),
        true,
        TraceState::default(),
    ))
}

fn parent_of(parent: Option<&TraceParent>) -> Context {
    parent.map(context_of).unwrap_or_default()
}

fn trace_of(span: &BoxedSpan) -> Option<TraceParent> {
    let c = span.span_context();
    c.is_valid().then(|| TraceParent {
        trace_id: c.trace_id().to_bytes(),
        span_id: c.span_id().to_bytes(),
        flags: c.trace_flags().to_u8(),
    })
}

fn start(name: &'static str, kind: SpanKind, parent: &Context, attrs: Vec<KeyValue>) -> BoxedSpan {
    let t = tracer();
    t.span_builder(name)
        .with_kind(kind)
        .with_attributes(attrs)
        .start_with_context(&t, parent)
}

fn finish(mut span: BoxedSpan, error: Option<&str>) {
    if let Some(e) = error {
        span.set_status(Status::error(e.to_string()));
    }
    span.end();
}

/// The spans of one submit call: `taskhive.submit` and its `taskhive.commit`.
pub struct Submit {
    spans: Option<(BoxedSpan, BoxedSpan)>,
    trace: Option<TraceParent>,
}

impl Submit {
    /// Starts the spans of a submit of `jobs` jobs of `task` (the first job's name shown)
    /// under the caller's `incoming` context. With tracing off it only keeps `incoming`.
    pub fn start(incoming: Option<TraceParent>, task: &str, name: &str, jobs: usize) -> Submit {
        if !enabled() {
            return Submit {
                spans: None,
                trace: incoming,
            };
        }
        let submit = start(
            "taskhive.submit",
            SpanKind::Server,
            &parent_of(incoming.as_ref()),
            vec![
                KeyValue::new("taskhive.task", task.to_string()),
                KeyValue::new("taskhive.job.name", name.to_string()),
                KeyValue::new("taskhive.jobs", jobs as i64),
            ],
        );
        let trace = trace_of(&submit).or(incoming);
        let commit = start(
            "taskhive.commit",
            SpanKind::Internal,
            &parent_of(trace.as_ref()),
            Vec::new(),
        );
        Submit {
            spans: Some((submit, commit)),
            trace,
        }
    }

    /// The context the job keeps: the submit span's, or the caller's with tracing off.
    pub fn trace(&self) -> Option<TraceParent> {
        self.trace
    }

    /// Ends both spans with the call's outcome.
    pub fn end<T, E: std::fmt::Display>(self, r: &Result<T, E>) {
        if let Some((submit, commit)) = self.spans {
            let e = r.as_ref().err().map(|e| e.to_string());
            finish(commit, e.as_deref());
            finish(submit, e.as_deref());
        }
    }
}

/// A job handed to a worker: the `taskhive.dispatch` span (ended at once) and the
/// `taskhive.run` span, open until the worker reports.
pub struct Run {
    span: BoxedSpan,
}

/// Dispatches a job that carries a trace: answers the `traceparent` the worker continues
/// (the dispatch span's, or the stored one with tracing off) and the run span to end on the
/// report (None with tracing off).
pub fn dispatch(
    stored: Option<TraceParent>,
    task: &str,
    job_id: u64,
    lease: u64,
    attempts: u32,
) -> (Option<TraceParent>, Option<Run>) {
    let Some(stored) = stored else {
        return (None, None);
    };
    if !enabled() {
        return (Some(stored), None);
    }
    let parent = context_of(&stored);
    let attrs = || {
        vec![
            KeyValue::new("taskhive.task", task.to_string()),
            KeyValue::new("taskhive.job.id", job_id as i64),
            KeyValue::new("taskhive.lease.id", lease as i64),
            KeyValue::new("taskhive.job.attempts", attempts as i64),
        ]
    };
    let now = SystemTime::now();
    let t = tracer();
    let mut d = t
        .span_builder("taskhive.dispatch")
        .with_kind(SpanKind::Producer)
        .with_start_time(now)
        .with_attributes(attrs())
        .start_with_context(&t, &parent);
    let handed = trace_of(&d).or(Some(stored));
    d.end_with_timestamp(SystemTime::now());
    let run = start("taskhive.run", SpanKind::Internal, &parent, attrs());
    (handed, Some(Run { span: run }))
}

impl Run {
    /// Ends the run with the worker's outcome (`error` = why it did not succeed).
    pub fn end(mut self, outcome: &'static str, error: Option<&str>) {
        self.span
            .set_attribute(KeyValue::new("taskhive.outcome", outcome));
        finish(self.span, error);
    }
}
