//! Strict CoAP message checking (RFC 7252 §3) with byte offsets, on top of
//! coap-lite's codec, plus small option helpers the message layer uses.
//!
//! coap-lite decodes leniently and its errors carry no position, so
//! [`parse`] first walks the datagram itself, rejecting every format error
//! RFC 7252 §3 and §4.1 name (bad version, reserved token length, reserved
//! option nibble, truncated option, payload marker with no payload, a
//! non-empty "Empty" message, reserved code classes), and reports the byte
//! offset. Only then does it hand the bytes to [`Packet::from_bytes`].

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use coap_lite::{CoapOption, MessageClass, MessageType, Packet};

/// What is wrong with a datagram that is not a well-formed CoAP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatErrorKind {
    /// Fewer than the 4 bytes of the fixed header.
    TooShort,
    /// Version field is not 1.
    BadVersion(u8),
    /// Token length 9-15 is reserved.
    ReservedTokenLength(u8),
    /// The datagram ends inside the token.
    TruncatedToken,
    /// Option delta nibble 15 outside a payload marker.
    ReservedOptionDelta,
    /// Option length nibble 15.
    ReservedOptionLength,
    /// The datagram ends inside an option header or value.
    TruncatedOption,
    /// Option numbers overflowed 65535.
    OptionNumberOverflow,
    /// A payload marker followed by zero bytes of payload.
    EmptyPayload,
    /// Code 0.00 (Empty) with a token, options or payload.
    NonEmptyEmptyMessage,
    /// A code in a reserved class (1, 6 or 7).
    ReservedClass(u8),
    /// A request code inside an ACK or RST, or a response in an RST.
    CodeNotAllowedForType {
        /// The code, as `c.dd`.
        code: String,
        /// The message type.
        kind: &'static str,
    },
    /// coap-lite refused the bytes for a reason the walk above missed.
    Codec(String),
}

/// A malformed datagram: what is wrong and at which byte offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    /// Byte offset in the datagram where the problem was found.
    pub offset: usize,
    /// What is wrong.
    pub kind: FormatErrorKind,
    /// The message id, if the fixed header could be read.
    pub message_id: Option<u16>,
    /// True if the fixed header says Confirmable (the layer answers with RST).
    pub confirmable: bool,
}

impl fmt::Display for FormatErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatErrorKind::TooShort => write!(f, "shorter than the 4-byte header"),
            FormatErrorKind::BadVersion(v) => write!(f, "version {v}, expected 1"),
            FormatErrorKind::ReservedTokenLength(l) => {
                write!(f, "token length {l} is reserved (max 8)")
            }
            FormatErrorKind::TruncatedToken => write!(f, "datagram ends inside the token"),
            FormatErrorKind::ReservedOptionDelta => write!(f, "option delta nibble 15 is reserved"),
            FormatErrorKind::ReservedOptionLength => {
                write!(f, "option length nibble 15 is reserved")
            }
            FormatErrorKind::TruncatedOption => write!(f, "datagram ends inside an option"),
            FormatErrorKind::OptionNumberOverflow => write!(f, "option number exceeds 65535"),
            FormatErrorKind::EmptyPayload => {
                write!(f, "payload marker followed by an empty payload")
            }
            FormatErrorKind::NonEmptyEmptyMessage => {
                write!(f, "code 0.00 (Empty) but token/options/payload present")
            }
            FormatErrorKind::ReservedClass(c) => write!(f, "code class {c} is reserved"),
            FormatErrorKind::CodeNotAllowedForType { code, kind } => {
                write!(f, "code {code} not allowed in a {kind} message")
            }
            FormatErrorKind::Codec(e) => write!(f, "codec: {e}"),
        }
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "malformed CoAP message at byte {}: {}",
            self.offset, self.kind
        )?;
        if let Some(mid) = self.message_id {
            write!(f, " (message id {mid})")?;
        }
        Ok(())
    }
}

#[cfg(feature = "std")]
impl std::error::Error for FormatError {}

fn err(offset: usize, kind: FormatErrorKind, mid: Option<u16>, con: bool) -> FormatError {
    FormatError {
        offset,
        kind,
        message_id: mid,
        confirmable: con,
    }
}

