//! Wires configuration, storage, registry and HTTP together and runs the
//! servers until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use futures::FutureExt;
use tokio::net::TcpListener;

use crate::config::{Config, parse_listen_addr};
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::registry::{Options, Registry};
use crate::storage::Driver;
use crate::storage::filesystem::FilesystemDriver;
use crate::storage::inmemory::InMemoryDriver;
use crate::storage::ipfs::backend::IpfsBackend;
use crate::storage::ipfs::{IpfsDriver, IpfsStorageConfig};
use crate::storage::s3::{S3Config, S3Driver};

/// Failures that stop the server from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A configuration value cannot be used.
    #[error("configuration: {0}")]
    Config(String),
    /// Binding a listener failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The storage backend could not be initialised.
    #[error("storage: {0}")]
    Storage(String),
    /// TLS material could not be loaded.
    #[error("TLS: {0}")]
    Tls(String),
    /// Serving failed.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// Everything built from a configuration, ready to serve.
pub struct Built {
    /// The registry.
    pub registry: Arc<Registry>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The storage behind the registry.
    pub storage: Storage,
    /// The content-addressed image layer (with `ipfs` storage).
    pub disco: Option<crate::disco::Disco>,
}

/// The storage a configuration names.
pub struct Storage {
    /// The driver the registry uses.
    pub driver: Driver,
    /// The IPFS backend, for `ipfs` storage.
    pub ipfs: Option<Arc<IpfsBackend>>,
    /// The `ipfs` driver itself (MFS paths, for the disco layer).
    pub ipfs_driver: Option<IpfsDriver>,
}

impl Storage {
    fn plain(driver: Driver) -> Self {
        Self {
            driver,
            ipfs: None,
            ipfs_driver: None,
        }
    }

    /// Flushes and stops what needs it (the embedded node).
    pub async fn shutdown(&self) {
        if let Some(b) = &self.ipfs {
            b.shutdown().await;
        }
    }
}

/// The `storage.ipfs` section, typed, or the default one (the embedded
/// node under the data directory) when no driver section is configured.
pub fn ipfs_config(config: &Config) -> Option<IpfsStorageConfig> {
    match (&config.storage.ipfs, config.storage.drivers().is_empty()) {
        (Some(c), _) => Some(c.clone()),
        (None, true) => Some(IpfsStorageConfig::default()),
        (None, false) => None,
    }
}

/// Opens the storage named by the configuration.
pub async fn build_storage(config: &Config) -> Result<Storage, ServerError> {
    let s = &config.storage;
    if let Some(fs) = &s.filesystem {
        let d = FilesystemDriver::new(&fs.rootdirectory).map_err(|e| {
            ServerError::Storage(format!(
                "storage.filesystem.rootdirectory {}: {e}",
                fs.rootdirectory.display()
            ))
        })?;
        return Ok(Storage::plain(Arc::new(d)));
    }
    if s.inmemory.is_some() {
        return Ok(Storage::plain(Arc::new(InMemoryDriver::new())));
    }
    if let Some(v) = &s.s3 {
        let cfg: S3Config = yaml_serde::from_value(v.clone())
            .map_err(|e| ServerError::Config(format!("storage.s3: {e}")))?;
        let d = S3Driver::connect(cfg)
            .await
            .map_err(|e| ServerError::Storage(format!("storage.s3: {e}")))?;
        return Ok(Storage::plain(Arc::new(d)));
    }
    let Some(mut cfg) = ipfs_config(config) else {
        return Err(ServerError::Config("no storage driver configured".into()));
    };
    let data_dir = crate::config::data_dir();
    if cfg.spooldirectory.is_none() {
        cfg.spooldirectory = Some(data_dir.join("ipfs-spool"));
    }
    let backend = Arc::new(
        IpfsBackend::open(&cfg, &data_dir)
            .await
            .map_err(ServerError::Storage)?,
    );
    let driver = IpfsDriver::new(backend.ipfs.clone(), &cfg)
        .await
        .map_err(|e| ServerError::Storage(format!("storage.ipfs: {e}")))?;
    Ok(Storage {
        driver: Arc::new(driver.clone()),
        ipfs: Some(backend),
        ipfs_driver: Some(driver),
    })
}

/// Builds the registry and metrics from a configuration.
pub async fn build(config: &Config) -> Result<Built, ServerError> {
    let storage = build_storage(config).await?;
    tracing::info!(driver = storage.driver.name(), "storage ready");
    let options = Options {
        delete_enabled: config.storage.delete.enabled,
        redirect: !config.storage.redirect.disable,
        readonly: config.storage.maintenance.readonly.enabled,
        ..Options::default()
    };
    let mut registry = Registry::new(storage.driver.clone(), options);
    let metrics = Arc::new(Metrics::new());
    let disco = storage.ipfs_driver.as_ref().map(|d| {
        let network = storage.ipfs.as_ref().and_then(|b| b.network.clone());
        crate::disco::Disco::new(
            config.disco.clone(),
            storage.driver.clone(),
            d.clone(),
            network,
        )
    });
    if let Some(d) = &disco {
        d.remove_leftovers().await;
        registry.add_hook(Arc::new(d.clone()));
        d.metrics().register(&metrics);
    }
    let registry = Arc::new(registry);
    if let Some(net) = storage.ipfs.as_ref().and_then(|b| b.network.as_ref()) {
        metrics.register_values(net.metrics().values());
    }
    Ok(Built {
        registry,
        metrics,
        storage,
        disco,
    })
}

