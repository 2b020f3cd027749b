//! `logbook serve`: the composition root. Configuration → store → admission (the
//! writer thread and its post-commit feed) → background jobs → listeners; and on
//! SIGINT or SIGTERM, shutdown in the reverse order: listeners stop accepting and
//! answer what they read, jobs stop, admission closes, and the writer commits and
//! acknowledges everything already received before the process exits 0.

mod jobs;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::admission::auth::Authenticator;
use crate::admission::feed::Feed;
use crate::admission::{Admission, GroupCommit, Intake, QueueLimits};
use crate::config::Config;
use crate::http::{HttpContext, HttpLimits, HttpListener, HttpParts};
use crate::ingest::{SocketContext, SocketLimits, SocketListener, TlsListener};
use crate::pipeline::Pipeline;
use crate::store::open_writer;

/// Requests waiting for the writer before transports wait too (backpressure; the
/// records they hold are bounded by `queue_records`).
const WRITE_QUEUE: usize = 256;

/// Runs the collector until SIGINT or SIGTERM; then stops accepting, commits and
/// acknowledges everything already received, and returns.
pub fn run(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("logbook-io")
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(serve(config))
}

/// SIGINT and SIGTERM, installed before anything else starts.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).context("installing a SIGINT handler")?,
            terminate: signal(SignalKind::terminate()).context("installing a SIGTERM handler")?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let mut signals = Signals::install()?;

    // The store, claimed for this collector, and the record of what configuration it
    // runs with.
    let _claim = crate::store::claim(&config.db)
        .with_context(|| format!("claiming database {}", config.db))?;
    let mut store = open_writer(&config.db, &config.store_options())
        .with_context(|| format!("opening database {}", config.db))?;
    let previous = jobs::last_config_load(store.reader().as_ref());
    let record = jobs::config_load_record(&config, store.keys().pseudonym_key(), previous.as_ref());
    store
        .write(&[record])
        .context("writing the config-load audit record")?;

    let reader = store.reader();
    let session_key = store.keys().derive("ui session");

    // Admission: the pipeline, the queue, the writer thread, the post-commit feed.
    let redactor = config.redactor(store.keys().pseudonym_key())?;
    let intake = Intake::new(
        Pipeline::new(config.limits())
            .require_scope(config.required_scope_keys()?)
            .with_redactor(Arc::new(redactor)),
    );
    let feed = Feed::default();
    let (admission, writer) = Admission::start(
        intake,
        store,
        QueueLimits {
            records: config.queue_records,
            bytes: config.queue_bytes,
            requests: WRITE_QUEUE,
        },
        GroupCommit {
            max_records: config.commit_max_records,
            max_wait: Duration::from_millis(config.commit_interval_ms),
            max_db_size: config.max_db_size,
        },
        feed.clone(),
        tokio::runtime::Handle::current(),
    )
    .context("starting the writer")?;

    // Background jobs, before any client is accepted: they hold what they need (the
    // retention job its own database connection) whatever clients take later.
    let auth = Arc::new(
        Authenticator::new(config.token.as_ref().map(|t| t.expose()), admission.clone())
            .with_api_tokens(Arc::clone(&reader)),
    );
    let ticker = jobs::spawn_ticker(admission.clone(), Arc::clone(&auth));
    let retention = jobs::Retention::spawn(&config)?;

    // Listeners.
    let socket = SocketListener::bind(&config.socket, config.socket_mode)?;
    info!(socket = %socket.path().display(), db = %config.db, "Collector listening.");
    let (stop, stopped) = watch::channel(false);
    // One context for the socket and the TLS listener: one read budget over both.
    let wire = Arc::new(SocketContext::new(
        admission.clone(),
        Arc::clone(&auth),
        SocketLimits {
            max_frame_bytes: config.max_frame_bytes,
            max_connections: config.max_connections,
            idle_timeout: Duration::from_secs(config.idle_timeout_secs),
            frame_timeout: Duration::from_secs(config.frame_timeout_secs),
            read_budget_bytes: config.read_budget_bytes,
        },
    ));
    let socket = tokio::spawn(socket.run(Arc::clone(&wire), stopped));

    let tls = match (&config.listen_tls, &config.tls_cert, &config.tls_key) {
        (Some(addr), Some(cert), Some(key)) => {
            // No file mode guards a TCP port: clients must present a token.
            if auth.tokens_exist() != Some(true) {
                anyhow::bail!(
                    "listen_tls needs a token for clients to present: set `token` (LOGBOOK_TOKEN) or create one with `logbook token create --role ingest`"
                );
            }
            let listener = TlsListener::bind(*addr, cert, key).await?;
            let addr = listener.local_addr()?;
            info!(tls = %addr, "TLS listening (LOGBOOK_ENDPOINT=tls://HOST:{}).", addr.port());
            Some(tokio::spawn(listener.run(wire, stop.subscribe())))
        }
        _ => {
            // Its handle on admission goes with the listeners: the writer stops once
            // the last one is gone.
            drop(wire);
            None
        }
    };

    let http = match config.http {
        Some(addr) => {
            let tokens = auth.tokens_exist().context(
                "could not read the API tokens to decide whether HTTP may listen on this address",
            )?;
            let listener = HttpListener::bind(addr, tokens).await?;
            let addr = listener.local_addr()?;
            info!(http = %addr, "HTTP listening (OTLP: http://{addr}/v1/traces, /v1/logs).");
            Some(tokio::spawn(listener.run(
                Arc::new(HttpContext::new(
                    HttpParts {
                        admission: admission.clone(),
                        auth: Arc::clone(&auth),
                        reader: Arc::clone(&reader),
                        feed: feed.clone(),
                        config: Arc::new(config.clone()),
                        shutdown: stop.subscribe(),
                        loopback: addr.ip().is_loopback(),
                        session_key,
                    },
                    HttpLimits {
                        max_connections: config.http_max_connections,
                        header_timeout: Duration::from_secs(config.http_header_timeout_secs),
                        request_timeout: Duration::from_secs(config.http_request_timeout_secs),
                        ..HttpLimits::default()
                    },
                )),
                stop.subscribe(),
            )))
        }
        None => None,
    };

    // Forwarding: the store is its queue; it reads what is committed.
    let forwards = crate::forward::spawn(
        &config.forward,
        &crate::forward::Parts {
            reader: Arc::clone(&reader),
            admission: admission.clone(),
            feed: feed.clone(),
        },
        &stop.subscribe(),
    )?;

    // Monitoring: exception groups, span metrics and log volume, derived from the
    // stream on a connection of its own.
    let monitor = if config.monitor == "on" {
        Some(crate::monitor::spawn(
            crate::monitor::MonitorSetup {
                address: config.db.clone(),
                options: config.store_options(),
                slow: config.slow_rules()?,
                hours_kept: config.retention.ops.0,
                rules: config.alerts.clone(),
            },
            Arc::clone(&reader),
            feed.clone(),
            stop.subscribe(),
        ))
    } else {
        info!("Monitoring is off on this collector (monitor = \"off\").");
        None
    };

    // Until a signal, or the writer's death (a panic): nothing could be stored then,
    // and clients must hear of it rather than wait.
    let writer_died = tokio::select! {
        _ = signals.recv() => false,
        _ = async {
            while !writer.is_finished() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        } => true,
    };
    if writer_died {
        error!("The writer thread stopped: stopping the collector.");
    } else {
        info!("Shutting down: committing and acknowledging what was received.");
    }
    tokio::spawn(async move {
        signals.recv().await;
        warn!("Second signal: exiting without waiting for connections to finish.");
        std::process::exit(130);
    });

    let _ = stop.send(true);
    socket.await.context("the socket listener failed")?;
    if let Some(tls) = tls {
        tls.await.context("the TLS listener failed")?;
    }
    if let Some(http) = http {
        http.await.context("the HTTP listener failed")??;
    }
    // Forwarders stop where they are (their progress is kept), before admission
    // closes.
    for f in forwards {
        let _ = f.await;
    }
    if let Some(monitor) = monitor {
        let _ = monitor.await;
    }
    ticker.abort();
    let _ = ticker.await;
    // The failed authentications not yet in the trail, then the last handle on
    // admission but one.
    auth.flush(true).await;
    drop(auth);
    // The counts of refused connections and the like since the last tick.
    let _ = admission.tick().await;
    if let Some(retention) = retention {
        tokio::task::spawn_blocking(move || retention.stop())
            .await
            .context("stopping the retention job")?;
    }
    // The writer stops once the last handle on admission is gone and its queue is
    // committed.
    drop(admission);
    drop(feed);
    let stored = tokio::task::spawn_blocking(move || writer.join())
        .await
        .context("joining the writer")?
        .map_err(|_| anyhow::anyhow!("the writer thread panicked"))?;
    if writer_died {
        anyhow::bail!("the writer thread stopped unexpectedly");
    }
    info!(records = stored, "Collector stopped.");
    Ok(())
}
