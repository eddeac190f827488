//! Wires configuration, storage, registry and HTTP together and runs the
//! servers until SIGINT/SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use futures::FutureExt;
use tokio::net::TcpListener;

use crate::config::{Config, FilesystemConfig, parse_listen_addr};
use crate::health::{Check, Health};
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::registry::{Options, Registry};
use crate::storage::Driver;
use crate::storage::cache::CacheDriver;
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
    /// Binding a listener failed (the message names the port and key).
    #[error("{0}")]
    Listen(String),
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
    /// Access control (`auth`), when configured.
    pub auth: Option<Arc<crate::auth::Auth>>,
    /// Background health checks (`/debug/health`).
    pub health: crate::health::Health,
    /// The pull-through mirror (`proxy`), when configured.
    pub mirror: Option<crate::mirror::Mirror>,
    /// Registry (and block) garbage collection.
    pub gc: Arc<crate::registry::gc::Collector>,
}

/// The storage a configuration names.
pub struct Storage {
    /// The driver the registry uses.
    pub driver: Driver,
    /// The IPFS backend, for `ipfs` storage.
    pub ipfs: Option<Arc<IpfsBackend>>,
    /// The `ipfs` driver itself (MFS paths, for the disco layer).
    pub ipfs_driver: Option<IpfsDriver>,
    /// The secondary store (`storage.ipfs.cache`), when configured; then
    /// `driver` is this cache driver.
    pub cache: Option<CacheDriver>,
}

impl Storage {
    fn plain(driver: Driver) -> Self {
        Self {
            driver,
            ipfs: None,
            ipfs_driver: None,
            cache: None,
        }
    }

    /// True for `ipfs` storage (content-addressed images are published),
    /// cache-only mode included (a cache exists only with `ipfs` storage).
    pub fn content_addressed(&self) -> bool {
        self.ipfs_driver.is_some() || self.cache.is_some()
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
        (None, true) => {
            let mut c = IpfsStorageConfig::default();
            c.embedded.net.pick_free_port = true;
            Some(c)
        }
        (None, false) => None,
    }
}

fn filesystem_driver(fs: &FilesystemConfig, key: &str) -> Result<Driver, ServerError> {
    let d = FilesystemDriver::new(&fs.rootdirectory).map_err(|e| {
        ServerError::Storage(format!(
            "{key}.rootdirectory {}: {e}",
            fs.rootdirectory.display()
        ))
    })?;
    Ok(Arc::new(d))
}

async fn s3_driver(v: &yaml_serde::Value, key: &str) -> Result<Driver, ServerError> {
    let cfg: S3Config = yaml_serde::from_value(v.clone())
        .map_err(|e| ServerError::Config(format!("{key}: {e}")))?;
    let d = S3Driver::connect(cfg)
        .await
        .map_err(|e| ServerError::Storage(format!("{key}: {e}")))?;
    Ok(Arc::new(d))
}

/// The driver of `storage.ipfs.cache`: a mapping with exactly one driver
/// section (`filesystem`, `s3` or `inmemory`).
async fn cache_driver(v: &yaml_serde::Value) -> Result<Driver, ServerError> {
    let bad = |why: String| ServerError::Config(format!("storage.ipfs.cache: {why}"));
    let map = v.as_mapping().ok_or_else(|| {
        bad(
            "expected one driver section, e.g. `filesystem: {rootdirectory: ...}` or `s3: {...}`"
                .into(),
        )
    })?;
    if map.len() != 1 {
        return Err(bad(format!(
            "expected exactly one driver section, found {}",
            map.len()
        )));
    }
    let (k, v) = map.iter().next().expect("one entry");
    match k.as_str() {
        Some("filesystem") => {
            let fs: FilesystemConfig =
                yaml_serde::from_value(v.clone()).map_err(|e| bad(format!("filesystem: {e}")))?;
            filesystem_driver(&fs, "storage.ipfs.cache.filesystem")
        }
        Some("s3") => s3_driver(v, "storage.ipfs.cache.s3").await,
        Some("inmemory") => Ok(Arc::new(InMemoryDriver::new())),
        other => Err(bad(format!(
            "unknown driver {other:?} (filesystem, s3 or inmemory)"
        ))),
    }
}

