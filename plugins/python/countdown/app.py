"""countdown-py@1: input {"steps":N,"step_ms":M} (defaults 10 and 100). Every step sleeps,
then heartbeats its progress ({"step":3,"of":10}); stops with `canceled` as soon as the host
says cancellation was requested; completes with {"done":N}."""

import json
import sys
import time

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host
from wit_world.imports.types import (ActivityError_Canceled, ActivityError_Failed,
                                     ActivityTask, Failure)


def bad_input(details: str) -> Err:
    return Err(ActivityError_Failed(Failure(reason="BadInput", details=details)))


class Activity(exports.Activity):
    def run(self, task: ActivityTask) -> str | None:
        text = (task.input or "").strip()
        try:
            params = json.loads(text) if text else {}
        except ValueError as e:
            raise bad_input(f'expected {{"steps":N,"step_ms":M}}: {e}')
        if not isinstance(params, dict):
            raise bad_input('expected a JSON object {"steps":N,"step_ms":M}')
        steps = params.get("steps", 10)
        step_ms = params.get("step_ms", 100)
        if not isinstance(steps, int) or not isinstance(step_ms, int) or steps < 0 or step_ms < 0:
            raise bad_input('"steps" and "step_ms" must be non-negative integers')

        print(f"countdown-py: {steps} steps of {step_ms} ms", file=sys.stderr)
        for step in range(1, steps + 1):
            time.sleep(step_ms / 1000)  # wasi:clocks under the hood
            progress = json.dumps({"step": step, "of": steps}, separators=(",", ":"))
            if host.heartbeat(progress):
                print(f"countdown-py: cancel requested at step {step}", file=sys.stderr)
                raise Err(ActivityError_Canceled(progress))
        return json.dumps({"done": steps}, separators=(",", ":"))
