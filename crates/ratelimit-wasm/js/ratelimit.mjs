// The ratelimit WebAssembly module for JavaScript: exact token bucket,
// leaky bucket, fixed and sliding window decisions (the same answers, to
// the nanosecond, as the Rust crates), in browsers, Node.js and edge
// workers. No dependencies; no Node.js API, so it runs wherever
// WebAssembly and BigInt do.
//
//   const rl = await load(bytesOrModuleOrResponse);
//   const policy = rl.policy({ algorithm: "token-bucket", capacity: 10, rate: 2 });
//   const limiter = new Limiter(policy);       // one state per key, in a Map
//   limiter.check("user-1").allowed;
//
// `Policy` is pure: `policy.check(state, nowNs, cost)` returns the decision
// and the state to store, for callers that keep states elsewhere (a KV
// store, a Durable Object, localStorage). Times and states are BigInt
// nanoseconds; the state of a key never seen is 0n.
//
// The module's ABI is documented in crates/ratelimit-wasm/src/lib.rs.

/** The algorithms, in the order of their ABI codes. */
export const ALGORITHMS = ["token-bucket", "leaky-bucket", "fixed-window", "sliding-window"];

const ALLOWED = 1;
const STORE = 2;
const RETRY_AFTER = 4;
const ERR_CAPACITY = -2;

// Byte offsets in the I/O block.
const STATE_LO = 0;
const STATE_HI = 8;
const REMAINING = 16;
const RETRY = 24;
const RESET = 32;
const WAIT = 40;
const EXPIRES = 48;
const AUX = 56;
const TEXT = 64;
const TEXT_BYTES = 256;

const U64 = (1n << 64n) - 1n;

/** `value` as a BigInt in 0..2^64, or a RateLimitError naming it. */
function u64(name, value) {
  let n;
  try {
    n = BigInt(value);
  } catch {
    throw new RateLimitError(`${name} must be an integer, got ${value}`);
  }
  if (n < 0n || n > U64) throw new RateLimitError(`${name} must be in 0..2^64, got ${value}`);
  return n;
}

/** A configuration the core refuses, or a misuse of the API. */
export class RateLimitError extends Error {
  constructor(message) {
    super(message);
    this.name = "RateLimitError";
  }
}

/** A cost above the limit: such a request can never succeed. */
export class InsufficientCapacityError extends RateLimitError {
  constructor(cost, capacity) {
    super(`cost ${cost} exceeds the capacity ${capacity}: the request can never succeed`);
    this.name = "InsufficientCapacityError";
    this.cost = cost;
    this.capacity = capacity;
  }
}

/**
 * Instantiates the module from a `WebAssembly.Module` (edge workers import
 * one), its bytes (an `ArrayBuffer` or typed array), or a `Response` (or
 * a promise of one, as `fetch` returns: streamed compilation).
 */
export async function load(source) {
  let instance;
  if (source instanceof WebAssembly.Module) {
    instance = await WebAssembly.instantiate(source, {});
  } else if (
    typeof Response !== "undefined" &&
    (source instanceof Response || source instanceof Promise)
  ) {
    ({ instance } = await WebAssembly.instantiateStreaming(source, {}));
  } else {
    ({ instance } = await WebAssembly.instantiate(source, {}));
  }
  return new RateLimit(instance.exports);
}

/** An instance of the module: builds policies. */
export class RateLimit {
  #x;
  #io;
  #dv = null;

  constructor(exports) {
    this.#x = exports;
    this.#io = exports.rl_io();
  }

