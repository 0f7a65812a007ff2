"""The conformance scenarios (buckets and windows), run through the Python
API: every answer, to the nanosecond, as the contract gives it. Time comes
from a ManualClock set to each event's `t_ns`; the memory limiters read it,
the Redis limiters send it (client time).

The scenario files are the repository's copies
(crates/ratelimit-replay/conformance/). The quota changes (policies-*)
run through the bucket limiters' `reconfigure` and `*_with_quota`, in
memory and in Redis."""

import gzip
import json

import pytest

import rate_limiter
from conftest import REPO
from rate_limiter import InsufficientCapacity, ManualClock

CONFORMANCE = REPO / "crates" / "ratelimit-replay" / "conformance"
BUCKET_FILES = ["scenarios-ns.jsonl.gz", "scenarios-us.jsonl.gz"]
WINDOW_FILES = ["windows-ns.jsonl.gz", "windows-us.jsonl.gz"]

CLASSES = {
    "token-bucket": "TokenBucket",
    "leaky-bucket": "LeakyBucket",
    "fixed-window": "FixedWindow",
    "sliding-window": "SlidingWindow",
}


def load(name):
    path = CONFORMANCE / name
    assert path.exists(), f"{path} is missing: the conformance files are part of the repository"
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f]


def build(scenario, backend, clock, **options):
    cls = getattr(rate_limiter, CLASSES[scenario["algorithm"]] + backend)
    if "window_ns" in scenario:
        # A window of whole nanoseconds, given as seconds: the float's
        # shortest decimal is read back to the same nanoseconds.
        window = scenario["window_ns"] / 1e9
        return cls(scenario["capacity"], window, clock=clock, **options)
    return cls(scenario["capacity"], float(scenario["rate"]), clock=clock, **options)


def answer(limiter, event, quota=None):
    """The event's answer as the scenario files write it; `quota`: the key's
    own (capacity, rate), if it has one."""
    key, cost = event["key"], event.get("cost", 1)

    def check(cost):
        if quota is None:
            return limiter.check(key, cost)
        return limiter.check_with_quota(key, *quota, cost)

    if event["op"] == "check":
        try:
            d = check(cost)
        except InsufficientCapacity:
            d = check(0)
            return {"allowed": False, "remaining": d.remaining, "retry_after_ns": None,
                    "reset_after_ns": d.reset_after_ns}
        return {"allowed": d.allowed, "remaining": d.remaining,
                "retry_after_ns": d.retry_after_ns, "reset_after_ns": d.reset_after_ns}
    max_wait_ns = event.get("max_wait_ns")
    max_wait = None if max_wait_ns is None else max_wait_ns / 1e9
    try:
        if quota is None:
            r = limiter.reserve(key, cost, max_wait)
        else:
            r = limiter.reserve_with_quota(key, *quota, cost, max_wait)
    except InsufficientCapacity:
        return {"allowed": False, "retry_after_ns": None}
    if r.admitted:
        return {"allowed": True, "wait_ns": r.wait_ns}
    return {"allowed": False, "retry_after_ns": r.retry_after_ns}


def run(scenario, backend, **options):
    clock = ManualClock()
    limiter = build(scenario, backend, clock, **options)
    for index, (event, expected) in enumerate(zip(scenario["events"], scenario["expected"])):
        clock.set_ns(event["t_ns"])
        got = answer(limiter, event)
        assert got == expected, (
            f"scenario {scenario['id']} ({scenario['algorithm']}) event {index}: {event}\n"
            f"  expected {expected}\n  got      {got}"
        )
    return len(scenario["events"])


def run_policies(scenario, backend="Memory", **options):
    """A policies scenario: `reconfigure` events change the limiter's quota;
    a check or reserve with its own capacity and rate puts its key on that
    quota from then on (as the replay does)."""
    clock = ManualClock()
    limiter = build(scenario, backend, clock, **options)
    own = {}
    for index, (event, expected) in enumerate(zip(scenario["events"], scenario["expected"])):
        clock.set_ns(event["t_ns"])
        if event["op"] == "reconfigure":
            limiter.reconfigure(event["capacity"], float(event["rate"]),
                                strategy=event.get("strategy"))
            got = {"reconfigured": True}
        else:
            if "capacity" in event:
                own[event["key"]] = (event["capacity"], float(event["rate"]))
            got = answer(limiter, event, own.get(event["key"]))
        assert got == expected, (
            f"scenario {scenario['id']} ({scenario['algorithm']}) event {index}: {event}\n"
            f"  expected {expected}\n  got      {got}"
        )
    return len(scenario["events"])


@pytest.mark.parametrize("name", ["policies-ns.jsonl.gz", "policies-us.jsonl.gz"])
def test_memory_passes_every_policies_scenario(name):
    scenarios = load(name)
    assert len(scenarios) >= 40
    assert sum(run_policies(s) for s in scenarios) > 500


@pytest.mark.parametrize("name", ["policies-ns.jsonl.gz", "policies-us.jsonl.gz"])
def test_redis_passes_every_policies_scenario(name, redis_client):
    # Client time: each change and decision at the event's nanosecond.
    for s in load(name):
        run_policies(s, "Redis", redis_client=redis_client, prefix=f"pol{name[9:11]}{s['id']}")


@pytest.mark.parametrize("name", BUCKET_FILES + WINDOW_FILES)
def test_memory_passes_every_scenario(name):
    scenarios = load(name)
    assert len(scenarios) >= 60
    events = sum(run(s, "Memory") for s in scenarios)
    assert events > 1000


@pytest.mark.parametrize("name", ["scenarios-us.jsonl.gz"])
def test_redis_passes_every_microsecond_scenario(name, redis_client):
    # Redis keeps time in whole microseconds under server time; with client
    # time the scripts compute in nanoseconds, so the `us` file (and the
    # `ns` file below) must match every field exactly.
    scenarios = load(name)
    for s in scenarios:
        run(s, "Redis", redis_client=redis_client, prefix=f"conf{s['id']}")


def test_redis_passes_every_nanosecond_scenario(redis_client):
    for s in load("scenarios-ns.jsonl.gz"):
        run(s, "Redis", redis_client=redis_client, prefix=f"conf{s['id']}")
