#!/usr/bin/env python3
"""The common SWF activity worker in Python: boto3 and a thread pool.

Each of --threads threads long-polls one task list and runs one task at a time (a thread
only polls when it is free, so no task waits for a thread). Used by swasm-bench as the
baseline swasm is compared with.

  --mode echo       answer the task's input as its result
  --mode countdown  input {"steps":N,"step_ms":M}: sleep M ms, heartbeat the progress, N
                    times; answer canceled when the heartbeat says cancelRequested

So that a slow run can be told from a stuck one, it logs its progress every 10 s (SWF
calls made and failed, requests in flight and the oldest one's age), a heartbeat or answer
that stalls fails after at most 2 x 20 s (and is logged), and SIGUSR1 dumps every thread's
stack to the log (faulthandler: works even when no Python code can run).
"""
import argparse
import collections
import contextlib
import faulthandler
import json
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config


# How often the progress line is logged, in seconds.
PROGRESS_EVERY = 10


def client(endpoint, threads, read_timeout):
    # Shared by all threads (boto3 clients are thread-safe); a pool as large as the thread
    # count. Two attempts in all: a stalled request fails after 2 x read_timeout.
    return boto3.client(
        "swf",
        endpoint_url=endpoint,
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        config=Config(
            max_pool_connections=threads + 4,
            read_timeout=read_timeout,
            connect_timeout=5,
            retries={"total_max_attempts": 2, "mode": "standard"},
        ),
    )


class Stats:
    """SWF calls made and failed, and the requests in flight, for the progress line."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts = collections.Counter()
        self.in_flight = {}  # thread id -> (operation, monotonic start)
        self.started = time.monotonic()

    def add(self, what):
        with self.lock:
            self.counts[what] += 1

    @contextlib.contextmanager
    def call(self, op):
        me = threading.get_ident()
        with self.lock:
            self.in_flight[me] = (op, time.monotonic())
        outcome = f"{op} failed"
        try:
            yield
            outcome = op
        finally:
            with self.lock:
                self.in_flight.pop(me, None)
                self.counts[outcome] += 1

    def line(self):
        now = time.monotonic()
        with self.lock:
            counts = dict(self.counts)
            flying = list(self.in_flight.values())
        by_op = collections.Counter(op for op, _ in flying)
        # Polls are held up to 60 s by design; any other request in flight that long is stuck.
        oldest = max((now - t for op, t in flying if op != "poll"), default=0.0)
        done = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "no calls"
        flight = ", ".join(f"{k} {v}" for k, v in sorted(by_op.items())) or "none"
        return (
            f"progress at {now - self.started:.0f} s: {done}; in flight: {flight}; "
            f"oldest heartbeat or answer in flight {oldest:.1f} s"
        )


def report(stats, stop):
    while not stop.wait(PROGRESS_EVERY):
        print(stats.line(), file=sys.stderr, flush=True)


def countdown(swf, stats, token, text):
    args = json.loads(text or "{}")
    steps, step_ms = int(args.get("steps", 10)), int(args.get("step_ms", 100))
    for step in range(1, steps + 1):
        time.sleep(step_ms / 1000.0)
        progress = json.dumps({"step": step, "of": steps})
        with stats.call("heartbeat"):
            beat = swf.record_activity_task_heartbeat(taskToken=token, details=progress)
        if beat.get("cancelRequested"):
            with stats.call("canceled"):
                swf.respond_activity_task_canceled(taskToken=token, details=progress)
            return
    with stats.call("completed"):
        swf.respond_activity_task_completed(taskToken=token, result=json.dumps({"done": steps}))


def loop(polls, calls, stats, args, identity, stop):
    while not stop.is_set():
        try:
            with stats.call("poll"):
                task = polls.poll_for_activity_task(
                    domain=args.domain, taskList={"name": args.task_list}, identity=identity
                )
        except Exception as e:  # keep polling, like a real worker
            print(f"poll failed: {e}", file=sys.stderr, flush=True)
            time.sleep(0.1)
            continue
        token = task.get("taskToken")
        if not token:
            continue
        stats.add("tasks")
        try:
            if args.mode == "echo":
                kwargs = {"taskToken": token}
                if "input" in task:
                    kwargs["result"] = task["input"]
                with stats.call("completed"):
                    calls.respond_activity_task_completed(**kwargs)
            else:
                countdown(calls, stats, token, task.get("input"))
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
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    # Polls: a read timeout above SWF's 60 s long poll. Heartbeats and answers: swf-local
    # answers them in milliseconds, so 20 s means stalled, even with 1,000 threads on 2 cores.
    polls = client(args.endpoint, args.threads, read_timeout=70)
    calls = client(args.endpoint, args.threads, read_timeout=20)
    stats = Stats()
    stop = threading.Event()
    threading.Thread(target=report, args=(stats, stop), name="progress", daemon=True).start()
    with ThreadPoolExecutor(max_workers=args.threads) as pool:
        for i in range(args.threads):
            pool.submit(loop, polls, calls, stats, args, f"boto3-worker-{os.getpid()}-{i}", stop)


if __name__ == "__main__":
    main()
