//! The native Rust worker: the throughput limit swasm is compared with. The same loop as
//! swasm's poller without WebAssembly: a slot permit is taken *before* each long poll, the
//! task's input is answered as its result, the permit is released after the answer.

use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use tokio::sync::Semaphore;

/// The allocator swasm's binary uses, so the comparison measures WebAssembly and the host's
/// own work, not two allocators.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Answers every activity task of one task list with its input.
#[derive(Parser, Debug)]
struct Args {
    /// The SWF endpoint, e.g. http://127.0.0.1:8700.
    #[arg(long)]
    endpoint: String,
    #[arg(long)]
    domain: String,
    #[arg(long)]
    task_list: String,
    /// Tasks in flight at most (default 64).
    #[arg(long, default_value_t = 64)]
    slots: usize,
    /// Concurrent long polls while slots are free (default 8).
    #[arg(long, default_value_t = 8)]
    pollers: usize,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let client = swasm_bench::swf::client(&args.endpoint);
    let slots = Arc::new(Semaphore::new(args.slots));
    let mut pollers = Vec::new();
    for i in 0..args.pollers {
        let (client, slots) = (client.clone(), slots.clone());
        let (domain, task_list) = (args.domain.clone(), args.task_list.clone());
        pollers.push(tokio::spawn(async move {
            let identity = format!("native-worker-{i}");
            loop {
                let permit = slots
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("semaphore never closed");
                let polled = client
                    .poll_for_activity_task()
                    .domain(&domain)
                    .task_list(swasm_bench::swf::task_list(&task_list))
                    .identity(&identity)
                    .send()
                    .await;
                let task = match polled {
                    Ok(task) if !task.task_token.is_empty() => task,
                    Ok(_) => continue,
                    Err(e) => {
                        eprintln!("native-worker: poll failed: {e:?}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let client = client.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    let mut answer = client
                        .respond_activity_task_completed()
                        .task_token(&task.task_token);
                    if let Some(input) = task.input {
                        answer = answer.result(input);
                    }
                    if let Err(e) = answer.send().await {
                        eprintln!("native-worker: respond failed: {e:?}");
                    }
                });
            }
        }));
    }
    // Pollers loop until the process is killed: the first one that ends (it panicked) ends
    // the worker.
    let (ended, _, _) = futures::future::select_all(pollers).await;
    ended.context("poller panicked")?;
    Ok(())
}
