//! The `disco` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use disco::config::{Config, Loaded};
use tracing_subscriber::EnvFilter;

/// disco: an OCI container registry whose storage is IPFS.
#[derive(Parser)]
#[command(name = "disco", version = disco::VERSION, about)]
struct Cli {
    /// Configuration file (default: $REGISTRY_CONFIGURATION_PATH, then
    /// ~/.disco/config.yaml if it exists, else built-in defaults).
    #[arg(long, short, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry (the default).
    Serve {
        /// Configuration file (Distribution's `registry serve <config>` form).
        #[arg(value_name = "CONFIG")]
        path: Option<PathBuf>,
    },
    /// Print the embedded IPFS node's peer id and addresses (reads the
    /// node's key; the live addresses of a running disco when one answers).
    Id {
        #[command(flatten)]
        target: Target,
    },
    /// List the peers a running disco's IPFS node is connected to.
    Peers {
        #[command(flatten)]
        target: Target,
    },
    /// Garbage-collect the embedded IPFS blockstore: by the running disco
    /// if one answers, else directly on the data directory.
    Gc {
        #[command(flatten)]
        target: Target,
        /// Never ask a running disco; open the store in this process.
        #[arg(long, conflicts_with = "registry")]
        offline: bool,
        /// Collect registry content (unreferenced blobs, content-addressed
        /// repositories no named repository holds, retention), then blocks.
        #[arg(long)]
        registry: bool,
        /// With --registry: delete manifests no tag points at too.
        #[arg(long, requires = "registry")]
        delete_untagged: bool,
        /// With --registry: only list what would be deleted and the bytes
        /// freed.
        #[arg(long, requires = "registry")]
        dry_run: bool,
    },
    /// The private IPFS network's key: print it, or install another
    /// node's to join its network.
    Network {
        #[command(subcommand)]
        command: NetworkCommand,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

/// Which running disco the node commands talk to, and how they print.
#[derive(clap::Args)]
struct Target {
    /// Base URL of the running disco (default: `http.addr` of the
    /// configuration, on loopback).
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Credentials for a disco with access control, `USER:PASSWORD`
    /// (admin endpoints need an admin). Prefer the environment variable:
    /// it stays out of the process list.
    #[arg(
        long,
        value_name = "USER:PASSWORD",
        env = "DISCO_CREDS",
        hide_env_values = true
    )]
    creds: Option<String>,
}

impl Target {
    /// Installs the credentials for this process's requests.
    fn use_credentials(&self) -> Result<(), ExitCode> {
        if let Some(c) = &self.creds {
            let c = disco::cli::credentials::Credentials::parse(c).map_err(|e| {
                eprintln!("disco: --creds: {e}");
                ExitCode::from(2)
            })?;
            disco::cli::credentials::set(c);
        }
        Ok(())
    }
}

#[derive(Subcommand)]
enum NetworkCommand {
    /// Print this node's network key (Kubo `swarm.key` format), creating
    /// it if the node has none yet.
    Key,
    /// Install another node's key (a file, or `-` for standard input);
    /// restart disco afterwards.
    Join {
        /// The key file, or `-`.
        key: PathBuf,
        /// Replace a different key this node already has.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a configuration file and print the warnings.
    Check {
        /// The file to check.
        path: PathBuf,
    },
}

fn init_logging(config: &Config) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{},hyper=warn,h2=warn,aws=warn,libp2p_kad=error,libp2p_swarm=warn,libp2p_mdns=warn,libp2p_tcp=warn,yamux=warn",
            config.log.level
        ))
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    if matches!(config.log.formatter.as_str(), "json" | "logstash") {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
    if !config.log.fields.is_empty() {
        let fields: Vec<String> = config
            .log
            .fields
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    yaml_serde::to_string(v).unwrap_or_default().trim()
                )
            })
            .collect();
        tracing::info!(fields = %fields.join(" "), "log fields");
    }
}

fn load(path: Option<&std::path::Path>) -> Result<Loaded, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("disco: {e}");
        ExitCode::from(2)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Config {
            command: ConfigCommand::Check { path },
        }) => match Config::load(Some(&path)) {
            Ok(loaded) => {
                for w in &loaded.warnings {
                    println!("warning: {w}");
                }
                println!("{}: OK", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("disco: {e}");
                ExitCode::from(2)
            }
        },
        Some(Command::Network { command }) => {
            let loaded = match load(cli.config.as_deref()) {
                Ok(l) => l,
                Err(code) => return code,
            };
            let result = match command {
                NetworkCommand::Key => disco::cli::network::key(&loaded.config),
                NetworkCommand::Join { key, force } => {
                    let text = if key.as_os_str() == "-" {
                        std::io::read_to_string(std::io::stdin()).map_err(|e| e.to_string())
                    } else {
                        std::fs::read_to_string(&key).map_err(|e| format!("{}: {e}", key.display()))
                    };
                    text.and_then(|t| disco::cli::network::join(&loaded.config, &t, force))
                }
            };
            match result {
                Ok(out) => {
                    print!("{out}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("disco: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Command::Id { target })
        | Some(Command::Peers { target })
        | Some(Command::Gc { target, .. })
            if target.use_credentials().is_err() =>
        {
            ExitCode::from(2)
        }
        Some(Command::Id { target }) => node_command(cli.config, |c| async move {
            disco::cli::id(&c, target.url.as_deref(), target.json).await
        }),
        Some(Command::Peers { target }) => node_command(cli.config, |c| async move {
            disco::cli::peers(&c, target.url.as_deref(), target.json).await
        }),
        Some(Command::Gc {
            target,
            offline,
            registry,
            delete_untagged,
            dry_run,
        }) => node_command(cli.config, |c| async move {
            if registry {
                let req = disco::registry::gc::GcRequest {
                    delete_untagged,
                    dry_run,
                };
                disco::cli::gc_registry(&c, target.url.as_deref(), req, target.json).await
            } else {
                disco::cli::gc(&c, target.url.as_deref(), offline, target.json).await
            }
        }),
        Some(Command::Serve { path }) => serve(path.or(cli.config)),
        None => serve(cli.config),
    }
}

/// Runs one of the node commands (`id`, `peers`, `gc`) and prints its
/// output, or its error with exit code 1.
fn node_command<F, Fut>(path: Option<PathBuf>, f: F) -> ExitCode
where
    F: FnOnce(Config) -> Fut,
    Fut: std::future::Future<Output = disco::cli::CliResult>,
{
    let loaded = match load(path.as_deref()) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let runtime = match runtime(Some(2)) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match runtime.block_on(f(loaded.config)) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("disco: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A multi-threaded runtime (`workers` threads, default one per core); on
/// failure the error is printed and the exit code returned.
fn runtime(workers: Option<usize>) -> Result<tokio::runtime::Runtime, ExitCode> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = workers {
        b.worker_threads(n);
    }
    b.enable_all().build().map_err(|e| {
        eprintln!("disco: cannot start the async runtime: {e}");
        ExitCode::FAILURE
    })
}

fn serve(path: Option<PathBuf>) -> ExitCode {
    let loaded = match load(path.as_deref()) {
        Ok(l) => l,
        Err(code) => return code,
    };
    init_logging(&loaded.config);
    match &loaded.path {
        Some(p) => {
            tracing::info!(config = %p.display(), version = disco::VERSION, "starting disco")
        }
        None => tracing::info!(
            version = disco::VERSION,
            "starting disco with built-in defaults"
        ),
    }
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let runtime = match runtime(None) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match runtime.block_on(disco::server::run(loaded.config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("disco: {e}");
            ExitCode::FAILURE
        }
    }
}
