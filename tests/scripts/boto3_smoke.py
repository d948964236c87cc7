#!/usr/bin/env python3
"""Proves a non-Rust SWF client (boto3, unchanged) works against swf-local.

Registers a domain and types, starts a workflow, polls and answers decision and activity
tasks, completes the workflow and checks its history. Exits 0 on success.

    python3 tests/scripts/boto3_smoke.py --endpoint http://127.0.0.1:8700
"""
import argparse
import sys
import uuid

import boto3
from botocore.config import Config


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--endpoint", required=True, help="swf-local URL, e.g. http://127.0.0.1:8700")
    args = ap.parse_args()
    swf = boto3.client(
        "swf",
        endpoint_url=args.endpoint,
        region_name="us-east-1",
        aws_access_key_id="AKIDTEST",
        aws_secret_access_key="secret",
        config=Config(read_timeout=70, retries={"max_attempts": 1}),
    )
    domain = "boto3-" + uuid.uuid4().hex[:8]
    swf.register_domain(name=domain, workflowExecutionRetentionPeriodInDays="1")
    swf.register_workflow_type(
        domain=domain, name="wf", version="1", defaultTaskList={"name": "deciders"},
        defaultChildPolicy="TERMINATE", defaultExecutionStartToCloseTimeout="600",
        defaultTaskStartToCloseTimeout="30",
    )
    swf.register_activity_type(
        domain=domain, name="echo", version="1", defaultTaskList={"name": "workers"},
        defaultTaskScheduleToStartTimeout="60", defaultTaskScheduleToCloseTimeout="120",
        defaultTaskStartToCloseTimeout="60", defaultTaskHeartbeatTimeout="30",
    )
    assert swf.describe_domain(name=domain)["domainInfo"]["status"] == "REGISTERED"
    run_id = swf.start_workflow_execution(
        domain=domain, workflowId="smoke", workflowType={"name": "wf", "version": "1"}, input="hello"
    )["runId"]

    def poll_decision():
        for _ in range(30):
            t = swf.poll_for_decision_task(domain=domain, taskList={"name": "deciders"}, identity="py")
            if t.get("taskToken"):
                return t
        raise SystemExit("no decision task")

    task = poll_decision()
    assert task["workflowExecution"]["runId"] == run_id, task
    assert [e["eventType"] for e in task["events"]] == [
        "WorkflowExecutionStarted", "DecisionTaskScheduled", "DecisionTaskStarted"], task["events"]
    swf.respond_decision_task_completed(taskToken=task["taskToken"], decisions=[{
        "decisionType": "ScheduleActivityTask",
        "scheduleActivityTaskDecisionAttributes": {
            "activityType": {"name": "echo", "version": "1"}, "activityId": "a1", "input": "ping"},
    }])
    for _ in range(30):
        act = swf.poll_for_activity_task(domain=domain, taskList={"name": "workers"}, identity="py")
        if act.get("taskToken"):
            break
    else:
        raise SystemExit("no activity task")
    assert act["input"] == "ping" and act["activityId"] == "a1", act
    assert swf.record_activity_task_heartbeat(taskToken=act["taskToken"], details="half")["cancelRequested"] is False
    swf.respond_activity_task_completed(taskToken=act["taskToken"], result="pong")
    task = poll_decision()
    done = [e for e in task["events"] if e["eventType"] == "ActivityTaskCompleted"]
    assert done and done[0]["activityTaskCompletedEventAttributes"]["result"] == "pong", task["events"]
    swf.respond_decision_task_completed(taskToken=task["taskToken"], decisions=[{
        "decisionType": "CompleteWorkflowExecution",
        "completeWorkflowExecutionDecisionAttributes": {"result": "pong"}}])
    history = swf.get_workflow_execution_history(
        domain=domain, execution={"workflowId": "smoke", "runId": run_id})["events"]
    types = [e["eventType"] for e in history]
    assert types[0] == "WorkflowExecutionStarted" and types[-1] == "WorkflowExecutionCompleted", types
    # Timestamps parse as datetimes; an error comes back as a ClientError with SWF's code.
    assert hasattr(history[0]["eventTimestamp"], "year")
    try:
        swf.record_activity_task_heartbeat(taskToken=act["taskToken"])
        raise SystemExit("heartbeat of a closed task succeeded")
    except swf.exceptions.UnknownResourceFault:
        pass
    info = swf.describe_workflow_execution(domain=domain, execution={"workflowId": "smoke", "runId": run_id})
    assert info["executionInfo"]["closeStatus"] == "COMPLETED", info
    print(f"boto3 smoke OK: {len(types)} events")
    return 0


if __name__ == "__main__":
    sys.exit(main())
