//! A connection's timeline: its snapshots, across all its segment files,
//! reduced to the `tcp_info` fields a summary or a plot reads.

use std::fs::File;
use std::net::{IpAddr, SocketAddr};

use tcpinfo_archive::{ArchiveReader, RecordBuf, Snapshot, Timestamp};

use crate::error::AnalysisError;
use crate::inputs::ConnectionFiles;

/// `TCP_INFINITE_SSTHRESH` (include/net/tcp.h): the slow-start threshold
/// before the first loss, "no threshold yet" rather than a number.
pub const INFINITE_SSTHRESH: u32 = 0x7fff_ffff;

/// One snapshot's fields, as the kernel reported them (units of
/// `struct tcp_info`: microseconds, packets, bytes, bytes per second).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Microseconds since the Unix epoch.
    pub time_us: i64,
    /// The TCP state (`TCP_ESTABLISHED` = 1, …, include/net/tcp_states.h).
    pub state: u8,
    /// Whether the snapshot had `tcp_info` (a socket's last snapshot, in
    /// FIN_WAIT2 or CLOSE, may not): without it the fields below are zero
    /// and mean "not reported", and no series has a point here.
    pub has_info: bool,
    pub rtt_us: u32,
    pub min_rtt_us: u32,
    pub cwnd: u32,
    pub ssthresh: u32,
    pub delivery_rate: u64,
    pub pacing_rate: u64,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    pub segs_out: u32,
    pub segs_in: u32,
    pub total_retrans: u32,
}

/// A connection's snapshots in archive order, with what stays the same
/// for the whole connection.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    /// The UUID from the metadata line, else from the file names.
    pub uuid: String,
    pub src: Option<SocketAddr>,
    pub dst: Option<SocketAddr>,
    /// The last congestion control algorithm named (INET_DIAG_CONG).
    pub congestion: Option<String>,
    pub samples: Vec<Sample>,
}

impl Timeline {
    /// Reads every segment of `files`, in order. A segment that fails part
    /// way keeps the snapshots before the failing line; the error is
    /// returned beside the timeline and the next segment is still read.
    pub fn read(files: &ConnectionFiles) -> (Timeline, Vec<AnalysisError>) {
        let mut timeline = Timeline {
            uuid: files.key.clone(),
            ..Timeline::default()
        };
        let mut record = RecordBuf::new();
        let mut errors = Vec::new();
        for path in &files.segments {
            let result = File::open(path)
                .map_err(|source| AnalysisError::Io {
                    path: path.clone(),
                    source,
                })
                .and_then(|file| {
                    let reader = ArchiveReader::new(path.display().to_string(), file)?;
                    timeline.append(reader, &mut record)
                });
            if let Err(e) = result {
                errors.push(e);
            }
        }
        (timeline, errors)
    }

    /// Appends the snapshots of one archive.
    pub fn append<R: std::io::Read>(
        &mut self,
        mut reader: ArchiveReader<R>,
        record: &mut RecordBuf,
    ) -> Result<(), AnalysisError> {
        while let Some(snapshot) = reader.next_snapshot(record)? {
            if let Some(metadata) = snapshot.metadata() {
                if self.uuid != metadata.uuid {
                    self.uuid.clone_from(&metadata.uuid);
                }
            }
            self.push(&snapshot);
        }
        Ok(())
    }

    fn push(&mut self, snapshot: &Snapshot) {
        let Some(idm) = snapshot.inet_diag_msg else {
            return;
        };
        if self.src.is_none() {
            self.src = Some(SocketAddr::new(unmapped(idm.src()), idm.sport()));
            self.dst = Some(SocketAddr::new(unmapped(idm.dst()), idm.dport()));
        }
        if let Some(cc) = snapshot.congestion.filter(|c| !c.is_empty()) {
            if self.congestion.as_deref().map(str::as_bytes) != Some(cc) {
                self.congestion = Some(String::from_utf8_lossy(cc).into_owned());
            }
        }
        let info = snapshot.tcp_info.unwrap_or_default();
        self.samples.push(Sample {
            time_us: micros(&snapshot.timestamp),
            state: idm.state(),
            has_info: snapshot.tcp_info.is_some(),
            rtt_us: info.rtt,
            min_rtt_us: info.min_rtt,
            cwnd: info.snd_cwnd,
            ssthresh: info.snd_ssthresh,
            delivery_rate: info.delivery_rate,
            pacing_rate: info.pacing_rate,
            bytes_acked: info.bytes_acked,
            bytes_received: info.bytes_received,
            segs_out: info.segs_out,
            segs_in: info.segs_in,
            total_retrans: info.total_retrans,
        });
    }
}

fn micros(t: &Timestamp) -> i64 {
    t.as_datetime().timestamp_micros()
}

/// IPv4 addresses of an AF_INET6 socket (`::ffff:a.b.c.d`) as IPv4, the
/// way people write them.
fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}
