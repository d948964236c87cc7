"""countdown-py@1: input {"steps":N,"step_ms":M} (defaults 10 and 100). Every step sleeps,
then heartbeats its progress ({"step":3,"of":10}); stops with `canceled` as soon as the host
says cancellation was requested; completes with {"done":N}.

Input is read by the Rust countdown's rule (plugins/rust/countdown): no input or only JSON
white space runs the defaults; else one JSON object with no keys but "steps" and "step_ms",
each at most once, each an integer literal (no fraction or exponent, not negative, not null,
true or a string), steps at most 2**32-1 and step_ms at most 2**64-1. Anything else fails
with reason BadInput."""

import json
import sys
import time

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host
from wit_world.imports.types import (ActivityError_Canceled, ActivityError_Failed,
                                     ActivityTask, Failure)


FIELDS = {"steps": 2**32 - 1, "step_ms": 2**64 - 1}  # each key's largest value
DEFAULTS = {"steps": 10, "step_ms": 100}
NOT_INTEGERS = '"steps" and "step_ms" must be non-negative integers'


def bad_input(details: str) -> Err:
    return Err(ActivityError_Failed(Failure(reason="BadInput", details=details)))


def unique_keys(pairs: list) -> dict:
    """json.loads keeps the last of a repeated key; the rule refuses it."""
    seen = set()
    for key, _ in pairs:
        if key in seen:
            raise bad_input(f"duplicate field {json.dumps(key)}")
        seen.add(key)
    return dict(pairs)


def int_literal(text: str) -> int:
    """Python reads -0 as the integer 0, serde_json as a float: every negative literal is
    refused anyway, so read them all as -1."""
    return -1 if text.startswith("-") else int(text)


def no_constant(name: str):
    """json.loads takes NaN and Infinity, which are not JSON."""
    raise ValueError(f"{name} is not JSON")


def read_input(text: str | None) -> dict:
    text = (text or "").strip(" \t\n\r")
    if not text:
        return dict(DEFAULTS)
    try:
        params = json.loads(
            text, object_pairs_hook=unique_keys, parse_int=int_literal, parse_constant=no_constant
        )
    except ValueError as e:
        raise bad_input(f'expected {{"steps":N,"step_ms":M}}: {e}')
    if not isinstance(params, dict):
        raise bad_input('expected a JSON object {"steps":N,"step_ms":M}')
    fields = dict(DEFAULTS)
    for key, value in params.items():
        if key not in FIELDS:
            raise bad_input(f'unknown field {json.dumps(key)}, expected "steps" or "step_ms"')
        # type() rather than isinstance(): True and False are ints to Python.
        if type(value) is not int or value < 0:
            raise bad_input(NOT_INTEGERS)
        if value > FIELDS[key]:
            raise bad_input(f'"{key}" must be at most {FIELDS[key]}')
        fields[key] = value
    return fields


class Activity(exports.Activity):
    def run(self, task: ActivityTask) -> str | None:
        fields = read_input(task.input)
        steps, step_ms = fields["steps"], fields["step_ms"]

        print(f"countdown-py: {steps} steps of {step_ms} ms", file=sys.stderr)
        for step in range(1, steps + 1):
            time.sleep(step_ms / 1000)  # wasi:clocks under the hood
            progress = json.dumps({"step": step, "of": steps}, separators=(",", ":"))
            if host.heartbeat(progress):
                print(f"countdown-py: cancel requested at step {step}", file=sys.stderr)
                raise Err(ActivityError_Canceled(progress))
        return json.dumps({"done": steps}, separators=(",", ":"))