/// Checks `buf` strictly and decodes it. Never panics.
pub fn parse(buf: &[u8]) -> Result<Packet, FormatError> {
    if buf.len() < 4 {
        return Err(err(buf.len(), FormatErrorKind::TooShort, None, false));
    }
    let mid = Some(u16::from_be_bytes([buf[2], buf[3]]));
    let ver = buf[0] >> 6;
    let ty = (buf[0] >> 4) & 0x3;
    let con = ty == 0;
    if ver != 1 {
        return Err(err(0, FormatErrorKind::BadVersion(ver), mid, false));
    }
    let tkl = buf[0] & 0x0f;
    if tkl > 8 {
        return Err(err(0, FormatErrorKind::ReservedTokenLength(tkl), mid, con));
    }
    let code = buf[1];
    let class = code >> 5;
    if matches!(class, 1 | 6 | 7) {
        return Err(err(1, FormatErrorKind::ReservedClass(class), mid, con));
    }
    if code == 0 && buf.len() > 4 {
        return Err(err(4, FormatErrorKind::NonEmptyEmptyMessage, mid, con));
    }
    if code == 0 && tkl != 0 {
        return Err(err(0, FormatErrorKind::NonEmptyEmptyMessage, mid, con));
    }
    // ACK may carry a response (piggybacked) or be empty; RST must be empty.
    let kind_name = match ty {
        2 => "ACK",
        3 => "RST",
        _ => "",
    };
    if (ty == 2 && class == 0 && code != 0) || (ty == 3 && code != 0) {
        return Err(err(
            1,
            FormatErrorKind::CodeNotAllowedForType {
                code: code_string(code),
                kind: kind_name,
            },
            mid,
            con,
        ));
    }
    let mut idx = 4 + usize::from(tkl);
    if idx > buf.len() {
        return Err(err(buf.len(), FormatErrorKind::TruncatedToken, mid, con));
    }
    let mut number: u32 = 0;
    while idx < buf.len() {
        let start = idx;
        let byte = buf[idx];
        if byte == 0xff {
            if idx + 1 == buf.len() {
                return Err(err(idx, FormatErrorKind::EmptyPayload, mid, con));
            }
            break;
        }
        idx += 1;
        let delta = ext_value(buf, &mut idx, byte >> 4, start, true, mid, con)?;
        let length = ext_value(buf, &mut idx, byte & 0x0f, start, false, mid, con)?;
        number += delta;
        if number > 0xffff {
            return Err(err(start, FormatErrorKind::OptionNumberOverflow, mid, con));
        }
        if idx + length as usize > buf.len() {
            return Err(err(start, FormatErrorKind::TruncatedOption, mid, con));
        }
        idx += length as usize;
    }
    Packet::from_bytes(buf)
        .map_err(|e| err(0, FormatErrorKind::Codec(alloc::format!("{e}")), mid, con))
}

fn ext_value(
    buf: &[u8],
    idx: &mut usize,
    nibble: u8,
    start: usize,
    is_delta: bool,
    mid: Option<u16>,
    con: bool,
) -> Result<u32, FormatError> {
    match nibble {
        13 => {
            let b = *buf
                .get(*idx)
                .ok_or_else(|| err(start, FormatErrorKind::TruncatedOption, mid, con))?;
            *idx += 1;
            Ok(u32::from(b) + 13)
        }
        14 => {
            if *idx + 1 >= buf.len() {
                return Err(err(start, FormatErrorKind::TruncatedOption, mid, con));
            }
            let v = u32::from(u16::from_be_bytes([buf[*idx], buf[*idx + 1]])) + 269;
            *idx += 2;
            Ok(v)
        }
        15 => Err(err(
            start,
            if is_delta {
                FormatErrorKind::ReservedOptionDelta
            } else {
                FormatErrorKind::ReservedOptionLength
            },
            mid,
            con,
        )),
        n => Ok(u32::from(n)),
    }
}

/// `c.dd` text of a raw code byte.
pub fn code_string(code: u8) -> String {
    alloc::format!("{}.{:02}", code >> 5, code & 0x1f)
}

/// Encodes an unsigned option value in the minimal number of bytes (RFC 7252 §3.2).
pub fn encode_uint(v: u32) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    bytes[skip..].to_vec()
}

