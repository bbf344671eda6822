//! Credentials: the server's [`CredentialStore`] (PSK identity / certificate subject / raw public
//! key → LwM2M endpoint name, loadable from TOML or JSON through serde) and helpers to load key
//! material from PEM/DER files.

use std::path::Path;

use openssl::pkey::{PKey, Private, Public};
use openssl::x509::X509;
use serde::{Deserialize, Serialize};

use crate::error::DtlsError;

/// Longest PSK identity accepted (LwM2M allows 128 bytes here).
pub const MAX_PSK_IDENTITY: usize = 128;
/// Longest PSK accepted.
pub const MAX_PSK_KEY: usize = 64;

/// One PSK device: `identity` (UTF-8) or `identity_hex`, and the key in hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PskEntry {
    /// The LwM2M endpoint name this identity belongs to.
    pub endpoint: String,
    /// The PSK identity as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The PSK identity as hex (for binary identities).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_hex: Option<String>,
    /// The key, hex.
    pub key_hex: String,
}

/// One X.509 device, matched by the subject common name of a certificate that chains to a
/// trusted CA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateEntry {
    /// The LwM2M endpoint name.
    pub endpoint: String,
    /// The certificate's subject CN.
    pub subject_cn: String,
}

/// One raw-public-key device, matched by the SHA-256 of its DER SubjectPublicKeyInfo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyEntry {
    /// The LwM2M endpoint name.
    pub endpoint: String,
    /// Hex SHA-256 of the DER SPKI (see [`spki_sha256_hex`]).
    pub spki_sha256: String,
}

/// The server's map from credentials to endpoint names.
///
/// ```toml
/// [[psk]]
/// endpoint = "dev-1"
/// identity = "dev-1"
/// key_hex = "000102030405060708090a0b0c0d0e0f"
///
/// [[certificate]]
/// endpoint = "dev-2"
/// subject_cn = "dev-2"
///
/// [[public_key]]
/// endpoint = "dev-3"
/// spki_sha256 = "5c0e..."
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialStore {
    /// PSK devices.
    #[serde(default)]
    pub psk: Vec<PskEntry>,
    /// X.509 devices.
    #[serde(default)]
    pub certificate: Vec<CertificateEntry>,
    /// Raw public key devices.
    #[serde(default)]
    pub public_key: Vec<PublicKeyEntry>,
}

impl CredentialStore {
    /// Checks every entry: hex is valid, sizes are within LwM2M limits, no NUL in identities.
    /// The error names the entry and the field.
    pub fn validate(&self) -> Result<(), DtlsError> {
        for (i, e) in self.psk.iter().enumerate() {
            let entry = format!("psk[{i}] (endpoint {:?})", e.endpoint);
            let id = psk_identity_bytes(e).map_err(|(field, message)| DtlsError::Store {
                entry: entry.clone(),
                field,
                message,
            })?;
            check_identity(&id).map_err(|message| DtlsError::Store {
                entry: entry.clone(),
                field: "identity",
                message,
            })?;
            let key = from_hex(&e.key_hex).map_err(|message| DtlsError::Store {
                entry: entry.clone(),
                field: "key_hex",
                message,
            })?;
            check_key(&key).map_err(|message| DtlsError::Store {
                entry,
                field: "key_hex",
                message,
            })?;
        }
        for (i, e) in self.public_key.iter().enumerate() {
            let h = from_hex(&e.spki_sha256).map_err(|message| DtlsError::Store {
                entry: format!("public_key[{i}] (endpoint {:?})", e.endpoint),
                field: "spki_sha256",
                message,
            })?;
            if h.len() != 32 {
                return Err(DtlsError::Store {
                    entry: format!("public_key[{i}] (endpoint {:?})", e.endpoint),
                    field: "spki_sha256",
                    message: format!("expected 32 bytes (64 hex digits), got {}", h.len()),
                });
            }
        }
        Ok(())
    }

    /// The endpoint and key for a PSK identity.
    pub fn psk(&self, identity: &[u8]) -> Option<(&str, Vec<u8>)> {
        self.psk.iter().find_map(|e| {
            let id = psk_identity_bytes(e).ok()?;
            (id == identity)
                .then(|| from_hex(&e.key_hex).ok().map(|k| (e.endpoint.as_str(), k)))
                .flatten()
        })
    }

    /// The endpoint for a certificate subject CN, if listed.
    pub fn endpoint_for_subject(&self, cn: &str) -> Option<&str> {
        self.certificate
            .iter()
            .find(|e| e.subject_cn == cn)
            .map(|e| e.endpoint.as_str())
    }

    /// The endpoint for a raw public key given as DER SPKI.
    pub fn endpoint_for_spki(&self, spki_der: &[u8]) -> Option<&str> {
        let h = spki_sha256_hex(spki_der);
        self.public_key
            .iter()
            .find(|e| e.spki_sha256.eq_ignore_ascii_case(&h))
            .map(|e| e.endpoint.as_str())
    }

    /// True if at least one PSK device is listed.
    pub fn has_psk(&self) -> bool {
        !self.psk.is_empty()
    }
}

