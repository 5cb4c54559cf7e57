//! The `galley` binary: the CLI, configuration and the process (allocator, runtime,
//! signals); the server it runs is composed in `lib.rs`.

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use galley_core::{App, AppConfig};
use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "galley",
    version,
    about = "A PocketBase-compatible backend in one binary: database, REST API, auth, rules."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Console log lines: `human` (coloured only on a terminal) or `json` (one object per
    /// line, for collectors).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human, env = "GALLEY_LOG_FORMAT")]
    log_format: LogFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Args, Clone)]
struct DataArgs {
    /// Data directory (SQLite database and files).
    #[arg(long, default_value = "./galley_data", env = "GALLEY_DIR")]
    dir: PathBuf,
    /// Run on PostgreSQL instead of embedded SQLite: postgres://USER[:PASS]@HOST:PORT/DB.
    #[arg(long, env = "GALLEY_DATABASE_URL")]
    database_url: Option<String>,
    /// SQLite reader connections, or the PostgreSQL pool size.
    #[arg(long, default_value_t = 8, env = "GALLEY_POOL_SIZE")]
    pool_size: usize,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090", env = "GALLEY_HTTP")]
    http: String,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    data: DataArgs,
    /// Largest request body accepted, in bytes.
    #[arg(long, default_value_t = 32 << 20, env = "GALLEY_BODY_LIMIT")]
    body_limit: usize,
    /// SQLite synchronous=FULL: survive power loss, not only process crashes, at some write cost.
    #[arg(long, env = "GALLEY_SYNC_FULL")]
    sync_full: bool,
    /// Export traces over OTLP/HTTP to this collector (e.g. http://127.0.0.1:4318): a span per
    /// request with child spans for the database, rules and outgoing calls; a request's W3C
    /// `traceparent` is continued.
    #[arg(long, env = "GALLEY_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics (a separate listener; off unless
    /// given). Bind it to a private address, e.g. 127.0.0.1:9091.
    #[arg(long, env = "GALLEY_METRICS")]
    metrics: Option<String>,
    /// Folder of JavaScript hooks (`*.pb.js`, PocketBase's pb_hooks); default: a
    /// `galley_hooks` folder beside the data directory, when there is one.
    #[arg(long, env = "GALLEY_HOOKS_DIR")]
    hooks_dir: Option<PathBuf>,
    /// Do not reload the hooks when their files change.
    #[arg(long, env = "GALLEY_HOOKS_NO_WATCH")]
    hooks_no_watch: bool,
    /// Folder of migration files (PocketBase's pb_migrations format), applied at start
    /// when pending; default: a `galley_migrations` folder beside the data directory.
    #[arg(long, env = "GALLEY_MIGRATIONS_DIR")]
    migrations_dir: Option<PathBuf>,
}

#[derive(Args, Clone)]
struct TlsArgs {
    /// Also serve HTTPS on this address (e.g. 0.0.0.0:443), with --tls-cert and --tls-key.
    /// Send the process SIGHUP to load renewed certificate files without a restart.
    #[arg(long, env = "GALLEY_HTTPS", requires_all = ["tls_cert", "tls_key"])]
    https: Option<String>,
    /// PEM file with the certificate chain (the server's certificate first).
    #[arg(long, env = "GALLEY_TLS_CERT", requires = "https")]
    tls_cert: Option<PathBuf>,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "GALLEY_TLS_KEY", requires = "https")]
    tls_key: Option<PathBuf>,
}

/// The HTTPS listener and its certificates, when `--https` is given.
async fn https_listener(
    tls: &TlsArgs,
) -> anyhow::Result<
    Option<(
        tokio::net::TcpListener,
        std::sync::Arc<galley::tls::Certificates>,
    )>,
> {
    let (Some(addr), Some(cert), Some(key)) = (&tls.https, &tls.tls_cert, &tls.tls_key) else {
        return Ok(None);
    };
    let certs = galley::tls::Certificates::load(cert, key)
        .map_err(|e| anyhow::anyhow!("{e}. Give PEM files with --tls-cert and --tls-key"))?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on {addr}: {e}. Pick another address with --https")
    })?;
    #[cfg(unix)]
    {
        let certs = certs.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut hup) = signal(SignalKind::hangup()) else {
                return;
            };
            while hup.recv().await.is_some() {
                match certs.reload() {
                    Ok(()) => tracing::info!("TLS certificate reloaded"),
                    Err(e) => {
                        tracing::error!(error = %e, "TLS certificate not reloaded; the previous one stays in use")
                    }
                }
            }
        });
    }
    Ok(Some((listener, certs)))
}

