//! Cipher suites by IANA number and name, and the OpenSSL cipher strings built from them.
//!
//! LwM2M's Security object resource `/0/x/16` lists IANA numbers (e.g. 0xC0A8, 0xC0AE);
//! [`suites_from_iana`] turns those into a list, naming any unsupported value.

use crate::error::DtlsError;

/// A DTLS 1.2 cipher suite rig-dtls can negotiate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CipherSuite {
    /// IANA TLS Cipher Suite number.
    pub iana: u16,
    /// IANA name, e.g. `TLS_PSK_WITH_AES_128_CCM_8`.
    pub name: &'static str,
    /// OpenSSL name, e.g. `PSK-AES128-CCM8`.
    pub openssl: &'static str,
    /// True for PSK suites, false for ECDHE_ECDSA (certificate / raw public key) suites.
    pub psk: bool,
}

macro_rules! suites {
    ($($id:ident = $iana:literal, $name:literal, $ossl:literal, $psk:literal;)*) => {
        impl CipherSuite {
            $(
                #[doc = concat!("`", $name, "` (", stringify!($iana), ").")]
                pub const $id: CipherSuite = CipherSuite { iana: $iana, name: $name, openssl: $ossl, psk: $psk };
            )*
            /// Every suite rig-dtls knows, mandatory ones first.
            pub const ALL: &'static [CipherSuite] = &[$(CipherSuite::$id),*];
        }
    };
}

suites! {
    PSK_AES_128_CCM_8 = 0xC0A8, "TLS_PSK_WITH_AES_128_CCM_8", "PSK-AES128-CCM8", true;
    ECDHE_ECDSA_AES_128_CCM_8 = 0xC0AE, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8", "ECDHE-ECDSA-AES128-CCM8", false;
    PSK_AES_128_CBC_SHA256 = 0x00AE, "TLS_PSK_WITH_AES_128_CBC_SHA256", "PSK-AES128-CBC-SHA256", true;
    PSK_AES_128_CCM = 0xC0A4, "TLS_PSK_WITH_AES_128_CCM", "PSK-AES128-CCM", true;
    PSK_AES_128_GCM_SHA256 = 0x00A8, "TLS_PSK_WITH_AES_128_GCM_SHA256", "PSK-AES128-GCM-SHA256", true;
    ECDHE_ECDSA_AES_128_CCM = 0xC0AC, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM", "ECDHE-ECDSA-AES128-CCM", false;
    ECDHE_ECDSA_AES_128_GCM_SHA256 = 0xC02B, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256", false;
    ECDHE_ECDSA_AES_128_CBC_SHA256 = 0xC023, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "ECDHE-ECDSA-AES128-SHA256", false;
}

impl CipherSuite {
    /// Looks a suite up by IANA number.
    pub fn from_iana(iana: u16) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| s.iana == iana)
    }

    /// Looks a suite up by IANA or OpenSSL name (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|s| s.name.eq_ignore_ascii_case(name) || s.openssl.eq_ignore_ascii_case(name))
    }

    /// The default PSK list: the LwM2M mandatory CCM_8 suite, then the other PSK suites.
    pub fn default_psk() -> Vec<Self> {
        Self::ALL.iter().copied().filter(|s| s.psk).collect()
    }

    /// The default certificate / RPK list: ECDHE_ECDSA CCM_8 first.
    pub fn default_ecdsa() -> Vec<Self> {
        Self::ALL.iter().copied().filter(|s| !s.psk).collect()
    }
}

impl std::fmt::Display for CipherSuite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (0x{:04X})", self.name, self.iana)
    }
}

/// Converts the IANA numbers of LwM2M Security resource 16 into suites; an unknown number is an
/// error that names it.
pub fn suites_from_iana(values: &[u64]) -> Result<Vec<CipherSuite>, DtlsError> {
    values
        .iter()
        .map(|&v| {
            u16::try_from(v)
                .ok()
                .and_then(CipherSuite::from_iana)
                .ok_or_else(|| {
                    DtlsError::Config(format!(
                        "cipher suite 0x{v:04X} (from /0/x/16) is not supported; supported: {}",
                        CipherSuite::ALL
                            .iter()
                            .map(|s| format!("0x{:04X}", s.iana))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })
        })
        .collect()
}

/// The OpenSSL cipher string for a list. `@SECLEVEL=0` is required: OpenSSL 3.6 rates every
/// CCM_8 suite at 64-bit security and would otherwise refuse both LwM2M-mandatory suites.
pub(crate) fn cipher_string(suites: &[CipherSuite]) -> String {
    let mut s = suites
        .iter()
        .map(|c| c.openssl)
        .collect::<Vec<_>>()
        .join(":");
    s.push_str(":@SECLEVEL=0");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lwm2m_resource_16_values_map_to_suites() {
        let s = suites_from_iana(&[0xC0A8, 0xC0AE]).unwrap();
        assert_eq!(
            cipher_string(&s),
            "PSK-AES128-CCM8:ECDHE-ECDSA-AES128-CCM8:@SECLEVEL=0"
        );
        let err = suites_from_iana(&[0xC0A8, 0x1301]).unwrap_err().to_string();
        assert!(err.contains("0x1301"), "{err}");
        assert_eq!(
            CipherSuite::from_name("tls_psk_with_aes_128_ccm_8"),
            Some(CipherSuite::PSK_AES_128_CCM_8)
        );
    }

    #[test]
    fn every_suite_is_known_to_openssl() {
        for s in CipherSuite::ALL {
            let mut b = openssl::ssl::SslContext::builder(openssl::ssl::SslMethod::dtls()).unwrap();
            b.set_cipher_list(&cipher_string(&[*s])).unwrap();
        }
    }
}
