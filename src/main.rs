//! The `tcp-info` agent: flags, wiring, signals.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use anyhow::Context;
use changescan::BpfChanges;
use inetdiag::notices::NoticeSocket;
use inetdiag::DiagSocket;
use tcp_info::config::{CheckConfig, Config, Invocation, PollMode, ReadyConfig};
use tcp_info::eventsocket::{
    Publisher, Server as EventServer, ServerOptions as EventServerOptions,
};
use tcp_info::exclusion::{Anonymizer, Exclusion};
use tcp_info::exposure::peers::PeerFilter;
use tcp_info::exposure::remote::{RemoteCell, RemoteTracker};
use tcp_info::exposure::worker::{ListenerHook, WorkerHooks};
use tcp_info::exposure::{ExposureWorker, SummaryCell};
use tcp_info::flow_events::FlowEventObserver;
use tcp_info::listener_events::ListenerEventObserver;
use tcp_info::metrics::{self, Metrics, MetricsObserver};
use tcp_info::policy::{self, ActivePolicy};
use tcp_info::poller::{NoticeConfig, PollObserver, Poller, PollerConfig};
use tcp_info::saver::{self, naming, Saver, SaverConfig, ShardQueue};
use tcp_info::signals;
use tcp_info::stats::Stats;
use tcp_info::{log, log_error, log_warn};

