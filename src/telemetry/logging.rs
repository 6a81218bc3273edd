//! Log set-up: lines go to stderr through [`crate::logsink`] (so `-o json | jq` works and a
//! closed or stalled stderr never blocks or stops the node), as text for people or as one JSON
//! object per line for log collectors (`log_format`: `timestamp`, `level`, `target`, the
//! event's own fields under `fields`, and its spans with their fields under `spans`, so no
//! key appears twice), filtered by `log_level` or `RUST_LOG`.
//! A filter that does not parse is refused, never replaced in silence.

use std::sync::Once;

use tracing_subscriber::EnvFilter;

use crate::config::Config;
use crate::logsink::{JsonLines, StderrQueue};

static LOG_INIT: Once = Once::new();

/// Longest wait at exit for queued log lines to reach stderr.
pub const LOG_FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// Reads a `log_format` value (validated by the configuration).
    pub fn parse(text: &str) -> Option<LogFormat> {
        match text {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

/// Why logging could not be set up as configured.
#[derive(Debug, thiserror::Error)]
pub enum LogSetupError {
    #[error(
        "invalid RUST_LOG '{value}' ({source}); RUST_LOG overrides `log_level` and must be a level \
         (error, warn, info, debug, trace, off) or EnvFilter directives"
    )]
    RustLog {
        value: String,
        source: tracing_subscriber::filter::ParseError,
    },
    #[error("invalid value for `log_level`: {0}")]
    Filter(tracing_subscriber::filter::ParseError),
    #[error("invalid value for `log_format`: '{0}' (one of: text, json)")]
    Format(String),
}

/// The filter for a node: `RUST_LOG` when it is set, else `configured` (`log_level`).
pub(crate) fn node_filter(
    configured: &str,
    rust_log: Option<String>,
) -> Result<EnvFilter, LogSetupError> {
    match rust_log.filter(|v| !v.trim().is_empty()) {
        Some(value) => EnvFilter::builder()
            .parse(&value)
            .map_err(|source| LogSetupError::RustLog { value, source }),
        None => EnvFilter::builder()
            .parse(configured)
            .map_err(LogSetupError::Filter),
    }
}

/// Installs the node's logging as configured (`log_level`, `log_format`, `RUST_LOG`), or says
/// what is wrong. Only the first call in a process installs anything.
pub fn init_node_logging(config: &Config) -> Result<(), LogSetupError> {
    let format = LogFormat::parse(&config.log_format)
        .ok_or_else(|| LogSetupError::Format(config.log_format.clone()))?;
    let filter = node_filter(&config.log_level, std::env::var("RUST_LOG").ok())?;
    install(filter, format);
    Ok(())
}

/// Logging for the client commands and tests: text, `RUST_LOG` when it is valid, else
/// `filter`. A client command's logs are only its warnings, so a bad `RUST_LOG` is reported
/// and the default used rather than failing the command.
pub fn init_logging(filter: &str) {
    let chosen = match std::env::var("RUST_LOG") {
        Ok(value) if !value.trim().is_empty() => match EnvFilter::builder().parse(&value) {
            Ok(f) => Ok(f),
            Err(e) => Err(format!(
                "warning: ignoring invalid RUST_LOG '{value}' ({e}); using '{filter}'"
            )),
        },
        _ => EnvFilter::builder()
            .parse(filter)
            .map_err(|e| format!("warning: invalid log filter '{filter}' ({e}); using 'warn'")),
    };
    let filter = match chosen {
        Ok(f) => f,
        Err(warning) => {
            eprintln_queued(&warning);
            EnvFilter::builder()
                .parse(filter)
                .unwrap_or_else(|_| EnvFilter::new("warn"))
        }
    };
    install(filter, LogFormat::Text);
}

/// One line to stderr through the log queue (no `eprintln!`: it panics on a closed stderr).
fn eprintln_queued(line: &str) {
    use std::io::Write;
    let queue = StderrQueue::global();
    let mut writer = tracing_subscriber::fmt::MakeWriter::make_writer(&queue);
    let _ = writer.write_all(format!("{line}\n").as_bytes());
}

fn install(filter: EnvFilter, format: LogFormat) {
    use tracing_subscriber::filter::{FilterExt, filter_fn};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{Layer, Registry};

    use super::traces::{SCOPE_TARGET, TraceFilter, TraceLayer};

    LOG_INIT.call_once(|| {
        // The filter applies to the log lines only (traces have their own), and a node's
        // trace scope span never shows in them.
        let hidden = filter_fn(|meta| meta.target() != SCOPE_TARGET)
            .with_max_level_hint(tracing_subscriber::filter::LevelFilter::TRACE);
        let filter = filter.and(hidden);
        let lines: Box<dyn Layer<Registry> + Send + Sync> = match format {
            LogFormat::Text => tracing_subscriber::fmt::layer()
                .with_writer(StderrQueue::global())
                .log_internal_errors(false)
                // No colours: the writer escapes every control character, ESC included, so
                // that text from peers cannot drive the terminal.
                .with_ansi(false)
                .with_filter(filter)
                .boxed(),
            // The event's own fields under `fields`, apart from the logger's `timestamp`,
            // `level` and `target` (a ban's `target` field once made a duplicate key), and the
            // spans it happened in under `spans`, outermost first, as the text log shows them.
            LogFormat::Json => tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(false)
                .with_current_span(false)
                .with_span_list(true)
                .with_writer(JsonLines(StderrQueue::global()))
                .log_internal_errors(false)
                .with_ansi(false)
                .with_filter(filter)
                .boxed(),
        };
        // A subscriber may already be installed by an embedding program; that one wins.
        let _ = tracing_subscriber::registry()
            .with(lines)
            .with(TraceLayer.with_filter(TraceFilter))
            .try_init();
    });
}

/// Writes out the log lines still queued (bounded by [`LOG_FLUSH_TIMEOUT`]); call before the
/// process exits.
pub fn flush_logs() {
    StderrQueue::global().flush(LOG_FLUSH_TIMEOUT);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_wins_and_a_bad_one_is_named() {
        assert!(node_filter("info", None).is_ok());
        assert!(node_filter("info", Some("sorcha_peer=debug".into())).is_ok());
        let err = node_filter("info", Some("sorcha_peer=loud".into()))
            .expect_err("bad RUST_LOG")
            .to_string();
        assert!(
            err.contains("RUST_LOG") && err.contains("sorcha_peer=loud"),
            "{err}"
        );
        let err = node_filter("x=nope", None).expect_err("bad").to_string();
        assert!(err.contains("`log_level`"), "{err}");
    }
}