/// Decodes an unsigned option value of at most 4 bytes.
pub fn decode_uint(v: &[u8]) -> Option<u32> {
    if v.len() > 4 {
        return None;
    }
    Some(v.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
}

/// The first value of an unsigned option, if present and at most 4 bytes.
/// `Some(Err(()))` if present but too long.
pub fn uint_option(p: &Packet, opt: CoapOption) -> Option<Result<u32, ()>> {
    p.get_first_option(opt).map(|v| decode_uint(v).ok_or(()))
}

/// Replaces all values of `opt` with one unsigned value.
pub fn set_uint_option(p: &mut Packet, opt: CoapOption, v: u32) {
    p.clear_option(opt);
    p.add_option(opt, encode_uint(v));
}

/// Removes option `opt` completely (coap-lite's `clear_option` leaves an
/// empty list behind, which is harmless for encoding but confusing for lookups).
pub fn remove_option(p: &mut Packet, opt: CoapOption) {
    p.clear_option(opt);
}

/// True if the packet carries at least one value for `opt`.
pub fn has_option(p: &Packet, opt: CoapOption) -> bool {
    p.get_option(opt).is_some_and(|l| !l.is_empty())
}

/// The request's Uri-Path segments joined with `/` (no leading slash).
pub fn uri_path(p: &Packet) -> String {
    let mut s = String::new();
    if let Some(list) = p.get_option(CoapOption::UriPath) {
        for (i, seg) in list.iter().enumerate() {
            if i > 0 {
                s.push('/');
            }
            s.push_str(&String::from_utf8_lossy(seg));
        }
    }
    s
}

/// The request's Uri-Query values, as strings.
pub fn uri_queries(p: &Packet) -> Vec<String> {
    p.get_option(CoapOption::UriQuery)
        .map(|l| {
            l.iter()
                .map(|q| String::from_utf8_lossy(q).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Location-Path segments of a response.
pub fn location_path(p: &Packet) -> Vec<String> {
    p.get_option(CoapOption::LocationPath)
        .map(|l| {
            l.iter()
                .map(|q| String::from_utf8_lossy(q).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Sets Uri-Path from a `/`-separated path (empty segments are skipped).
pub fn set_uri_path(p: &mut Packet, path: &str) {
    p.clear_option(CoapOption::UriPath);
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        p.add_option(CoapOption::UriPath, seg.as_bytes().to_vec());
    }
}

/// Adds one Uri-Query value.
pub fn add_uri_query(p: &mut Packet, q: &str) {
    p.add_option(CoapOption::UriQuery, q.as_bytes().to_vec());
}

/// Key identifying "the same resource" for block caches: Uri-Host, Uri-Path
/// and Uri-Query bytes (RFC 7959 §2.4 matches on the request URI).
pub(crate) fn resource_key(p: &Packet) -> Vec<u8> {
    let mut k = Vec::new();
    for opt in [
        CoapOption::UriHost,
        CoapOption::UriPath,
        CoapOption::UriQuery,
    ] {
        if let Some(list) = p.get_option(opt) {
            for v in list {
                k.push(u8::from(opt == CoapOption::UriQuery) + 1);
                k.extend_from_slice(&(v.len() as u16).to_be_bytes());
                k.extend_from_slice(v);
            }
        }
    }
    k
}

/// Builds a request packet: method, type, `/`-separated path. Token and
/// message id are left for the [`Endpoint`](super::Endpoint) to assign.
pub fn request(method: coap_lite::RequestType, confirmable: bool, path: &str) -> Packet {
    let mut p = Packet::new();
    p.header.code = MessageClass::Request(method);
    p.header.set_type(if confirmable {
        MessageType::Confirmable
    } else {
        MessageType::NonConfirmable
    });
    set_uri_path(&mut p, path);
    p
}

/// Builds a response packet with code `code` (type and ids are set by
/// [`Endpoint::respond`](super::Endpoint::respond)).
pub fn response(code: coap_lite::ResponseType) -> Packet {
    let mut p = Packet::new();
    p.header.code = MessageClass::Response(code);
    p
}

/// The response code of a packet, if it is a response.
pub fn response_code(p: &Packet) -> Option<coap_lite::ResponseType> {
    match p.header.code {
        MessageClass::Response(r) => Some(r),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_of_format_errors() {
        assert_eq!(
            parse(&[0x40, 1]).unwrap_err().kind,
            FormatErrorKind::TooShort
        );
        let e = parse(&[0x80, 1, 0, 1]).unwrap_err();
        assert_eq!((e.offset, e.kind), (0, FormatErrorKind::BadVersion(2)));
        let e = parse(&[0x49, 1, 0, 1]).unwrap_err();
        assert_eq!(e.kind, FormatErrorKind::ReservedTokenLength(9));
        let e = parse(&[0x42, 1, 0, 1, 0xaa]).unwrap_err();
        assert_eq!((e.offset, e.kind), (5, FormatErrorKind::TruncatedToken));
        // Uri-Path option claiming 4 bytes, only 2 present.
        let e = parse(&[0x40, 1, 0, 1, 0xb4, b'a', b'b']).unwrap_err();
        assert_eq!((e.offset, e.kind), (4, FormatErrorKind::TruncatedOption));
        let e = parse(&[0x40, 1, 0, 1, 0xb1, b'a', 0xff]).unwrap_err();
        assert_eq!((e.offset, e.kind), (6, FormatErrorKind::EmptyPayload));
        let e = parse(&[0x40, 1, 0, 1, 0xf1, 0]).unwrap_err();
        assert_eq!(
            (e.offset, e.kind),
            (4, FormatErrorKind::ReservedOptionDelta)
        );
        let e = parse(&[0x40, 1, 0, 1, 0x1f]).unwrap_err();
        assert_eq!(
            (e.offset, e.kind),
            (4, FormatErrorKind::ReservedOptionLength)
        );
        let e = parse(&[0x40, 0, 0, 1, 0xff, 1]).unwrap_err();
        assert_eq!(e.kind, FormatErrorKind::NonEmptyEmptyMessage);
        let e = parse(&[0x40, 0x20, 0, 1]).unwrap_err();
        assert_eq!((e.offset, e.kind), (1, FormatErrorKind::ReservedClass(1)));
        let e = parse(&[0x70, 0x45, 0, 1]).unwrap_err();
        assert!(matches!(
            e.kind,
            FormatErrorKind::CodeNotAllowedForType { .. }
        ));
        assert!(e.to_string().contains("byte 1"), "{e}");
    }

    #[test]
    fn uint_encoding_is_minimal() {
        assert_eq!(encode_uint(0), Vec::<u8>::new());
        assert_eq!(encode_uint(0x0102), vec![1, 2]);
        assert_eq!(decode_uint(&[1, 2]), Some(0x0102));
        assert_eq!(decode_uint(&[1, 2, 3, 4, 5]), None);
    }
}
