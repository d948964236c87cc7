//! `swasm dev`: swf-local, the host and the demo decider in one process, on loopback.
//!
//! It builds nothing: it serves the `.wasm` files already in the plugin directory
//! (`make plugins` puts the examples in `plugins/dist/`). Steps: bind swf-local, load the
//! plugins, register the domain, the activity types of the plugins that load (a file that
//! does not load registers nothing) and the demo workflow type, start the worker as
//! `swasm run --register` would (a plugin dropped in later is registered as it loads), start
//! the demo workflows (see `swasm_demo`), print progress as the decider sees it, then a
//! summary (a demo that would run nothing is an error). With `--serve` it keeps serving
//! afterwards. A worker that stops on its own ends it at once, with the worker's error.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use aws_sdk_swf::config::{Credentials, Region, StalledStreamProtectionConfig};
use swasm_demo::{Decider, Demo, Job, demo_jobs};
use tokio::sync::oneshot;

use crate::activity::ActivityType;
use crate::config::Config;
use crate::shutdown::Shutdown;

/// The domain, task list and region `swasm dev` uses.
pub const DOMAIN: &str = "swasm-dev";
pub const TASK_LIST: &str = "demo";
const REGION: &str = "us-east-1";

#[derive(clap::Args, Debug, Clone)]
pub struct DevArgs {
    /// The plugin directory served on the `demo` task list (default `plugins/dist`).
    #[arg(long, default_value = "plugins/dist")]
    pub plugins: PathBuf,
    /// Where swf-local listens (default 127.0.0.1:0, a free port; 127.0.0.1:8700 with --serve).
    /// 0.0.0.0 or :: serves every interface; this process still connects through loopback.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Keep serving after the demo, until Ctrl-C (default off).
    #[arg(long)]
    pub serve: bool,
    /// Skip the demo workflows (default off; useful with --serve).
    #[arg(long)]
    pub no_demo: bool,
    /// Serve /metrics, /healthz, /readyz and /status here (default: not served).
    #[arg(long)]
    pub metrics: Option<String>,
    /// History page size the demo decider asks for; small values show paging (default 100).
    #[arg(long, default_value_t = 100)]
    pub page_size: i32,
    /// Give up on the demo after this many seconds (default 120).
    #[arg(long, default_value_t = 120)]
    pub deadline_s: u64,
}

