//! Scrape-time collectors: counters read from the atomics the poller and
//! writers already keep (no double counting), writer queue depths, and the
//! exposure gauges rendered from the last published summary.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;

use super::family::FamilyDef;
use super::health::Readiness;
use super::PollState;
use crate::eventsocket::Publisher;
use crate::exposure::inventory::{family_label, remote_scope_label};
use crate::exposure::SummaryCell;
use crate::lock::lock;
use crate::saver::QueueDepths;
use crate::stats::Stats;

/// Counters and gauges over [`Stats`] and [`PollState`].
pub(crate) struct StatsCollector {
    stats: Arc<Stats>,
    poll: Arc<PollState>,
    exposure: Arc<SummaryCell>,
    errors: FamilyDef,
    snapshots: FamilyDef,
    new_files: FamilyDef,
    polls: FamilyDef,
    records: FamilyDef,
    sockets_new: FamilyDef,
    sockets_closed: FamilyDef,
    written: FamilyDef,
    dropped: FamilyDef,
    files_closed: FamilyDef,
    bytes: FamilyDef,
    cached: FamilyDef,
    interrupted: FamilyDef,
    skipped_attributes: FamilyDef,
    notices_enabled: FamilyDef,
    notices: FamilyDef,
    notices_lost: FamilyDef,
    absent_closes: FamilyDef,
    short_connections: FamilyDef,
}

impl StatsCollector {
    pub fn new(stats: Arc<Stats>, poll: Arc<PollState>, exposure: Arc<SummaryCell>) -> Self {
        Self {
            stats,
            poll,
            exposure,
            errors: FamilyDef::counter(
                "tcpinfo_error_total",
                "errors by type: NLMSG_ERROR (the kernel refused a dump, as the Go tool names it), netlink_<kind> (other failed dumps), parse (malformed replies), open and write (archive files), udp_dump (exposure)",
                &["type"],
            ),
            snapshots: FamilyDef::counter(
                "tcpinfo_snapshot_total",
                "snapshots that changed significantly and were handed to the writers",
                &[],
            ),
            new_files: FamilyDef::counter(
                "tcpinfo_new_file_total",
                "archive files created (one per connection segment)",
                &[],
            ),
            polls: FamilyDef::counter("tcpinfo_polls_total", "polling cycles run", &[]),
            records: FamilyDef::counter(
                "tcpinfo_netlink_records_total",
                "sock_diag replies received, one per socket per dump",
                &[],
            ),
            sockets_new: FamilyDef::counter(
                "tcpinfo_sockets_seen_total",
                "sockets seen for the first time, archived or not",
                &[],
            ),
            sockets_closed: FamilyDef::counter(
                "tcpinfo_sockets_gone_total",
                "sockets that vanished from a complete dump",
                &[],
            ),
            written: FamilyDef::counter(
                "tcpinfo_snapshots_written_total",
                "snapshot lines compressed and appended to archive files",
                &[],
            ),
            dropped: FamilyDef::counter(
                "tcpinfo_snapshots_dropped_total",
                "snapshot lines dropped after their file stayed unwritable",
                &[],
            ),
            files_closed: FamilyDef::counter(
                "tcpinfo_files_closed_total",
                "archive files finished and closed",
                &[],
            ),
            bytes: FamilyDef::counter(
                "tcpinfo_archive_written_bytes_total",
                "compressed bytes appended to archive files",
                &[],
            ),
            cached: FamilyDef::gauge(
                "tcpinfo_cached_sockets",
                "sockets in the poller's cache after the last cycle",
                &[],
            ),
            interrupted: FamilyDef::counter(
                "tcpinfo_interrupted_dumps_total",
                "dumps the kernel flagged NLM_F_DUMP_INTR (socket table changed): replies used, no connection closed",
                &[],
            ),
            skipped_attributes: FamilyDef::counter(
                "tcpinfo_skipped_attributes_total",
                "reply attributes of a type above 63 (a far newer kernel), left out of the archive; counted in the replies parsed (new or changed), not in those told unchanged unparsed",
                &[],
            ),
            notices_enabled: FamilyDef::gauge(
                "tcpinfo_destroy_notices_enabled",
                "1 when connections close on the kernel's destroy notices (with their final tcp_info), 0 when only on absence from dumps",
                &[],
            ),
            notices: FamilyDef::counter(
                "tcpinfo_destroy_notices_total",
                "destroy notices read: the final snapshot of a TCP socket",
                &[],
            ),
            notices_lost: FamilyDef::counter(
                "tcpinfo_destroy_notices_lost_total",
                "times the kernel dropped destroy notices (receive buffer full); those connections close on absence",
                &[],
            ),
            absent_closes: FamilyDef::counter(
                "tcpinfo_absent_closes_total",
                "with destroy notices: connections closed because they stayed out of dumps, no notice read",
                &[],
            ),
            short_connections: FamilyDef::counter(
                "tcpinfo_short_connections_total",
                "connections opened and destroyed between two polls, seen only by their destroy notice",
                &["family", "remote_scope"],
            ),
        }
    }
}

