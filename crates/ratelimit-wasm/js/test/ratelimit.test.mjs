// The wrapper's errors and key table, and the edge-worker example, under
// node's test runner (`cargo xtask wasm` runs it with RATELIMIT_WASM set
// to the module it built).

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { createWorker } from "../../examples/edge-worker.mjs";
import { InsufficientCapacityError, Limiter, RateLimitError, load } from "../ratelimit.mjs";

const wasm = readFileSync(process.env.RATELIMIT_WASM ?? "target/wasm32-unknown-unknown/wasm/ratelimit_wasm.wasm");
const rl = await load(wasm);
const S = 1_000_000_000n;

test("bad configurations are errors with the core's message", () => {
  assert.throws(() => rl.policy({ algorithm: "token_bucket", capacity: 1, rate: 1 }), /unknown algorithm/);
  assert.throws(() => rl.policy({ algorithm: "token-bucket", capacity: 0, rate: 1 }), {
    name: "RateLimitError",
    message: "capacity must be at least 1",
  });
  assert.throws(() => rl.policy({ algorithm: "token-bucket", capacity: 1, rate: "fast" }), /rate must be a decimal number/);
  assert.throws(() => rl.policy({ algorithm: "leaky-bucket", capacity: -1, rate: 1 }), /capacity must be in 0\.\.2\^64/);
  assert.throws(() => rl.policy({ algorithm: "fixed-window", capacity: 1 }), /needs a window/);
  assert.throws(() => rl.policy({ algorithm: "sliding-window", capacity: 2 ** 32, windowMs: 1000 }), /below 2\^32/);
});

test("a cost above the capacity throws and stores nothing", () => {
  const p = rl.policy({ algorithm: "token-bucket", capacity: 3, rate: "0.5" });
  assert.equal(p.periodNs, 2n * S);
  assert.throws(() => p.check(0n, S, 4), (e) => e instanceof InsufficientCapacityError && e.capacity === 3n);
  const d = p.check(0n, S, 3);
  assert.deepEqual([d.allowed, d.remaining, d.changed], [true, 0n, true]);
  const denied = p.check(d.state, S, 1);
  assert.deepEqual([denied.allowed, denied.retryAfterNs, denied.changed], [false, 2n * S, false]);
});

test("windows police but cannot shape", () => {
  const p = rl.policy({ algorithm: "fixed-window", capacity: 2, windowMs: 1000 });
  assert.throws(() => p.reserve(0n, S), (e) => e instanceof RateLimitError && /cannot shape/.test(e.message));
  const first = p.check(0n, S + 1n, 2);
  assert.equal(first.state >> 64n, 1n, "window index 1 in the high word");
  assert.equal(p.check(first.state, S + 2n, 1).retryAfterNs, S - 2n);
});

test("a full key table denies new keys until one expires", () => {
  let now = S;
  const limiter = new Limiter(rl.policy({ algorithm: "token-bucket", capacity: 1, rate: 1 }), {
    clock: () => now,
    maxKeys: 2,
  });
  assert.ok(limiter.check("a").allowed);
  assert.ok(limiter.check("b").allowed);
  const third = limiter.check("c");
  assert.deepEqual([third.allowed, third.reason], [false, "key-table-full"]);
  now += S; // "a" and "b" are full buckets again: forgettable
  assert.ok(limiter.check("c").allowed);
  assert.equal(limiter.size, 1);
});

test("the edge worker answers 429 with Retry-After once a client is over", async () => {
  let now = 10n * S;
  const worker = await createWorker(new WebAssembly.Module(wasm), { burst: 3, perSecond: 1, clock: () => now });
  const from = (ip) => new Request("https://example.test/", { headers: { "cf-connecting-ip": ip } });
  for (const left of [2, 1, 0]) {
    const ok = await worker.fetch(from("192.0.2.1"));
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get("RateLimit"), `"per-ip";r=${left}`);
    assert.equal(ok.headers.get("RateLimit-Policy"), `"per-ip";q=3;w=3`);
  }
  const over = await worker.fetch(from("192.0.2.1"));
  assert.equal(over.status, 429);
  assert.equal(over.headers.get("Retry-After"), "1");
  assert.equal((await worker.fetch(from("198.51.100.7"))).status, 200, "another client has its own bucket");
  now += S;
  assert.equal((await worker.fetch(from("192.0.2.1"))).status, 200, "one token back after a second");
});