/// Runs `swasm dev`.
pub async fn dev(args: DevArgs) -> Result<ExitCode> {
    let plugin_dir = std::path::absolute(&args.plugins)
        .with_context(|| format!("plugin directory {}", args.plugins.display()))?;
    // Without the demo, an empty dir is fine: plugins dropped in later are served and
    // registered as they load.
    if !args.no_demo && plugin_files(&plugin_dir).is_empty() {
        bail!(
            "no <name>@<version>.wasm files in {}: build the examples first with `make plugins` (or pass --plugins DIR)",
            plugin_dir.display()
        );
    }
    let listen = args.listen.unwrap_or_else(|| {
        if args.serve {
            "127.0.0.1:8700".parse().unwrap()
        } else {
            "127.0.0.1:0".parse().unwrap()
        }
    });
    let server = swf_local::Server::bind(listen, swf_local::Options::default())
        .await
        .with_context(|| format!("swf-local cannot listen on {listen}"))?;
    let bound = server.local_addr();
    let url = connect_url(bound);
    let (stop_server_tx, server_stopped) = oneshot::channel::<()>();
    let server_task = tokio::spawn(server.run(async move {
        let _ = server_stopped.await;
    }));
    say!("swf-local listening on {url}");
    if bound.ip().is_unspecified() {
        say!(
            "  (bound to {bound}, every interface: other machines reach it at this machine's address, port {}; it checks no credentials)",
            bound.port()
        );
    }

    // What the demo's fetch activities are granted (and nothing else is): a web server of
    // its own on loopback.
    let web = if args.no_demo {
        None
    } else {
        Some(demo_web_server().await?)
    };
    let config = Arc::new(dev_config(&url, &plugin_dir, args.metrics.as_deref(), web)?);

    // Load (compile, or take from the cache) every plugin before any workflow starts, so no
    // demo task waits in the queue for a host that is still compiling, and before
    // registering, so only types that load are registered (SWF never forgets a type).
    say!(
        "loading plugins from {} (compiled code is cached for the next run)",
        plugin_dir.display()
    );
    let runtime =
        crate::runtime::Runtime::new(&config).context("cannot set up the WebAssembly runtime")?;
    let registry = crate::registry::Registry::start(&config, runtime)
        .await
        .context("cannot load the plugins")?;
    if !args.no_demo {
        settle(&registry, &plugin_dir).await;
    }
    let served: Vec<String> = registry
        .served(TASK_LIST)
        .iter()
        .map(ToString::to_string)
        .collect();
    // Before anything is registered or started: a demo that would run nothing is an error,
    // not an empty summary.
    let jobs = if args.no_demo {
        Vec::new()
    } else {
        jobs_to_run(
            &served,
            &registry.rejected(),
            &unsettled(&registry, &plugin_dir),
            &plugin_dir,
            web.map(|a| a.to_string()).as_deref(),
        )?
    };
    let swf: Arc<dyn crate::swf::SwfClient> = Arc::new(crate::swf::connect(&config).await?);
    let types = crate::register::served_types(&config, &registry.plugins());
    let report = crate::register::register_all(&config, swf.as_ref(), &types)
        .await
        .context("registering the domain and plugins")?;
    for line in report.to_string().lines() {
        say!("{line}");
    }
    let client = demo_client(&url).await;
    let demo = Demo {
        client: client.clone(),
        domain: DOMAIN.to_string(),
    };
    demo.register_workflow_type().await?;

    let shutdown = Shutdown::new(Duration::from_secs(config.shutdown_grace_s));
    // Raced against the demo and the wait for Ctrl-C: a worker that stops (its metrics
    // address taken, say) ends `swasm dev` at once with its error, instead of leaving the
    // demo to time out or --serve to serve nothing.
    let mut worker = tokio::spawn(crate::worker::run_with(
        config.clone(),
        crate::worker::RunOptions {
            register: crate::worker::Registration::Later(report),
        },
        swf,
        registry,
        shutdown.clone(),
    ));
    if served.is_empty() {
        say!(
            "swasm serving task list {TASK_LIST:?} of domain {DOMAIN:?}: nothing yet; drop <name>@<version>.wasm files into {}",
            plugin_dir.display()
        );
    } else {
        say!(
            "swasm serving task list {TASK_LIST:?} of domain {DOMAIN:?}: {}",
            served.join(", ")
        );
    }

    let decider = Arc::new(Decider::new(client, DOMAIN).with_page_size(args.page_size));
    let mut code = ExitCode::SUCCESS;
    if !args.no_demo {
        say!(
            "demo: starting {} workflows over {} activity types",
            jobs.len(),
            served.len()
        );
        let run_demo = async {
            let started = demo.start("demo", &jobs).await?;
            demo.run(
                &decider,
                &started,
                Duration::from_secs(args.deadline_s),
                |p| say!("  {p}"),
            )
            .await
        };
        let summary = tokio::select! {
            ended = &mut worker => {
                return Err(stop_server(stop_server_tx, server_task, worker_stopped(ended)).await);
            }
            summary = run_demo => summary,
        };
        match summary {
            Ok(summary) => say!("\n{summary}"),
            Err(e) => {
                eprintln!("demo did not finish: {e:#}");
                code = ExitCode::FAILURE;
            }
        }
    }

    if args.serve {
        // The example names a type this host serves: echo@1 when the dir has it.
        let example = served
            .iter()
            .find(|t| *t == "echo@1")
            .or(served.first())
            .map_or("echo@1", String::as_str);
        say!(
            "\nserving until Ctrl-C. Try, with boto3 or the AWS CLI (they need a region and some credentials; swf-local checks none):"
        );
        say!(
            "  AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local aws swf start-workflow-execution --endpoint-url {url} --region {REGION} --domain {DOMAIN} \\\n    --workflow-id my-1 --workflow-type name={},version={} \\\n    --input '{{\"activity\":\"{example}\",\"task_list\":\"{TASK_LIST}\",\"input\":\"hi\"}}'",
            swasm_demo::WORKFLOW_NAME,
            swasm_demo::WORKFLOW_VERSION
        );
        say!(
            "  AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local aws swf list-closed-workflow-executions --endpoint-url {url} --region {REGION} --domain {DOMAIN} --start-time-filter oldestDate=0"
        );
        let decide = {
            let decider = decider.clone();
            tokio::spawn(async move {
                loop {
                    match decider.poll_once().await {
                        Ok(handled) => handled.progress.iter().for_each(|p| say!("  {p}")),
                        Err(e) => {
                            eprintln!("decider: {e:#}");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
            })
        };
        let ended = tokio::select! {
            ended = &mut worker => Some(ended),
            () = crate::shutdown::signals() => None,
        };
        decide.abort();
        if let Some(ended) = ended {
            return Err(stop_server(stop_server_tx, server_task, worker_stopped(ended)).await);
        }
    }

    // The endpoint lives in this process and nothing will schedule work any more: stopping
    // it right away ends the worker's held long polls now instead of at their 60 s timeout.
    // The worker's shutdown begins first, so a poll the closing endpoint cuts is seen as
    // part of the shutdown, not logged as an outage.
    shutdown.initiate();
    let _ = stop_server_tx.send(());
    worker.await.context("the worker task panicked")??;
    let _ = server_task.await;
    Ok(code)
}

/// Why the worker task ended before `swasm dev` asked it to.
fn worker_stopped(ended: Result<Result<()>, tokio::task::JoinError>) -> anyhow::Error {
    match ended {
        Ok(Err(e)) => e.context("the worker stopped"),
        Ok(Ok(())) => anyhow::anyhow!("the worker stopped before it was asked to"),
        Err(e) => anyhow::Error::new(e).context("the worker task panicked"),
    }
}

/// Stops the embedded endpoint, waits for it, and hands back `error`.
async fn stop_server(
    stop: oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    error: anyhow::Error,
) -> anyhow::Error {
    let _ = stop.send(());
    let _ = server.await;
    error
}

/// The URL this process, and clients on this machine, reach swf-local at when it is bound
/// to `bound`: an address bound to every interface (`0.0.0.0`, `::`) is reached through
/// loopback on the same port, which is also what lets the worker run without credentials
/// (it signs with dummy ones only for a loopback endpoint).
fn connect_url(bound: SocketAddr) -> String {
    let ip = match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, bound.port()))
}

/// A web server on loopback for the demo's `fetch` activities, the one host they are
/// granted: it answers every request with a line of text.
async fn demo_web_server() -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("the demo's web server cannot listen on 127.0.0.1")?;
    let bound = listener.local_addr()?;
    let app = axum::Router::new().fallback(|| async { "hello from the demo's web server\n" });
    // Ends with the process.
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(bound)
}

