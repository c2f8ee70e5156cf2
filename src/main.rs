//! The `tcp-info` agent: flags, wiring, signals.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread;

use anyhow::Context;
use inetdiag::DiagSocket;
use tcp_info::config::{CheckConfig, Config, Invocation};
use tcp_info::eventsocket::{Publisher, Server as EventServer};
use tcp_info::exclusion::{Anonymizer, Exclusion};
use tcp_info::exposure::cidr::PeerFilter;
use tcp_info::exposure::remote::{RemoteCell, RemoteTracker};
use tcp_info::exposure::worker::{ListenerHook, WorkerHooks};
use tcp_info::exposure::ExposureWorker;
use tcp_info::flow_events::FlowEventObserver;
use tcp_info::listener_events::ListenerEventObserver;
use tcp_info::log;
use tcp_info::metrics::{self, Metrics, MetricsObserver};
use tcp_info::policy::{self, ActivePolicy};
use tcp_info::poller::{PollObserver, Poller, PollerConfig};
use tcp_info::saver::{self, naming, SaverConfig};
use tcp_info::stats::Stats;

fn main() -> ExitCode {
    let config = match Invocation::try_parse_go_args(std::env::args()) {
        Ok(Invocation::Agent(c)) => *c,
        Ok(Invocation::Check(c)) => return check(c),
        Err(e) => return goflag::report("tcp-info", &e),
    };
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tcp-info: {e:#}");
            ExitCode::FAILURE
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

/// Loads `-listen-policy` and re-reads it on every SIGHUP.
fn start_listen_policy(path: &std::path::Path) -> anyhow::Result<Arc<ActivePolicy>> {
    let policy = ActivePolicy::load(path).context("listen policy")?;
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])
        .context("installing the SIGHUP handler")?;
    let reloaded = Arc::clone(&policy);
    thread::Builder::new()
        .name("policy-reload".into())
        .spawn(move || {
            for _ in signals.forever() {
                // The outcome is logged and counted by reload().
                let _ = reloaded.reload();
            }
        })
        .context("starting the policy reload thread")?;
    log!(
        "listen policy {}: {} rules (reloaded on SIGHUP and POST /-/reload)",
        path.display(),
        policy.rules()
    );
    Ok(policy)
}

fn run(config: Config) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    raise_open_files_limit();
    let listen_policy = match &config.listen_policy {
        Some(path) => Some(start_listen_policy(path)?),
        None => None,
    };

    let uuid_prefix =
        naming::uuid_prefix(config.uuid_prefix_file.as_deref()).context("UUID prefix")?;
    std::fs::create_dir_all(&config.output)
        .with_context(|| format!("creating output directory {}", config.output.display()))?;
    let stats = Arc::new(Stats::default());
    let metrics = Metrics::new(Arc::clone(&stats));
    if let Some(policy) = &listen_policy {
        metrics.watch_listen_policy(Arc::clone(policy));
    }
    let listener = metrics::server::bind(&config.prometheus_listen_address)
        .with_context(|| format!("metrics address {}", config.prometheus_listen_address))?;
    log!("serving metrics on {}", listener.local_addr()?);
    metrics::server::spawn(Arc::clone(&metrics), listener)
        .context("starting the metrics server")?;
    // -remote-states: the poller's inventory walk collects the peers, the
    // exposure worker accounts and publishes them.
    let (peer_filter, remote_tracker) = (!config.remote_states.is_empty())
        .then(|| {
            let filter = PeerFilter::new(config.remote_states.clone());
            let max_series = config.remote_states_max_series as usize;
            let cell = Arc::new(RemoteCell::default());
            metrics.watch_remote_states(Arc::clone(&cell), max_series);
            let ranges: Vec<String> = filter.ranges().iter().map(|r| r.to_string()).collect();
            log!(
                "remote-states: per-peer connection states for {} (at most {max_series} series)",
                ranges.join(",")
            );
            (filter.clone(), RemoteTracker::new(filter, max_series, cell))
        })
        .unzip();
    // Started before the exposure thread, which announces listener changes.
    let event_server = match &config.eventsocket {
        Some(path) => Some(
            EventServer::start(path).with_context(|| format!("event socket {}", path.display()))?,
        ),
        None => None,
    };
    let events = event_server
        .as_ref()
        .map_or_else(Publisher::disabled, EventServer::publisher);
    let exposure = ExposureWorker::spawn(
        metrics.exposure(),
        "/proc",
        WorkerHooks {
            changes: Box::new(ListenerEventObserver::new(events.clone())),
            remote: remote_tracker,
            listeners: listen_policy
                .iter()
                .map(|p| Box::new(Arc::clone(p)) as Box<dyn ListenerHook>)
                .collect(),
        },
    )
    .context("starting the exposure thread")?;
    let saver = Arc::new(SaverConfig {
        output: config.output.clone(),
        uuid_prefix: uuid_prefix.clone(),
        flush_interval: config.flush_interval,
        rotation_interval: config.rotation_interval,
    });

    let (shards, writers) = saver::spawn(saver, Arc::clone(&stats), usize::from(config.writers))
        .context("starting the writer threads")?;
    metrics.watch_writer_queues(writers.depths());

    let mut metrics_observer = MetricsObserver::new(Arc::clone(&metrics), exposure.inventories);
    if let Some(filter) = peer_filter {
        metrics_observer = metrics_observer.track_peers(filter);
    }
    let mut observers: Vec<Box<dyn PollObserver>> = vec![Box::new(metrics_observer)];
    if let Some(server) = &event_server {
        observers.push(Box::new(FlowEventObserver::new(
            events.clone(),
            uuid_prefix.clone(),
        )));
        metrics.watch_event_socket(events);
        log!("serving connection events on {}", server.path().display());
    }

    let socket = DiagSocket::new().context("opening the NETLINK_SOCK_DIAG socket")?;
    let mut poller = Poller::new(
        PollerConfig {
            poll_interval: config.poll_interval,
            reps: config.reps,
            stats_interval: config.stats_interval,
        },
        socket,
        Exclusion::from_config(&config),
        Anonymizer::new(config.anonymize_ip),
        shards,
        observers,
        Arc::clone(&stats),
    );
    log!(
        "tcp-info polling every {:?}, writing to {} (uuid prefix {uuid_prefix})",
        config.poll_interval,
        config.output.display()
    );

    let polled = poller.run(&stop);
    if let Err(gone) = &polled {
        log!("{gone}: stopping (its connections can no longer be archived)");
    }
    // Dropping the poller closes the shard queues: the writers drain what
    // is queued, finish every file and exit.
    drop(poller);
    let failures = writers.join();
    for failure in &failures {
        log!("{failure}");
    }
    if let Some(server) = event_server {
        server.shutdown();
    }
    log!("final {}", stats.summary((0, 0)));
    polled?;
    if let Some(first) = failures.into_iter().next() {
        return Err(first.into());
    }
    Ok(())
}

/// Every open connection holds its archive file open: raise the soft limit
/// on open files to the hard limit.
fn raise_open_files_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                log!("cannot raise the open files limit from {soft} to {hard}: {e}");
            }
        }
    }
}
