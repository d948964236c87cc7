"""fetch-py@1: sends the HTTP request its input describes and completes with the response.

Input: {"url": "http://host:port/path", "method": "GET" (default), "body": "..." (optional),
"headers": {"name": "value"} (optional)}.
Result: {"status": 200, "body": "...", "content_type": "..."}. An authority not in the
activity's `allowed_hosts`, or any request that gets no response, fails the task with
reason HttpError and wasi:http's error code (`HTTP-request-denied: ...`). Built with the
`plugin-http` world and the swasm_http helper (see docs/guides/python.md, "HTTP")."""

import json

import swasm_http
from componentize_py_types import Err
from wit_world import exports
from wit_world.imports.swasm_activity_types import (
    ActivityError_Failed,
    ActivityTask,
    Failure,
)

USAGE = 'input: {"url": "http://host:port/path", "method": "GET", "body": "...", "headers": {}}'


def failed(reason: str, details: str) -> Err:
    return Err(ActivityError_Failed(Failure(reason=reason, details=details)))


class Activity(exports.Activity):
    def run(self, task: ActivityTask) -> str | None:
        try:
            spec = json.loads(task.input or "")
            url = spec["url"]
        except (ValueError, TypeError, KeyError):
            raise failed("BadInput", USAGE)
        try:
            r = swasm_http.request(spec.get("method", "GET"), url, body=spec.get("body"),
                                   headers=spec.get("headers"), timeout_s=10)
        except ValueError as e:
            raise failed("BadInput", f"{e}; {USAGE}")
        except swasm_http.HttpError as e:
            raise failed("HttpError", str(e))
        return json.dumps({"status": r.status, "body": r.text(),
                           "content_type": r.header("content-type")}, separators=(",", ":"))
