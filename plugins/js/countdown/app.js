// countdown-js@1: input {"steps":N,"step_ms":M} (defaults 10 and 100). Every step sleeps, then
// heartbeats its progress ({"step":3,"of":10}); stops with `canceled` as soon as the host says
// cancellation was requested; completes with {"done":N}.
//
// Input is read by the Rust countdown's rule (plugins/rust/countdown): no input or only JSON
// white space runs the defaults; else one JSON object with no keys but "steps" and "step_ms",
// each at most once, each an integer literal (no fraction or exponent, not negative, not null,
// true or a string), steps at most 2^32-1 and step_ms at most 2^64-1. Anything else fails with
// reason BadInput.

import { heartbeat } from 'swasm:activity/host@0.1.0';

const MAX = { steps: 4294967295n, step_ms: 18446744073709551615n }; // each key's largest value
const NOT_INTEGERS = '"steps" and "step_ms" must be non-negative integers';

function badInput(details) {
  return { tag: 'failed', val: { reason: 'BadInput', details } };
}

// { steps, stepMs } from the input, or throws the BadInput error.
function readInput(input) {
  const text = (input ?? '').replace(/^[ \t\n\r]+|[ \t\n\r]+$/g, '');
  const fields = { steps: 10, step_ms: 100 };
  if (text !== '') {
    let params;
    try {
      params = JSON.parse(text);
    } catch (e) {
      throw badInput(`expected {"steps":N,"step_ms":M}: ${e.message}`);
    }
    if (params === null || typeof params !== 'object' || Array.isArray(params)) {
      throw badInput('expected a JSON object {"steps":N,"step_ms":M}');
    }
    const keys = Object.keys(params);
    const unknown = keys.find((k) => !Object.hasOwn(MAX, k));
    if (unknown !== undefined) {
      throw badInput(`unknown field ${JSON.stringify(unknown)}, expected "steps" or "step_ms"`);
    }
    if (keys.some((k) => typeof params[k] !== 'number')) throw badInput(NOT_INTEGERS);
    // JSON.parse reads 1.0 and 1e2 as 1 and 100, -0 as 0, rounds big integers and keeps the
    // last of a repeated key: judge the literals themselves. Without a repeated key, each ':'
    // in the text separates a key from its number (neither key holds one), in the order of
    // `keys`; a repeated key adds at least its own ':'.
    const literals = [...text.matchAll(/:[ \t\n\r]*([^,} \t\n\r]*)/g)].map((m) => m[1]);
    if (literals.length !== keys.length) throw badInput('"steps" and "step_ms" may appear once each');
    keys.forEach((key, i) => {
      if (!/^(0|[1-9][0-9]*)$/.test(literals[i])) throw badInput(NOT_INTEGERS);
      if (BigInt(literals[i]) > MAX[key]) throw badInput(`"${key}" must be at most ${MAX[key]}`);
      fields[key] = Number(literals[i]);
    });
  }
  return { steps: fields.steps, stepMs: fields.step_ms };
}

// setTimeout runs on StarlingMonkey's event loop, which blocks on wasi:clocks (no busy wait).
// An async export is still a synchronous component function: the host sees one call.
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export const activity = {
  async run(task) {
    const { steps, stepMs } = readInput(task.input);
    console.error(`countdown-js: ${steps} steps of ${stepMs} ms`);
    for (let step = 1; step <= steps; step++) {
      await sleep(stepMs);
      const progress = JSON.stringify({ step, of: steps });
      if (heartbeat(progress)) {
        console.error(`countdown-js: cancel requested at step ${step}`);
        throw { tag: 'canceled', val: progress };
      }
    }
    return JSON.stringify({ done: steps });
  },
};
