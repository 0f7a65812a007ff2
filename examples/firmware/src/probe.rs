//! One token-bucket decision in functions of their own, kept out of line
//! so that `cargo xtask embedded` can measure their code in the image (the
//! conformance run inlines the core everywhere), and a self-test that uses
//! them on inputs the optimiser cannot see through.

use core::hint::black_box;
use core::time::Duration;

use ratelimit_embedded::{Algorithm, Decision, InsufficientCapacity, Limiter, Rate, TokenBucket};

/// `TokenBucket::check`: the full decision (`allowed`, `remaining`,
/// `retry_after`, `reset_after`) and the state to store.
#[inline(never)]
pub(crate) fn token_bucket_check(
    bucket: &TokenBucket,
    tat: u64,
    now: u64,
    cost: u64,
) -> Result<(Decision, Option<u64>), InsufficientCapacity> {
    bucket
        .check(tat, now, cost)
        .map(|step| (step.decision, step.next))
}

/// The policing step alone (`check_verdict`): allowed or not, and the state
/// to store, without building the decision.
#[inline(never)]
pub(crate) fn token_bucket_verdict(
    bucket: &TokenBucket,
    tat: u64,
    now: u64,
    cost: u64,
) -> Option<(bool, Option<u64>)> {
    bucket
        .check_verdict(tat, now, cost)
        .ok()
        .map(|v| (v.allowed(), v.next()))
}

/// `Limiter::check_at` on a token bucket: the step in a critical section,
/// then the decision.
#[inline(never)]
pub(crate) fn limiter_check(
    limiter: &Limiter<TokenBucket>,
    now: u64,
    cost: u64,
) -> Result<Decision, InsufficientCapacity> {
    limiter.check_at(now, cost)
}

/// A token bucket of 3 refilled at 2 per second: three admitted at once,
/// the fourth told to wait 500 ms, through each probe.
pub(crate) fn self_test() -> Result<(), &'static str> {
    const S: u64 = 1_000_000_000;
    let bucket = black_box(TokenBucket::with_rate(3, Rate::per_second(2)).map_err(|_| "quota")?);
    let now = black_box(S);
    let mut tat = 0;
    for left in [2, 1, 0] {
        let (decision, next) = token_bucket_check(&bucket, tat, now, 1).map_err(|_| "cost")?;
        if !decision.allowed || decision.remaining != left {
            return Err("token_bucket_check admitted wrongly");
        }
        tat = next.ok_or("no state stored")?;
    }
    let (denied, next) = token_bucket_check(&bucket, tat, now, 1).map_err(|_| "cost")?;
    if denied.allowed || denied.retry_after != Some(Duration::from_millis(500)) || next.is_some() {
        return Err("token_bucket_check denied wrongly");
    }
    if token_bucket_verdict(&bucket, tat, now + S / 2, 1) != Some((true, Some(tat + S / 2))) {
        return Err("token_bucket_verdict");
    }
    if token_bucket_check(&bucket, 0, now, 4).is_ok() {
        return Err("a cost above the capacity was accepted");
    }
    let limiter = Limiter::new(bucket);
    let admitted = (0..4)
        .filter(|_| limiter_check(&limiter, now, 1).is_ok_and(|d| d.allowed))
        .count();
    if admitted != 3 || limiter.state() != bucket.limit() * (S / 2) + now {
        return Err("limiter_check");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_self_test_passes_on_the_host() {
        assert_eq!(super::self_test(), Ok(()));
    }
}
