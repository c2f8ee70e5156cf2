//! A client of the agent's event socket that keeps every event it reads,
//! on a thread of its own.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use tcpinfo_eventsocket::client::{self, ClientError, End, Stopper};
use tcpinfo_eventsocket::{FlowEvent, SockId, TcpEvent};

/// A client library connection reading into a shared list.
pub struct Collector {
    events: Arc<Mutex<Vec<FlowEvent>>>,
    stopper: Stopper,
    thread: JoinHandle<Result<End, ClientError>>,
}

impl Collector {
    pub fn connect(path: &Path) -> Collector {
        let conn = client::connect(path).unwrap();
        let stopper = conn.stopper().unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let events = Arc::clone(&events);
            thread::spawn(move || {
                let mut conn = conn;
                while let Some(ev) = conn.next_event()? {
                    events.lock().unwrap().push(ev);
                }
                Ok(conn.end())
            })
        };
        Collector {
            events,
            stopper,
            thread,
        }
    }

    pub fn events(&self) -> Vec<FlowEvent> {
        self.events.lock().unwrap().clone()
    }

    /// Opens seen for sockets with `port` at either end (LISTEN excluded),
    /// by UUID.
    pub fn opens_on(&self, port: u16) -> HashMap<String, SockId> {
        self.events()
            .into_iter()
            .filter_map(|ev| Some((ev.uuid, ev.id?)))
            .filter(|(_, id)| (id.sport == port || id.dport == port) && id.dport != 0)
            .collect()
    }

    pub fn closed(&self) -> HashSet<String> {
        self.events()
            .into_iter()
            .filter(|ev| ev.event == TcpEvent::Close)
            .map(|ev| ev.uuid)
            .collect()
    }

    pub fn finish(self) -> (Vec<FlowEvent>, End) {
        self.stopper.stop();
        let end = self.thread.join().unwrap().unwrap();
        let events = self.events.lock().unwrap().clone();
        (events, end)
    }
}
