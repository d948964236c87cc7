// countdown-js@1: input {"steps":N,"step_ms":M} (defaults 10 and 100). Every step sleeps, then
// heartbeats its progress ({"step":3,"of":10}); stops with `canceled` as soon as the host says
// cancellation was requested; completes with {"done":N}.

import { heartbeat } from 'swasm:activity/host@0.1.0';

function badInput(details) {
  return { tag: 'failed', val: { reason: 'BadInput', details } };
}

// setTimeout runs on StarlingMonkey's event loop, which blocks on wasi:clocks (no busy wait).
// An async export is still a synchronous component function: the host sees one call.
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export const activity = {
  async run(task) {
    let params = {};
    const text = (task.input ?? '').trim();
    if (text !== '') {
      try {
        params = JSON.parse(text);
      } catch (e) {
        throw badInput(`expected {"steps":N,"step_ms":M}: ${e.message}`);
      }
    }
    if (params === null || typeof params !== 'object' || Array.isArray(params)) {
      throw badInput('expected a JSON object {"steps":N,"step_ms":M}');
    }
    const steps = params.steps ?? 10;
    const stepMs = params.step_ms ?? 100;
    if (!Number.isInteger(steps) || !Number.isInteger(stepMs) || steps < 0 || stepMs < 0) {
      throw badInput('"steps" and "step_ms" must be non-negative integers');
    }

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
