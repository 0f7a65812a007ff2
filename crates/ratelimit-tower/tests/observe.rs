//! The `metrics` and `tracing` features: what the layer records, read back
//! through a small in-test recorder and subscriber, as a user's Prometheus
//! exporter and log would see it.

use core::convert::Infallible;
use core::net::IpAddr;
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
use ratelimit_tower::{ClientIp, CostFn, HeaderKey, KeyFn, MissingKey, RateLimitLayer};
use tower::{Layer, ServiceExt, service_fn};

/// A description: the kind of metric, its unit and its text.
type Description = (&'static str, Option<Unit>, String);

/// Counters (sum of increments), histograms (number of samples) by
/// `name{label=value,...}`, and descriptions by name.
#[derive(Default)]
struct Recorded {
    values: Mutex<BTreeMap<String, Arc<Cell>>>,
    descriptions: Mutex<BTreeMap<String, Description>>,
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

    fn describe(&self, kind: &'static str, name: KeyName, unit: Option<Unit>, text: SharedString) {
        self.descriptions
            .lock()
            .unwrap()
            .insert(name.as_str().to_owned(), (kind, unit, text.into_owned()));
    }
}

impl Recorder for &Recorded {
    fn describe_counter(&self, name: KeyName, unit: Option<Unit>, text: SharedString) {
        self.describe("counter", name, unit, text);
    }
    fn describe_gauge(&self, name: KeyName, unit: Option<Unit>, text: SharedString) {
        self.describe("gauge", name, unit, text);
    }
    fn describe_histogram(&self, name: KeyName, unit: Option<Unit>, text: SharedString) {
        self.describe("histogram", name, unit, text);
    }
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

fn ok() -> impl tower::Service<
    Request<()>,
    Response = Response<String>,
    Error = Infallible,
    Future = core::future::Ready<Result<Response<String>, Infallible>>,
> + Clone {
    service_fn(|_: Request<()>| {
        core::future::ready(Ok::<_, Infallible>(Response::new(String::new())))
    })
}

#[test]
fn every_outcome_is_counted_and_every_metric_described() {
    let recorded = Recorded::default();
    let clock = Arc::new(ManualClock::new(0));
    let limiter = KeyedLimiter::<String, _, _>::builder(
        TokenBucket::with_rate(2, Rate::per_minute(1)).unwrap(),
    )
    .clock(clock)
    .build();
    let cost = CostFn(|req: &Request<()>| if req.uri().path() == "/big" { 5 } else { 1 });
    let service = RateLimitLayer::builder(limiter, HeaderKey::api_key())
        .name("api")
        .cost(cost)
        .build()
        .unwrap()
        .layer(ok());
    let unlimited = RateLimitLayer::builder(
        KeyedLimiter::<String, _>::with_algorithm(
            TokenBucket::with_rate(1, Rate::per_minute(1)).unwrap(),
        ),
        KeyFn::new(|_: &Request<()>| None::<String>),
    )
    .name("open")
    .missing_key(MissingKey::Allow)
    .build()
    .unwrap()
    .layer(ok());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    metrics::with_local_recorder(&&recorded, || {
        runtime.block_on(async {
            let requests = [
                ("/", Some("k".to_owned())),
                ("/", Some("k".to_owned())),
                ("/", Some("k".to_owned())),
                ("/big", Some("k".to_owned())),
                ("/", None),
                ("/", Some("k".repeat(257))),
                ("/", Some("caf\u{e9}".to_owned())),
            ];
            for (path, key) in requests {
                let mut request = Request::get(path);
                if let Some(key) = key {
                    request = request.header("x-api-key", key);
                }
                service
                    .clone()
                    .oneshot(request.body(()).unwrap())
                    .await
                    .unwrap();
            }
            unlimited
                .clone()
                .oneshot(Request::get("/").body(()).unwrap())
                .await
                .unwrap();
        });
    });
    let counted =
        |outcome: &str| format!("ratelimit_requests_total{{limiter=api,outcome={outcome}}}");
    assert_eq!(
        recorded.snapshot(),
        [
            (
                "ratelimit_backend_latency_seconds{limiter=api}".to_owned(),
                4
            ),
            (counted("allowed"), 2),
            (counted("cost_above_capacity"), 1),
            (counted("denied"), 1),
            (counted("invalid_key"), 1),
            (counted("key_too_long"), 1),
            (counted("missing_key"), 1),
            (
                "ratelimit_requests_total{limiter=open,outcome=unlimited}".to_owned(),
                1
            ),
        ]
    );
    let descriptions = recorded.descriptions.lock().unwrap();
    let kinds: Vec<(&str, &str, Option<Unit>)> = descriptions
        .iter()
        .map(|(name, (kind, unit, _))| (name.as_str(), *kind, *unit))
        .collect();
    assert_eq!(
        kinds,
        [
            (
                "ratelimit_backend_latency_seconds",
                "histogram",
                Some(Unit::Seconds)
            ),
            (
                "ratelimit_fallback_decisions_total",
                "counter",
                Some(Unit::Count)
            ),
            ("ratelimit_requests_total", "counter", Some(Unit::Count)),
        ]
    );
    assert!(
        descriptions["ratelimit_requests_total"]
            .2
            .contains("key_too_long")
    );
}

/// A subscriber that keeps the messages of warnings.
#[derive(Default, Clone)]
struct Warnings(Arc<Mutex<Vec<String>>>);

struct Message<'a>(&'a mut String);

impl tracing::field::Visit for Message<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn core::fmt::Debug) {
        if field.name() == "message" {
            *self.0 = format!("{value:?}");
        }
    }
}

impl tracing::Subscriber for Warnings {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if *event.metadata().level() == tracing::Level::WARN {
            let mut message = String::new();
            event.record(&mut Message(&mut message));
            self.0.lock().unwrap().push(message);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn a_missing_client_address_is_logged_once() {
    let warnings = Warnings::default();
    let recorded = Recorded::default();
    let limiter = KeyedLimiter::<IpAddr, _>::with_algorithm(
        TokenBucket::with_rate(5, Rate::per_minute(1)).unwrap(),
    );
    let service = RateLimitLayer::new(limiter, ClientIp::new()).layer(ok());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    tracing::subscriber::with_default(warnings.clone(), || {
        metrics::with_local_recorder(&&recorded, || {
            runtime.block_on(async {
                for _ in 0..3 {
                    let response = service
                        .clone()
                        .oneshot(Request::get("/").body(()).unwrap())
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 500);
                }
            });
        });
    });
    let warnings = warnings.0.lock().unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("into_make_service_with_connect_info::<SocketAddr>()"),
        "{}",
        warnings[0]
    );
    assert_eq!(
        recorded.snapshot(),
        [(
            "ratelimit_requests_total{limiter=default,outcome=no_client_address}".to_owned(),
            3
        )]
    );
}
