//! `sorcha-peer doctor`: what an operator would check by hand, each item judged `ok`,
//! `warning` or `failing` with the fix to apply (`unknown` when it cannot be measured, rather
//! than a reassuring `ok`). Pure rules over [`Facts`] that the admin edge gathers.

/// Clock offsets beyond these (median over connected peers) are a warning, then a failure:
/// docket times, ban expiry and certificate validity all read the clock.
const CLOCK_WARNING_MS: i64 = 2_000;
const CLOCK_FAILING_MS: i64 = 30_000;
/// Free space below these (share of the file system, or bytes) is a warning; below the
/// failing share, writes are about to fail.
const DISK_WARNING_PERCENT: f64 = 10.0;
const DISK_WARNING_BYTES: u64 = 1 << 30;
const DISK_FAILING_PERCENT: f64 = 2.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Verdict {
    Ok,
    Unknown,
    Warning,
    Failing,
}

impl Verdict {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Unknown => "unknown",
            Verdict::Warning => "warning",
            Verdict::Failing => "failing",
        }
    }
}

/// One item checked.
#[derive(Clone, Debug)]
pub(crate) struct Finding {
    pub item: String,
    pub verdict: Verdict,
    pub detail: String,
    /// What to do about it (none when ok).
    pub fix: Option<String>,
}

/// A held register's replication, as its subscription reports it.
#[derive(Clone, Debug)]
pub(crate) struct Replication {
    pub register_id: String,
    /// `error`, `syncing`, `fully-replicated`, …
    pub state: String,
    pub error: Option<String>,
    /// Transactions the sources hold that this node does not yet; `None` until both are
    /// known.
    pub behind: Option<u64>,
}

/// What the rules judge.
#[derive(Clone, Debug, Default)]
pub(crate) struct Facts {
    pub ready: bool,
    pub readiness_reasons: Vec<String>,
    pub storage_error: Option<String>,
    /// Free space for the node (as `df` counts it) and the share of the file system it is.
    pub disk_free: Option<(u64, f64)>,
    /// Connected peers' clocks minus this node's.
    pub clock_offsets_ms: Vec<i64>,
    /// `public`, `private` or `unknown`, with where the announced address came from.
    pub reachability: String,
    pub address_source: String,
    pub announced: String,
    pub peer_tls: String,
    /// CA mode: a problem with this node's certificate (expired or expiring), if any, and when
    /// it expires.
    pub certificate: Option<(Option<String>, String)>,
    pub replication: Vec<Replication>,
    /// The admin API answers reads without a token from beyond loopback.
    pub admin_open_beyond_loopback: bool,
    pub seeds: usize,
    pub known_peers: usize,
    /// (file, mode) of the data directory and its secrets.
    pub file_modes: Vec<(String, u32)>,
}

fn finding(item: &str, verdict: Verdict, detail: String, fix: Option<&str>) -> Finding {
    Finding {
        item: item.to_string(),
        verdict,
        detail,
        fix: fix.map(str::to_string),
    }
}

/// Every item, in the order an operator reads them.
pub(crate) fn diagnose(facts: &Facts) -> Vec<Finding> {
    let mut out = vec![
        readiness(facts),
        storage(facts),
        clock(facts),
        address(facts),
    ];
    out.push(certificate(facts));
    out.extend(replication(facts));
    out.extend(config_risks(facts));
    out.extend(permissions(facts));
    out
}

/// The worst verdict among the findings.
pub(crate) fn overall(findings: &[Finding]) -> Verdict {
    findings
        .iter()
        .map(|f| f.verdict)
        .max()
        .unwrap_or(Verdict::Ok)
}

fn readiness(f: &Facts) -> Finding {
    if f.ready {
        finding("readiness", Verdict::Ok, "ready".into(), None)
    } else {
        finding(
            "readiness",
            Verdict::Failing,
            format!("not ready: {}", f.readiness_reasons.join("; ")),
            Some("each reason says what is missing; `sorcha-peer status` shows them too"),
        )
    }
}

fn storage(f: &Facts) -> Finding {
    if let Some(error) = &f.storage_error {
        return finding(
            "storage",
            Verdict::Failing,
            format!("writes fail: {error}"),
            Some(
                "free space or fix the data directory's permissions; the node recovers by itself once writes succeed",
            ),
        );
    }
    let Some((free, percent)) = f.disk_free else {
        return finding(
            "storage",
            Verdict::Unknown,
            "writes succeed; the free space could not be read".into(),
            None,
        );
    };
    let detail = format!("writes succeed; {} free ({percent:.0}%)", bytes(free));
    if percent < DISK_FAILING_PERCENT {
        finding(
            "storage",
            Verdict::Failing,
            detail,
            Some("free disk space now: writes are about to fail"),
        )
    } else if percent < DISK_WARNING_PERCENT || free < DISK_WARNING_BYTES {
        finding(
            "storage",
            Verdict::Warning,
            detail,
            Some("free disk space, or move the data directory to a larger disk"),
        )
    } else {
        finding("storage", Verdict::Ok, detail, None)
    }
}

