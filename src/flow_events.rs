//! Announces the poller's connection opens and closes on the event socket.

use inetdiag::InetDiagMsg;
use tcpinfo_archive::naming::uuid;
use tcpinfo_archive::Timestamp;
use tcpinfo_eventsocket::{FlowEvent, SockId};

use crate::eventsocket::Publisher;
use crate::exclusion::{netblock_ip, AnonymizeMask, ANONYMIZE_DST, ANONYMIZE_SRC};
use crate::poller::PollObserver;

pub struct FlowEventObserver {
    publisher: Publisher,
    uuid_prefix: String,
}

impl FlowEventObserver {
    pub fn new(publisher: Publisher, uuid_prefix: String) -> Self {
        Self {
            publisher,
            uuid_prefix,
        }
    }
}

impl PollObserver for FlowEventObserver {
    fn connection_opened(
        &mut self,
        cookie: u64,
        msg: &InetDiagMsg,
        anonymize: AnonymizeMask,
        timestamp_ms: i64,
    ) {
        let mut id = SockId::from_msg(msg);
        // Events carry the same addresses as the archive's RawIDM.
        if anonymize & ANONYMIZE_SRC != 0 {
            id.src_ip = netblock_ip(id.src_ip);
        }
        if anonymize & ANONYMIZE_DST != 0 {
            id.dst_ip = netblock_ip(id.dst_ip);
        }
        let event = FlowEvent::open(
            Timestamp::from_unix_millis(timestamp_ms),
            uuid(&self.uuid_prefix, cookie),
            id,
        );
        self.publisher.publish(&event);
    }

    fn connection_closed(&mut self, cookie: u64, timestamp_ms: i64) {
        let event = FlowEvent::close(
            Timestamp::from_unix_millis(timestamp_ms),
            uuid(&self.uuid_prefix, cookie),
        );
        self.publisher.publish(&event);
    }
}