impl Collector for StatsCollector {
    fn desc(&self) -> Vec<&Desc> {
        [
            &self.errors,
            &self.snapshots,
            &self.new_files,
            &self.polls,
            &self.records,
            &self.sockets_new,
            &self.sockets_closed,
            &self.written,
            &self.dropped,
            &self.files_closed,
            &self.bytes,
            &self.cached,
            &self.interrupted,
            &self.skipped_attributes,
            &self.notices_enabled,
            &self.notices,
            &self.notices_lost,
            &self.absent_closes,
            &self.short_connections,
        ]
        .into_iter()
        .map(|f| &f.desc)
        .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let s = &self.stats;
        let n = |c: &std::sync::atomic::AtomicU64| c.load(Relaxed) as f64;
        let mut errors: Vec<(String, f64)> = lock(&self.poll.netlink_errors)
            .iter()
            .map(|(&kind, &count)| (error_type(kind), count as f64))
            .collect();
        errors.push(("parse".into(), n(&s.parse_errors)));
        errors.push(("open".into(), n(&s.open_errors)));
        errors.push(("write".into(), n(&s.write_errors)));
        errors.push(("udp_dump".into(), n(&self.exposure.udp_dump_errors)));
        vec![
            self.errors
                .family(errors.iter().map(|(t, v)| ([t.as_str()], *v))),
            self.snapshots.single(n(&s.queued)),
            self.new_files.single(n(&s.files_opened)),
            self.polls.single(n(&s.polls)),
            self.records.single(n(&s.records)),
            self.sockets_new.single(n(&s.new)),
            self.sockets_closed.single(n(&s.closed)),
            self.written.single(n(&s.written)),
            self.dropped.single(n(&s.dropped)),
            self.files_closed.single(n(&s.files_closed)),
            self.bytes.single(n(&s.bytes_written)),
            self.cached.single(n(&self.poll.cached_sockets)),
            self.interrupted.single(n(&s.interrupted_dumps)),
            self.skipped_attributes.single(n(&s.skipped_attributes)),
            self.notices_enabled.single(n(&s.destroy_notices_enabled)),
            self.notices.single(n(&s.destroy_notices)),
            self.notices_lost.single(n(&s.destroy_notices_lost)),
            self.absent_closes.single(n(&s.absent_closes)),
            self.short_connections
                .family(
                    [("ipv4", 0), ("ipv6", 1)]
                        .into_iter()
                        .flat_map(|(family, f)| {
                            [("loopback", 0), ("private", 1), ("public", 2)]
                                .into_iter()
                                .map(move |(scope, sc)| {
                                    ([family, scope], n(&s.short_connections[f][sc]))
                                })
                        }),
                ),
        ]
    }
}

/// The `type` of a failed dump: Go's name where the Go tool counts the same
/// failure (a kernel `NLMSG_ERROR` reply), `netlink_<kind>` otherwise.
pub(crate) fn error_type(kind: &str) -> String {
    match kind {
        "kernel" => "NLMSG_ERROR".to_owned(),
        kind => format!("netlink_{kind}"),
    }
}

