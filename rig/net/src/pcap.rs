//! Classic pcap files (the format tshark, tcpdump and Wireshark read):
//! a 24-byte global header, then a 16-byte record header per frame.
//!
//! [`PcapWriter`] writes Ethernet (linktype 1) captures with microsecond
//! timestamps; [`read_pcap`] reads either byte order and either
//! micro- or nanosecond resolution, and names the record that is broken.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::NetError;

const MAGIC_US: u32 = 0xa1b2_c3d4;
const MAGIC_NS: u32 = 0xa1b2_3c4d;
/// Link type of Ethernet captures.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Snap length written in headers (frames are never cut).
pub const SNAPLEN: u32 = 262_144;

/// Writes one pcap file.
#[derive(Debug)]
pub struct PcapWriter {
    path: PathBuf,
    out: BufWriter<File>,
    frames: u64,
}

impl PcapWriter {
    /// Creates (truncates) `path` and writes the global header.
    pub fn create(path: &Path) -> Result<Self, NetError> {
        let io = |source| NetError::Io {
            what: format!("creating capture {}", path.display()),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = File::create(path).map_err(io)?;
        let mut out = BufWriter::with_capacity(256 * 1024, file);
        let mut hdr = Vec::with_capacity(24);
        hdr.extend_from_slice(&MAGIC_US.to_le_bytes());
        hdr.extend_from_slice(&2u16.to_le_bytes());
        hdr.extend_from_slice(&4u16.to_le_bytes());
        hdr.extend_from_slice(&0i32.to_le_bytes());
        hdr.extend_from_slice(&0u32.to_le_bytes());
        hdr.extend_from_slice(&SNAPLEN.to_le_bytes());
        hdr.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        out.write_all(&hdr).map_err(io)?;
        Ok(Self {
            path: path.to_owned(),
            out,
            frames: 0,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Appends one frame with a wall-clock timestamp.
    pub fn write(&mut self, ts: SystemTime, frame: &[u8]) -> Result<(), NetError> {
        let since = ts.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let mut rec = [0u8; 16];
        rec[0..4].copy_from_slice(&(since.as_secs() as u32).to_le_bytes());
        rec[4..8].copy_from_slice(&since.subsec_micros().to_le_bytes());
        let len = frame.len() as u32;
        rec[8..12].copy_from_slice(&len.to_le_bytes());
        rec[12..16].copy_from_slice(&len.to_le_bytes());
        let r = self
            .out
            .write_all(&rec)
            .and_then(|()| self.out.write_all(frame));
        r.map_err(|source| NetError::Io {
            what: format!("writing capture {}", self.path.display()),
            source,
        })?;
        self.frames += 1;
        Ok(())
    }

    /// Flushes buffered records to the file.
    pub fn flush(&mut self) -> Result<(), NetError> {
        self.out.flush().map_err(|source| NetError::Io {
            what: format!("flushing capture {}", self.path.display()),
            source,
        })
    }
}

impl Drop for PcapWriter {
    fn drop(&mut self) {
        let _ = self.out.flush();
    }
}

/// One frame read from a pcap file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcapRecord {
    /// Timestamp since the Unix epoch.
    pub ts: Duration,
    /// Original length on the wire.
    pub orig_len: u32,
    /// Captured bytes.
    pub data: Vec<u8>,
}

/// Reads a whole classic pcap file of Ethernet frames.
pub fn read_pcap(path: &Path) -> Result<Vec<PcapRecord>, NetError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|source| NetError::Io {
            what: format!("reading capture {}", path.display()),
            source,
        })?;
    parse_pcap(&bytes).map_err(|reason| NetError::BadCapture {
        path: path.to_owned(),
        reason,
    })
}

/// Parses pcap bytes; the error says which record is broken and why.
pub fn parse_pcap(bytes: &[u8]) -> Result<Vec<PcapRecord>, String> {
    if bytes.len() < 24 {
        return Err(format!(
            "file is {} bytes, shorter than the 24-byte pcap header",
            bytes.len()
        ));
    }
    let magic_le = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let magic_be = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let (le, nanos) = match (magic_le, magic_be) {
        (MAGIC_US, _) => (true, false),
        (MAGIC_NS, _) => (true, true),
        (_, MAGIC_US) => (false, false),
        (_, MAGIC_NS) => (false, true),
        _ => {
            return Err(format!(
                "bad magic {magic_le:#010x}: not a classic pcap (pcapng is not supported)"
            ));
        }
    };
    let u32_at = |at: usize| {
        let b = [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]];
        if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    let linktype = u32_at(20) & 0x0fff_ffff;
    if linktype != LINKTYPE_ETHERNET {
        return Err(format!(
            "link type {linktype}, expected {LINKTYPE_ETHERNET} (Ethernet)"
        ));
    }
    let mut out = Vec::new();
    let mut at = 24;
    while at < bytes.len() {
        let n = out.len() + 1;
        if bytes.len() - at < 16 {
            return Err(format!("record {n} at offset {at}: truncated header"));
        }
        let sec = u32_at(at);
        let frac = u32_at(at + 4);
        let incl = u32_at(at + 8) as usize;
        let orig = u32_at(at + 12);
        at += 16;
        if bytes.len() - at < incl {
            return Err(format!(
                "record {n} at offset {}: claims {incl} bytes, {} left",
                at - 16,
                bytes.len() - at
            ));
        }
        let sub = if nanos {
            Duration::from_nanos(u64::from(frac))
        } else {
            Duration::from_micros(u64::from(frac))
        };
        out.push(PcapRecord {
            ts: Duration::from_secs(u64::from(sec)) + sub,
            orig_len: orig,
            data: bytes[at..at + incl].to_vec(),
        });
        at += incl;
    }
    Ok(out)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn test_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.pcap");
        let mut w = PcapWriter::create(&p).unwrap();
        let t = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        w.write(t, &[1, 2, 3]).unwrap();
        w.write(t + Duration::from_millis(1), &[9; 60]).unwrap();
        drop(w);
        let r = read_pcap(&p).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].data, vec![1, 2, 3]);
        assert_eq!(r[0].ts, Duration::from_micros(1_700_000_000_123_456));
        assert_eq!(r[1].orig_len, 60);
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(bytes.len(), 24 + 16 + 3 + 16 + 60);
        assert_eq!(&bytes[0..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
    }

    #[test]
    fn test_errors_name_the_record() {
        assert!(parse_pcap(&[0; 10]).unwrap_err().contains("shorter"));
        let mut b = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        b.extend_from_slice(&[0; 12]);
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 50, 0, 0, 0, 50, 0, 0, 0, 1, 2]);
        let e = parse_pcap(&b).unwrap_err();
        assert!(e.contains("record 1") && e.contains("50 bytes"), "{e}");
    }
}
