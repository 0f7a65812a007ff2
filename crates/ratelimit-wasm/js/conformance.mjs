// Runs every bucket and window conformance scenario through the WASM
// module and the wrapper (ratelimit.mjs), comparing each answer with the
// expected one field by field, as the Rust backends' replay tests do.
//
//   node conformance.mjs <ratelimit_wasm.wasm> <conformance dir>
//
// Exits 1 on any mismatch. RATELIMIT_PLANT_MISMATCH=1 corrupts the first
// expected answer of the first scenario, to show that a mismatch fails.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";

import { InsufficientCapacityError, load } from "./ratelimit.mjs";

const FILES = [
  "scenarios-ns.jsonl.gz",
  "scenarios-us.jsonl.gz",
  "windows-ns.jsonl.gz",
  "windows-us.jsonl.gz",
];
const DETAILED = 10;

const [wasmPath, dir] = process.argv.slice(2);
if (!wasmPath || !dir) {
  console.error("usage: node conformance.mjs <ratelimit_wasm.wasm> <conformance dir>");
  process.exit(2);
}
const rl = await load(readFileSync(wasmPath));
const plant = Boolean(process.env.RATELIMIT_PLANT_MISMATCH);

/** The answer to one event, in the replay format's fields. */
function answer(policy, state, event) {
  const cost = event.cost ?? 1;
  if (event.op === "check") {
    let d;
    try {
      d = policy.check(state, event.t_ns, cost);
    } catch (e) {
      if (!(e instanceof InsufficientCapacityError)) throw e;
      // Can never succeed: the unchanged state's view, as the CLI prints.
      const view = policy.check(state, event.t_ns, 0);
      d = { ...view, allowed: false, retryAfterNs: null, changed: false };
    }
    const got = {
      allowed: d.allowed,
      remaining: d.remaining,
      retry_after_ns: d.retryAfterNs,
      reset_after_ns: d.resetAfterNs,
    };
    return [got, d];
  }
  let r;
  try {
    r = policy.reserve(state, event.t_ns, cost, event.max_wait_ns ?? null);
  } catch (e) {
    if (!(e instanceof InsufficientCapacityError)) throw e;
    return [{ allowed: false, retry_after_ns: null }, { changed: false }];
  }
  const got = r.admitted
    ? { allowed: true, wait_ns: r.waitNs }
    : { allowed: false, retry_after_ns: r.retryAfterNs };
  return [got, r];
}

/** Same fields, same values (numbers compared as integers). */
function same(got, expected) {
  const keys = Object.keys(expected);
  return (
    keys.length === Object.keys(got).length &&
    keys.every((k) => String(got[k]) === String(expected[k]))
  );
}

const show = (o) => JSON.stringify(o, (_, v) => (typeof v === "bigint" ? Number(v) : v));

let scenarios = 0;
let events = 0;
let passed = 0;
let failed = 0;
for (const file of FILES) {
  const lines = gunzipSync(readFileSync(join(dir, file))).toString("utf8").split("\n");
  for (const line of lines) {
    if (!line.trim()) continue;
    const s = JSON.parse(line);
    if (plant && scenarios === 0) {
      const x = s.expected[0];
      if ("remaining" in x) x.remaining += 1;
      else if ("wait_ns" in x) x.wait_ns += 1;
      else x.retry_after_ns = (x.retry_after_ns ?? 0) + 1;
    }
    scenarios += 1;
    events += s.events.length;
    let failure = null;
    try {
      const policy = rl.policy(
        s.window_ns === undefined
          ? { algorithm: s.algorithm, capacity: s.capacity, rate: s.rate }
          : { algorithm: s.algorithm, capacity: s.capacity, windowNs: s.window_ns },
      );
      const states = new Map();
      for (let i = 0; i < s.events.length && failure === null; i++) {
        const event = s.events[i];
        const [got, result] = answer(policy, states.get(event.key) ?? 0n, event);
        if (result.changed) states.set(event.key, result.state);
        if (!same(got, s.expected[i])) failure = { index: i, event, got, expected: s.expected[i] };
      }
    } catch (e) {
      failure = { index: -1, event: null, got: String(e), expected: null };
    }
    if (failure === null) {
      passed += 1;
    } else {
      failed += 1;
      if (failed <= DETAILED) {
        console.log(
          `MISMATCH ${file} scenario ${s.id} (${s.algorithm}, capacity ${s.capacity}, ` +
            `${s.rate !== undefined ? `rate ${s.rate}/s` : `window ${s.window_ns} ns`}) ` +
            `event ${failure.index}: ${show(failure.event)}`,
        );
        console.log(`  expected ${show(failure.expected)}`);
        console.log(`  got      ${show(failure.got)}`);
      }
    }
  }
}
if (plant) console.log("(a mismatch was planted on purpose: RATELIMIT_PLANT_MISMATCH)");
console.log(`wasm: ${scenarios} scenarios, ${events} events: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 && scenarios === 360 ? 0 : 1);