/// The upload spool of `ipfs` storage: `spooldirectory`, else under the
/// data directory.
fn spool_dir(cfg: &IpfsStorageConfig) -> std::path::PathBuf {
    cfg.spooldirectory
        .clone()
        .unwrap_or_else(|| crate::config::data_dir().join("ipfs-spool"))
}

/// The health checks for a configuration's storage: the driver, every
/// local directory written to, every Kubo node.
fn health_checks(config: &Config, storage: &Storage) -> Result<Vec<Check>, ServerError> {
    let mut checks = vec![Check::driver(storage.driver.clone())];
    if let Some(fs) = &config.storage.filesystem {
        checks.push(Check::disk(fs.rootdirectory.clone()));
    }
    let ipfs = ipfs_config(config).filter(|c| !c.cacheonly);
    if let Some(node) = storage.ipfs.as_ref().and_then(|b| b.embedded.as_ref()) {
        checks.push(Check::disk(node.path()));
    }
    if let Some(cfg) = &ipfs {
        checks.push(Check::disk(spool_dir(cfg)));
    }
    if let Some(router) = ipfs.as_ref().and_then(|c| c.router.as_ref()) {
        for n in &router.nodes {
            let client = crate::ipfs::kubo::KuboClient::new(&n.url, router)
                .map_err(|e| ServerError::Config(format!("storage.ipfs.router: {e}")))?;
            checks.push(Check::kubo(n.url.clone(), Arc::new(client)));
        }
    }
    Ok(checks)
}

/// Opens the storage named by the configuration.
pub async fn build_storage(config: &Config) -> Result<Storage, ServerError> {
    let s = &config.storage;
    if let Some(fs) = &s.filesystem {
        return Ok(Storage::plain(filesystem_driver(fs, "storage.filesystem")?));
    }
    if s.inmemory.is_some() {
        return Ok(Storage::plain(Arc::new(InMemoryDriver::new())));
    }
    if let Some(v) = &s.s3 {
        return Ok(Storage::plain(s3_driver(v, "storage.s3").await?));
    }
    let Some(mut cfg) = ipfs_config(config) else {
        return Err(ServerError::Config("no storage driver configured".into()));
    };
    let cache = match &cfg.cache {
        Some(v) => Some(cache_driver(v).await?),
        None => None,
    };
    if cfg.redirect.is_some() && cache.is_none() {
        return Err(ServerError::Config(
            "storage.ipfs.redirect needs storage.ipfs.cache (the base URL serves the cache)".into(),
        ));
    }
    if cfg.cacheonly {
        let Some(cache) = cache else {
            return Err(ServerError::Config(
                "storage.ipfs.cacheonly needs storage.ipfs.cache".into(),
            ));
        };
        tracing::info!("cache-only mode: serving from the cache alone, without IPFS");
        let c = CacheDriver::new(None, cache, cfg.redirect.clone());
        return Ok(Storage {
            driver: Arc::new(c.clone()),
            ipfs: None,
            ipfs_driver: None,
            cache: Some(c),
        });
    }
    let data_dir = crate::config::data_dir();
    cfg.spooldirectory = Some(spool_dir(&cfg));
    let backend = Arc::new(
        IpfsBackend::open(&cfg, &data_dir)
            .await
            .map_err(ServerError::Storage)?,
    );
    let driver = IpfsDriver::new(backend.ipfs.clone(), &cfg)
        .await
        .map_err(|e| ServerError::Storage(format!("storage.ipfs: {e}")))?;
    let cache =
        cache.map(|c| CacheDriver::new(Some(Arc::new(driver.clone())), c, cfg.redirect.clone()));
    Ok(Storage {
        driver: match &cache {
            Some(c) => Arc::new(c.clone()),
            None => Arc::new(driver.clone()),
        },
        ipfs: Some(backend),
        ipfs_driver: Some(driver),
        cache,
    })
}

