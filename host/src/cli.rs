//! The `swasm` command line. Each subcommand is a thin shell over a library entry point, so
//! tests can drive the same code in-process.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::logging::LogFormat;

/// Runs AWS SWF activities as sandboxed WebAssembly components.
#[derive(Parser, Debug)]
#[command(name = "swasm", version, about)]
pub struct Cli {
    /// Log line format on stderr: `text` or `json` (default text). Filter with RUST_LOG
    /// (default `info`), e.g. RUST_LOG=swasm=debug.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the configured task lists until SIGTERM, SIGINT or SIGHUP, which start a
    /// graceful stop.
    Run(RunArgs),
    /// A local SWF-compatible endpoint (development and tests only).
    LocalSwf(swf_local::Args),
    /// Run one component locally, without SWF.
    Invoke(crate::tools::InvokeArgs),
    /// Check that a file is a `swasm:activity/plugin` component and list its imports.
    Check(crate::tools::CheckArgs),
    /// List what the plugin dirs hold and whether each file loads.
    Plugins(crate::tools::PluginsArgs),
    /// Register the domain (if `register_domain = true`) and the activity type of every
    /// plugin file that loads; exit 1 if a file does not load, else 2 if a type is already
    /// registered with other defaults.
    Register(RegisterArgs),
    /// swf-local + host + demo decider in one process.
    Dev(crate::dev::DevArgs),
}

/// Where to find SWF; flags override `[swf]` in the config file.
#[derive(clap::Args, Debug, Clone)]
pub struct EndpointArgs {
    /// The config file (required).
    #[arg(long, short)]
    pub config: PathBuf,
    /// SWF endpoint URL (default: `[swf] endpoint_url`, then AWS_ENDPOINT_URL_SWF, then
    /// AWS_ENDPOINT_URL, then the AWS default for the region).
    #[arg(long, value_parser = endpoint_url)]
    pub endpoint_url: Option<String>,
    /// AWS region (default: `[swf] region`, then the standard AWS chain, e.g. AWS_REGION).
    #[arg(long, value_parser = region)]
    pub region: Option<String>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub endpoint: EndpointArgs,
    /// Register the domain (if configured) and the activity types of the plugins that load
    /// before polling, then each one that loads later (default off).
    #[arg(long)]
    pub register: bool,
}

#[derive(clap::Args, Debug, Clone)]
pub struct RegisterArgs {
    #[command(flatten)]
    pub endpoint: EndpointArgs,
}

pub use crate::dev::DevArgs;

impl EndpointArgs {
    /// Loads the config and applies the flags over `[swf]`.
    pub fn load(&self) -> Result<Config> {
        let mut config = Config::load(&self.config)?;
        apply_overrides(
            &mut config,
            self.endpoint_url.as_deref(),
            self.region.as_deref(),
        );
        Ok(config)
    }
}

/// `--region`, checked as `[swf] region` is.
fn region(region: &str) -> Result<String, String> {
    crate::config::check_region(region).map(|()| region.to_string())
}

/// `--endpoint-url`, checked as `[swf] endpoint_url` is.
fn endpoint_url(url: &str) -> Result<String, String> {
    crate::config::check_endpoint_url(url).map(|()| url.to_string())
}

pub fn apply_overrides(config: &mut Config, endpoint_url: Option<&str>, region: Option<&str>) {
    if let Some(url) = endpoint_url {
        config.swf.endpoint_url = Some(url.to_string());
    }
    if let Some(region) = region {
        config.swf.region = Some(region.to_string());
    }
}

/// Runs the parsed command line; the binary's whole `main`.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Run(args) => {
            let config = args.endpoint.load()?;
            crate::worker::run(
                config,
                crate::worker::RunOptions {
                    register: if args.register {
                        crate::worker::Registration::All
                    } else {
                        crate::worker::Registration::Off
                    },
                },
                crate::shutdown::signals(),
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::LocalSwf(args) => {
            swf_local::main(args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Invoke(args) => crate::tools::invoke(args).await,
        Command::Check(args) => crate::tools::check(args).await,
        Command::Plugins(args) => crate::tools::plugins(args).await,
        Command::Register(args) => {
            let config = args.endpoint.load()?;
            let report = crate::register::run(&config).await?;
            for line in report.to_string().lines() {
                say!("{line}");
            }
            Ok(report.exit_code())
        }
        Command::Dev(args) => crate::dev::dev(args).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// `run --help` names every signal that starts the graceful stop (`shutdown::signals`).
    #[test]
    fn run_help_names_every_stop_signal() {
        let cli = Cli::command();
        let run = cli.find_subcommand("run").expect("a run command");
        let about = run.get_about().expect("run's help").to_string();
        for signal in ["SIGTERM", "SIGINT", "SIGHUP"] {
            assert!(about.contains(signal), "{signal} in {about:?}");
        }
    }
}
