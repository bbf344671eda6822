//! The firmware package format of `fixtures/firmware/README.md`: a 64-byte
//! header (magic `RIGF`, format version, package type, flags, payload length,
//! SHA-256 of the payload, version) followed by the payload. The agent checks
//! the header as soon as it has 64 bytes, and the payload hash once the
//! whole file is in.

use rig_proto::fota::UpdateResult;
use sha2::{Digest, Sha256};

/// Header length in bytes.
pub const HEADER_LEN: usize = 64;

/// The magic of a package rig-agent accepts.
pub const MAGIC: &[u8; 4] = b"RIGF";

/// The package type rig-agent installs.
pub const PACKAGE_TYPE: u8 = 1;

/// Flag bit 0: the install must fail (the int-779 test hook).
pub const FLAG_INSTALL_FAILS: u8 = 1;

/// A parsed package header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Flags (bit 0: install fails).
    pub flags: u8,
    /// Payload length in bytes.
    pub payload_len: u64,
    /// SHA-256 of the payload the header claims.
    pub payload_sha256: [u8; 32],
    /// Firmware version (ASCII, NUL padding removed).
    pub version: String,
}

/// Why a package was refused: the Update Result it ends with and a reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The Update Result to report (2, 5 or 6).
    pub result: UpdateResult,
    /// Why, one line, for the console and the log.
    pub reason: String,
}

impl Header {
    /// Checks the first bytes of a package (at least [`HEADER_LEN`]): magic
    /// and type (else Result 6), then the whole size against `max_size`
    /// (else Result 2).
    pub fn check(bytes: &[u8], max_size: u64) -> Result<Header, Rejection> {
        let reject = |result, reason: String| Rejection { result, reason };
        if bytes.len() < HEADER_LEN {
            return Err(reject(
                UpdateResult::UnsupportedPackageType,
                format!(
                    "the package has {} bytes, less than its {HEADER_LEN}-byte header",
                    bytes.len()
                ),
            ));
        }
        if &bytes[0..4] != MAGIC {
            return Err(reject(
                UpdateResult::UnsupportedPackageType,
                format!("magic {:02x?} is not \"RIGF\"", &bytes[0..4]),
            ));
        }
        if bytes[5] != PACKAGE_TYPE {
            return Err(reject(
                UpdateResult::UnsupportedPackageType,
                format!("package type {} (this agent installs type 1)", bytes[5]),
            ));
        }
        let mut len = [0u8; 8];
        len.copy_from_slice(&bytes[8..16]);
        let payload_len = u64::from_be_bytes(len);
        let total = payload_len.saturating_add(HEADER_LEN as u64);
        if total > max_size {
            return Err(reject(
                UpdateResult::NotEnoughFlash,
                format!("the package needs {total} bytes, the storage holds {max_size}"),
            ));
        }
        let mut payload_sha256 = [0u8; 32];
        payload_sha256.copy_from_slice(&bytes[16..48]);
        let version = String::from_utf8_lossy(&bytes[48..64])
            .trim_end_matches('\0')
            .to_string();
        Ok(Header {
            flags: bytes[6],
            payload_len,
            payload_sha256,
            version,
        })
    }

    /// The whole file size the header announces.
    pub fn total_len(&self) -> u64 {
        self.payload_len.saturating_add(HEADER_LEN as u64)
    }

    /// Whether the install must fail (flag bit 0).
    pub fn install_fails(&self) -> bool {
        self.flags & FLAG_INSTALL_FAILS != 0
    }
}

/// A whole package, checked: its header and the SHA-256 of the whole file
/// (what the agent reports as `fota downloaded ... sha256=`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    /// The header.
    pub header: Header,
    /// SHA-256 of the whole file, lower-case hex.
    pub file_sha256: String,
}

/// SHA-256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses lower- or upper-case hex (for the resume store).
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Checks a complete package: the header (Result 6 or 2), the length
/// (Result 5 when the file is shorter or longer than announced) and the
/// payload hash (Result 5).
pub fn check_complete(bytes: &[u8], max_size: u64) -> Result<Checked, Rejection> {
    let header = Header::check(bytes, max_size)?;
    if bytes.len() as u64 != header.total_len() {
        return Err(Rejection {
            result: UpdateResult::IntegrityCheckFailure,
            reason: format!(
                "the file has {} bytes, the header announces {}",
                bytes.len(),
                header.total_len()
            ),
        });
    }
    let payload = Sha256::digest(&bytes[HEADER_LEN..]);
    if payload.as_slice() != header.payload_sha256 {
        return Err(Rejection {
            result: UpdateResult::IntegrityCheckFailure,
            reason: format!(
                "payload SHA-256 {} differs from the header's {}",
                hex(&payload),
                hex(&header.payload_sha256)
            ),
        });
    }
    Ok(Checked {
        header,
        file_sha256: sha256_hex(bytes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A package built by hand (the test must not depend on rig-services'
    /// generator to check the parser against the README's layout).
    fn package(magic: &[u8; 4], kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(magic);
        v.push(1);
        v.push(kind);
        v.push(flags);
        v.push(0);
        v.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        v.extend_from_slice(&Sha256::digest(payload));
        let mut ver = [0u8; 16];
        ver[..5].copy_from_slice(b"1.2.3");
        v.extend_from_slice(&ver);
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn a_good_package_passes_and_reports_the_file_hash() {
        let p = package(MAGIC, 1, 0, b"hello firmware");
        let c = check_complete(&p, 1 << 20).unwrap();
        assert_eq!(c.header.version, "1.2.3");
        assert_eq!(c.header.payload_len, 14);
        assert!(!c.header.install_fails());
        assert_eq!(c.file_sha256, sha256_hex(&p));
        assert_eq!(c.file_sha256.len(), 64);
    }

    #[test]
    fn each_defect_has_its_update_result() {
        let bad_magic = package(b"RIGX", 1, 0, b"x");
        assert_eq!(
            check_complete(&bad_magic, 1 << 20).unwrap_err().result,
            UpdateResult::UnsupportedPackageType
        );
        let bad_type = package(MAGIC, 2, 0, b"x");
        assert_eq!(
            Header::check(&bad_type, 1 << 20).unwrap_err().result,
            UpdateResult::UnsupportedPackageType
        );
        let big = package(MAGIC, 1, 0, &[7u8; 100]);
        let e = Header::check(&big, 100).unwrap_err();
        assert_eq!(e.result, UpdateResult::NotEnoughFlash);
        assert!(e.reason.contains("164"), "{}", e.reason);
        let mut corrupt = package(MAGIC, 1, 0, &[7u8; 100]);
        corrupt[64 + 50] ^= 0xff;
        assert_eq!(
            check_complete(&corrupt, 1 << 20).unwrap_err().result,
            UpdateResult::IntegrityCheckFailure
        );
        let short = &package(MAGIC, 1, 0, &[7u8; 100])[..120];
        assert_eq!(
            check_complete(short, 1 << 20).unwrap_err().result,
            UpdateResult::IntegrityCheckFailure
        );
        let fails = package(MAGIC, 1, FLAG_INSTALL_FAILS, b"y");
        assert!(
            check_complete(&fails, 1 << 20)
                .unwrap()
                .header
                .install_fails()
        );
        assert_eq!(
            Header::check(b"RIGF", 1 << 20).unwrap_err().result,
            UpdateResult::UnsupportedPackageType
        );
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(
            from_hex(&hex(&[0, 1, 0xab, 0xff])).unwrap(),
            vec![0, 1, 0xab, 0xff]
        );
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("zz"), None);
    }
}
