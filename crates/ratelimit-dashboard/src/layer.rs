//! [`Recorded`]: a [`Limiter`] that feeds a [`Recorder`] with every
//! decision of the limiter it wraps: how the tower layer feeds the
//! dashboard (feature `tower`), with no change to the layer.

use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Context, Poll, ready};
use std::sync::Arc;

use pin_project_lite::pin_project;
use ratelimit_core::{AnyAlgorithm, Decision};
use ratelimit_tower::{Answer, Checked, LimitError, Limiter};

use crate::key::{KeySnap, RecordKey};
use crate::recorder::Recorder;

/// A limiter that records each of its decisions in a [`Recorder`]: give
/// it to the layer in place of the limiter.
///
/// ```
/// use ratelimit_dashboard::{Recorded, Recorder};
/// use ratelimit_memory::{KeyedLimiter, Rate, TokenBucket};
/// use ratelimit_tower::{HeaderKey, RateLimitLayer};
///
/// let recorder = Recorder::start();
/// let limiter = KeyedLimiter::<String, _>::with_algorithm(TokenBucket::with_rate(10, Rate::per_second(1))?);
/// let layer = RateLimitLayer::builder(Recorded::new(limiter, &recorder).name("api"), HeaderKey::api_key())
///     .name("api")
///     .build()?;
/// # let _ = layer;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Per check it copies the key's first bytes into the future (no
/// allocation) and clones one `Arc`; the quota is registered with the
/// recorder on the first check.
pub struct Recorded<L> {
    limiter: L,
    recorder: Recorder,
    name: Arc<str>,
    registered: AtomicBool,
}

impl<L> core::fmt::Debug for Recorded<L> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Recorded")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<L> Recorded<L> {
    /// `limiter`, recorded in `recorder`, its quota listed as `"default"`.
    pub fn new(limiter: L, recorder: &Recorder) -> Self {
        Self {
            limiter,
            recorder: recorder.clone(),
            name: Arc::from(ratelimit_tower::DEFAULT_POLICY_NAME),
            registered: AtomicBool::new(false),
        }
    }

    /// The name its quota is listed under (the layer's policy name, say).
    #[must_use]
    pub fn name(mut self, name: &str) -> Self {
        self.name = Arc::from(name);
        self
    }

    /// The limiter.
    pub fn inner(&self) -> &L {
        &self.limiter
    }
}

impl<K, L> Limiter<K> for Recorded<L>
where
    K: RecordKey,
    L: Limiter<K>,
    // One limit's answer (a decision or an error); an `AllOf`'s combined
    // answer is recorded by wrapping each of its limits instead.
    <L::Future as Future>::Output: OneLimit,
{
    type Future = RecordedFuture<L::Future>;

    #[inline]
    fn check(&self, key: K, cost: u64) -> Self::Future {
        // Relaxed: at worst two first checks both register the same quota.
        if !self.registered.load(Ordering::Relaxed) {
            self.registered.store(true, Ordering::Relaxed);
            self.recorder
                .add_quota(&self.name, &self.limiter.algorithm(&key));
        }
        let snap = KeySnap::of(&key);
        RecordedFuture {
            check: self.limiter.check(key, cost),
            key: snap,
            recorder: self.recorder.clone(),
        }
    }

    #[inline]
    fn algorithm(&self, key: &K) -> AnyAlgorithm {
        self.limiter.algorithm(key)
    }
}

pin_project! {
    /// The future of [`Recorded`]: the wrapped limiter's, recorded when it
    /// completes.
    pub struct RecordedFuture<F> {
        #[pin]
        check: F,
        key: KeySnap,
        recorder: Recorder,
    }
}

impl<F> core::fmt::Debug for RecordedFuture<F> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RecordedFuture")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl<F> Future for RecordedFuture<F>
where
    F: Future<Output: OneLimit>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let answer = ready!(this.check.poll(cx));
        match answer.decision() {
            Ok(decision) => this.recorder.record_snap(this.key, decision),
            Err(_) => this.recorder.record_error(),
        }
        Poll::Ready(answer)
    }
}

/// A limiter's answer about one limit, which [`Recorded`] can record: the
/// plain `Result<Decision, LimitError>` of the Redis limiters and the
/// [`Checked`] of the memory ones.
pub trait OneLimit: Answer {
    /// The decision, or the error that took its place.
    fn decision(&self) -> Result<&Decision, &LimitError>;
}

impl OneLimit for Result<Decision, LimitError> {
    fn decision(&self) -> Result<&Decision, &LimitError> {
        self.as_ref()
    }
}

impl OneLimit for Checked {
    fn decision(&self) -> Result<&Decision, &LimitError> {
        self.result.as_ref()
    }
}
