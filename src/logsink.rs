//! Where log lines go: stderr, through a bounded queue and one writer thread, so nothing the
//! reader of stderr does can stop the node. Writing straight to stderr from the node's tasks
//! made a closed pipe fatal (the formatter reported its failed write with `eprintln!`, which
//! panics on a closed stderr: the task handling SIGTERM died before it could stop the node) and
//! a stalled reader blocking (every task that logged waited on the pipe). Here a log call only
//! queues its line; when the queue is full, lines are dropped and counted, and the writer thread
//! ignores write errors.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Log lines waiting for stderr; beyond this they are dropped (and counted).
pub(crate) const LOG_QUEUE_LINES: usize = 4096;

enum Message {
    Line(Vec<u8>),
    /// Answered once every line queued before it has been written (or failed to be).
    Flush(SyncSender<()>),
}

/// The queue in front of stderr. Cheap to clone; all clones feed the same writer thread.
#[derive(Clone)]
pub(crate) struct StderrQueue {
    sender: SyncSender<Message>,
    dropped: Arc<AtomicU64>,
}

static QUEUE: OnceLock<StderrQueue> = OnceLock::new();

impl StderrQueue {
    /// The process's queue, starting its writer thread on first use.
    pub(crate) fn global() -> StderrQueue {
        QUEUE.get_or_init(StderrQueue::start).clone()
    }

    fn start() -> StderrQueue {
        let (sender, receiver) = mpsc::sync_channel(LOG_QUEUE_LINES);
        let dropped = Arc::new(AtomicU64::new(0));
        let counter = dropped.clone();
        let spawned = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || write_lines(receiver, std::io::stderr(), &counter));
        if let Err(e) = spawned {
            // The receiver is gone with the closure: lines are discarded, nothing blocks.
            let _ = writeln!(
                std::io::stderr(),
                "cannot start the log writer thread ({e}); log lines are discarded"
            );
        }
        StderrQueue { sender, dropped }
    }

    /// Queues one line without waiting; drops (and counts) it when the queue is full.
    fn push(&self, line: &[u8]) {
        match self.sender.try_send(Message::Line(line.to_vec())) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Waits, at most `within`, until the lines queued so far have been written: called before
    /// the process exits, so its last words are not lost.
    pub(crate) fn flush(&self, within: Duration) {
        let deadline = Instant::now() + within;
        let (ack, done) = mpsc::sync_channel(1);
        let mut message = Message::Flush(ack);
        loop {
            match self.sender.try_send(message) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return,
                Err(TrySendError::Full(back)) => {
                    if Instant::now() >= deadline {
                        return;
                    }
                    message = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        let _ = done.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    }
}

/// The writer thread: lines in order, a note when some were dropped, errors ignored (there is
/// nowhere left to report a failing stderr).
fn write_lines(receiver: Receiver<Message>, mut out: impl Write, dropped: &AtomicU64) {
    for message in receiver {
        match message {
            Message::Line(line) => {
                let lost = dropped.swap(0, Ordering::Relaxed);
                if lost > 0 {
                    let _ = writeln!(out, "({lost} log lines dropped: stderr was not being read)");
                }
                let _ = out.write_all(&line);
                let _ = out.flush();
            }
            Message::Flush(ack) => {
                let _ = out.flush();
                let _ = ack.try_send(());
            }
        }
    }
}

/// One event's writer for `tracing_subscriber::fmt` (which hands over each event, one line
/// ending in a newline, in one `write_all`). Control characters in it, which can only come
/// from logged values such as a peer's name or a refusal a peer sent, are escaped: a line is
/// queued as one line, and nothing in it drives the terminal.
pub(crate) struct QueueWriter<'a>(&'a StderrQueue);

impl Write for QueueWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let (body, newline) = match text.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (text.as_ref(), ""),
        };
        let line = format!("{}{newline}", crate::text::escape_control(body));
        self.0.push(line.as_bytes());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for StderrQueue {
    type Writer = QueueWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        QueueWriter(self)
    }
}