/// Batches waiting in each writer shard's queue.
pub(crate) struct QueueCollector {
    queues: Arc<QueueDepths>,
    depth: FamilyDef,
    capacity: FamilyDef,
}

impl QueueCollector {
    pub fn new(queues: Arc<QueueDepths>) -> Self {
        Self {
            queues,
            depth: FamilyDef::gauge(
                "tcpinfo_writer_queue_batches",
                "batches queued for each writer shard",
                &["shard"],
            ),
            capacity: FamilyDef::gauge(
                "tcpinfo_writer_queue_capacity_batches",
                "batches each writer shard's queue holds before the poller keeps them",
                &["shard"],
            ),
        }
    }
}

impl Collector for QueueCollector {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.depth.desc, &self.capacity.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let queues: Vec<(usize, usize)> = self.queues.read().collect();
        let shards: Vec<String> = (0..queues.len()).map(|i| i.to_string()).collect();
        vec![
            self.depth.family(
                queues
                    .iter()
                    .zip(&shards)
                    .map(|((depth, _), s)| ([s.as_str()], *depth as f64)),
            ),
            self.capacity.family(
                queues
                    .iter()
                    .zip(&shards)
                    .map(|((_, capacity), s)| ([s.as_str()], *capacity as f64)),
            ),
        ]
    }
}

/// The event socket's clients.
pub(crate) struct EventSocketCollector {
    publisher: Publisher,
    clients: FamilyDef,
    dropped: FamilyDef,
}

impl EventSocketCollector {
    pub fn new(publisher: Publisher) -> Self {
        Self {
            publisher,
            clients: FamilyDef::gauge(
                "tcpinfo_eventsocket_clients",
                "clients connected to the event socket",
                &[],
            ),
            dropped: FamilyDef::counter(
                "tcpinfo_eventsocket_dropped_clients_total",
                "event socket clients disconnected for falling too far behind",
                &[],
            ),
        }
    }
}

impl Collector for EventSocketCollector {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.clients.desc, &self.dropped.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        vec![
            self.clients.single(self.publisher.clients() as f64),
            self.dropped.single(self.publisher.clients_dropped() as f64),
        ]
    }
}

/// The exposure gauges, from the last published summary.
pub(crate) struct ExposureCollector {
    cell: Arc<SummaryCell>,
    poll: Arc<PollState>,
    listening: FamilyDef,
    connections: FamilyDef,
    by_port: FamilyDef,
    dropped: FamilyDef,
    scans: FamilyDef,
    walks: FamilyDef,
}

impl ExposureCollector {
    pub fn new(cell: Arc<SummaryCell>, poll: Arc<PollState>) -> Self {
        Self {
            cell,
            poll,
            listening: FamilyDef::gauge(
                "tcpinfo_listening_ports",
                "1 per listening tuple: TCP in LISTEN, or UDP bound with no connected peer; scope of the bound address; process owning the socket (empty when not visible)",
                &["proto", "port", "family", "scope", "process"],
            ),
            connections: FamilyDef::gauge(
                "tcpinfo_tcp_connections",
                "TCP sockets by state, direction (inbound when the local port is a listening port) and scope of the remote address (none for LISTEN)",
                &["state", "direction", "remote_scope"],
            ),
            by_port: FamilyDef::gauge(
                "tcpinfo_tcp_connections_by_port",
                "inbound TCP connections per listening port (LISTEN sockets not counted)",
                &["port"],
            ),
            dropped: FamilyDef::counter(
                "tcpinfo_exposure_dropped_series_total",
                "series left out of an exposure gauge by its 256-series cap, summed over every inventory",
                &["metric"],
            ),
            scans: FamilyDef::counter(
                "tcpinfo_exposure_proc_scans_total",
                "scans of /proc for the programs owning listening sockets",
                &[],
            ),
            walks: FamilyDef::counter(
                "tcpinfo_exposure_inventory_seconds_total",
                "time the polling thread spent building exposure inventories and rate samples",
                &[],
            ),
        }
    }
}

