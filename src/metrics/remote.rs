//! `tcpinfo_remote_connections{remote,state}` and its counters, rendered
//! from the series the exposure worker last published. Registered only
//! with `-remote-states`.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;

use super::family::FamilyDef;
use crate::exposure::remote::RemoteCell;

pub(crate) struct RemoteCollector {
    cell: Arc<RemoteCell>,
    connections: FamilyDef,
    dropped: FamilyDef,
    errors: FamilyDef,
}

impl RemoteCollector {
    pub fn new(cell: Arc<RemoteCell>, max_series: usize) -> Self {
        Self {
            cell,
            connections: FamilyDef::gauge(
                "tcpinfo_remote_connections",
                "TCP connections per peer inside the -remote-states ranges: remote = peer ip:port of the listening side (our port for inbound connections), state = opening (SYN_SENT, SYN_RECV), open (ESTABLISHED), closing (FIN_WAIT1/2, CLOSE_WAIT, LAST_ACK, CLOSING), closed (TIME_WAIT, CLOSE, or gone within the last 10 s)",
                &["remote", "state"],
            ),
            dropped: FamilyDef::counter(
                "tcpinfo_remote_dropped_series_total",
                &format!("tcpinfo_remote_connections series left out by the {max_series}-series cap (-remote-states.max-series), summed over every inventory"),
                &[],
            ),
            errors: FamilyDef::counter(
                "tcpinfo_remote_dump_errors_total",
                "failed sock_diag dumps of SYN_RECV, TIME_WAIT and CLOSE sockets for tcpinfo_remote_connections",
                &[],
            ),
        }
    }
}

impl Collector for RemoteCollector {
    fn desc(&self) -> Vec<&Desc> {
        vec![
            &self.connections.desc,
            &self.dropped.desc,
            &self.errors.desc,
        ]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let series = self.cell.load();
        let remotes: Vec<String> = series.iter().map(|s| s.remote.to_string()).collect();
        vec![
            self.connections.family(
                series
                    .iter()
                    .zip(&remotes)
                    .map(|(s, r)| ([r.as_str(), s.phase.label()], s.connections as f64)),
            ),
            self.dropped.single(self.cell.dropped() as f64),
            self.errors
                .single(self.cell.dump_errors.load(Relaxed) as f64),
        ]
    }
}