fn psk_identity_bytes(e: &PskEntry) -> Result<Vec<u8>, (&'static str, String)> {
    match (&e.identity, &e.identity_hex) {
        (Some(s), None) => Ok(s.as_bytes().to_vec()),
        (None, Some(h)) => from_hex(h).map_err(|m| ("identity_hex", m)),
        (Some(_), Some(_)) => Err((
            "identity",
            "give either `identity` or `identity_hex`, not both".into(),
        )),
        (None, None) => Err(("identity", "missing (or give `identity_hex`)".into())),
    }
}

/// Checks a PSK identity: 1..=128 bytes, no NUL (OpenSSL passes it as a C string).
pub fn check_identity(id: &[u8]) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_PSK_IDENTITY {
        return Err(format!(
            "PSK identity must be 1..={MAX_PSK_IDENTITY} bytes, got {}",
            id.len()
        ));
    }
    if id.contains(&0) {
        return Err("PSK identity must not contain a NUL byte".into());
    }
    Ok(())
}

/// Checks a PSK: 1..=64 bytes.
pub fn check_key(key: &[u8]) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_PSK_KEY {
        return Err(format!(
            "PSK must be 1..={MAX_PSK_KEY} bytes, got {}",
            key.len()
        ));
    }
    Ok(())
}

/// Lower-case hex.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses hex (upper or lower case, no separators).
pub fn from_hex(s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits ({})", s.len()));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&s[i..i + 2], 16)
                .map_err(|_| format!("invalid hex {:?} at offset {i}", &s[i..i + 2]))
        })
        .collect()
}

/// Hex SHA-256 of a DER SubjectPublicKeyInfo: the key's identity in the store.
pub fn spki_sha256_hex(spki_der: &[u8]) -> String {
    to_hex(&openssl::sha::sha256(spki_der))
}

/// Reads a file, naming it in the error.
fn read(path: &Path) -> Result<Vec<u8>, DtlsError> {
    std::fs::read(path).map_err(|e| DtlsError::Config(format!("{}: {e}", path.display())))
}

/// Loads a PEM file with one or more certificates (leaf first).
pub fn load_certificates(path: &Path) -> Result<Vec<X509>, DtlsError> {
    let certs = X509::stack_from_pem(&read(path)?)
        .map_err(|e| DtlsError::Config(format!("{}: not PEM certificates: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(DtlsError::Config(format!(
            "{}: no certificate found",
            path.display()
        )));
    }
    Ok(certs)
}

/// Loads a private key from PEM or DER.
pub fn load_private_key(path: &Path) -> Result<PKey<Private>, DtlsError> {
    let data = read(path)?;
    PKey::private_key_from_pem(&data)
        .or_else(|_| PKey::private_key_from_der(&data))
        .map_err(|e| DtlsError::Config(format!("{}: not a private key: {e}", path.display())))
}

/// Loads a public key from PEM or DER SubjectPublicKeyInfo.
pub fn load_public_key(path: &Path) -> Result<PKey<Public>, DtlsError> {
    let data = read(path)?;
    PKey::public_key_from_pem(&data)
        .or_else(|_| PKey::public_key_from_der(&data))
        .map_err(|e| DtlsError::Config(format!("{}: not a public key: {e}", path.display())))
}

/// The DER SPKI of a private key's public half.
pub fn public_der(key: &PKey<Private>) -> Result<Vec<u8>, DtlsError> {
    key.public_key_to_der()
        .map_err(|e| DtlsError::Config(format!("cannot encode public key: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psk_lookup_and_validation_name_the_field() {
        let mut store = CredentialStore::default();
        store.psk.push(PskEntry {
            endpoint: "dev-1".into(),
            identity: Some("id-1".into()),
            identity_hex: None,
            key_hex: "00010203".into(),
        });
        store.validate().unwrap();
        assert_eq!(store.psk(b"id-1"), Some(("dev-1", vec![0, 1, 2, 3])));
        assert_eq!(store.psk(b"id-2"), None);
        store.psk[0].key_hex = "0g".into();
        let err = store.validate().unwrap_err().to_string();
        assert!(err.contains("psk[0]") && err.contains("key_hex"), "{err}");
        store.psk[0].key_hex = "00".repeat(65);
        assert!(store.validate().unwrap_err().to_string().contains("1..=64"));
        store.psk[0].key_hex = "00".into();
        store.psk[0].identity = Some("x".repeat(129));
        assert!(
            store
                .validate()
                .unwrap_err()
                .to_string()
                .contains("1..=128")
        );
    }

    #[test]
    fn loads_from_toml_and_rejects_unknown_fields() {
        let store: CredentialStore = toml::from_str(
            "[[psk]]\nendpoint = \"dev-1\"\nidentity_hex = \"6964\"\nkey_hex = \"aa\"\n\
             [[public_key]]\nendpoint = \"dev-3\"\nspki_sha256 = \"{}\"\n"
                .replace("{}", &"ab".repeat(32))
                .as_str(),
        )
        .unwrap();
        store.validate().unwrap();
        assert_eq!(store.psk(b"id").unwrap().0, "dev-1");
        let err = toml::from_str::<CredentialStore>("[[psk]]\nendpoint = \"x\"\nkey = \"aa\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("key"), "{err}");
    }

    proptest::proptest! {
        #[test]
        fn hex_round_trips(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..80)) {
            proptest::prop_assert_eq!(from_hex(&to_hex(&bytes)).unwrap(), bytes);
        }
    }
}
