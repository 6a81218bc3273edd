//! The standard `process_*` metrics (CPU time, memory, file descriptors, start time), read from
//! `/proc` at each scrape, as the Prometheus client libraries of other languages export them.
//! Linux only: elsewhere these metrics are absent. A file that cannot be read or parsed leaves
//! its metrics out of that scrape (nothing is invented) and is logged at debug level.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Clock ticks per second of the times in `/proc/<pid>/stat`. The kernel reports them in
/// USER_HZ, which is 100 on every architecture Linux exposes it for (Prometheus' own procfs
/// reader makes the same assumption).
const USER_HZ: f64 = 100.0;

/// Exports the `process_*` metrics of this process.
#[derive(Debug, Default)]
pub(crate) struct ProcessCollector;

/// One reading of the process figures; a figure that could not be read is `None`.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct ProcessFigures {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<i64>,
    pub virtual_bytes: Option<i64>,
    pub open_fds: Option<i64>,
    pub max_fds: Option<i64>,
    pub start_time_seconds: Option<f64>,
}

impl ProcessFigures {
    /// Reads the figures of this process from `/proc` (all `None` off Linux).
    pub(crate) fn read() -> ProcessFigures {
        #[cfg(target_os = "linux")]
        {
            linux::read()
        }
        #[cfg(not(target_os = "linux"))]
        {
            ProcessFigures::default()
        }
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let f = ProcessFigures::read();
        if let Some(v) = f.cpu_seconds {
            let metric = ConstCounter::new(v);
            metric.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                metric.metric_type(),
            )?)?;
        }
        let gauges: [(&str, &str, Option<i64>); 4] = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                f.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                f.virtual_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                f.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors (soft limit)",
                f.max_fds,
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(v) = value {
                let metric = ConstGauge::new(v);
                metric.encode(encoder.encode_descriptor(
                    name,
                    help,
                    None,
                    metric.metric_type(),
                )?)?;
            }
        }
        if let Some(v) = f.start_time_seconds {
            let metric = ConstGauge::new(v);
            metric.encode(encoder.encode_descriptor(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                None,
                metric.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

/// The figures in `/proc/<pid>/stat`, after the command name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Stat {
    /// User plus system time, in clock ticks.
    pub cpu_ticks: u64,
    /// Start time after boot, in clock ticks.
    pub start_ticks: u64,
    /// Virtual memory size, in bytes.
    pub virtual_bytes: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may itself hold
/// spaces and parentheses, so fields are counted from the last `)`.
pub(crate) fn parse_stat(text: &str) -> Option<Stat> {
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `fields[0]` is field 3 (state): field n is at n - 3.
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        cpu_ticks: field(14)?.checked_add(field(15)?)?,
        start_ticks: field(22)?,
        virtual_bytes: field(23)?,
    })
}

/// `VmRSS` from `/proc/<pid>/status`, in bytes.
pub(crate) fn parse_resident_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let kib: u64 = words.next()?.parse().ok()?;
    (words.next()? == "kB").then_some(())?;
    kib.checked_mul(1024)
}

/// The soft "Max open files" limit from `/proc/<pid>/limits` (`None` when unlimited).
pub(crate) fn parse_max_fds(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `btime` (boot time, unix seconds) from `/proc/stat`.
pub(crate) fn parse_boot_time(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

#[cfg(target_os = "linux")]
mod linux {
    use super::*;

    fn read_file(path: &str) -> Option<String> {
        std::fs::read_to_string(path)
            .map_err(|e| tracing::debug!("cannot read {path} for process metrics: {e}"))
            .ok()
    }

    fn as_i64(v: u64) -> Option<i64> {
        i64::try_from(v).ok()
    }

    pub(super) fn read() -> ProcessFigures {
        let stat = read_file("/proc/self/stat").and_then(|t| parse_stat(&t));
        let boot = read_file("/proc/stat").and_then(|t| parse_boot_time(&t));
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .map_err(|e| tracing::debug!("cannot list /proc/self/fd for process metrics: {e}"))
            .ok()
            .map(|dir| dir.count() as i64);
        ProcessFigures {
            cpu_seconds: stat.map(|s| s.cpu_ticks as f64 / USER_HZ),
            resident_bytes: read_file("/proc/self/status")
                .and_then(|t| parse_resident_bytes(&t))
                .and_then(as_i64),
            virtual_bytes: stat.and_then(|s| as_i64(s.virtual_bytes)),
            open_fds,
            max_fds: read_file("/proc/self/limits")
                .and_then(|t| parse_max_fds(&t))
                .and_then(as_i64),
            start_time_seconds: match (stat, boot) {
                (Some(s), Some(boot)) => Some(boot as f64 + s.start_ticks as f64 / USER_HZ),
                _ => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        // A command name with spaces and a parenthesis of its own.
        let line = "4242 (we ird) name) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    250 50 0 0 20 0 9 0 123456 987654321 4321 18446744073709551615 1 1 0 0 0 0 0 0 0";
        let s = parse_stat(line).expect("parses");
        assert_eq!(s.cpu_ticks, 300);
        assert_eq!(s.start_ticks, 123456);
        assert_eq!(s.virtual_bytes, 987654321);
        assert_eq!(parse_stat("4242 (cut) S 1 2"), None);
        assert_eq!(parse_stat("no parenthesis at all"), None);
    }

    #[test]
    fn status_limits_and_boot_time_parse() {
        let status = "Name:\tsorcha-peer\nVmSize:\t  100 kB\nVmRSS:\t   2048 kB\n";
        assert_eq!(parse_resident_bytes(status), Some(2048 * 1024));
        assert_eq!(parse_resident_bytes("VmRSS: 12 MB\n"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_max_fds(limits), Some(1024));
        assert_eq!(
            parse_max_fds(
                "Max open files            unlimited            unlimited            files\n"
            ),
            None
        );
        assert_eq!(
            parse_boot_time("cpu  1 2 3\nbtime 1700000000\n"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_boot_time("cpu 1\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_read_from_proc() {
        let f = ProcessFigures::read();
        assert!(f.open_fds.is_some_and(|n| n > 0), "{f:?}");
        assert!(
            f.max_fds.is_some_and(|n| n >= f.open_fds.unwrap_or(0)),
            "{f:?}"
        );
        assert!(f.resident_bytes.is_some_and(|n| n > 0), "{f:?}");
        assert!(f.virtual_bytes >= f.resident_bytes, "{f:?}");
        assert!(f.cpu_seconds.is_some_and(|s| s >= 0.0), "{f:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64();
        let started = f.start_time_seconds.expect("start time");
        // Started before now, and not before this test binary could have been built.
        assert!(
            started <= now + 1.0 && started > now - 86_400.0,
            "{started} vs {now}"
        );
    }
}
