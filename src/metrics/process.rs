//! The standard `process_*` metrics (as Prometheus' Go and Rust clients
//! name them), read from `/proc/self` at scrape time: a few small reads of
//! the agent's own files, independent of how many connections there are.

use std::fs;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;

use super::family::FamilyDef;

pub(crate) struct ProcessCollector {
    cpu: FamilyDef,
    resident: FamilyDef,
    virtual_memory: FamilyDef,
    open_fds: FamilyDef,
    max_fds: FamilyDef,
    start_time: FamilyDef,
    /// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
    ticks: f64,
    page_size: f64,
    /// Boot time, Unix seconds (`btime` of `/proc/stat`).
    boot_time: Option<f64>,
}

/// The fields of `/proc/self/stat` used here (proc(5)).
#[derive(Debug, PartialEq)]
pub(crate) struct Stat {
    pub utime_ticks: u64,
    pub stime_ticks: u64,
    pub start_ticks: u64,
    pub vsize_bytes: u64,
    pub rss_pages: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses
/// and may hold spaces and parentheses itself: fields are counted after the
/// last `)`.
pub(crate) fn parse_stat(text: &str) -> Option<Stat> {
    let after = &text[text.rfind(')')? + 1..];
    // After the name, field 3 (state) is index 0.
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        utime_ticks: field(14)?,
        stime_ticks: field(15)?,
        start_ticks: field(22)?,
        vsize_bytes: field(23)?,
        rss_pages: field(24)?,
    })
}

fn boot_time() -> Option<f64> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse::<f64>().ok())
}

impl ProcessCollector {
    pub fn new() -> Self {
        use nix::unistd::{sysconf, SysconfVar};
        let ticks = sysconf(SysconfVar::CLK_TCK).ok().flatten().unwrap_or(0);
        let page = sysconf(SysconfVar::PAGE_SIZE).ok().flatten().unwrap_or(0);
        Self {
            cpu: FamilyDef::counter(
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
                &[],
            ),
            resident: FamilyDef::gauge(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                &[],
            ),
            virtual_memory: FamilyDef::gauge(
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                &[],
            ),
            open_fds: FamilyDef::gauge("process_open_fds", "Number of open file descriptors.", &[]),
            max_fds: FamilyDef::gauge(
                "process_max_fds",
                "Maximum number of open file descriptors.",
                &[],
            ),
            start_time: FamilyDef::gauge(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                &[],
            ),
            ticks: if ticks > 0 { ticks as f64 } else { 100.0 },
            page_size: if page > 0 { page as f64 } else { 4096.0 },
            boot_time: boot_time(),
        }
    }
}

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        vec![
            &self.cpu.desc,
            &self.resident.desc,
            &self.virtual_memory.desc,
            &self.open_fds.desc,
            &self.max_fds.desc,
            &self.start_time.desc,
        ]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut out = Vec::with_capacity(6);
        if let Some(stat) = fs::read_to_string("/proc/self/stat")
            .ok()
            .as_deref()
            .and_then(parse_stat)
        {
            let cpu = (stat.utime_ticks + stat.stime_ticks) as f64 / self.ticks;
            out.push(self.cpu.single(cpu));
            out.push(self.resident.single(stat.rss_pages as f64 * self.page_size));
            out.push(self.virtual_memory.single(stat.vsize_bytes as f64));
            if let Some(boot) = self.boot_time {
                out.push(
                    self.start_time
                        .single(boot + stat.start_ticks as f64 / self.ticks),
                );
            }
        }
        if let Ok(dir) = fs::read_dir("/proc/self/fd") {
            // The directory's own descriptor is listed too.
            let open = dir.count().saturating_sub(1);
            out.push(self.open_fds.single(open as f64));
        }
        if let Ok((soft, _)) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        {
            out.push(self.max_fds.single(soft as f64));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let text = "4242 (tcp (info) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 5 0 1234 104857600 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            parse_stat(text),
            Some(Stat {
                utime_ticks: 250,
                stime_ticks: 50,
                start_ticks: 1234,
                vsize_bytes: 104_857_600,
                rss_pages: 2560,
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_reports_every_family() {
        let families = ProcessCollector::new().collect();
        let names: Vec<&str> = families.iter().map(|f| f.name()).collect();
        assert_eq!(
            names,
            [
                "process_cpu_seconds_total",
                "process_resident_memory_bytes",
                "process_virtual_memory_bytes",
                "process_start_time_seconds",
                "process_open_fds",
                "process_max_fds"
            ]
        );
        let value = |name: &str| {
            let f = families.iter().find(|f| f.name() == name).unwrap();
            let m = &f.get_metric()[0];
            if f.get_field_type() == prometheus::proto::MetricType::COUNTER {
                m.get_counter().get_value()
            } else {
                m.get_gauge().get_value()
            }
        };
        assert!(value("process_resident_memory_bytes") > 1e5);
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_start_time_seconds") > 1.5e9);
    }
}
