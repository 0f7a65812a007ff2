// An edge worker that rate-limits each client address with a token bucket
// (a burst of 10, then 2 requests per second), answering 429 with
// Retry-After and the IETF RateLimit fields when a client is over.
//
// It is written against the fetch-handler interface shared by Cloudflare
// Workers, Deno Deploy and Bun: a `fetch(request)` returning a Response.
// On Cloudflare, bundle the module and import it:
//
//   import wasm from "./ratelimit_wasm.wasm";          // a WebAssembly.Module
//   import { createWorker } from "./edge-worker.mjs";
//   const worker = createWorker(wasm);
//   export default { fetch: async (request) => (await worker).fetch(request) };
//
// The limiter keeps its states in the isolate's memory: each isolate
// limits on its own. For one limit across isolates, keep the state (one
// BigInt per key) in a Durable Object and use `Policy.check` directly.

import { Limiter, load } from "../js/ratelimit.mjs";

const SECOND = 1_000_000_000n;

/** Whole seconds, rounded up: what Retry-After and RateLimit carry. */
const seconds = (ns) => (ns + SECOND - 1n) / SECOND;

/**
 * Builds the worker from the compiled module (a WebAssembly.Module, its
 * bytes, or a fetch Response). `clock` returns nanoseconds (tests pass
 * their own).
 */
export async function createWorker(wasm, { burst = 10, perSecond = 2, clock } = {}) {
  const rl = await load(wasm);
  const policy = rl.policy({ algorithm: "token-bucket", capacity: burst, rate: perSecond });
  const limiter = new Limiter(policy, clock ? { clock } : {});
  // RateLimit-Policy `w`: the time a full quota takes to refill.
  const window = seconds(policy.limit * policy.periodNs);
  const policyField = `"per-ip";q=${burst};w=${window}`;

  return {
    async fetch(request) {
      const ip =
        request.headers.get("cf-connecting-ip") ??
        request.headers.get("x-real-ip") ??
        "unknown";
      const decision = limiter.check(ip);
      const headers = {
        "RateLimit-Policy": policyField,
        RateLimit: `"per-ip";r=${decision.remaining}`,
      };
      if (!decision.allowed) {
        headers["Retry-After"] = String(seconds(decision.retryAfterNs ?? SECOND));
        return new Response("Too Many Requests\n", { status: 429, headers });
      }
      return new Response(`hello, ${ip}\n`, { headers });
    },
  };
}
