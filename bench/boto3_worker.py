#!/usr/bin/env python3
"""The common SWF activity worker in Python: boto3 and a thread pool.

Each of --threads threads long-polls one task list and runs one task at a time (a thread
only polls when it is free, so no task waits for a thread). Used by swasm-bench as the
baseline swasm is compared with.

  --mode echo       answer the task's input as its result
  --mode countdown  input {"steps":N,"step_ms":M}: sleep M ms, heartbeat the progress, N
                    times; answer canceled when the heartbeat says cancelRequested
"""
import argparse
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config


def client(endpoint, threads):
    # One client shared by all threads (boto3 clients are thread-safe); a pool as large as
    # the thread count, and a read timeout above SWF's 60 s long poll.
    return boto3.client(
        "swf",
        endpoint_url=endpoint,
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        config=Config(
            max_pool_connections=threads + 4,
            read_timeout=70,
            connect_timeout=5,
            retries={"max_attempts": 3, "mode": "standard"},
        ),
    )


def countdown(swf, token, text):
    args = json.loads(text or "{}")
    steps, step_ms = int(args.get("steps", 10)), int(args.get("step_ms", 100))
    for step in range(1, steps + 1):
        time.sleep(step_ms / 1000.0)
        progress = json.dumps({"step": step, "of": steps})
        beat = swf.record_activity_task_heartbeat(taskToken=token, details=progress)
        if beat.get("cancelRequested"):
            swf.respond_activity_task_canceled(taskToken=token, details=progress)
            return
    swf.respond_activity_task_completed(taskToken=token, result=json.dumps({"done": steps}))


def loop(swf, args, identity, stop):
    while not stop.is_set():
        try:
            task = swf.poll_for_activity_task(
                domain=args.domain, taskList={"name": args.task_list}, identity=identity
            )
        except Exception as e:  # keep polling, like a real worker
            print(f"poll failed: {e}", file=sys.stderr, flush=True)
            time.sleep(0.1)
            continue
        token = task.get("taskToken")
        if not token:
            continue
        try:
            if args.mode == "echo":
                kwargs = {"taskToken": token}
                if "input" in task:
                    kwargs["result"] = task["input"]
                swf.respond_activity_task_completed(**kwargs)
            else:
                countdown(swf, token, task.get("input"))
        except Exception as e:
            print(f"task failed: {e}", file=sys.stderr, flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--endpoint", required=True)
    p.add_argument("--domain", required=True)
    p.add_argument("--task-list", required=True)
    p.add_argument("--threads", type=int, default=64)
    p.add_argument("--mode", choices=["echo", "countdown"], default="echo")
    args = p.parse_args()
    swf = client(args.endpoint, args.threads)
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=args.threads) as pool:
        for i in range(args.threads):
            pool.submit(loop, swf, args, f"boto3-worker-{os.getpid()}-{i}", stop)


if __name__ == "__main__":
    main()
