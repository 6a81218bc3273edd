//! The two text formats `/metrics` speaks. prometheus-client writes OpenMetrics 1.0, where a
//! counter family is named without its `_total` suffix in `# HELP`/`# TYPE` while its samples
//! carry it, and the text ends with `# EOF`. The Prometheus text format 0.0.4 (what
//! `promtool check metrics`, older scrapers and people with curl read) names the metric as its
//! samples do and has no `# EOF` or `# UNIT`. A scraper that asks for OpenMetrics in its
//! `Accept` header gets it; everyone else gets the 0.0.4 text, as the Go client does.

/// Content type of the OpenMetrics text.
pub(crate) const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the Prometheus text format.
pub(crate) const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Which format an `Accept` header asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    Text,
}

impl Format {
    /// OpenMetrics when the client lists it (Prometheus does, preferring it), else text.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let wants_openmetrics = accept.is_some_and(|accept| {
            accept.split(',').any(|range| {
                let mut parts = range.split(';').map(str::trim);
                let is_openmetrics = parts
                    .next()
                    .is_some_and(|m| m.eq_ignore_ascii_case("application/openmetrics-text"));
                // `q=0` means "not acceptable".
                let refused = parts.any(|p| {
                    p.strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                        .is_some_and(|q| q <= 0.0)
                });
                is_openmetrics && !refused
            })
        });
        if wants_openmetrics {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::Text => TEXT_CONTENT_TYPE,
        }
    }
}

/// Rewrites OpenMetrics text (as prometheus-client writes it) as Prometheus text 0.0.4:
/// counter descriptors take their samples' `_total` name, `# UNIT` and `# EOF` go. Samples are
/// unchanged (this node records no exemplars or `_created` samples).
pub(crate) fn openmetrics_to_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // A family's `# HELP` comes before its `# TYPE`, which says whether it is a counter.
    let mut pending_help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            flush_help(&mut out, pending_help.take());
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            pending_help = Some((name, help));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (kind, total) = match kind {
                "counter" if !name.ends_with("_total") => ("counter", "_total"),
                // Types OpenMetrics has and the 0.0.4 text lacks.
                "info" | "stateset" | "gaugehistogram" | "unknown" => ("untyped", ""),
                other => (other, ""),
            };
            match pending_help.take() {
                Some((help_name, help)) if help_name == name => {
                    out.push_str(&format!("# HELP {name}{total} {help}\n"));
                }
                other => flush_help(&mut out, other),
            }
            out.push_str(&format!("# TYPE {name}{total} {kind}\n"));
        } else if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        } else {
            flush_help(&mut out, pending_help.take());
            out.push_str(line);
            out.push('\n');
        }
    }
    flush_help(&mut out, pending_help);
    out
}

fn flush_help(out: &mut String, help: Option<(&str, &str)>) {
    if let Some((name, help)) = help {
        out.push_str(&format!("# HELP {name} {help}\n"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_take_their_samples_name_and_the_trailer_goes() {
        let om = "# HELP a_seconds Time.\n# TYPE a_seconds gauge\n# UNIT a_seconds seconds\n\
                  a_seconds 1.5\n# HELP b Things done.\n# TYPE b counter\nb_total{x=\"1\"} 3\n\
                  # HELP c_total Already total.\n# TYPE c_total counter\nc_total 1\n# EOF\n";
        assert_eq!(
            openmetrics_to_text(om),
            "# HELP a_seconds Time.\n# TYPE a_seconds gauge\na_seconds 1.5\n\
             # HELP b_total Things done.\n# TYPE b_total counter\nb_total{x=\"1\"} 3\n\
             # HELP c_total Already total.\n# TYPE c_total counter\nc_total 1\n"
        );
    }

    #[test]
    fn openmetrics_only_when_asked_for() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text; q=0, text/plain")),
            Format::Text
        );
    }
}
