//! Throughput of PollForActivityTask + RespondActivityTaskCompleted pairs through the real
//! aws-sdk-swf client, swf-local next to moto's server, and the CPU a held long poll costs.
//!
//! `cargo bench -p swf-local` (env: SWF_BENCH_TASKS, default 20000; SWF_BENCH_WORKERS,
//! default 8; SWF_BENCH_MOTO_TASKS, default 300; moto is skipped when `moto_server` is not
//! on PATH).

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_swf::Client;
use aws_sdk_swf::config::retry::RetryConfig;
use aws_sdk_swf::config::timeout::TimeoutConfig;
use aws_sdk_swf::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_swf::types::*;
use swf_local::{Options, Server};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn client(url: &str) -> Client {
    Client::from_conf(
        aws_sdk_swf::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("AKIDBENCH", "secret", None, None, "bench"))
            .endpoint_url(url)
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_secs(75))
                    .build(),
            )
            .build(),
    )
}

fn tl(name: &str) -> TaskList {
    TaskList::builder().name(name).build().unwrap()
}

/// Registers the domain and types, then fills the activity queue with `tasks` tasks
/// (workflows of up to 500 activities, scheduled by one decision each).
async fn fill(c: &Client, tasks: usize) {
    c.register_domain()
        .name("bench")
        .workflow_execution_retention_period_in_days("1")
        .send()
        .await
        .unwrap();
    c.register_workflow_type()
        .domain("bench")
        .name("wf")
        .version("1")
        .default_task_list(tl("deciders"))
        .default_child_policy(ChildPolicy::Terminate)
        .default_execution_start_to_close_timeout("3600")
        .default_task_start_to_close_timeout("600")
        .send()
        .await
        .unwrap();
    c.register_activity_type()
        .domain("bench")
        .name("act")
        .version("1")
        .default_task_list(tl("workers"))
        .default_task_schedule_to_start_timeout("3600")
        .default_task_schedule_to_close_timeout("3600")
        .default_task_start_to_close_timeout("600")
        .default_task_heartbeat_timeout("NONE")
        .send()
        .await
        .unwrap();
    schedule(c, tasks, "w").await;
}

/// Schedules `tasks` activities (500 per workflow) on new workflows `<prefix>1`,
/// `<prefix>2`, ... of the registered types; decision tasks of other workflows are answered
/// with no decisions.
async fn schedule(c: &Client, tasks: usize, prefix: &str) {
    let mut left = tasks;
    let mut w = 0;
    while left > 0 {
        let n = left.min(500);
        left -= n;
        w += 1;
        let wt = WorkflowType::builder()
            .name("wf")
            .version("1")
            .build()
            .unwrap();
        c.start_workflow_execution()
            .domain("bench")
            .workflow_id(format!("{prefix}{w}"))
            .workflow_type(wt)
            .send()
            .await
            .unwrap();
        let dt = loop {
            let dt = c
                .poll_for_decision_task()
                .domain("bench")
                .task_list(tl("deciders"))
                .send()
                .await
                .unwrap();
            if !dt.task_token.is_empty()
                && dt.workflow_execution.as_ref().unwrap().workflow_id == format!("{prefix}{w}")
            {
                break dt;
            }
            if !dt.task_token.is_empty() {
                c.respond_decision_task_completed()
                    .task_token(dt.task_token)
                    .send()
                    .await
                    .unwrap();
            }
        };
        c.respond_decision_task_completed()
            .task_token(dt.task_token)
            .set_decisions(Some(schedule_n(n)))
            .send()
            .await
            .unwrap();
    }
}