#[derive(Subcommand)]
enum Command {
    /// Start the HTTP server.
    Serve(Box<ServeArgs>),
    /// Migration files: create one, apply the pending ones, revert the newest.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Manage superusers.
    Superuser {
        #[command(subcommand)]
        action: SuperuserAction,
    },
}

#[derive(Args, Clone)]
struct MigrateArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Folder of migration files; default: `galley_migrations` beside the data directory.
    #[arg(long, env = "GALLEY_MIGRATIONS_DIR")]
    migrations_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum MigrateAction {
    /// Write a new, empty migration file.
    Create {
        name: String,
        #[command(flatten)]
        args: MigrateArgs,
    },
    /// Apply the pending migration files.
    Up {
        #[command(flatten)]
        args: MigrateArgs,
    },
    /// Revert the newest applied migrations (1 by default).
    Down {
        #[arg(default_value_t = 1)]
        count: usize,
        #[command(flatten)]
        args: MigrateArgs,
    },
}

#[derive(Subcommand)]
enum SuperuserAction {
    /// Create a superuser, or set the password of an existing one.
    Upsert {
        email: String,
        password: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Delete a superuser.
    Delete {
        email: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

fn config(data: &DataArgs) -> AppConfig {
    let mut c = AppConfig::new(&data.dir);
    c.database_url = data.database_url.clone().filter(|s| !s.is_empty());
    c.pool_size = data.pool_size.max(1);
    c
}

async fn open(cfg: AppConfig) -> anyhow::Result<std::sync::Arc<App>> {
    App::open(cfg).await.map_err(|e| match e {
        galley_core::CoreError::Unavailable(m) => anyhow::anyhow!(m),
        other => anyhow::anyhow!(other.to_string()),
    })
}

async fn shutdown_signal() {
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
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing open requests");
}

/// `--migrations-dir`, else `galley_migrations` beside the data directory.
fn migrations_dir(data: &DataArgs, dir: Option<PathBuf>) -> PathBuf {
    dir.unwrap_or_else(|| {
        data.dir
            .parent()
            .map(|p| p.join("galley_migrations"))
            .unwrap_or_else(|| PathBuf::from("galley_migrations"))
    })
}

async fn migrate(action: MigrateAction) -> anyhow::Result<()> {
    let (MigrateAction::Create { args, .. }
    | MigrateAction::Up { args }
    | MigrateAction::Down { args, .. }) = &action;
    let (data, dir) = (
        args.data.clone(),
        migrations_dir(&args.data, args.migrations_dir.clone()),
    );
    if let MigrateAction::Create { name, .. } = &action {
        let path = galley::galley_hooks::migrate::create(&dir, name)?;
        println!("Created {}", path.display());
        return Ok(());
    }
    let hooks = galley::galley_hooks::HooksConfig {
        watch: false,
        ..Default::default()
    };
    let server = galley::Server::open(config(&data), Some(hooks))
        .await
        .map_err(|e| anyhow::anyhow!(e.to_string()))?;
    let h = server.hooks.as_ref().context("hooks")?;
    let done = match action {
        MigrateAction::Up { .. } => galley::galley_hooks::migrate::up(h, &dir).await?,
        MigrateAction::Down { count, .. } => {
            galley::galley_hooks::migrate::down(h, &dir, count).await?
        }
        MigrateAction::Create { .. } => vec![],
    };
    if done.is_empty() {
        println!("Nothing to do ({}).", dir.display());
    }
    for f in done {
        println!("{f}");
    }
    server.app.close().await;
    Ok(())
}

/// `--hooks-dir`, else `galley_hooks` beside the data directory when it exists.
fn hooks_config(
    data: &DataArgs,
    dir: Option<PathBuf>,
    watch: bool,
) -> Option<galley::galley_hooks::HooksConfig> {
    let dir = dir.or_else(|| {
        let beside = data
            .dir
            .parent()
            .map(|p| p.join("galley_hooks"))
            .unwrap_or_else(|| PathBuf::from("galley_hooks"));
        beside.is_dir().then_some(beside)
    })?;
    Some(galley::galley_hooks::HooksConfig {
        dir: Some(dir),
        watch,
        ..Default::default()
    })
}

/// The team's server-side code: hook files and migration files.
struct ServerCode {
    hooks: Option<galley::galley_hooks::HooksConfig>,
    migrations: PathBuf,
}

async fn serve(
    args: ServeArgs,
    app_log: galley_ops::logs::AppLogLayer,
    ext: ServerCode,
) -> anyhow::Result<()> {
    let ServerCode { hooks, migrations } = ext;
    let ServeArgs {
        http,
        tls,
        data,
        body_limit,
        sync_full,
        metrics,
        otlp_endpoint,
        ..
    } = args;
    // Pending migration files need the JavaScript engine even without hook files.
    let hooks = match hooks {
        None if migrations.is_dir() => Some(galley::galley_hooks::HooksConfig {
            watch: false,
            ..Default::default()
        }),
        h => h,
    };
    let mut cfg = config(&data);
    cfg.body_limit = body_limit;
    cfg.sync_full = sync_full;
    let listener = tokio::net::TcpListener::bind(&http).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!("address {http} is already in use: stop the other process or pick another address with --http")
        } else {
            anyhow::anyhow!("cannot listen on {http}: {e}. Pick another address with --http")
        }
    })?;
    let https = https_listener(&tls).await?;
    let metrics_listener = match &metrics {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {addr} for metrics: {e}. Pick another address with --metrics"
            )
        })?),
        None => None,
    };
    if data.database_url.is_none() {
        // A restore prepared before a crash or a stop is finished before the data opens.
        if galley_ops::backups::apply_pending_restore(&data.dir)
            .context("applying the restored backup")?
        {
            println!("Restored a backup (the replaced files are in .before_restore)");
        }
    }
    if let Some(dir) = hooks.as_ref().and_then(|h| h.dir.as_ref()) {
        println!("Hooks: {}", dir.display());
    }
    let server = galley::Server::open(cfg, hooks)
        .await
        .map_err(|e| match e {
            galley_core::CoreError::Unavailable(m) => anyhow::anyhow!(m),
            other => anyhow::anyhow!(other.to_string()),
        })?;
    let app = server.app.clone();
    if let (Some(h), true) = (&server.hooks, migrations.is_dir()) {
        for f in galley::galley_hooks::migrate::up(h, &migrations).await? {
            println!("Applied migration {f}");
        }
    }
    let engine = if data.database_url.is_some() {
        "PostgreSQL".to_owned()
    } else {
        format!("SQLite in {}", data.dir.display())
    };
    let addr = listener
        .local_addr()
        .context("reading the listen address")?;
    println!(
        "Galley {} serving on http://{addr}/api/ ({engine})",
        env!("CARGO_PKG_VERSION")
    );
    println!("Dashboard: http://{addr}/_/");
    if let Some((l, _)) = &https {
        let a = l.local_addr().context("reading the HTTPS address")?;
        println!("HTTPS: https://{a}/api/ (SIGHUP reloads the certificate)");
    }
    if galley_core::superusers::count(&app).await.unwrap_or(1) == 0 {
        let dir = if data.database_url.is_some() {
            "--database-url …".to_owned()
        } else {
            format!("--dir {}", data.dir.display())
        };
        // The link carries a token only this process knows; it works until a superuser exists.
        println!(
            "No superuser yet. Create the first one in the browser:\n  http://{addr}{}\nor with:\n  galley superuser upsert EMAIL PASSWORD {dir}",
            galley_admin::install_path(&app)
        );
    }
    let ops = galley_ops::Ops::open(app.clone(), metrics_listener.is_some())
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the log store: {e}"))?;
    app_log.attach(&ops.logs);
    let mut ops = ops;
    ops.traces = otlp_endpoint.is_some_and(|e| !e.is_empty());
    let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    if let Some(l) = metrics_listener {
        let addr = l.local_addr().context("reading the metrics address")?;
        println!("Metrics: http://{addr}/metrics");
        let (app, ops) = (app.clone(), ops.clone());
        tokio::spawn(async move {
            let stopped = async {
                let _ = metrics_stopped.await;
            };
            if let Err(e) = galley::serve_metrics(l, app, &ops, stopped).await {
                tracing::error!(error = %e, "the metrics listener stopped");
            }
        });
    }
    let backups = ops.backups.clone();
    let stop = {
        let backups = backups.clone();
        async move {
            tokio::select! {
                _ = shutdown_signal() => {}
                _ = backups.restart_requested() => {
                    tracing::info!("restarting to restore a backup");
                }
            }
        }
    };
    let listeners = galley::Listeners {
        http: listener,
        https,
    };
    galley::serve_with(listeners, server, ops, stop)
        .await
        .context("serving HTTP")?;
    let _ = stop_metrics.send(());
    app.close().await;
    if backups.is_restart_requested() {
        drop(app);
        galley_ops::backups::apply_pending_restore(&data.dir)
            .context("applying the restored backup")?;
        // The same program with the same arguments, on the restored data.
        let exe = std::env::current_exe().context("finding this program to restart it")?;
        let err = std::os::unix::process::CommandExt::exec(
            std::process::Command::new(exe).args(std::env::args_os().skip(1)),
        );
        anyhow::bail!("cannot restart after the restore: {err}");
    }
    Ok(())
}

