//! The node's event stream as the client reads it: Server-Sent Events over one long response,
//! split into messages across chunks, bounded in size.

use std::collections::VecDeque;
use std::pin::Pin;

use futures::{Stream, StreamExt};

use super::{AdminClient, ClientError, STREAM_TIMEOUT, root_cause};
use crate::api::RecentEventsDto;
use crate::events::Event;

/// Which events a client asks for (`events --type … --peer …`); the default is all of them.
#[derive(Clone, Debug, Default)]
pub struct EventsWanted {
    /// Event types (`peerBanned`) or classes (`audit`, `progress`); empty: all.
    pub types: Vec<String>,
    /// A peer (ID, unique prefix or name; an IP address or subnet for bans).
    pub peer: Option<String>,
}

impl EventsWanted {
    /// `path` with the query: the filters and `extra` pairs, encoded.
    fn url(&self, base: &str, path: &str, extra: &[(&str, String)]) -> String {
        let mut pairs: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
        pairs.extend(self.types.iter().map(|t| ("type", t.as_str())));
        if let Some(peer) = &self.peer {
            pairs.push(("peer", peer));
        }
        let query: String = pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        if query.is_empty() {
            format!("{base}{path}")
        } else {
            format!("{base}{path}?{query}")
        }
    }
}

/// A query value, percent-encoded (all but the unreserved characters of RFC 3986).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl AdminClient {
    /// The latest `limit` events, oldest first.
    pub async fn recent_events(&self, limit: usize) -> Result<RecentEventsDto, ClientError> {
        self.recent_events_matching(limit, &EventsWanted::default())
            .await
    }

    /// The latest `limit` events of those `wanted`, oldest first.
    pub async fn recent_events_matching(
        &self,
        limit: usize,
        wanted: &EventsWanted,
    ) -> Result<RecentEventsDto, ClientError> {
        let path = wanted.url("", "/api/events/recent", &[("limit", limit.to_string())]);
        self.get(&path).await
    }

    /// Opens the event stream (`GET /api/events`), replaying what the node still holds after
    /// `since` (everything it holds when `None`).
    pub async fn event_stream(&self, since: Option<u64>) -> Result<EventStream, ClientError> {
        self.event_stream_matching(since, &EventsWanted::default())
            .await
    }

    /// [`AdminClient::event_stream`] of the events `wanted` (and `lagged` notices).
    pub async fn event_stream_matching(
        &self,
        since: Option<u64>,
        wanted: &EventsWanted,
    ) -> Result<EventStream, ClientError> {
        let since: Vec<(&str, String)> = since
            .map(|s| ("since", s.to_string()))
            .into_iter()
            .collect();
        let url = wanted.url(&self.base, "/api/events", &since);
        let mut request = self
            .http
            .get(&url)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .timeout(STREAM_TIMEOUT);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| ClientError::Unreachable {
            url: self.base.clone(),
            message: root_cause(&e),
        })?;
        let status = response.status();
        if !status.is_success() {
            let bytes = response.bytes().await.unwrap_or_default();
            return Err(match Self::answer::<serde_json::Value>(status, &bytes) {
                Err(e) => e,
                Ok(_) => ClientError::Decode(format!("the event stream answered {status}")),
            });
        }
        Ok(EventStream::new(
            Box::pin(response.bytes_stream()),
            self.base.clone(),
        ))
    }
}

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