fn clock(f: &Facts) -> Finding {
    let mut offsets = f.clock_offsets_ms.clone();
    if offsets.is_empty() {
        return finding(
            "clock",
            Verdict::Unknown,
            "not measured: no connected peer to compare with".into(),
            None,
        );
    }
    offsets.sort_unstable();
    let median = offsets[offsets.len() / 2];
    let detail = format!(
        "{median:+} ms against the median of {} connected peer(s)",
        offsets.len()
    );
    let fix = Some("synchronise the clock (chrony or systemd-timesyncd)");
    match median.unsigned_abs() {
        d if d > CLOCK_FAILING_MS as u64 => finding("clock", Verdict::Failing, detail, fix),
        d if d > CLOCK_WARNING_MS as u64 => finding("clock", Verdict::Warning, detail, fix),
        _ => finding("clock", Verdict::Ok, detail, None),
    }
}

fn address(f: &Facts) -> Finding {
    let detail = format!(
        "announces {} ({}, from {})",
        f.announced, f.reachability, f.address_source
    );
    if f.reachability == "public" {
        finding("address", Verdict::Ok, detail, None)
    } else {
        finding(
            "address",
            Verdict::Warning,
            detail,
            Some(
                "peers outside this network cannot dial it: set announce_address, or forward the peer port",
            ),
        )
    }
}

fn certificate(f: &Facts) -> Finding {
    match (&f.certificate, f.peer_tls.as_str()) {
        (_, "off") => finding(
            "certificate",
            Verdict::Ok,
            "none: peer traffic is plaintext (see config)".into(),
            None,
        ),
        (None, _) => finding(
            "certificate",
            Verdict::Ok,
            "made from the node key; it does not expire".into(),
            None,
        ),
        (Some((None, expires)), _) => finding(
            "certificate",
            Verdict::Ok,
            format!("expires {expires}"),
            None,
        ),
        (Some((Some(problem), _)), _) => finding(
            "certificate",
            if problem.contains("has expired") {
                Verdict::Failing
            } else {
                Verdict::Warning
            },
            problem.clone(),
            Some("issue a new one with `sorcha-peer tls issue` and restart"),
        ),
    }
}

fn replication(f: &Facts) -> Vec<Finding> {
    f.replication
        .iter()
        .map(|r| {
            let item = format!("lag {}", r.register_id);
            match (&r.error, r.behind) {
                (Some(error), _) => finding(
                    &item,
                    Verdict::Failing,
                    format!("{}: {error}", r.state),
                    Some("`sorcha-peer registers subscriptions` shows when it last synced"),
                ),
                (None, Some(behind)) if behind > 0 => finding(
                    &item,
                    Verdict::Warning,
                    format!("{}, {behind} transaction(s) behind its sources", r.state),
                    Some("it catches up by itself; `sorcha-peer lag --against PEER` compares with one peer"),
                ),
                (None, None) => finding(
                    &item,
                    Verdict::Unknown,
                    format!("{}: nothing held yet to compare with its sources", r.state),
                    None,
                ),
                _ => finding(&item, Verdict::Ok, r.state.clone(), None),
            }
        })
        .collect()
}

fn config_risks(f: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    if f.peer_tls == "off" {
        out.push(finding(
            "config peer_tls",
            Verdict::Warning,
            "peer traffic is plaintext".into(),
            Some("set peer_tls = \"node-key\" (the default) or \"ca\""),
        ));
    }
    if f.admin_open_beyond_loopback {
        out.push(finding(
            "config admin_open_cidrs",
            Verdict::Warning,
            "the admin API answers reads without a token from beyond this host".into(),
            Some("keep admin_open_cidrs to loopback, or to the monitoring network only"),
        ));
    }
    if f.seeds == 0 && f.known_peers == 0 {
        out.push(finding(
            "config seeds",
            Verdict::Warning,
            "no seeds and no known peers: this node finds no one".into(),
            Some("add a seed (--seed HOST:PORT) or `sorcha-peer peers connect HOST:PORT`"),
        ));
    }
    if out.is_empty() {
        out.push(finding(
            "config",
            Verdict::Ok,
            "no risky setting".into(),
            None,
        ));
    }
    out
}

