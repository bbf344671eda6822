//! What a file server served: one record per request, and a summary with
//! repeats and duplicated payload bytes (computed from byte coverage per image
//! version, so a resumed download that re-fetches one block shows exactly that
//! block's bytes as duplicated).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

/// One CoAP response the server sent for a request on `/fw/…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoapRecord {
    /// When, as wall-clock time.
    pub at: SystemTime,
    /// When, since the server started.
    pub since_start: Duration,
    /// The client.
    pub peer: SocketAddr,
    /// Request method (`GET`, …).
    pub method: String,
    /// Request path (`fw/fw-1mib`).
    pub path: String,
    /// Block number asked for (Block2 option of the request), if any.
    pub requested_block: Option<u32>,
    /// Block number served (Block2 option of the response), if any.
    pub block: Option<u32>,
    /// SZX of the served block (block size = 16 << szx), if any.
    pub szx: Option<u8>,
    /// Whether more blocks follow.
    pub more: bool,
    /// Payload bytes in the response.
    pub payload_bytes: usize,
    /// Size of the whole response datagram.
    pub datagram_bytes: usize,
    /// ETag option of the response (empty if none).
    pub etag: Vec<u8>,
    /// Response code, `c.dd`.
    pub code: String,
    /// True if this block of this image version had been served before.
    pub repeat: bool,
}

/// One HTTP request the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRecord {
    /// When, as wall-clock time.
    pub at: SystemTime,
    /// When, since the server started.
    pub since_start: Duration,
    /// The client.
    pub peer: SocketAddr,
    /// `GET` or `HEAD` (or whatever was asked).
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Length of the query string (presigned URLs are long).
    pub query_len: usize,
    /// `Range` header as received.
    pub range: Option<String>,
    /// `If-Match` header as received.
    pub if_match: Option<String>,
    /// `If-Range` header as received.
    pub if_range: Option<String>,
    /// Status code sent.
    pub status: u16,
    /// ETag header sent.
    pub etag: Option<String>,
    /// Byte range of the file the body covers (`start..end`), if any body.
    pub body_range: Option<(u64, u64)>,
    /// Body bytes handed to the connection.
    pub bytes_sent: u64,
    /// True if the body was not finished: the connection was cut mid-body.
    pub cut: bool,
    /// Why the request was refused, when it was (403, 412, 416, 404...).
    pub reason: Option<String>,
}

/// Totals over a server's records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServeSummary {
    /// Requests seen.
    pub requests: u64,
    /// Responses that carried file bytes (CoAP blocks, HTTP bodies).
    pub bodies: u64,
    /// Bodies whose bytes had all been served before (same image version).
    pub repeats: u64,
    /// File bytes sent in total.
    pub payload_bytes: u64,
    /// Distinct file bytes sent (per image version).
    pub unique_bytes: u64,
    /// `payload_bytes - unique_bytes`: bytes sent more than once.
    pub duplicate_bytes: u64,
    /// Error responses (4.xx/5.xx, HTTP ≥ 400).
    pub errors: u64,
    /// HTTP bodies cut before their end.
    pub cut_bodies: u64,
}

/// A set of byte ranges, to tell new bytes from repeated ones.
#[derive(Debug, Clone, Default)]
pub struct Coverage {
    /// start → end, non-overlapping, non-adjacent.
    ranges: BTreeMap<u64, u64>,
}

impl Coverage {
    /// Adds `start..end`; returns how many of its bytes were not covered yet.
    pub fn insert(&mut self, start: u64, end: u64) -> u64 {
        if end <= start {
            return 0;
        }
        let mut new_start = start;
        let mut new_end = end;
        let mut already = 0u64;
        let overlapping: Vec<(u64, u64)> = self
            .ranges
            .range(..=end)
            .filter(|(_, e)| **e >= start)
            .map(|(s, e)| (*s, *e))
            .collect();
        for (s, e) in overlapping {
            already += e.min(end).saturating_sub(s.max(start));
            new_start = new_start.min(s);
            new_end = new_end.max(e);
            self.ranges.remove(&s);
        }
        self.ranges.insert(new_start, new_end);
        (end - start) - already
    }

    /// Bytes covered.
    pub fn covered(&self) -> u64 {
        self.ranges.iter().map(|(s, e)| e - s).sum()
    }
}

/// Accumulates a [`ServeSummary`] with per-image-version coverage.
#[derive(Debug, Clone, Default)]
pub(crate) struct SummaryBuilder {
    pub(crate) summary: ServeSummary,
    coverage: BTreeMap<(String, Vec<u8>), Coverage>,
}

impl SummaryBuilder {
    /// Counts a body of `path`/`etag` covering `start..end`; true if it was a repeat.
    pub(crate) fn body(&mut self, path: &str, etag: &[u8], start: u64, end: u64) -> bool {
        let cov = self
            .coverage
            .entry((path.to_string(), etag.to_vec()))
            .or_default();
        let new = cov.insert(start, end);
        let len = end.saturating_sub(start);
        let s = &mut self.summary;
        s.bodies += 1;
        s.payload_bytes += len;
        s.unique_bytes += new;
        s.duplicate_bytes += len - new;
        let repeat = new == 0 && len > 0;
        if repeat {
            s.repeats += 1;
        }
        repeat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_counts_only_new_bytes() {
        let mut c = Coverage::default();
        assert_eq!(c.insert(0, 10), 10);
        assert_eq!(c.insert(5, 15), 5);
        assert_eq!(c.insert(20, 30), 10);
        assert_eq!(c.insert(0, 30), 5);
        assert_eq!(c.insert(3, 4), 0);
        assert_eq!(c.covered(), 30);
        assert_eq!(c.insert(30, 31), 1);
        assert_eq!(c.covered(), 31);
    }
}
