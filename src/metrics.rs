//! Prometheus metrics, rendered at `/metrics`. One registry per application
//! (not a process global), so tests can run several apps side by side.

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    pub observations_accepted: IntCounter,
    pub observations_rejected: IntCounter,
    pub addresses_attributed: IntCounter,
    pub findings_refolds: IntCounter,
    pub findings_replays: IntCounter,
}

impl Metrics {
    /// Fails only on an invalid metric definition, i.e. a programming error
    /// caught at start-up.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("varsel".to_owned()), None)?;
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route and status"),
            &["method", "route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency"),
            &["method", "route"],
        )?;
        let observations_accepted =
            IntCounter::new("observations_accepted_total", "Observations stored")?;
        let observations_rejected = IntCounter::new(
            "observations_rejected_total",
            "Observations rejected as invalid",
        )?;
        let addresses_attributed = IntCounter::new(
            "addresses_attributed_total",
            "Addresses attributed by lookups",
        )?;
        let findings_refolds = IntCounter::new(
            "findings_refolds_total",
            "Ingest chunks folded again because another request changed the same findings",
        )?;
        let findings_replays = IntCounter::new(
            "findings_replays_total",
            "Finding keys folded again from all their inputs because one arrived late",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(observations_accepted.clone()))?;
        registry.register(Box::new(observations_rejected.clone()))?;
        registry.register(Box::new(addresses_attributed.clone()))?;
        registry.register(Box::new(findings_refolds.clone()))?;
        registry.register(Box::new(findings_replays.clone()))?;
        Ok(Self {
            registry,
            requests,
            latency,
            observations_accepted,
            observations_rejected,
            addresses_attributed,
            findings_refolds,
            findings_replays,
        })
    }

    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.requests
            .with_label_values(&[method, route, &status.to_string()])
            .inc();
        self.latency
            .with_label_values(&[method, route])
            .observe(elapsed.as_secs_f64());
    }

    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}