/// Refuses configurations where one protection would be silently undone by
/// another part: access control with an embedded node that serves every
/// block to any peer. Warns where disco cannot tell.
pub fn security_checks(config: &Config) -> Result<(), ServerError> {
    let Some(auth) = config.auth.as_ref().filter(|a| a.enabled()) else {
        return Ok(());
    };
    if config.http.tls.certificate.is_none() {
        tracing::warn!(
            "access control without http.tls: credentials and tokens cross the network in clear \
             text; serve TLS (or a TLS proxy) unless this port is only reachable locally"
        );
    }
    let Some(ipfs) = ipfs_config(config) else {
        return Ok(());
    };
    if ipfs.router.is_some() {
        tracing::warn!(
            "access control with Kubo nodes: the Kubo nodes serve stored blocks to their own IPFS \
             network whatever disco allows over HTTP; give them a private network (swarm.key) \
             or no swarm listeners"
        );
        return Ok(());
    }
    let net = &ipfs.embedded.net;
    let everything_public = auth.htpasswd.is_some()
        && crate::auth::rules::Rules::new(auth.access.as_ref()).everything_public();
    if !net.listen.is_empty() && !net.is_private() && !everything_public {
        return Err(ServerError::Config(
            "access control is on, but the embedded IPFS node runs an open network \
             (storage.ipfs.embedded.public: true or private: false): any peer could fetch by CID \
             the blocks HTTP denies. Use a private network (the default, or swarmkey), or make \
             every repository anonymously pullable in auth.access"
                .into(),
        ));
    }
    Ok(())
}

/// Builds the registry and metrics from a configuration.
pub async fn build(config: &Config) -> Result<Built, ServerError> {
    security_checks(config)?;
    // Credential files are read before storage opens: a bad one stops
    // disco before anything listens.
    let auth = match config.auth.as_ref().filter(|a| a.enabled()) {
        Some(a) => Some(Arc::new(
            crate::auth::Auth::new(a).map_err(ServerError::Config)?,
        )),
        None => None,
    };
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
    let disco = storage.content_addressed().then(|| {
        let network = storage.ipfs.as_ref().and_then(|b| b.network.clone());
        crate::disco::Disco::new(
            config.disco.clone(),
            storage.driver.clone(),
            storage.ipfs_driver.clone(),
            network,
            storage.cache.clone(),
        )
    });
    if let Some(c) = &storage.cache {
        c.metrics().register(&metrics);
    }
    if let Some(d) = &disco {
        d.remove_leftovers().await;
        registry.add_hook(Arc::new(d.clone()));
        d.metrics().register(&metrics);
    }
    let registry = Arc::new(registry);
    if let Some(net) = storage.ipfs.as_ref().and_then(|b| b.network.as_ref()) {
        metrics.register_values(net.metrics().values());
        if let (Some(d), Some(cfg)) = (&disco, ipfs_config(config)) {
            d.start_announcing(cfg.embedded.net.reprovide_interval);
        }
    }
    if let Some(a) = &auth {
        a.attach(registry.clone());
    }
    let health = Health::start(
        health_checks(config, &storage)?,
        &config.health.storagedriver,
    );
    let network = storage.ipfs.as_ref().and_then(|b| b.network.clone());
    if let (Some(d), Some(net)) = (&disco, &network) {
        // Any node answers which CID an image it holds has.
        crate::mirror::peers::serve(d.clone(), net.stream_control());
    }
    let mirror = if config.proxy.enabled() {
        let m = crate::mirror::Mirror::new(&config.proxy, registry.clone(), disco.clone(), network)
            .map_err(|e| ServerError::Config(format!("proxy: {e}")))?;
        m.metrics().register(&metrics);
        Some(m)
    } else {
        None
    };
    let gc = gc_collector(config, &registry, &storage, disco.as_ref());
    gc.metrics().register(&metrics);
    Ok(Built {
        registry,
        metrics,
        storage,
        disco,
        auth,
        health,
        mirror,
        gc,
    })
}