async fn run(cli: Cli, app_log: galley_ops::logs::AppLogLayer) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let hooks = hooks_config(&args.data, args.hooks_dir.clone(), !args.hooks_no_watch);
            let m = migrations_dir(&args.data, args.migrations_dir.clone());
            let code = ServerCode {
                hooks,
                migrations: m,
            };
            serve(*args, app_log, code).await
        }
        Command::Migrate { action } => migrate(action).await,
        Command::Superuser {
            action:
                SuperuserAction::Upsert {
                    email,
                    password,
                    data,
                },
        } => {
            let app = open(config(&data)).await?;
            let created = galley_core::superusers::upsert(&app, &email, &password)
                .await
                .map_err(|e| match e {
                    galley_core::CoreError::BadRequest { message, data } => {
                        anyhow::anyhow!("{message} {data}")
                    }
                    other => anyhow::anyhow!(other.to_string()),
                })?;
            app.close().await;
            println!(
                "{} superuser {email}",
                if created { "Created" } else { "Updated" }
            );
            Ok(())
        }
        Command::Superuser {
            action: SuperuserAction::Delete { email, data },
        } => {
            let app = open(config(&data)).await?;
            let existed = galley_core::superusers::delete(&app, &email)
                .await
                .map_err(|e| anyhow::anyhow!(e.to_string()))?;
            app.close().await;
            if !existed {
                anyhow::bail!("no superuser with the email {email}");
            }
            println!("Deleted superuser {email}");
            Ok(())
        }
    }
}