/// The configuration `swasm dev` runs the worker with. `web`: the demo's web server, which
/// the `fetch*` types in `plugin_dir` are granted (`allowed_hosts`).
fn dev_config(
    url: &str,
    plugin_dir: &Path,
    metrics: Option<&str>,
    web: Option<SocketAddr>,
) -> Result<Config> {
    // Values from outside go in as TOML strings written by toml itself: Rust's `{:?}`
    // escapes (`\u{301}`) are not TOML's, and a path may hold any character.
    let quote = |text: &str| toml::Value::String(text.to_string()).to_string();
    let metrics = metrics
        .map(|m| format!("\n[metrics]\nlisten = {}\n", quote(m)))
        .unwrap_or_default();
    // Tables by name (every version), only for names the dir holds: a table for a type no
    // file serves is warned about.
    // Named as the registry names them: the version follows the last `@`.
    let fetches: std::collections::BTreeSet<String> = plugin_files(plugin_dir)
        .iter()
        .filter_map(|f| ActivityType::parse(f.strip_suffix(".wasm")?))
        .map(|ty| ty.name)
        .filter(|name| name.starts_with("fetch"))
        .collect();
    let grants: String = web
        .map(|web| {
            fetches
                .iter()
                .map(|name| {
                    format!(
                        "\n[activity.{}]\nallowed_hosts = [{}]\n",
                        quote(name),
                        quote(&web.to_string())
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let text = format!(
        r#"shutdown_grace_s = 5

[swf]
domain = "{DOMAIN}"
endpoint_url = {url}
region = "{REGION}"
identity = "swasm-dev"
register_domain = true

[[task_list]]
name = "{TASK_LIST}"
plugin_dir = {dir}
max_concurrent = 16

[defaults]
timeout_s = 60
heartbeat_interval_s = 1
schedule_to_start_timeout_s = 60
start_to_close_timeout_s = 120
schedule_to_close_timeout_s = 180
heartbeat_timeout_s = 30
{metrics}{grants}"#,
        url = quote(url),
        dir = quote(&plugin_dir.to_string_lossy()),
    );
    let mut config = Config::parse(&text, Path::new("<swasm dev>"))?;
    // The path itself, not its text: it need not be UTF-8.
    config.task_lists[0].plugin_dir = plugin_dir.to_path_buf();
    Ok(config)
}

/// The files of `dir` the registry tries to load as plugins: the visible
/// `<name>@<version>.wasm` with a UTF-8 name (a dot-file is a copy under way, never loaded).
fn plugin_files(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| name.ends_with(".wasm") && name.contains('@') && !name.starts_with('.'))
        .collect();
    names.sort();
    names
}

/// How long `swasm dev` waits for files of its dir that are still being written before it
/// judges what loads (a truncated component is looked at again for 5 s).
const SETTLE_WAIT: Duration = Duration::from_secs(10);

/// The plugin files of `dir` that neither serve nor were rejected: the registry looks at
/// them again once they settle (a fresh copy that does not load yet, one being written).
fn unsettled(registry: &crate::registry::Registry, dir: &Path) -> Vec<String> {
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    let mut known: Vec<String> = registry
        .plugins()
        .iter()
        .filter_map(|p| name(&p.path))
        .collect();
    known.extend(registry.rejected().iter().filter_map(|r| name(&r.path)));
    plugin_files(dir)
        .into_iter()
        .filter(|f| !known.contains(f))
        .collect()
}

/// Waits, at most [`SETTLE_WAIT`], until every plugin file of `dir` serves or is rejected,
/// so the demo is judged on what the dir holds, not on a scan that came too early.
async fn settle(registry: &crate::registry::Registry, dir: &Path) {
    let until = tokio::time::Instant::now() + SETTLE_WAIT;
    while !unsettled(registry, dir).is_empty() && tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The demo's workflows for the types `served`, or why there are none: the files that did
/// not load (yet) and why, or the types the demo has no workflow for.
fn jobs_to_run(
    served: &[String],
    rejected: &[crate::registry::RejectedFile],
    unsettled: &[String],
    dir: &Path,
    web: Option<&str>,
) -> Result<Vec<Job>> {
    if served.is_empty() {
        let mut files: Vec<String> = rejected
            .iter()
            .map(|r| format!("  {}: {}", r.path.display(), r.why))
            .collect();
        files.extend(
            unsettled
                .iter()
                .map(|f| format!("  {}: still being written", dir.join(f).display())),
        );
        bail!(
            "no plugin in {} loads, so the demo has nothing to run:\n{}",
            dir.display(),
            files.join("\n")
        );
    }
    let jobs = demo_jobs(served, TASK_LIST, web)?;
    if jobs.is_empty() {
        bail!(
            "the demo has no workflow for {}: it runs echo*, countdown*, fetch* and validate types (`--serve --no-demo` serves any, for workflows you start)",
            served.join(", ")
        );
    }
    Ok(jobs)
}

/// A client for the demo decider: long polls are held up to 60 s, so no attempt timeout.
async fn demo_client(url: &str) -> aws_sdk_swf::Client {
    let conf = aws_sdk_swf::Config::builder()
        .behavior_version(aws_sdk_swf::config::BehaviorVersion::latest())
        .endpoint_url(url)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(
            "swasm-dev",
            "swasm-dev",
            None,
            None,
            "swasm-dev",
        ))
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .build();
    aws_sdk_swf::Client::from_conf(conf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plugin dir reaches the config as it is: with a control character, a combining
    /// mark (which Rust's `{:?}` writes as `\u{301}`, not TOML) and a byte that is not UTF-8.
    #[test]
    fn the_config_takes_any_plugin_dir_and_metrics_address() {
        use std::os::unix::ffi::OsStrExt;
        let mut name = b"plugins \x07 e\xcc\x81 \" \\ ".to_vec();
        name.push(0xff);
        let dir = Path::new("/tmp").join(std::ffi::OsStr::from_bytes(&name));
        let config =
            dev_config("http://127.0.0.1:8700", &dir, Some("127.0.0.1:9464"), None).unwrap();
        assert_eq!(config.task_lists[0].plugin_dir, dir);
        assert_eq!(config.metrics.listen.as_deref(), Some("127.0.0.1:9464"));
        assert_eq!(
            config.swf.endpoint_url.as_deref(),
            Some("http://127.0.0.1:8700")
        );
        // A value the config refuses is named as such, not as broken TOML.
        let err = dev_config("http://127.0.0.1:8700", &dir, Some("nowhere\u{301}"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("metrics.listen"), "{err}");
    }

    /// The fetch types of the dir, every version, are granted the demo's web server, and
    /// nothing else is.
    #[test]
    fn the_fetch_types_are_granted_the_demo_web_server() {
        let dir = std::env::temp_dir().join(format!("swasm-dev-grants-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for f in [
            "fetch@1.wasm",
            "fetch@2.wasm",
            "fetch-py@1.wasm",
            "echo@1.wasm",
        ] {
            std::fs::write(dir.join(f), b"").unwrap();
        }
        let web: SocketAddr = "127.0.0.1:4242".parse().unwrap();
        let config = dev_config("http://127.0.0.1:8700", &dir, None, Some(web)).unwrap();
        let hosts = |name: &str, version: &str| {
            config
                .settings_for(&ActivityType::new(name, version))
                .allowed_hosts
                .clone()
        };
        for (name, version) in [("fetch", "1"), ("fetch", "2"), ("fetch-py", "1")] {
            assert_eq!(hosts(name, version), ["127.0.0.1:4242"], "{name}@{version}");
        }
        assert!(hosts("echo", "1").is_empty());
        let without = dev_config("http://127.0.0.1:8700", &dir, None, None).unwrap();
        assert!(
            without
                .settings_for(&ActivityType::new("fetch", "1"))
                .allowed_hosts
                .is_empty()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// `--listen 0.0.0.0:P` (or `[::]:P`) serves every interface; this process connects
    /// through loopback, so the worker gets the dummy credentials a loopback endpoint gets.
    #[test]
    fn an_address_bound_to_every_interface_is_reached_through_loopback() {
        let url = |a: &str| connect_url(a.parse().unwrap());
        assert_eq!(url("0.0.0.0:8700"), "http://127.0.0.1:8700");
        assert_eq!(url("[::]:8700"), "http://[::1]:8700");
        assert_eq!(url("127.0.0.1:8700"), "http://127.0.0.1:8700");
        assert_eq!(url("[::1]:8700"), "http://[::1]:8700");
        assert_eq!(url("10.1.2.3:8700"), "http://10.1.2.3:8700");
        for bound in ["0.0.0.0:8700", "[::]:8700"] {
            assert!(crate::swf::is_loopback_url(&url(bound)), "{bound}");
        }
    }
}
