//! swf-local in this process on `127.0.0.1:0`, one fresh server per measurement so call
//! counts start at zero and no state leaks from one run into the next.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::sync::oneshot;

/// A running swf-local; dropping it stops the server.
pub struct Endpoint {
    /// `http://127.0.0.1:PORT`, handed to every client and worker.
    pub url: String,
    /// Read in-process: the same counts `GET /_stats` serves, without an HTTP round trip,
    /// so a fine-grained watch costs the server nothing.
    state: swf_local::State,
    /// Dropped (or sent) to stop the accept loop.
    stop: Option<oneshot::Sender<()>>,
}

impl Endpoint {
    /// Binds loopback with SWF's own 60 s poll timeout and no rate quotas: the benchmarks
    /// measure workers at rates beyond SWF's default quotas (200 answers a second).
    pub async fn start() -> Result<Endpoint> {
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("literal address");
        let opts = swf_local::Options {
            quotas: swf_local::Quotas::new(swf_local::QuotaSet::none()),
            ..swf_local::Options::default()
        };
        let server = swf_local::Server::bind(addr, opts)
            .await
            .context("binding swf-local on 127.0.0.1:0")?;
        let url = server.url();
        let state = server.state();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(e) = server.run(shutdown).await {
                eprintln!("swf-local stopped with an error: {e}");
            }
        });
        Ok(Endpoint {
            url,
            state,
            stop: Some(stop),
        })
    }

    /// SWF calls received so far for one operation (e.g. `RespondActivityTaskCompleted`).
    pub fn calls(&self, operation: &str) -> u64 {
        self.state.calls(operation)
    }

    /// RespondActivityTask{Completed,Failed,Canceled} requests received. swf-local counts a
    /// request as it arrives, so rejected and retried ones count too: a cheap gate to watch
    /// every 1-2 ms, not a count of tasks done ([`crate::benches::all_closed`] and
    /// [`crate::benches::Outcomes`] are).
    pub fn answered(&self) -> u64 {
        self.calls("RespondActivityTaskCompleted")
            + self.calls("RespondActivityTaskFailed")
            + self.calls("RespondActivityTaskCanceled")
    }

    /// Polls `cond` every `every` until it holds; errors after `deadline` naming `what`.
    pub async fn wait_for(
        &self,
        what: &str,
        every: Duration,
        deadline: Duration,
        mut cond: impl FnMut(&Endpoint) -> bool,
    ) -> Result<Instant> {
        let start = Instant::now();
        loop {
            if cond(self) {
                return Ok(Instant::now());
            }
            if start.elapsed() > deadline {
                bail!("{what}: not reached within {:.0} s", deadline.as_secs_f64());
            }
            tokio::time::sleep(every).await;
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