fn permissions(f: &Facts) -> Vec<Finding> {
    f.file_modes
        .iter()
        .map(|(file, mode)| {
            let item = format!("permissions {file}");
            let detail = format!("mode {:o}", mode & 0o777);
            if mode & 0o077 == 0 {
                finding(&item, Verdict::Ok, detail, None)
            } else if file.ends_with('/') {
                finding(
                    &item,
                    Verdict::Warning,
                    detail,
                    Some("chmod 700 the data directory"),
                )
            } else {
                finding(
                    &item,
                    Verdict::Failing,
                    format!("{detail}: other users can read a secret"),
                    Some("chmod 600 the file"),
                )
            }
        })
        .collect()
}

fn bytes(n: u64) -> String {
    const GIB: f64 = (1u64 << 30) as f64;
    const MIB: f64 = (1u64 << 20) as f64;
    if n as f64 >= GIB {
        format!("{:.1} GiB", n as f64 / GIB)
    } else {
        format!("{:.0} MiB", n as f64 / MIB)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Facts {
        Facts {
            ready: true,
            disk_free: Some((50 << 30, 60.0)),
            clock_offsets_ms: vec![3, -2, 40],
            reachability: "public".into(),
            address_source: "observed".into(),
            announced: "192.0.2.1:5000".into(),
            peer_tls: "node-key".into(),
            seeds: 1,
            file_modes: vec![("data/".into(), 0o700), ("node.key".into(), 0o600)],
            ..Facts::default()
        }
    }

    fn verdict_of(findings: &[Finding], item: &str) -> Verdict {
        findings
            .iter()
            .find(|f| f.item == item)
            .map(|f| f.verdict)
            .unwrap_or_else(|| panic!("no {item} in {findings:?}"))
    }

    #[test]
    fn a_healthy_node_is_ok_throughout() {
        let findings = diagnose(&healthy());
        assert_eq!(overall(&findings), Verdict::Ok, "{findings:?}");
        assert!(findings.iter().all(|f| f.fix.is_none()));
    }

    #[test]
    fn each_problem_is_judged_with_a_fix() {
        let mut f = healthy();
        f.ready = false;
        f.readiness_reasons = vec!["no peer connected".into()];
        f.clock_offsets_ms = vec![45_000, 44_000, -100];
        f.reachability = "private".into();
        f.disk_free = Some((500 << 20, 5.0));
        f.file_modes.push(("admin.token".into(), 0o644));
        f.peer_tls = "off".into();
        let findings = diagnose(&f);
        assert_eq!(verdict_of(&findings, "readiness"), Verdict::Failing);
        assert_eq!(verdict_of(&findings, "clock"), Verdict::Failing);
        assert_eq!(verdict_of(&findings, "address"), Verdict::Warning);
        assert_eq!(verdict_of(&findings, "storage"), Verdict::Warning);
        assert_eq!(
            verdict_of(&findings, "permissions admin.token"),
            Verdict::Failing
        );
        assert_eq!(verdict_of(&findings, "config peer_tls"), Verdict::Warning);
        assert_eq!(overall(&findings), Verdict::Failing);
        for f in findings.iter().filter(|f| f.verdict >= Verdict::Warning) {
            assert!(f.fix.is_some(), "{f:?}");
        }
    }

    #[test]
    fn what_cannot_be_measured_is_unknown_not_ok() {
        let mut f = healthy();
        f.clock_offsets_ms.clear();
        f.disk_free = None;
        let findings = diagnose(&f);
        assert_eq!(verdict_of(&findings, "clock"), Verdict::Unknown);
        assert_eq!(verdict_of(&findings, "storage"), Verdict::Unknown);
    }

    #[test]
    fn a_replica_that_holds_nothing_yet_is_not_called_ok() {
        let mut f = healthy();
        f.replication = vec![Replication {
            register_id: "r".into(),
            state: "subscribing".into(),
            error: None,
            behind: None,
        }];
        assert_eq!(verdict_of(&diagnose(&f), "lag r"), Verdict::Unknown);
        f.replication[0].behind = Some(0);
        f.replication[0].state = "fully-replicated".into();
        assert_eq!(verdict_of(&diagnose(&f), "lag r"), Verdict::Ok);
    }

    #[test]
    fn the_median_offset_is_judged_so_one_bad_peer_does_not_decide() {
        let mut f = healthy();
        f.clock_offsets_ms = vec![10, 90_000, -5];
        assert_eq!(verdict_of(&diagnose(&f), "clock"), Verdict::Ok);
    }
}