fn main() -> ExitCode {
    // `summary` and `plot` read archives; they are not the agent.
    let args: Vec<String> = std::env::args().collect();
    if let Some(code) = tcpinfo_analysis::cli::dispatch(&args) {
        return code;
    }
    let config = match Invocation::try_parse_go_args(args) {
        Ok(Invocation::Agent(c)) => *c,
        Ok(Invocation::Check(c)) => return check(c),
        Ok(Invocation::Ready(c)) => return ready(c),
        Err(e) => return goflag::report("tcp-info", &e),
    };
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tcp-info: {e:#}");
            // A file the command line names that cannot be used is the
            // operator's mistake, like a bad flag (exit 2, as Go's flag).
            let usage = e
                .downcast_ref::<naming::PrefixError>()
                .is_some_and(naming::PrefixError::is_usage)
                || e.is::<metrics::web_config::WebConfigError>();
            if usage {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// `tcp-info check`: exit 0 when the policy holds, 1 when it does not, 2
/// when it cannot be checked (bad policy file, no netlink).
fn check(c: CheckConfig) -> ExitCode {
    match policy::check::run(&c.policy, &mut std::io::stdout().lock()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("tcp-info check: {e}");
            ExitCode::from(2)
        }
    }
}

/// `tcp-info ready`: exit 0 when the local agent answers `/-/ready`.
fn ready(c: ReadyConfig) -> ExitCode {
    let probe = metrics::probe::target(&c.prometheus_listen_address)
        .and_then(|target| metrics::probe::ready(target, c.timeout));
    match probe {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tcp-info ready: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What is running and how: the version, then every flag's value in force
/// (the Go tool logs its arguments too).
fn log_start(config: &Config) {
    log!(
        "tcp-info {} (commit {}, {})",
        metrics::build::VERSION,
        metrics::build::GIT_COMMIT,
        metrics::build::RUSTC_VERSION
    );
    log!("flags: {}", config.effective_command_line());
    if config.trace {
        log_warn!("-trace: the Go tool writes a Go runtime execution trace; this agent has none and writes no trace file");
    }
}

fn run(config: Config) -> anyhow::Result<()> {
    log::init(config.effective_log_level(), config.log_format);
    let signals = signals::install().context("installing signal handlers")?;
    raise_open_files_limit();
    let listen_policy = config
        .listen_policy
        .as_deref()
        .map(|path| ActivePolicy::load(path).context("listen policy"))
        .transpose()?;
    let stop = act_on_signals(signals, listen_policy.as_ref())?;
    // The error names the file (or the default) itself.
    let uuid_prefix = naming::uuid_prefix(config.uuid_prefix_file.as_deref())?;
    tcp_info::output::prepare(&config.output)?;
    // Held until the process exits: a second agent on this tree refuses.
    let _output_lock = tcp_info::output::lock(&config.output)?;
    tcp_info::output::probe_writable(&config.output)?;
    // After the checks above, whose refusal is one line on its own.
    log_start(&config);
    if let (Some(path), Some(policy)) = (&config.listen_policy, &listen_policy) {
        log!(
            "listen policy {}: {} rules (reloaded on SIGHUP and POST /-/reload)",
            path.display(),
            policy.rules()
        );
    }
    let stats = Arc::new(Stats::default());
    let exposure_summary = Arc::new(SummaryCell::default());
    let metrics = start_metrics(
        &config,
        &stats,
        Arc::clone(&exposure_summary),
        listen_policy.as_ref(),
    )?;
    let remote_states = start_remote_states(&config, &metrics);
    // Started before the exposure thread, which announces listener changes.
    let (event_server, events) = start_event_socket(&config, &metrics)?;
    let exposure = start_exposure(
        exposure_summary,
        &events,
        remote_states,
        listen_policy.as_ref(),
    )?;
    let (shards, writers) = start_writers(&config, &uuid_prefix, &stats, &metrics)?;

    let mut observers: Vec<Box<dyn PollObserver>> = vec![
        Box::new(MetricsObserver::new(Arc::clone(&metrics))),
        Box::new(exposure.observer),
    ];
    if event_server.is_some() {
        observers.push(Box::new(FlowEventObserver::new(
            events,
            uuid_prefix.clone(),
        )));
    }
    let mut poller = start_poller(&config, &uuid_prefix, shards, observers, &stats)?;
    let polled = poller.run(&stop);
    if let Err(gone) = &polled {
        log_error!("{gone}: stopping (its connections can no longer be archived)");
    }
    let failures = shut_down(poller, writers, event_server, &stats);
    polled?;
    match failures.into_iter().next() {
        Some(first) => Err(first.into()),
        None => Ok(()),
    }
}

/// A stop signal (SIGTERM, SIGINT, …) sets the returned flag, on which the
/// poller stops; SIGHUP reloads the listen policy; the rest are ignored
/// (see `tcp_info::signals`).
fn act_on_signals(
    signals: signals::Handling,
    listen_policy: Option<&Arc<ActivePolicy>>,
) -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let reload = listen_policy.map(|policy| {
        let policy = Arc::clone(policy);
        // The outcome is logged and counted by reload().
        Box::new(move || {
            let _ = policy.reload();
        }) as Box<dyn Fn() + Send>
    });
    signals
        .spawn(Arc::clone(&stop), reload)
        .context("starting the signal thread")?;
    Ok(stop)
}

/// Registers every metric (the exposure gauges read `exposure_summary`)
/// and serves them, with the listener policy's `/-/reload`.
fn start_metrics(
    config: &Config,
    stats: &Arc<Stats>,
    exposure_summary: Arc<SummaryCell>,
    listen_policy: Option<&Arc<ActivePolicy>>,
) -> anyhow::Result<Arc<Metrics>> {
    let metrics = Metrics::new(Arc::clone(stats), exposure_summary);
    metrics.set_poll_target(config.poll_interval);
    if let Some(policy) = listen_policy {
        metrics.watch_listen_policy(Arc::clone(policy));
    }
    let web = match &config.web_config_file {
        Some(file) => {
            let web = metrics::web_config::load(file)?;
            log!("metrics web config {}: {}", file.display(), web.describe());
            web
        }
        None => metrics::web_config::WebConfig::default(),
    };
    let listener = metrics::server::bind(&config.prometheus_listen_address)
        .with_context(|| format!("metrics address {}", config.prometheus_listen_address))?;
    log!("serving metrics on {}", listener.local_addr()?);
    let reload = policy::reload::route(listen_policy.cloned());
    metrics::server::spawn(Arc::clone(&metrics), vec![reload], listener, web)
        .context("starting the metrics server")?;
    Ok(metrics)
}

/// `-remote-states`: the exposure worker's tracker of per-peer connection
/// states, publishing where the metrics read; `None` without ranges.
fn start_remote_states(config: &Config, metrics: &Metrics) -> Option<RemoteTracker> {
    if config.remote_states.is_empty() {
        return None;
    }
    let filter = PeerFilter::new(config.remote_states.clone());
    let max_series = config.remote_states_max_series as usize;
    let cell = Arc::new(RemoteCell::default());
    metrics.watch_remote_states(Arc::clone(&cell), max_series);
    let ranges: Vec<String> = filter.ranges().iter().map(|r| r.to_string()).collect();
    log!(
        "remote-states: per-peer connection states for {} (at most {max_series} series)",
        ranges.join(",")
    );
    Some(RemoteTracker::new(filter, max_series, cell))
}

/// The event socket (`-tcpinfo.eventsocket`), and the publisher events go
/// through (a disabled one without the socket).
fn start_event_socket(
    config: &Config,
    metrics: &Metrics,
) -> anyhow::Result<(Option<EventServer>, Publisher)> {
    let Some(path) = &config.eventsocket else {
        return Ok((None, Publisher::disabled()));
    };
    let options = EventServerOptions {
        mode: config.eventsocket_mode,
        group: config.eventsocket_group,
        ..EventServerOptions::default()
    };
    let server = EventServer::start_with(path, options)
        .with_context(|| format!("event socket {}", path.display()))?;
    let events = server.publisher();
    metrics.watch_event_socket(events.clone());
    log!("serving connection events on {}", server.path().display());
    Ok((Some(server), events))
}

/// The exposure worker, publishing into `summary`; its inventory step is
/// one of the poller's observers.
fn start_exposure(
    summary: Arc<SummaryCell>,
    events: &Publisher,
    remote_states: Option<RemoteTracker>,
    listen_policy: Option<&Arc<ActivePolicy>>,
) -> anyhow::Result<ExposureWorker> {
    let hooks = WorkerHooks {
        changes: Box::new(ListenerEventObserver::new(events.clone())),
        remote: remote_states,
        listeners: listen_policy
            .map(|p| Box::new(Arc::clone(p)) as Box<dyn ListenerHook>)
            .into_iter()
            .collect(),
    };
    ExposureWorker::spawn(summary, "/proc", hooks).context("starting the exposure thread")
}

/// One thread per writer shard, and the poller's end of each shard's queue.
fn start_writers(
    config: &Config,
    uuid_prefix: &str,
    stats: &Arc<Stats>,
    metrics: &Metrics,
) -> anyhow::Result<(Vec<ShardQueue>, Saver)> {
    let saver = Arc::new(SaverConfig {
        output: config.output.clone(),
        uuid_prefix: uuid_prefix.to_owned(),
        flush_interval: config.flush_interval,
        rotation_interval: config.rotation_interval,
        max_pending_bytes: usize::try_from(config.max_pending_bytes).unwrap_or(usize::MAX),
        poll_gaps: config.archive_poll_gaps,
    });
    let (shards, writers) = saver::spawn(saver, Arc::clone(stats), usize::from(config.writers))
        .context("starting the writer threads")?;
    metrics.watch_writer_queues(writers.depths());
    Ok((shards, writers))
}

/// The poller over the kernel's socket tables, with the archive's
/// exclusion and anonymization rules.
fn start_poller(
    config: &Config,
    uuid_prefix: &str,
    shards: Vec<ShardQueue>,
    observers: Vec<Box<dyn PollObserver>>,
    stats: &Arc<Stats>,
) -> anyhow::Result<Poller> {
    let socket = DiagSocket::new().context("opening the NETLINK_SOCK_DIAG socket")?;
    let poller = Poller::new(
        PollerConfig {
            poll_interval: config.poll_interval,
            reps: config.reps,
            stats_interval: config.stats_interval,
        },
        socket,
        Exclusion::new(
            config.exclude_local,
            config.exclude_srcport.clone(),
            config.exclude_dstip.clone(),
        ),
        Anonymizer::new(config.anonymize_ip),
        shards,
        observers,
        Arc::clone(stats),
    );
    let poller = match subscribe_to_destroy_notices(config) {
        Some(notices) => {
            stats.destroy_notices_enabled.store(1, Relaxed);
            poller.with_notices(
                notices,
                NoticeConfig {
                    close_absent_after: config.close_absent_after,
                    archive_short_connections: config.archive_short_connections,
                },
            )
        }
        None => poller,
    };
    let poller = match config.poll_mode {
        PollMode::Dump => poller,
        PollMode::Bpf => {
            match BpfChanges::open(inetdiag::ARCHIVE_STATES, inetdiag::ARCHIVE_EXTENSIONS) {
                Ok(changes) => {
                    log!(
                        "poll mode bpf: a BPF iterator reports the changed sockets, a complete dump every {:?}",
                        config.full_interval
                    );
                    poller.with_changes(Box::new(changes), config.full_interval)
                }
                Err(e) => {
                    log!("poll mode bpf unavailable ({e}); polling with complete dumps");
                    poller
                }
            }
        }
    };
    log!(
        "tcp-info polling every {:?}, writing to {} (uuid prefix {uuid_prefix})",
        config.poll_interval,
        config.output.display()
    );
    Ok(poller)
}

/// The kernel's destroy notices, unless turned off or unavailable (a
/// kernel before 4.2): then connections close when they vanish from dumps.
fn subscribe_to_destroy_notices(config: &Config) -> Option<NoticeSocket> {
    if !config.destroy_notices {
        log!("destroy notices off (-destroy-notices=false): connections close when they vanish from a dump");
        return None;
    }
    let buffer = config.destroy_notices_buffer as usize;
    match NoticeSocket::subscribe(buffer) {
        Ok(notices) => {
            // Past net.core.rmem_max only with CAP_NET_ADMIN; without it
            // the buffer stays at what subscribe got.
            use nix::sys::socket::{setsockopt, sockopt::RcvBufForce};
            let _ = setsockopt(&notices, RcvBufForce, &buffer);
            log!(
                "destroy notices on: connections close with their final tcp_info (absent from dumps for {:?}: closed anyway)",
                config.close_absent_after
            );
            Some(notices)
        }
        Err(e) => {
            log_warn!("destroy notices unavailable ({e}): connections close when they vanish from a dump, without their final tcp_info");
            None
        }
    }
}

/// Dropping the poller closes the shard queues: the writers drain what is
/// queued, finish every file and exit. Returns the shards that failed.
fn shut_down(
    poller: Poller,
    writers: Saver,
    event_server: Option<EventServer>,
    stats: &Stats,
) -> Vec<saver::ShardFailure> {
    drop(poller);
    let failures = writers.join();
    for failure in &failures {
        log_error!("{failure}");
    }
    if let Some(server) = event_server {
        server.shutdown();
    }
    log!("final {}", stats.summary((0, 0)));
    failures
}

/// Every open connection holds its archive file open: raise the soft limit
/// on open files to the hard limit.
fn raise_open_files_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                log_warn!("cannot raise the open files limit from {soft} to {hard}: {e}");
            }
        }
    }
}
