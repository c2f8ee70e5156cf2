//! The replay seam on datagrams captured from a real kernel
//! (`testdata/netlink/story.dumps`, written by `examples/capture_dumps.rs`).

use inetdiag::replay::{read_capture, CaptureError, CapturedDump, Replay, Reply, CAPTURE_MAGIC};
use inetdiag::request::DumpRequest;
use inetdiag::{DiagRecord, DumpSource, Error, AF_INET, AF_INET6, AF_UNSPEC};

fn story() -> Vec<CapturedDump> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/netlink/story.dumps"
    );
    read_capture(&std::fs::read(path).expect("captured story")).expect("a valid capture")
}

fn request(family: u8) -> DumpRequest {
    DumpRequest {
        family,
        protocol: inetdiag::IPPROTO_TCP,
        states: inetdiag::ARCHIVE_STATES,
        extensions: inetdiag::ARCHIVE_EXTENSIONS,
    }
}

/// (family, local port, remote port) of every record a dump hands over.
fn replay(replay: &mut Replay, family: u8) -> Result<Vec<(u8, u16, u16)>, Error> {
    let mut seen = Vec::new();
    replay.dump(&request(family), |payload| {
        let msg = DiagRecord::parse(payload)
            .expect("kernel bytes parse")
            .msg();
        seen.push((msg.family(), msg.sport(), msg.dport()));
    })?;
    Ok(seen)
}

#[test]
fn the_captured_story_has_its_eight_dumps() {
    let counts: Vec<usize> = story().iter().map(|d| d.records().len()).collect();
    assert_eq!(counts, [2, 8, 8, 8, 8, 6, 4, 4]);
}

#[test]
fn a_replayed_dump_hands_over_the_kernel_records_in_order() {
    let dumps = story();
    let mut source = Replay::new([Reply::Dump(dumps[1].clone())]);
    let seen = replay(&mut source, AF_UNSPEC).unwrap();
    assert_eq!(seen.len(), 8);
    for expected in [
        (AF_INET, 7001, 0),
        (AF_INET6, 7002, 0),
        (AF_INET, 7101, 7001),
        (AF_INET, 7001, 7101),
        (AF_INET6, 7102, 7002),
        (AF_INET, 7103, 7001),
    ] {
        assert!(seen.contains(&expected), "{expected:?} in {seen:?}");
    }
    assert_eq!(source.requests(), &[request(AF_UNSPEC)]);
    assert_eq!(source.remaining(), 0);
}

#[test]
fn a_per_family_request_gets_only_that_family() {
    let dump = story()[1].clone();
    let mut source = Replay::new([Reply::Dump(dump.clone()), Reply::Dump(dump)]);
    let v6 = replay(&mut source, AF_INET6).unwrap();
    let v4 = replay(&mut source, AF_INET).unwrap();
    assert_eq!(v6.len(), 3);
    assert!(v6.iter().all(|r| r.0 == AF_INET6));
    assert_eq!(v4.len(), 5);
    assert!(v4.iter().all(|r| r.0 == AF_INET));
}

#[test]
fn refusals_break_offs_and_an_empty_script_are_errors() {
    let dump = story()[1].clone();
    let mut source = Replay::new([
        Reply::Refuse {
            errno: libc::EINVAL,
        },
        Reply::BreakOff {
            dump,
            datagrams: 0,
            errno: libc::ENOBUFS,
        },
    ]);
    assert!(matches!(
        replay(&mut source, AF_UNSPEC),
        Err(Error::Kernel {
            errno: libc::EINVAL
        })
    ));
    match replay(&mut source, AF_UNSPEC) {
        Err(Error::Io(e)) => assert_eq!(e.raw_os_error(), Some(libc::ENOBUFS)),
        other => panic!("expected the socket error, got {other:?}"),
    }
    assert!(matches!(replay(&mut source, AF_UNSPEC), Err(Error::Io(_))));
}

#[test]
fn rebuilt_and_interrupted_dumps_keep_their_records() {
    let records = story()[1].records();
    let rebuilt = CapturedDump::from_records(&records);
    assert_eq!(rebuilt.records(), records);
    let mut source = Replay::new([Reply::Dump(rebuilt.interrupted())]);
    let stats = source.dump(&request(AF_UNSPEC), |_| {}).unwrap();
    assert!(stats.interrupted);
    assert_eq!(stats.records, 8);
    assert!(matches!(stats.consistent(), Err(Error::Interrupted)));
}

#[test]
fn damaged_capture_files_are_one_clear_error() {
    assert_eq!(read_capture(b"nope"), Err(CaptureError::Magic));
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/netlink/story.dumps"
    );
    let bytes = std::fs::read(path).unwrap();
    let cut = &bytes[..bytes.len() - 3];
    assert!(matches!(
        read_capture(cut),
        Err(CaptureError::Truncated { .. })
    ));
    // A dump whose NLMSG_DONE (the last 20 bytes: header and errno) never came.
    let records = story()[1].records();
    let mut datagram = CapturedDump::from_records(&records).datagrams.remove(0);
    datagram.truncate(datagram.len() - 20);
    let mut unfinished = CAPTURE_MAGIC.to_vec();
    unfinished.extend_from_slice(&(datagram.len() as u32).to_le_bytes());
    unfinished.extend_from_slice(&datagram);
    assert_eq!(
        read_capture(&unfinished),
        Err(CaptureError::Unfinished { datagrams: 1 })
    );
}
