//! Traces: a span per request (route template, method, status), child spans for the store's
//! jobs, rule compilation and outgoing calls (emitted where they happen, under the target
//! [`TARGET`]), and their export over OTLP/HTTP (protobuf) when `--otlp-endpoint` is given.
//!
//! Every span of ours uses the target [`TARGET`], which only the OTLP layer asks for: with
//! no exporter nobody is interested in them, and `tracing` skips them at their call sites,
//! so tracing costs nothing while it is off. A request that carries a W3C `traceparent`
//! header continues that trace.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// The `tracing` target of every span meant for export.
pub const TARGET: &str = "galley_trace";

/// Wraps a request in its server span (installed only while traces are exported).
pub async fn trace_requests(req: Request, next: Next) -> Response {
    use tracing::Instrument;
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let name = match &route {
        Some(r) => format!("{method} {r}"),
        None => method.clone(),
    };
    let span = tracing::info_span!(
        target: TARGET,
        "request",
        otel.name = %name,
        otel.kind = "server",
        http.request.method = %method,
        http.route = route.as_deref().unwrap_or(""),
        url.path = %req.uri().path(),
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    #[cfg(feature = "otel")]
    otlp::continue_trace(&span, req.headers());
    let res = next.run(req).instrument(span.clone()).await;
    let status = res.status().as_u16();
    span.record("http.response.status_code", i64::from(status));
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
    res
}

#[cfg(feature = "otel")]
pub use otlp::{otlp_layer, TraceExport, TracesError};

#[cfg(feature = "otel")]
mod otlp {
    use super::TARGET;
    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    use tracing_subscriber::filter::filter_fn;
    use tracing_subscriber::Layer;

    #[derive(Debug, thiserror::Error)]
    pub enum TracesError {
        #[error("--otlp-endpoint {0:?} is not an http(s) URL (e.g. http://127.0.0.1:4318)")]
        Endpoint(String),
        #[error("cannot set up the OTLP exporter: {0}")]
        Exporter(String),
    }

    /// The exporter's provider: [`TraceExport::shutdown`] sends what is still buffered.
    pub struct TraceExport {
        provider: SdkTracerProvider,
    }

    impl TraceExport {
        pub fn shutdown(&self) {
            if let Err(e) = self.provider.shutdown() {
                eprintln!("warning: traces not all exported at exit: {e}");
            }
        }
    }

    /// The layer that exports our spans to `endpoint` (a collector's OTLP/HTTP base URL,
    /// e.g. `http://127.0.0.1:4318`, or the full `/v1/traces` URL).
    pub fn otlp_layer<S>(endpoint: &str) -> Result<(impl Layer<S>, TraceExport), TracesError>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
    {
        let url = traces_url(endpoint)?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(url)
            .build()
            .map_err(|e| TracesError::Exporter(e.to_string()))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name("galley")
                    .build(),
            )
            .build();
        let tracer = provider.tracer("galley");
        let only_ours = filter_fn(|meta| meta.target() == TARGET);
        let layer = tracing_opentelemetry::layer()
            .with_tracer(tracer)
            // A per-layer filter: the other layers (console, stored logs) never see these.
            .with_filter(only_ours);
        Ok((layer, TraceExport { provider }))
    }

    /// `endpoint` with OTLP's traces path when it names only the collector.
    fn traces_url(endpoint: &str) -> Result<String, TracesError> {
        let e = endpoint.trim().trim_end_matches('/');
        let rest = e
            .strip_prefix("http://")
            .or_else(|| e.strip_prefix("https://"))
            .filter(|r| !r.is_empty())
            .ok_or_else(|| TracesError::Endpoint(endpoint.to_owned()))?;
        Ok(if rest.contains('/') {
            e.to_owned()
        } else {
            format!("{e}/v1/traces")
        })
    }

    struct Headers<'a>(&'a http::HeaderMap);

    impl opentelemetry::propagation::Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(|k| k.as_str()).collect()
        }
    }

    /// Makes `span` a child of the caller's span when the request carries `traceparent`.
    pub(super) fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
        if span.is_disabled() || !headers.contains_key("traceparent") {
            return;
        }
        let parent = TraceContextPropagator::new().extract(&Headers(headers));
        let _ = span.set_parent(parent);
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn endpoints() {
            assert_eq!(
                traces_url("http://c:4318").unwrap(),
                "http://c:4318/v1/traces"
            );
            assert_eq!(
                traces_url("http://c:4318/").unwrap(),
                "http://c:4318/v1/traces"
            );
            assert_eq!(
                traces_url("https://c/x/v1/traces").unwrap(),
                "https://c/x/v1/traces"
            );
            assert!(traces_url("c:4318").is_err());
            assert!(traces_url("http://").is_err());
        }
    }
}
