//! Worker processes under test: spawned with dummy AWS credentials pointing at the local
//! endpoint, output to a log file, killed (and reaped) when dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};

/// A running worker process.
pub struct Worker {
    /// What it is, for errors and logs (e.g. `swasm-rust`).
    pub label: String,
    child: Child,
    /// Its stdout and stderr, kept for post-mortems under `results/raw/logs/`.
    pub log: PathBuf,
    /// It dumps its threads' stacks to its log on SIGUSR1 (the boto3 worker; to others
    /// the signal is fatal).
    pub dumps_stacks: bool,
}

/// The environment every worker gets: the standard AWS chain resolves to dummy keys at
/// once (no profile files, no instance metadata probe), so start-up is not skewed.
fn aws_env(cmd: &mut Command, endpoint: &str) {
    for var in [
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL_SWF", endpoint);
}

impl Worker {
    /// Spawns `program args`, appending its output to `log`.
    pub fn spawn(
        label: &str,
        program: &Path,
        args: &[String],
        env: &[(&str, &str)],
        endpoint: &str,
        log: &Path,
    ) -> Result<Worker> {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening log {}", log.display()))?;
        let err = out.try_clone().context("cloning log handle")?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        aws_env(&mut cmd, endpoint);
        cmd.envs(env.iter().copied());
        let child = cmd
            .spawn()
            .with_context(|| format!("{label}: cannot start {}", program.display()))?;
        Ok(Worker {
            label: label.to_string(),
            child,
            log: log.to_path_buf(),
            dumps_stacks: false,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// Errors if the process has already exited (a crashed worker must not look like a
    /// slow one).
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait().context("try_wait")? {
            bail!(
                "{} exited early ({status}); see {}",
                self.label,
                self.log.display()
            );
        }
        Ok(())
    }

    /// Peak resident set size so far (VmHWM), in bytes.
    pub fn peak_rss(&self) -> Result<u64> {
        proc_status_kb(self.pid(), "VmHWM").map(|kb| kb * 1024)
    }

    /// CPU time (user + system, all threads) the process has used so far, in seconds.
    pub fn cpu_seconds(&self) -> Result<f64> {
        let path = format!("/proc/{}/stat", self.pid());
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15
        // of the whole line, in clock ticks.
        let rest = text
            .rsplit_once(')')
            .map(|(_, r)| r)
            .with_context(|| format!("{path}: no command name"))?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| -> Result<f64> {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .with_context(|| format!("{path}: field {} unreadable", i + 3))
        };
        Ok((ticks(11)? + ticks(12)?) / USER_HZ)
    }

    /// Kills and reaps the process.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// [`Worker::stop`] after a failed run: a worker that can dump its threads' stacks is
    /// sent SIGUSR1 first and given a moment to write them to its log, so a stuck one
    /// shows where it is stuck.
    pub async fn stop_after_failure(mut self) {
        if self.dumps_stacks && matches!(self.child.try_wait(), Ok(None)) {
            let pid = self.pid().to_string();
            let sent = std::process::Command::new("kill")
                .args(["-USR1", &pid])
                .status()
                .is_ok_and(|s| s.success());
            if sent {
                tokio::time::sleep(STACK_DUMP_WAIT).await;
                eprintln!(
                    "{}: the run failed; its threads' stacks are in {}",
                    self.label,
                    self.log.display()
                );
            }
        }
        self.stop().await;
    }
}

/// How long a worker sent SIGUSR1 gets to write its stacks (1,000 Python threads' worth).
const STACK_DUMP_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A `kB` field of `/proc/PID/status`.
pub fn proc_status_kb(pid: u32, field: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(field).and_then(|r| r.strip_prefix(':')) {
            let kb = rest.trim().trim_end_matches("kB").trim();
            return kb
                .parse()
                .with_context(|| format!("{path}: {field} is {rest:?}"));
        }
    }
    bail!("{path}: no {field} line")
}

/// The clock ticks per second of `/proc/PID/stat` and `/proc/stat` (USER_HZ: 100 on Linux).
const USER_HZ: f64 = 100.0;

/// The machine's CPU time so far, in clock ticks summed over all cores (the first line of
/// `/proc/stat`).
#[derive(Debug, Clone, Copy)]
pub struct MachineCpu {
    /// Time the cores ran this machine's work: user, nice, system, irq and softirq (guest
    /// time is already in user).
    pub work: u64,
    /// Time the hypervisor gave a core to someone else while it had work to run.
    pub steal: u64,
    /// Everything, idle and I/O wait included.
    pub total: u64,
}

impl MachineCpu {
    pub fn now() -> Result<MachineCpu> {
        let text = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
        let ticks: Vec<u64> = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("cpu "))
            .context("/proc/stat: no cpu line")?
            .split_whitespace()
            .map(|f| f.parse().context("/proc/stat: a cpu field is no number"))
            .collect::<Result<_>>()?;
        // user nice system idle iowait irq softirq steal (guest, guest_nice)
        let [user, nice, system, idle, iowait, irq, softirq, steal, ..] = ticks[..] else {
            bail!("/proc/stat: fewer than 8 cpu fields");
        };
        Ok(MachineCpu {
            work: user + nice + system + irq + softirq,
            steal,
            total: user + nice + system + idle + iowait + irq + softirq + steal,
        })
    }

    /// The time the cores ran work, in seconds.
    pub fn work_seconds(&self) -> f64 {
        self.work as f64 / USER_HZ
    }

    /// The ticks from `earlier` to `self`.
    pub fn since(self, earlier: MachineCpu) -> MachineCpu {
        MachineCpu {
            work: self.work.saturating_sub(earlier.work),
            steal: self.steal.saturating_sub(earlier.steal),
            total: self.total.saturating_sub(earlier.total),
        }
    }
}

/// MemAvailable of the machine, in bytes (a memory benchmark stops before it starves it).
pub fn mem_available() -> Result<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").context("reading /proc/meminfo")?;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("MemAvailable:") {
            let kb: u64 = rest
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .context("MemAvailable")?;
            return Ok(kb * 1024);
        }
    }
    bail!("/proc/meminfo: no MemAvailable line")
}