/// The queue for JSON log lines: control characters that JSON lets through raw (DEL, C1,
/// bidirectional overrides; serde_json already escapes the rest) are written as JSON `\uXXXX`
/// escapes, which is valid where they can occur (inside strings) and keeps each line one JSON
/// object that cannot drive the terminal.
#[derive(Clone)]
pub(crate) struct JsonLines(pub StderrQueue);

/// One event's writer for [`JsonLines`].
pub(crate) struct JsonLineWriter<'a>(&'a StderrQueue);

impl Write for JsonLineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let (body, newline) = match text.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (text.as_ref(), ""),
        };
        let mut line = String::with_capacity(buf.len() + 8);
        for c in body.chars() {
            if crate::text::needs_escape(c) {
                // Every such character is in the Basic Multilingual Plane: one \uXXXX.
                line.push_str(&format!("\\u{:04x}", c as u32));
            } else {
                line.push(c);
            }
        }
        line.push_str(newline);
        self.0.push(line.as_bytes());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for JsonLines {
    type Writer = JsonLineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        JsonLineWriter(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stderr whose reader has gone: every write fails.
    struct ClosedPipe;

    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
    }

    #[test]
    fn a_closed_stderr_is_ignored_and_a_full_queue_drops_lines() {
        let (sender, receiver) = mpsc::sync_channel(2);
        let queue = StderrQueue {
            sender,
            dropped: Arc::new(AtomicU64::new(0)),
        };
        // No writer yet: the third line does not fit and is counted, not waited for.
        for _ in 0..3 {
            QueueWriter(&queue)
                .write_all(b"line\n")
                .expect("never fails");
        }
        assert_eq!(queue.dropped.load(Ordering::Relaxed), 1);
        let counter = queue.dropped.clone();
        let writer = std::thread::spawn(move || write_lines(receiver, ClosedPipe, &counter));
        queue.flush(Duration::from_secs(5));
        assert_eq!(queue.dropped.load(Ordering::Relaxed), 0, "reported");
        drop(queue);
        writer.join().expect("the writer survives a closed pipe");
    }

    #[test]
    fn control_characters_in_a_line_are_escaped() {
        let (sender, receiver) = mpsc::sync_channel(8);
        let queue = StderrQueue {
            sender,
            dropped: Arc::new(AtomicU64::new(0)),
        };
        QueueWriter(&queue)
            .write_all("refused: \u{1b}[2J\nFAKE line\n".as_bytes())
            .expect("queue");
        drop(queue);
        let Ok(Message::Line(line)) = receiver.recv() else {
            panic!("one line queued");
        };
        assert_eq!(line, b"refused: \\u{1b}[2J\\u{a}FAKE line\n");
    }

    #[test]
    fn json_lines_stay_json_with_controls_escaped() {
        let (sender, receiver) = mpsc::sync_channel(8);
        let queue = StderrQueue {
            sender,
            dropped: Arc::new(AtomicU64::new(0)),
        };
        let object = serde_json::json!({"message": "peer said \u{7f}\u{9b}\u{202e}evil\u{1b}[2J"});
        JsonLineWriter(&queue)
            .write_all(format!("{object}\n").as_bytes())
            .expect("queue");
        drop(queue);
        let Ok(Message::Line(line)) = receiver.recv() else {
            panic!("one line queued");
        };
        let text = String::from_utf8(line).expect("utf-8");
        assert!(text.ends_with('\n') && !text[..text.len() - 1].contains('\n'));
        assert!(
            !text.trim_end().chars().any(crate::text::needs_escape),
            "{text}"
        );
        let back: serde_json::Value = serde_json::from_str(&text).expect("still JSON");
        assert_eq!(back, object);
    }

    #[test]
    fn lines_reach_the_output_in_order() {
        let (sender, receiver) = mpsc::sync_channel(8);
        let queue = StderrQueue {
            sender,
            dropped: Arc::new(AtomicU64::new(0)),
        };
        let counter = queue.dropped.clone();
        let writer = std::thread::spawn(move || {
            let mut out = Vec::new();
            write_lines(receiver, &mut out, &counter);
            out
        });
        for line in ["a\n", "b\n"] {
            QueueWriter(&queue)
                .write_all(line.as_bytes())
                .expect("queue");
        }
        drop(queue);
        assert_eq!(writer.join().expect("writer"), b"a\nb\n");
    }
}