  /** A view of the I/O block (made anew if the memory grew: a new buffer). */
  #view() {
    const buffer = this.#x.memory.buffer;
    if (this.#dv === null || this.#dv.buffer !== buffer) {
      this.#dv = new DataView(buffer, this.#io, TEXT + TEXT_BYTES);
    }
    return this.#dv;
  }

  #text(length) {
    const bytes = new Uint8Array(this.#x.memory.buffer, this.#io + TEXT, Number(length));
    return new TextDecoder().decode(bytes);
  }

  /** Throws the module's error for a negative code. */
  #fail(code) {
    throw new RateLimitError(this.#text(this.#view().getBigUint64(AUX, true)));
  }

  /**
   * A policy: `algorithm` (one of ALGORITHMS) and `capacity` (a bucket's C,
   * a window's limit), with `rate` (units per second, a number or decimal
   * text such as "0.5" or "2.5e6") for a bucket, or `windowMs` /
   * `windowNs` for a window. Throws RateLimitError with the core's message
   * if the configuration is unusable.
   */
  policy({ algorithm, capacity, rate, windowMs, windowNs }) {
    const kind = ALGORITHMS.indexOf(algorithm);
    if (kind < 0) {
      throw new RateLimitError(`unknown algorithm ${JSON.stringify(algorithm)}: expected one of ${ALGORITHMS.join(", ")}`);
    }
    const limit = u64("capacity", capacity);
    let period;
    if (kind < 2) {
      if (rate === undefined) throw new RateLimitError(`${algorithm} needs a rate (units per second)`);
      const bytes = new TextEncoder().encode(String(rate));
      if (bytes.length > TEXT_BYTES) throw new RateLimitError("the rate's text is longer than 256 bytes");
      new Uint8Array(this.#x.memory.buffer, this.#io + TEXT, bytes.length).set(bytes);
      const code = this.#x.rl_rate(bytes.length);
      if (code < 0) this.#fail(code);
      period = this.#view().getBigUint64(AUX, true);
    } else {
      if (windowNs !== undefined) period = u64("windowNs", windowNs);
      else if (windowMs !== undefined) period = u64("windowNs", u64("windowMs", windowMs) * 1_000_000n);
      else throw new RateLimitError(`${algorithm} needs a window (windowMs or windowNs)`);
    }
    const code = this.#x.rl_validate(kind, limit, period);
    if (code < 0) this.#fail(code);
    return new Policy(this, kind, limit, period);
  }

  /** @internal */
  _check(kind, limit, period, state, now, cost) {
    const s = BigInt(state);
    if (s < 0n || s >> 128n !== 0n) throw new RateLimitError(`state must be in 0..2^128, got ${state}`);
    const c = u64("cost", cost);
    const flags = this.#x.rl_check(kind, limit, period, s & U64, s >> 64n, u64("now", now), c);
    if (flags === ERR_CAPACITY) throw new InsufficientCapacityError(c, limit);
    if (flags < 0) this.#fail(flags);
    const v = this.#view();
    return {
      allowed: (flags & ALLOWED) !== 0,
      remaining: v.getBigUint64(REMAINING, true),
      retryAfterNs: flags & RETRY_AFTER ? v.getBigUint64(RETRY, true) : null,
      resetAfterNs: v.getBigUint64(RESET, true),
      expiresAtNs: v.getBigUint64(EXPIRES, true),
      state: (v.getBigUint64(STATE_HI, true) << 64n) | v.getBigUint64(STATE_LO, true),
      changed: (flags & STORE) !== 0,
    };
  }

  /** @internal */
  _reserve(kind, limit, period, state, now, cost, maxWaitNs) {
    const bounded = maxWaitNs !== null && maxWaitNs !== undefined;
    const c = u64("cost", cost);
    const flags = this.#x.rl_reserve(
      kind, limit, period, u64("state", state), u64("now", now), c,
      bounded ? u64("maxWaitNs", maxWaitNs) : 0n, bounded ? 1 : 0,
    );
    if (flags === ERR_CAPACITY) throw new InsufficientCapacityError(c, limit);
    if (flags < 0) this.#fail(flags);
    const v = this.#view();
    const admitted = (flags & ALLOWED) !== 0;
    return {
      admitted,
      waitNs: admitted ? v.getBigUint64(WAIT, true) : null,
      retryAfterNs: flags & RETRY_AFTER ? v.getBigUint64(RETRY, true) : null,
      resetAfterNs: v.getBigUint64(RESET, true),
      expiresAtNs: v.getBigUint64(EXPIRES, true),
      state: v.getBigUint64(STATE_LO, true),
      changed: (flags & STORE) !== 0,
    };
  }
}

/** One validated algorithm and quota: pure decisions over a caller's state. */
export class Policy {
  #rl;
  #kind;
  #limit;
  #period;