fn schedule_n(n: usize) -> Vec<Decision> {
    (0..n)
        .map(|i| {
            Decision::builder()
                .decision_type(DecisionType::ScheduleActivityTask)
                .schedule_activity_task_decision_attributes(
                    ScheduleActivityTaskDecisionAttributes::builder()
                        .activity_type(
                            ActivityType::builder()
                                .name("act")
                                .version("1")
                                .build()
                                .unwrap(),
                        )
                        .activity_id(format!("a{i}"))
                        .input("x".repeat(64))
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap()
        })
        .collect()
}

/// `workers` concurrent loops of poll + complete until `tasks` pairs are done; pairs/s.
async fn drain(c: &Client, tasks: usize, workers: usize) -> f64 {
    let done = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let (c, done) = (c.clone(), done.clone());
            tokio::spawn(async move {
                while done.load(Ordering::Relaxed) < tasks {
                    let t = c
                        .poll_for_activity_task()
                        .domain("bench")
                        .task_list(tl("workers"))
                        .identity("bench")
                        .send()
                        .await
                        .unwrap();
                    if t.task_token.is_empty() {
                        continue;
                    }
                    c.respond_activity_task_completed()
                        .task_token(t.task_token)
                        .result("ok")
                        .send()
                        .await
                        .unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64()
}

/// Server capacity without the SDK's client-side cost: `workers` keep-alive connections
/// sending hand-written awsJson requests (no signing), `tasks` pairs; pairs/s.
async fn drain_raw(addr: std::net::SocketAddr, tasks: usize, workers: usize) -> f64 {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    async fn call(
        s: &mut BufReader<tokio::net::TcpStream>,
        op: &str,
        body: &str,
    ) -> serde_json::Value {
        let req = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.0\r\nX-Amz-Target: SimpleWorkflowService.{op}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.get_mut().write_all(req.as_bytes()).await.unwrap();
        let mut len = 0;
        let mut line = String::new();
        loop {
            line.clear();
            s.read_line(&mut line).await.unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut buf = vec![0; len];
        s.read_exact(&mut buf).await.unwrap();
        serde_json::from_slice(&buf).unwrap()
    }
    let done = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let done = done.clone();
            tokio::spawn(async move {
                let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                stream.set_nodelay(true).unwrap();
                let mut s = BufReader::new(stream);
                while done.load(Ordering::Relaxed) < tasks {
                    let t = call(
                        &mut s,
                        "PollForActivityTask",
                        r#"{"domain":"bench","taskList":{"name":"workers"},"identity":"raw"}"#,
                    )
                    .await;
                    let Some(token) = t["taskToken"].as_str() else {
                        continue;
                    };
                    call(
                        &mut s,
                        "RespondActivityTaskCompleted",
                        &format!(r#"{{"taskToken":"{token}","result":"ok"}}"#),
                    )
                    .await;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64()
}

/// utime + stime of this process, in clock ticks (normally 10 ms).
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields after the comm: state(0) ... utime(11) stime(12).
    f.get(11).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
}

async fn moto(tasks: usize, workers: usize) -> Option<f64> {
    let path = std::env::var_os("PATH")?;
    let bin = std::env::split_paths(&path)
        .map(|d| d.join("moto_server"))
        .find(|p| p.is_file())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let mut child = tokio::process::Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let c = client(&format!("http://127.0.0.1:{port}"));
    fill(&c, tasks).await;
    let rate = drain(&c, tasks, workers).await;
    child.kill().await.ok();
    Some(rate)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tasks = env_usize("SWF_BENCH_TASKS", 20_000);
        let workers = env_usize("SWF_BENCH_WORKERS", 8);
        let moto_tasks = env_usize("SWF_BENCH_MOTO_TASKS", 300);

        let server = Server::bind("127.0.0.1:0".parse().unwrap(), Options {
            poll_timeout: Duration::from_secs(2),
            // Measures swf-local itself, far beyond SWF's default rate quotas.
            quotas: swf_local::Quotas::new(swf_local::QuotaSet::none()),
            ..Default::default()
        })
            .await
            .unwrap();
        let url = server.url();
        let addr = server.local_addr();
        tokio::spawn(server.run(std::future::pending()));
        let c = client(&url);
        let t0 = Instant::now();
        fill(&c, tasks).await;
        eprintln!("filled {tasks} tasks in {:.2?}", t0.elapsed());
        let cpu0 = cpu_ticks();
        let ours = drain(&c, tasks, workers).await;
        let cpu_per_pair_us = (cpu_ticks() - cpu0) as f64 * 10_000.0 / tasks as f64;
        // Refill (a second domain would need new types; the same workflows take more tasks).
        schedule(&c, tasks, "more").await;
        let cpu0 = cpu_ticks();
        let raw = drain_raw(addr, tasks, workers).await;
        let raw_cpu_per_pair_us = (cpu_ticks() - cpu0) as f64 * 10_000.0 / tasks as f64;

        // A held poll: 2 s (the poll timeout) with nothing to hand out.
        let before = cpu_ticks();
        let t0 = Instant::now();
        let empty = c.poll_for_activity_task().domain("bench").task_list(tl("idle")).send().await.unwrap();
        let held = t0.elapsed();
        let ticks = cpu_ticks() - before;
        assert!(empty.task_token.is_empty());

        let theirs = moto(moto_tasks, workers).await;
        println!("PollForActivityTask + RespondActivityTaskCompleted pairs/s ({workers} workers, aws-sdk-swf client in-process):");
        println!("  swf-local: {ours:>9.0} pairs/s  ({tasks} tasks; client + server CPU {cpu_per_pair_us:.0} us/pair)");
        println!("  swf-local, raw keep-alive HTTP client (no SDK, no signing): {raw:>9.0} pairs/s  (CPU {raw_cpu_per_pair_us:.0} us/pair)");
        match theirs {
            Some(m) => {
                println!("  moto:      {m:>9.0} pairs/s  ({moto_tasks} tasks)");
                println!("  ratio:     {:>9.1}x", ours / m);
            }
            None => println!("  moto:      skipped (moto_server not on PATH)"),
        }
        println!(
            "held long poll: {:.2?} held, process CPU during it: {} ms (clock ticks x10)",
            held,
            ticks * 10
        );
    });
}
