//! Opening the backend: the store, system migrations and collections, settings, storage,
//! the record hooks and the realtime tasks. The one place that knows every service, so
//! it sits above all of them.

use crate::app::{prepare_upload_dir, App, AppConfig, AuthState, HashThreads};
use crate::context::{RecordHook, RecordHooks};
use crate::error::CoreError;
use arc_swap::ArcSwap;
use galley_store::{Store, StoreConfig};
use galley_types::Schema;
use std::sync::Arc;
use tokio::sync::{Mutex, Semaphore};

impl App {
    pub async fn open(config: AppConfig) -> Result<Arc<App>, CoreError> {
        Self::open_with(config, Vec::new()).await
    }

    /// Opens the backend with `hooks` taking part in every record write after the built-in
    /// ones (the extension point for crates above galley-core: server-side hooks, webhooks).
    pub async fn open_with(
        config: AppConfig,
        hooks: Vec<Arc<dyn RecordHook>>,
    ) -> Result<Arc<App>, CoreError> {
        let store = Store::open(&StoreConfig {
            database_url: config.database_url.clone(),
            data_dir: config.data_dir.clone(),
            pool_size: config.pool_size,
            sync_full: config.sync_full,
        })
        .await
        .map_err(|e| match e {
            galley_store::StoreError::Config(m) => CoreError::Unavailable(m),
            other => CoreError::from(other),
        })?;
        store.write(crate::catalog::bootstrap).await?;
        let collections = store.read(crate::catalog::load_all).await?;
        let settings = store.read(crate::settings::load).await?;
        let storage = crate::settings::storage_from_settings(&settings, &config.data_dir)
            .map_err(|e| CoreError::Unavailable(e.to_string()))?;
        prepare_upload_dir(&config.data_dir)?;
        let store = Arc::new(store);
        let brokers = Arc::new(crate::brokers::Brokers::default());
        let app = App {
            jobs: galley_jobs::Jobs::new(store.clone(), config.jobs.clone()),
            store,
            hash_permits: Semaphore::new(config.hash_concurrency.max(1)),
            hashers: HashThreads::start(config.hash_concurrency.max(1)),
            node_id: galley_types::ids::secret(20),
            journal: Default::default(),
            realtime: galley_realtime::Hub::new(settings.realtime_limits()),
            // Auth collections' record rules and outgoing webhooks take part in every write.
            record_hooks: RecordHooks::new(vec![
                Arc::new(crate::auth::records::AuthRecords),
                Arc::new(crate::webhooks::Webhooks),
                brokers.clone(),
            ])
            .with(hooks),
            events: std::sync::OnceLock::new(),
            request_hooks: std::sync::OnceLock::new(),
            auth: AuthState::new(config.auth_limits),
            config,
            schema: ArcSwap::from_pointee(Schema::new(1, collections)),
            settings: ArcSwap::from_pointee(settings),
            settings_version: tokio::sync::watch::channel(0).0,
            schema_reload: Mutex::new(1),
            storage: ArcSwap::from_pointee(storage),
            rate_limiter: Default::default(),
            thumbs: Default::default(),
            // Thumbnails decode whole images: a few at a time, like PocketBase's NumCPU+2.
            thumb_permits: Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()) + 2,
            ),
        };
        app.auth.set_limiting(app.settings().rate_limits_enabled());
        let app = Arc::new(app);
        let _ = app.events.set(crate::realtime::start(&app));
        crate::webhooks::start(&app);
        crate::brokers::start(&app, &brokers);
        crate::app::start_background(&app);
        Ok(app)
    }
}
