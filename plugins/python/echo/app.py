"""echo-py@1: completes with its input unchanged; the input "fail" fails the task with
reason BadInput. Built by `make plugins` with componentize-py (see docs/guides/python.md)."""

import sys

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports.types import ActivityError_Failed, ActivityTask, Failure


class Activity(exports.Activity):
    def run(self, task: ActivityTask) -> str | None:
        # stderr and stdout become host log lines tagged with the activity id and type.
        print(f"echo-py: activity {task.activity_id} of workflow "
              f"{task.workflow_execution.workflow_id}", file=sys.stderr)
        if task.input == "fail":
            # Raising Err(...) is how a componentize-py guest returns the WIT `err` case.
            raise Err(ActivityError_Failed(Failure(reason="BadInput",
                                                   details='input was "fail"')))
        return task.input
