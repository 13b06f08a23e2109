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
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("varsel".to_owned()), None).unwrap_or_default();
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route and status"),
            &["method", "route", "status"],
        )
        .unwrap_or_else(|_| unreachable_metric());
        let latency = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency"),
            &["method", "route"],
        )
        .unwrap_or_else(|_| unreachable_metric());
        let counter = |name: &str, help: &str| {
            IntCounter::new(name, help).unwrap_or_else(|_| unreachable_metric())
        };
        let observations_accepted = counter("observations_accepted_total", "Observations stored");
        let observations_rejected = counter(
            "observations_rejected_total",
            "Observations rejected as invalid",
        );
        let addresses_attributed = counter(
            "addresses_attributed_total",
            "Addresses attributed by lookups",
        );
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(observations_accepted.clone()),
            Box::new(observations_rejected.clone()),
            Box::new(addresses_attributed.clone()),
        ] {
            // Only fails for duplicate names, which the list above has none of.
            let _ = registry.register(c);
        }
        Self {
            registry,
            requests,
            latency,
            observations_accepted,
            observations_rejected,
            addresses_attributed,
        }
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

// Metric names and label sets above are constants that are valid; the
// constructors only fail on invalid names.
#[cold]
fn unreachable_metric<T>() -> T {
    panic!("invalid metric definition")
}
