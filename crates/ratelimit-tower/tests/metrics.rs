//! The `metrics` feature: what the layer records, read back through a
//! small in-test recorder.

use core::convert::Infallible;
use core::sync::atomic::{AtomicU64, Ordering};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Request, Response};
use metrics::{
    Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use ratelimit_core::{ManualClock, Rate, TokenBucket};
use ratelimit_memory::KeyedLimiter;
use ratelimit_tower::{CostFn, HeaderKey, RateLimitLayer};
use tower::{Layer, ServiceExt, service_fn};

/// Counters (sum of increments) and histograms (number of samples), by
/// `name{label=value,...}`.
#[derive(Default)]
struct Recorded {
    values: Mutex<BTreeMap<String, Arc<Cell>>>,
}

#[derive(Default)]
struct Cell(AtomicU64);

impl CounterFn for Cell {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }
}

impl HistogramFn for Cell {
    fn record(&self, _value: f64) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

impl Recorded {
    fn cell(&self, key: &Key) -> Arc<Cell> {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        Arc::clone(self.values.lock().unwrap().entry(name).or_default())
    }

    fn snapshot(&self) -> Vec<(String, u64)> {
        self.values
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.0.load(Ordering::Relaxed)))
            .collect()
    }
}

impl Recorder for &Recorded {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.cell(key))
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.cell(key))
    }
}

#[test]
fn decisions_errors_and_latency_are_recorded() {
    let recorded = Recorded::default();
    let clock = Arc::new(ManualClock::new(0));
    let limiter = KeyedLimiter::<String, _, _>::builder(
        TokenBucket::with_rate(2, Rate::per_minute(1)).unwrap(),
    )
    .clock(clock)
    .build();
    let cost = CostFn(|req: &Request<()>| if req.uri().path() == "/big" { 5 } else { 1 });
    let layer = RateLimitLayer::new(limiter, HeaderKey::api_key())
        .name("api")
        .unwrap()
        .cost(cost);
    let service = layer.layer(service_fn(|_: Request<()>| {
        core::future::ready(Ok::<_, Infallible>(Response::new(String::new())))
    }));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    metrics::with_local_recorder(&&recorded, || {
        runtime.block_on(async {
            for path in ["/", "/", "/", "/big"] {
                let request = Request::get(path)
                    .header("x-api-key", "k")
                    .body(())
                    .unwrap();
                service.clone().oneshot(request).await.unwrap();
            }
        });
    });
    assert_eq!(
        recorded.snapshot(),
        [
            (
                "ratelimit_backend_errors_total{limiter=api,kind=cost_above_capacity}".to_owned(),
                1
            ),
            (
                "ratelimit_backend_latency_seconds{limiter=api}".to_owned(),
                4
            ),
            (
                "ratelimit_decisions_total{limiter=api,outcome=allowed}".to_owned(),
                2
            ),
            (
                "ratelimit_decisions_total{limiter=api,outcome=denied}".to_owned(),
                1
            ),
        ]
    );
}