/// Console lines (human or JSON) on stderr, and the app's warnings and errors into the
/// stored logs once the server has opened them.
/// What `init_logging` set up: the stored-logs layer (attached once the log store opens)
/// and, with `--otlp-endpoint`, the trace exporter to flush at exit.
struct Logging {
    app_log: galley_ops::logs::AppLogLayer,
    #[cfg(feature = "otel")]
    traces: Option<galley_ops::traces::TraceExport>,
}

fn init_logging(format: LogFormat, otlp: Option<&str>) -> anyhow::Result<Logging> {
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    // Per layer, not global: the trace spans are for the OTLP layer alone, and a global
    // filter would switch them off before it saw them.
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("warn,galley=info,galley_hooks=info,hooks=info")
        })
    };
    #[cfg(feature = "otel")]
    let (otel, traces) = match otlp {
        Some(endpoint) => {
            let (layer, export) = galley_ops::traces::otlp_layer(endpoint)?;
            (Some(layer), Some(export))
        }
        None => (None, None),
    };
    #[cfg(not(feature = "otel"))]
    let otel: Option<tracing_subscriber::layer::Identity> = match otlp {
        Some(_) => anyhow::bail!("this build has no OTLP export (cargo feature `otel`)"),
        None => None,
    };
    let app_log = galley_ops::logs::AppLogLayer::new();
    let console = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(false)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Human => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(otel)
        .with(app_log.clone().with_filter(filter()))
        .with(console.with_filter(filter()))
        .init();
    Ok(Logging {
        app_log,
        #[cfg(feature = "otel")]
        traces,
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let otlp = match &cli.command {
        Command::Serve(a) => a.otlp_endpoint.clone().filter(|e| !e.is_empty()),
        _ => None,
    };
    let logging = match init_logging(cli.log_format, otlp.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(run(cli, logging.app_log.clone()));
    #[cfg(feature = "otel")]
    if let Some(t) = &logging.traces {
        t.shutdown();
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
