//! The node's event stream as the client reads it: Server-Sent Events over one long response,
//! split into messages across chunks, bounded in size.

use std::collections::VecDeque;
use std::pin::Pin;

use futures::{Stream, StreamExt};

use super::{ClientError, root_cause};
use crate::events::Event;

/// Longest SSE message the client buffers (an event is a few hundred bytes).
const MAX_SSE_MESSAGE: usize = 1024 * 1024;

type Body = Pin<Box<dyn Stream<Item = reqwest::Result<axum::body::Bytes>> + Send>>;

/// Events as the node streams them.
pub struct EventStream {
    body: Body,
    parser: SseParser,
    base: String,
}

impl EventStream {
    pub(super) fn new(body: Body, base: String) -> EventStream {
        EventStream {
            body,
            parser: SseParser::default(),
            base,
        }
    }

    /// The next event; `None` when the node closed the stream (it stopped).
    pub async fn next(&mut self) -> Result<Option<Event>, ClientError> {
        loop {
            if let Some(data) = self.parser.next_data()? {
                return serde_json::from_str(&data)
                    .map(Some)
                    .map_err(|e| ClientError::Decode(format!("event: {e}")));
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.parser.push(&chunk)?,
                Some(Err(e)) => {
                    return Err(ClientError::Unreachable {
                        url: self.base.clone(),
                        message: root_cause(&e),
                    });
                }
                None => return Ok(None),
            }
        }
    }
}

/// Splits a Server-Sent Events byte stream into the `data` of each message (comments,
/// `id:` and `event:` lines are read past; multi-line data is joined with newlines).
#[derive(Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    ready: VecDeque<String>,
}

impl SseParser {
    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.buffer.extend_from_slice(bytes);
        while let Some((end, len)) = message_end(&self.buffer) {
            let message: Vec<u8> = self.buffer.drain(..end + len).take(end).collect();
            let text = String::from_utf8_lossy(&message);
            let mut data: Option<String> = None;
            for line in text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)) {
                let Some(value) = line.strip_prefix("data:") else {
                    continue;
                };
                let value = value.strip_prefix(' ').unwrap_or(value);
                match &mut data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => data = Some(value.to_string()),
                }
            }
            self.ready.extend(data);
        }
        if self.buffer.len() > MAX_SSE_MESSAGE {
            return Err(ClientError::Decode(format!(
                "an event stream message is longer than {MAX_SSE_MESSAGE} bytes"
            )));
        }
        Ok(())
    }

    /// The data of the next complete message, if any.
    pub fn next_data(&mut self) -> Result<Option<String>, ClientError> {
        Ok(self.ready.pop_front())
    }
}

/// Where the first message ends in `buffer` (a blank line): (offset, separator length).
fn message_end(buffer: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < buffer.len() {
        if buffer[i] == b'\n' {
            if buffer.get(i + 1) == Some(&b'\n') {
                return Some((i, 2));
            }
            if buffer.get(i + 1) == Some(&b'\r') && buffer.get(i + 2) == Some(&b'\n') {
                return Some((i, 3));
            }
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn sse_messages_are_split_across_chunks_and_comments_skipped() {
        let mut parser = super::SseParser::default();
        parser.push(b": keep-alive\n\nid: 1\nda").unwrap();
        assert_eq!(parser.next_data().unwrap(), None);
        parser
            .push(b"ta: {\"a\":1}\n\ndata: x\r\ndata: y\r\n\r\n")
            .unwrap();
        assert_eq!(parser.next_data().unwrap().as_deref(), Some("{\"a\":1}"));
        assert_eq!(parser.next_data().unwrap().as_deref(), Some("x\ny"));
        assert_eq!(parser.next_data().unwrap(), None);
    }
}
