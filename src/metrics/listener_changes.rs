//! `tcpinfo_listening_port_changes_total`, read at scrape time from the
//! counters the exposure worker keeps.

use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;

use super::family::FamilyDef;
use crate::exposure::SummaryCell;

pub(crate) struct ListenerChangeCollector {
    cell: Arc<SummaryCell>,
    changes: FamilyDef,
}

impl ListenerChangeCollector {
    pub fn new(cell: Arc<SummaryCell>) -> Self {
        Self {
            cell,
            changes: FamilyDef::counter(
                "tcpinfo_listening_port_changes_total",
                "listening tuples (proto, family, bound address, port) that appeared (opened) or vanished (closed) between two inventories; listeners present at start are not counted",
                &["proto", "family", "scope", "change"],
            ),
        }
    }
}

impl Collector for ListenerChangeCollector {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.changes.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        vec![self.changes.family(
            self.cell
                .listener_changes
                .iter()
                .map(|(labels, n)| (labels, n as f64)),
        )]
    }
}
