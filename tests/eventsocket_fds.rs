//! Client churn must not leak descriptors or threads. Alone in its own test
//! binary so no other test opens files while the descriptors are counted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use tcp_info::eventsocket::Server;
use tcpinfo_archive::Timestamp;
use tcpinfo_eventsocket::{client, FlowEvent};

fn count_entries(dir: &str) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

const DEADLINE: Duration = Duration::from_secs(20);

#[test]
fn hundred_clients_churning_while_events_flow_leak_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.sock");
    let fds_before = count_entries("/proc/self/fd");
    let threads_before = count_entries("/proc/self/task");

    let server = Server::start(&path).unwrap();
    let publisher = server.publisher();
    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(AtomicU64::new(0));
    let flow = {
        let stop = Arc::clone(&stop);
        let published = Arc::clone(&published);
        thread::spawn(move || {
            let mut n = 0i64;
            while !stop.load(Ordering::Relaxed) {
                publisher.publish(&FlowEvent::close(
                    Timestamp::from_unix_millis(1_554_214_357_000 + n),
                    format!("churn_{n:016X}"),
                ));
                n += 1;
                published.store(n as u64, Ordering::Relaxed);
                thread::sleep(Duration::from_micros(200));
            }
        })
    };

    let received = Arc::new(AtomicU64::new(0));
    let churners: Vec<_> = (0..4)
        .map(|t| {
            let path = path.clone();
            let received = Arc::clone(&received);
            thread::spawn(move || {
                for i in 0..25 {
                    let mut conn = client::connect(&path).unwrap();
                    // Some read a few events, some hang up at once.
                    for _ in 0..(t + i) % 4 {
                        let ev = conn.next_event().unwrap().expect("event");
                        assert!(ev.uuid.starts_with("churn_"));
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for churner in churners {
        churner.join().unwrap();
    }
    assert!(received.load(Ordering::Relaxed) > 0);

    // Every hung-up client is noticed and released while the server runs.
    harness::wait_until(DEADLINE, "all clients released", || server.clients() == 0);
    harness::wait_until(DEADLINE, "client descriptors closed", || {
        count_entries("/proc/self/fd") <= fds_before + 1
    });

    stop.store(true, Ordering::Relaxed);
    flow.join().unwrap();
    assert!(published.load(Ordering::Relaxed) > 0);
    server.shutdown();
    assert!(!path.exists());
    assert_eq!(
        count_entries("/proc/self/fd"),
        fds_before,
        "descriptor leak"
    );
    harness::wait_until(DEADLINE, "threads ended", || {
        count_entries("/proc/self/task") <= threads_before
    });
}