impl Collector for ExposureCollector {
    fn desc(&self) -> Vec<&Desc> {
        vec![
            &self.listening.desc,
            &self.connections.desc,
            &self.by_port.desc,
            &self.dropped.desc,
            &self.scans.desc,
            &self.walks.desc,
        ]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let (dropped_listening, dropped_by_port) = self.cell.dropped();
        let mut families = vec![
            self.dropped.family([
                (["listening_ports"], dropped_listening as f64),
                (["tcp_connections_by_port"], dropped_by_port as f64),
            ]),
            self.scans.single(self.cell.proc_scans.load(Relaxed) as f64),
            self.walks.single(
                (self.cell.walk_nanos.load(Relaxed) + self.poll.rate_walk_nanos.load(Relaxed))
                    as f64
                    / 1e9,
            ),
        ];
        let Some(summary) = self.cell.load() else {
            return families;
        };
        let mut port = itoa::Buffer::new();
        let listening: Vec<[String; 5]> = summary
            .listening
            .iter()
            .map(|l| {
                [
                    l.proto.label().to_owned(),
                    port.format(l.port).to_owned(),
                    family_label(l.family).to_owned(),
                    l.scope.label().to_owned(),
                    l.process.to_string(),
                ]
            })
            .collect();
        families.push(
            self.listening.family(
                listening
                    .iter()
                    .map(|v| (v.iter().map(String::as_str), 1.0)),
            ),
        );
        families.push(
            self.connections.family(summary.connections.iter().map(
                |(state, direction, scope, n)| {
                    (
                        [
                            state_label(state),
                            direction.label(),
                            remote_scope_label(scope),
                        ],
                        n as f64,
                    )
                },
            )),
        );
        let ports: Vec<(String, u64)> = summary
            .inbound_by_port
            .iter()
            .map(|&(p, n)| (port.format(p).to_owned(), n))
            .collect();
        families.push(
            self.by_port
                .family(ports.iter().map(|(p, n)| ([p.as_str()], *n as f64))),
        );
        families
    }
}

/// Lower-case TCP state names, as the `state` label spells them.
fn state_label(state: u8) -> &'static str {
    match state {
        inetdiag::TCP_ESTABLISHED => "established",
        inetdiag::TCP_SYN_SENT => "syn_sent",
        inetdiag::TCP_SYN_RECV => "syn_recv",
        inetdiag::TCP_FIN_WAIT1 => "fin_wait1",
        inetdiag::TCP_FIN_WAIT2 => "fin_wait2",
        inetdiag::TCP_TIME_WAIT => "time_wait",
        inetdiag::TCP_CLOSE => "close",
        inetdiag::TCP_CLOSE_WAIT => "close_wait",
        inetdiag::TCP_LAST_ACK => "last_ack",
        inetdiag::TCP_LISTEN => "listen",
        inetdiag::TCP_CLOSING => "closing",
        inetdiag::TCP_NEW_SYN_RECV => "new_syn_recv",
        _ => "unknown",
    }
}

/// `tcpinfo_ready` (what `/-/ready` says) and the poll interval aimed at.
pub(crate) struct ReadyCollector {
    readiness: Arc<Readiness>,
    ready: FamilyDef,
    target: FamilyDef,
}

impl ReadyCollector {
    pub fn new(readiness: Arc<Readiness>) -> Self {
        Self {
            readiness,
            ready: FamilyDef::gauge(
                "tcpinfo_ready",
                "1 when /-/ready answers 200: polls complete and the archive is being written; 0 otherwise (/-/ready says why)",
                &[],
            ),
            target: FamilyDef::gauge(
                "tcpinfo_poll_interval_target_seconds",
                "the poll interval aimed at (-poll-interval)",
                &[],
            ),
        }
    }
}

impl Collector for ReadyCollector {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.ready.desc, &self.target.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let ready = self.readiness.check(std::time::Instant::now()).is_ok();
        vec![
            self.ready.single(if ready { 1.0 } else { 0.0 }),
            self.target
                .single(self.readiness.poll_target().as_secs_f64()),
        ]
    }
}