fn extra_headers(config: &Config) -> Result<http::access_log::ExtraHeaders, ServerError> {
    let mut out = Vec::new();
    for (k, values) in &config.http.headers {
        let name = HeaderName::try_from(k.as_str()).map_err(|e| {
            ServerError::Config(format!("http.headers: invalid header name {k:?}: {e}"))
        })?;
        for v in values {
            let value = HeaderValue::try_from(v.as_str()).map_err(|e| {
                ServerError::Config(format!("http.headers.{k}: invalid value {v:?}: {e}"))
            })?;
            out.push((name.clone(), value));
        }
    }
    Ok(Arc::new(out))
}

/// The full API router for a built registry.
pub fn app(config: &Config, built: &Built) -> Result<Router, ServerError> {
    let state = AppState {
        registry: built.registry.clone(),
        metrics: built.metrics.clone(),
        base_url: config.http.host.clone(),
    };
    let mut router = http::router(state);
    if let Some(d) = &built.disco {
        router = router.merge(crate::disco::http::routes(d.clone()));
    }
    let mut router = router.layer(axum::middleware::from_fn_with_state(
        extra_headers(config)?,
        http::access_log::headers,
    ));
    if !config.log.accesslog.disabled {
        router = router.layer(axum::middleware::from_fn(http::access_log::log));
    }
    Ok(router)
}

/// The debug router: Prometheus metrics and health.
pub fn debug_app(config: &Config, built: &Built) -> Router {
    let mut router = Router::new().route(
        "/debug/health",
        get(|| async {
            (
                [(header::CONTENT_TYPE, "application/json")],
                "{\"status\":\"ok\"}",
            )
        }),
    );
    if config.http.debug.prometheus.enabled {
        let metrics = built.metrics.clone();
        router = router.route(
            &config.http.debug.prometheus.path,
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        StatusCode::OK,
                        [(
                            header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        metrics.encode(),
                    )
                        .into_response()
                }
            }),
        );
    }
    router
}

/// Resolves when SIGINT or SIGTERM arrives.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}

async fn bind(addr: &str) -> Result<TcpListener, ServerError> {
    let addr = parse_listen_addr(addr).map_err(ServerError::Config)?;
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

/// Runs the registry until a shutdown signal, then drains for up to
/// `http.draintimeout`.
pub async fn run(config: Config) -> Result<(), ServerError> {
    let built = build(&config).await?;
    let app = app(&config, &built)?;
    let listener = bind(&config.http.addr).await?;
    let local = listener.local_addr()?;
    let shutdown = shutdown_signal().shared();

    if let Some(debug_addr) = &config.http.debug.addr {
        let debug_listener = bind(debug_addr).await?;
        tracing::info!(addr = %debug_listener.local_addr()?, "debug server listening");
        let debug = debug_app(&config, &built);
        let sd = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(debug_listener, debug)
                .with_graceful_shutdown(sd)
                .await
            {
                tracing::error!(error = %e, "debug server failed");
            }
        });
    }

    let purge = &config.storage.maintenance.uploadpurging;
    if purge.enabled && !config.storage.maintenance.readonly.enabled {
        let registry = built.registry.clone();
        let (age, interval, dry) = (
            purge.age,
            purge.interval.max(Duration::from_secs(60)),
            purge.dryrun,
        );
        tokio::spawn(async move {
            // Distribution waits a random delay up to 60 minutes before the
            // first run, so a fleet restart does not purge all at once.
            let jitter = Duration::from_secs(rand::random::<u64>() % 3600);
            tokio::time::sleep(jitter.min(interval)).await;
            loop {
                match registry.purge_uploads(age, dry).await {
                    Ok(n) if n > 0 => tracing::info!(purged = n, "upload purge finished"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "upload purge failed"),
                }
                tokio::time::sleep(interval).await;
            }
        });
    }

    let drain = config.http.draintimeout;
    let sd = shutdown.clone();
    let drained = async move {
        sd.await;
        tokio::time::sleep(drain).await;
        tracing::warn!(
            ?drain,
            "drain timeout reached; closing remaining connections"
        );
    };
    match (&config.http.tls.certificate, &config.http.tls.key) {
        (Some(cert), Some(key)) => {
            let acceptor = crate::tls::acceptor(cert, key).map_err(ServerError::Tls)?;
            tracing::info!(addr = %local, "disco listening (TLS)");
            tokio::select! {
                r = crate::tls::serve(listener, acceptor, app, shutdown.clone()) => r?,
                _ = drained => {}
            }
        }
        _ => {
            tracing::info!(addr = %local, "disco listening");
            let serve = axum::serve(listener, app).with_graceful_shutdown(shutdown.clone());
            tokio::select! {
                r = serve => r?,
                _ = drained => {}
            }
        }
    }
    built.storage.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}
