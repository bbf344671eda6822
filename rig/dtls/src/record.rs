//! DTLS record-layer peeking: just enough parsing of record headers (RFC 6347 §4.1) to classify
//! datagrams (ClientHello, alert, not DTLS at all) and to name alerts. It never decrypts.

/// Record content types.
pub(crate) const CT_CHANGE_CIPHER_SPEC: u8 = 20;
pub(crate) const CT_ALERT: u8 = 21;
pub(crate) const CT_HANDSHAKE: u8 = 22;
const CT_APPLICATION_DATA: u8 = 23;

/// Length of a DTLS 1.0/1.2 record header.
pub(crate) const HEADER_LEN: usize = 13;

/// One record header inside a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    pub(crate) content_type: u8,
    pub(crate) epoch: u16,
    pub(crate) sequence: u64,
    pub(crate) body: &'a [u8],
}

/// Splits a datagram into records. Stops at the first malformed header (truncated length).
pub(crate) fn records(datagram: &[u8]) -> impl Iterator<Item = Record<'_>> {
    let mut rest = datagram;
    std::iter::from_fn(move || {
        if rest.len() < HEADER_LEN {
            return None;
        }
        let content_type = rest[0];
        let epoch = u16::from_be_bytes([rest[3], rest[4]]);
        let mut seq = [0u8; 8];
        seq[2..].copy_from_slice(&rest[5..11]);
        let len = usize::from(u16::from_be_bytes([rest[11], rest[12]]));
        let body = rest.get(HEADER_LEN..HEADER_LEN + len)?;
        rest = &rest[HEADER_LEN + len..];
        Some(Record {
            content_type,
            epoch,
            sequence: u64::from_be_bytes(seq),
            body,
        })
    })
}

/// True if the datagram starts like a DTLS record: a known content type and a DTLS version
/// (0xfeff DTLS 1.0 or 0xfefd DTLS 1.2). A CoAP message (first byte 0x40..0x7f) never does.
pub(crate) fn looks_like_dtls(datagram: &[u8]) -> bool {
    datagram.len() >= HEADER_LEN
        && (CT_CHANGE_CIPHER_SPEC..=CT_APPLICATION_DATA + 2).contains(&datagram[0])
        && datagram[1] == 0xfe
        && (datagram[2] == 0xff || datagram[2] == 0xfd)
}

/// True if the datagram's first record is an epoch-0 ClientHello.
pub(crate) fn is_client_hello(datagram: &[u8]) -> bool {
    records(datagram).next().is_some_and(|r| {
        r.content_type == CT_HANDSHAKE && r.epoch == 0 && r.body.first() == Some(&1)
    })
}

/// True if the datagram's first record is an epoch-0 HelloVerifyRequest (cookie exchange).
pub(crate) fn is_hello_verify_request(datagram: &[u8]) -> bool {
    records(datagram).next().is_some_and(|r| {
        r.content_type == CT_HANDSHAKE && r.epoch == 0 && r.body.first() == Some(&3)
    })
}

/// The first plaintext (epoch 0) alert in a datagram.
pub(crate) fn plaintext_alert(datagram: &[u8]) -> Option<Alert> {
    records(datagram).find_map(|r| {
        (r.content_type == CT_ALERT && r.epoch == 0 && r.body.len() == 2).then(|| Alert {
            level: r.body[0],
            description: r.body[1],
        })
    })
}

/// Builds a plaintext (epoch 0) fatal alert record with the given sequence number.
pub(crate) fn fatal_alert_record(description: u8, sequence: u64) -> Vec<u8> {
    let mut out = vec![CT_ALERT, 0xfe, 0xfd, 0, 0];
    out.extend_from_slice(&sequence.to_be_bytes()[2..]);
    out.extend_from_slice(&[0, 2, 2, description]);
    out
}

/// A TLS alert (RFC 5246 §7.2, RFC 4279 §2 for `unknown_psk_identity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Alert {
    /// 1 = warning, 2 = fatal.
    pub level: u8,
    /// The alert description number, e.g. 42 for `bad_certificate`.
    pub description: u8,
}

impl Alert {
    /// A fatal alert with the given description.
    pub fn fatal(description: u8) -> Self {
        Self {
            level: 2,
            description,
        }
    }

    /// The registry name of the description, e.g. `bad_certificate`.
    pub fn name(&self) -> &'static str {
        alert_name(self.description)
    }
}

impl std::fmt::Display for Alert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "alert {} {}", self.description, self.name())
    }
}

/// The TLS alert registry names.
pub fn alert_name(description: u8) -> &'static str {
    match description {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        21 => "decryption_failed",
        22 => "record_overflow",
        30 => "decompression_failure",
        40 => "handshake_failure",
        41 => "no_certificate",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        60 => "export_restriction",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        100 => "no_renegotiation",
        109 => "missing_extension",
        110 => "unsupported_extension",
        112 => "unrecognized_name",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => "unassigned",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_alert_record_byte_for_byte() {
        let rec = fatal_alert_record(51, 7);
        assert_eq!(rec, [21, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 7, 0, 2, 2, 51]);
        assert_eq!(plaintext_alert(&rec), Some(Alert::fatal(51)));
        let r = records(&rec).next().unwrap();
        assert_eq!((r.epoch, r.sequence, r.body), (0, 7, &[2u8, 51][..]));
        assert!(looks_like_dtls(&rec));
    }

    #[test]
    fn coap_is_not_dtls() {
        // CoAP CON GET, message id 0x1234, no token.
        assert!(!looks_like_dtls(&[0x40, 0x01, 0x12, 0x34]));
        assert!(!looks_like_dtls(&[
            0x44, 0x02, 0x12, 0x34, 1, 2, 3, 4, 0xb2, b'r', b'd', 0xff, 1, 2, 3
        ]));
    }

    proptest::proptest! {
        #[test]
        fn record_splitting_never_panics_and_stays_in_bounds(data in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let total: usize = records(&data).map(|r| r.body.len() + HEADER_LEN).sum();
            proptest::prop_assert!(total <= data.len());
            let _ = plaintext_alert(&data);
            let _ = is_client_hello(&data);
        }
    }
}