/// The garbage collector of a built registry: content-addressed names
/// matter with `ipfs` storage; with `disco.keepnames: false` their
/// repositories are the only ones holding images, so they are kept.
fn gc_collector(
    config: &Config,
    registry: &Arc<Registry>,
    storage: &Storage,
    disco: Option<&crate::disco::Disco>,
) -> Arc<crate::registry::gc::Collector> {
    let keep_ca = config.gc.keepclones || !config.disco.keepnames;
    let mut c = crate::registry::gc::Collector::new(
        registry.clone(),
        config.gc.clone(),
        disco.is_some(),
        keep_ca,
    );
    if let Some(node) = storage.ipfs.as_ref().and_then(|b| b.embedded.clone()) {
        c = c.with_blocks(Arc::new(node));
    }
    if let Some(d) = disco {
        c = c.with_clones(Arc::new(d.clone()));
    }
    Arc::new(c)
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

/// The IPFS network mode, described for the web page.
fn network_mode(config: &Config) -> String {
    let Some(ipfs) = ipfs_config(config) else {
        return "none (storage is not IPFS)".into();
    };
    if ipfs.router.is_some() {
        return "Kubo nodes (storage.ipfs.router): see their swarm configuration".into();
    }
    let net = &ipfs.embedded.net;
    if net.listen.is_empty() {
        "offline (no listen addresses)".into()
    } else if net.is_private() {
        "private network (swarm key)".into()
    } else if net.public {
        "public IPFS network".into()
    } else {
        "open network (no swarm key)".into()
    }
}

/// The full API router for a built registry.
pub fn app(config: &Config, built: &Built) -> Result<Router, ServerError> {
    let state = AppState {
        registry: built.registry.clone(),
        metrics: built.metrics.clone(),
        base_url: config.http.host.clone(),
        mirror: built.mirror.clone(),
    };
    let mut router = http::router(state);
    if let Some(d) = &built.disco {
        router = router.merge(crate::disco::http::routes(d.clone()));
    }
    router = router.merge(crate::disco::http::gc_routes(built.gc.clone()));
    if let Some(net) = built.storage.ipfs.as_ref().and_then(|b| b.network.clone()) {
        router = router.merge(crate::disco::routing::routes(net));
    }
    let tls = config.http.tls.certificate.is_some();
    let sessions = config
        .web
        .enabled
        .then(|| Arc::new(crate::web::session::Sessions::new(config.web.sessionttl)));
    if let Some(sessions) = &sessions {
        let ipfs = built.storage.ipfs.as_ref();
        let web = crate::web::Web::new(
            built.registry.clone(),
            built.disco.clone(),
            ipfs.and_then(|b| b.embedded.clone()),
            ipfs.and_then(|b| b.network.clone()),
            network_mode(config),
            built.auth.clone(),
            sessions.clone(),
            tls,
        );
        router = router.merge(crate::web::router(web));
    }
    if let Some(auth) = &built.auth {
        router = router.layer(axum::middleware::from_fn_with_state(
            http::auth::AuthLayer {
                auth: auth.clone(),
                mirror: built.mirror.as_ref().map(|m| m.names().clone()),
                tls,
                sessions,
            },
            http::auth::check,
        ));
    }
    if config.web.enabled {
        router = router.layer(axum::middleware::from_fn(crate::web::security_headers));
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
    let health = built.health.clone();
    let mut router = Router::new().route(
        "/debug/health",
        get(move || {
            let failing = health.failing();
            let status = match failing.is_empty() {
                true => StatusCode::OK,
                false => StatusCode::SERVICE_UNAVAILABLE,
            };
            let body = serde_json::to_string(&failing).unwrap_or_else(|_| "{}".into());
            async move { (status, [(header::CONTENT_TYPE, "application/json")], body) }
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

async fn bind(addr: &str, key: &str) -> Result<TcpListener, ServerError> {
    let addr = parse_listen_addr(addr).map_err(|e| ServerError::Config(format!("{key}: {e}")))?;
    crate::listen::bind_http(addr, key)
        .await
        .map_err(ServerError::Listen)
}

/// Runs the registry until a shutdown signal, then drains for up to
/// `http.draintimeout`.
pub async fn run(config: Config) -> Result<(), ServerError> {
    // Ports first: a taken one stops disco before storage opens.
    let listener = bind(&config.http.addr, "http.addr").await?;
    let debug_listener = match &config.http.debug.addr {
        Some(a) => Some(bind(a, "http.debug.addr").await?),
        None => None,
    };
    let built = build(&config).await?;
    let app = app(&config, &built)?;
    if let Some(auth) = &built.auth {
        crate::auth::reload::spawn(auth.clone());
    }
    let local = listener.local_addr()?;
    let shutdown = shutdown_signal().shared();

    if let Some(debug_listener) = debug_listener {
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

    built.gc.clone().spawn_schedule();

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
    match &config.http.tls.certificate {
        Some(_) => {
            let acceptor = crate::tls::acceptor(&config.http.tls).map_err(ServerError::Tls)?;
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