  constructor(rl, kind, limit, period) {
    this.#rl = rl;
    this.#kind = kind;
    this.#limit = limit;
    this.#period = period;
  }

  /** The algorithm's name. */
  get algorithm() {
    return ALGORITHMS[this.#kind];
  }

  /** The capacity (a window's limit). */
  get limit() {
    return this.#limit;
  }

  /** A bucket's emission interval T, or a window's length W, in ns. */
  get periodNs() {
    return this.#period;
  }

  /** Whether `reserve` is available (the two buckets). */
  get canShape() {
    return this.#kind < 2;
  }

  /**
   * Allows or denies a request of `cost` at `nowNs` for a key whose state
   * is `state` (0n for a key never seen): `{ allowed, remaining,
   * retryAfterNs, resetAfterNs, expiresAtNs, state, changed }`. Store
   * `state` when `changed`. Throws InsufficientCapacityError when the cost
   * exceeds the limit.
   */
  check(state, nowNs, cost = 1) {
    return this.#rl._check(this.#kind, this.#limit, this.#period, state, nowNs, cost);
  }

  /**
   * Shaping (buckets only): admits a request to proceed after `waitNs`, at
   * most `maxWaitNs` (null: any wait), or rejects it: `{ admitted, waitNs,
   * retryAfterNs, resetAfterNs, expiresAtNs, state, changed }`.
   */
  reserve(state, nowNs, cost = 1, maxWaitNs = null) {
    if (!this.canShape) {
      throw new RateLimitError(`${this.algorithm} cannot shape: reserve needs a bucket`);
    }
    return this.#rl._reserve(this.#kind, this.#limit, this.#period, state, nowNs, cost, maxWaitNs);
  }
}

/** Wall-clock nanoseconds: states survive a restart of the process. */
export const wallClock = () => BigInt(Date.now()) * 1_000_000n;

/**
 * A limiter of many keys in memory (a Map of one BigInt per key). At most
 * `maxKeys` keys are kept: keys whose state has expired (equivalent to a
 * key never seen) are dropped when the map is full, and a new key is
 * denied if none has expired, rather than forget a live one.
 */
export class Limiter {
  #policy;
  #clock;
  #maxKeys;
  #states = new Map(); // key -> { state, expiresAtNs }

  constructor(policy, { clock = wallClock, maxKeys = 100_000 } = {}) {
    this.#policy = policy;
    this.#clock = clock;
    this.#maxKeys = maxKeys;
  }

  /** The policy every key follows. */
  get policy() {
    return this.#policy;
  }

  /** The keys held now. */
  get size() {
    return this.#states.size;
  }

  /** Allows or denies a request of `cost` for `key` now. */
  check(key, cost = 1) {
    const now = this.#clock();
    const entry = this.#entry(key, now);
    if (entry === null) return full(this.#policy);
    const d = this.#policy.check(entry.state, now, cost);
    this.#store(key, d);
    return d;
  }

  /** Admits a request for `key` to proceed after a wait, or rejects it. */
  reserve(key, cost = 1, maxWaitNs = null) {
    const now = this.#clock();
    const entry = this.#entry(key, now);
    if (entry === null) return { admitted: false, waitNs: null, retryAfterNs: null, reason: "key-table-full" };
    const r = this.#policy.reserve(entry.state, now, cost, maxWaitNs);
    this.#store(key, r);
    return r;
  }

  /** The key's entry, a fresh one if there is room, or null when full. */
  #entry(key, now) {
    const entry = this.#states.get(key);
    if (entry !== undefined) return entry;
    if (this.#states.size >= this.#maxKeys) {
      for (const [k, e] of this.#states) {
        if (e.expiresAtNs <= now) this.#states.delete(k);
      }
      if (this.#states.size >= this.#maxKeys) return null;
    }
    return { state: 0n, expiresAtNs: 0n };
  }

  #store(key, result) {
    if (result.changed) {
      this.#states.set(key, { state: result.state, expiresAtNs: result.expiresAtNs });
    }
  }
}

/** The answer for a new key when the table is full. */
function full(policy) {
  return {
    allowed: false,
    remaining: 0n,
    retryAfterNs: null,
    resetAfterNs: 0n,
    reason: "key-table-full",
    limit: policy.limit,
  };
}
