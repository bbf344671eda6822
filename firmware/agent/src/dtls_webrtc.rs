//! The agent's second DTLS backend: `webrtc-dtls` 0.12, a pure-Rust DTLS 1.2
//! stack that shares no code with OpenSSL (`--dtls-backend webrtc`).
//!
//! With it the rig's OpenSSL server is tested against an independent client
//! implementation, not only against itself. It speaks the two LwM2M-mandated
//! suites that webrtc-dtls has: `TLS_PSK_WITH_AES_128_CCM_8` (PSK) and
//! `TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8` (X.509 with a P-256 key, server name
//! checked against the certificate). webrtc-dtls has no RFC 7250 raw public
//! keys, so `--security rpk` with this backend is refused with that reason.
//!
//! The session is a datagram pipe like rig-dtls' `DtlsClientSocket`: one
//! connected UDP socket, [`WebrtcDtlsSocket::send_to`] and
//! [`WebrtcDtlsSocket::recv_from`] carry plaintext CoAP datagrams.
//!
//! Pitfalls of the crate, handled here:
//! - the client sends `Config::psk_identity_hint` as its PSK **identity**;
//! - the handshake (inside `DTLSConn::new`) has no deadline of its own, so it
//!   runs under [`HANDSHAKE_TIMEOUT`]; dropping the unfinished connection ends
//!   its background tasks and frees the socket;
//! - it verifies certificates with rustls, which needs a process-level crypto
//!   provider when more than one is compiled in (the rig's other crates bring
//!   aws-lc-rs, webrtc-dtls brings ring): [`WebrtcClientConfig::new`] installs
//!   ring's if none is installed yet.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::UdpSocket;
use webrtc_dtls::cipher_suite::CipherSuiteId;
use webrtc_dtls::config::{Config, ExtendedMasterSecretType};
use webrtc_dtls::conn::DTLSConn;
use webrtc_dtls::crypto::{Certificate, CryptoPrivateKey, CryptoPrivateKeyKind};

use crate::config::{AgentConfig, SecurityMode};

/// How long one handshake may take before it is abandoned.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a webrtc-dtls session could not be set up or used.
#[derive(Debug, thiserror::Error)]
pub enum WebrtcError {
    /// The configuration cannot be used with this backend (names the flag).
    #[error("--dtls-backend webrtc: {0}")]
    Config(String),
    /// The UDP socket could not be opened or connected.
    #[error("cannot open a UDP socket towards {server}: {source}")]
    Socket {
        /// The server address.
        server: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The handshake failed: the peer's alert, or our own check (certificate,
    /// server name) that refused the peer.
    #[error("webrtc-dtls handshake with {server} ({suite}) failed: {reason}")]
    Handshake {
        /// The server address.
        server: SocketAddr,
        /// The suite we offered.
        suite: &'static str,
        /// webrtc-dtls' description of the failure.
        reason: String,
    },
    /// The handshake did not finish in time.
    #[error("webrtc-dtls handshake with {server} ({suite}) timed out after {} s", after.as_secs())]
    TimedOut {
        /// The server address.
        server: SocketAddr,
        /// The suite we offered.
        suite: &'static str,
        /// The deadline that passed.
        after: Duration,
    },
    /// The established session failed or was closed.
    #[error("webrtc-dtls session with {server}: {reason}")]
    Session {
        /// The server address.
        server: SocketAddr,
        /// What went wrong.
        reason: String,
    },
}

/// The client's credentials, in webrtc-dtls' terms.
#[derive(Clone)]
enum Credentials {
    Psk {
        identity: Vec<u8>,
        key: Vec<u8>,
    },
    Certificate {
        certificate: Box<Certificate>,
        roots: rustls::RootCertStore,
        server_name: String,
    },
}

/// A webrtc-dtls client configuration, built from the agent's command line.
#[derive(Clone)]
pub struct WebrtcClientConfig {
    credentials: Credentials,
    /// Deadline for one handshake (default [`HANDSHAKE_TIMEOUT`]).
    pub handshake_timeout: Duration,
    /// How long a flight waits for its answer before it is sent again
    /// (`--dtls-retransmit-initial`; webrtc-dtls keeps it fixed, not doubling).
    pub flight_interval: Duration,
}

impl std::fmt::Debug for WebrtcClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("WebrtcClientConfig")
            .field("suite", &self.suite())
            .field("handshake_timeout", &self.handshake_timeout)
            .field("flight_interval", &self.flight_interval)
            .finish()
    }
}

impl WebrtcClientConfig {
    /// The configuration for `--security` with `--dtls-backend webrtc`:
    /// `None` for nosec; an error naming the flag or file for anything this
    /// backend cannot do (rpk) or cannot read.
    pub fn new(cfg: &AgentConfig) -> Result<Option<Self>, String> {
        let need = |v: &Option<std::path::PathBuf>, flag: &str| {
            v.clone()
                .ok_or_else(|| format!("--security {:?} needs {flag}", cfg.security))
        };
        let credentials = match cfg.security {
            SecurityMode::Nosec => return Ok(None),
            SecurityMode::Rpk => {
                return Err("--dtls-backend webrtc does not support --security rpk: \
                     webrtc-dtls has no RFC 7250 raw public keys; use --dtls-backend openssl"
                    .into());
            }
            SecurityMode::Psk => {
                let identity = cfg
                    .psk_identity
                    .clone()
                    .ok_or("--security psk needs --psk-identity")?;
                let hex = cfg
                    .psk_key_hex
                    .as_deref()
                    .ok_or("--security psk needs --psk-key-hex")?;
                let key = rig_dtls::from_hex(hex).map_err(|e| format!("--psk-key-hex: {e}"))?;
                if key.is_empty() {
                    return Err("--psk-key-hex: the key is empty".into());
                }
                Credentials::Psk {
                    identity: identity.into_bytes(),
                    key,
                }
            }
            SecurityMode::X509 => {
                let cert = need(&cfg.cert, "--cert")?;
                let key = need(&cfg.key, "--key")?;
                let ca = need(&cfg.ca, "--ca")?;
                let chain = load_certificates(&cert).map_err(|e| format!("--cert {e}"))?;
                let private_key = load_p256_key(&key).map_err(|e| format!("--key {e}"))?;
                let mut roots = rustls::RootCertStore::empty();
                for (i, c) in load_certificates(&ca)
                    .map_err(|e| format!("--ca {e}"))?
                    .into_iter()
                    .enumerate()
                {
                    roots.add(c).map_err(|e| {
                        format!(
                            "--ca {}: certificate {i} is not a usable CA: {e}",
                            ca.display()
                        )
                    })?;
                }
                let server_name = cfg
                    .server_name
                    .clone()
                    .or_else(|| cfg.server_host())
                    .ok_or("--security x509 needs --server-name (the URI has no host)")?;
                rustls::pki_types::ServerName::try_from(server_name.as_str())
                    .map_err(|e| format!("--server-name `{server_name}`: {e}"))?;
                Credentials::Certificate {
                    certificate: Box::new(Certificate {
                        certificate: chain,
                        private_key,
                    }),
                    roots,
                    server_name,
                }
            }
        };
        // Both ring (webrtc-dtls) and aws-lc-rs (the rig's other crates) may be
        // compiled into rustls; then it needs a process default. Ignoring the
        // error is right: it only says a provider is already installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Ok(Some(WebrtcClientConfig {
            credentials,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            flight_interval: Duration::from_secs_f64(cfg.dtls_retransmit_initial),
        }))
    }

    /// The one suite this configuration offers (IANA name).
    pub fn suite(&self) -> &'static str {
        match self.credentials {
            Credentials::Psk { .. } => "TLS_PSK_WITH_AES_128_CCM_8",
            Credentials::Certificate { .. } => "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8",
        }
    }

    fn dtls_config(&self) -> Config {
        match self.credentials.clone() {
            Credentials::Psk { identity, key } => Config {
                psk: Some(psk_callback(key)),
                // webrtc-dtls sends this as the client's PSK identity.
                psk_identity_hint: Some(identity),
                cipher_suites: vec![CipherSuiteId::Tls_Psk_With_Aes_128_Ccm_8],
                extended_master_secret: ExtendedMasterSecretType::Request,
                flight_interval: self.flight_interval,
                ..Config::default()
            },
            Credentials::Certificate {
                certificate,
                roots,
                server_name,
            } => Config {
                certificates: vec![*certificate],
                cipher_suites: vec![CipherSuiteId::Tls_Ecdhe_Ecdsa_With_Aes_128_Ccm_8],
                roots_cas: roots,
                server_name,
                extended_master_secret: ExtendedMasterSecretType::Request,
                flight_interval: self.flight_interval,
                ..Config::default()
            },
        }
    }
}

/// webrtc-dtls's PSK callback type: hint in, key out.
type PskCallback = Arc<dyn Fn(&[u8]) -> Result<Vec<u8>, webrtc_dtls::Error> + Send + Sync>;

/// The PSK callback: the key, whatever hint the server sends.
fn psk_callback(key: Vec<u8>) -> PskCallback {
    Arc::new(move |_hint: &[u8]| Ok(key.clone()))
}

/// PEM certificates from a file, in order (leaf first for a chain).
fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not PEM certificates: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", path.display()));
    }
    Ok(certs)
}

/// A P-256 ECDSA private key in PKCS#8 PEM, the only kind LwM2M's
/// ECDHE_ECDSA suite and this backend use.
fn load_p256_key(path: &Path) -> Result<CryptoPrivateKey, String> {
    let key = PrivateKeyDer::from_pem_file(path)
        .map_err(|e| format!("{}: not a PEM private key: {e}", path.display()))?;
    let PrivateKeyDer::Pkcs8(pkcs8) = key else {
        return Err(format!(
            "{}: webrtc-dtls needs a PKCS#8 key (`BEGIN PRIVATE KEY`); \
             convert it with `openssl pkcs8 -topk8 -nocrypt`",
            path.display()
        ));
    };
    let der = pkcs8.secret_pkcs8_der().to_vec();
    let pair = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        &der,
        &ring::rand::SystemRandom::new(),
    )
    .map_err(|e| format!("{}: not a P-256 ECDSA key: {e}", path.display()))?;
    Ok(CryptoPrivateKey {
        kind: CryptoPrivateKeyKind::Ecdsa256(pair),
        serialized_der: der,
    })
}

/// An established webrtc-dtls session with the server: a datagram pipe.
pub struct WebrtcDtlsSocket {
    conn: DTLSConn,
    server: SocketAddr,
    suite: &'static str,
}

impl WebrtcDtlsSocket {
    /// Binds `bind`, connects to `server` and runs one handshake under the
    /// configuration's deadline.
    pub async fn connect(
        bind: SocketAddr,
        server: SocketAddr,
        config: &WebrtcClientConfig,
    ) -> Result<Self, WebrtcError> {
        let socket = UdpSocket::bind(bind)
            .await
            .map_err(|source| WebrtcError::Socket { server, source })?;
        socket
            .connect(server)
            .await
            .map_err(|source| WebrtcError::Socket { server, source })?;
        let suite = config.suite();
        let handshake = DTLSConn::new(Arc::new(socket), config.dtls_config(), true, None);
        match tokio::time::timeout(config.handshake_timeout, handshake).await {
            Ok(Ok(conn)) => Ok(WebrtcDtlsSocket {
                conn,
                server,
                suite,
            }),
            Ok(Err(e)) => Err(WebrtcError::Handshake {
                server,
                suite,
                reason: e.to_string(),
            }),
            Err(_) => Err(WebrtcError::TimedOut {
                server,
                suite,
                after: config.handshake_timeout,
            }),
        }
    }

    /// The negotiated suite (the only one offered).
    pub fn cipher_suite(&self) -> &'static str {
        self.suite
    }

    /// The server this session is with.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// Sends one plaintext datagram to the server. `peer` must be the server.
    pub async fn send_to(&self, bytes: &[u8], peer: SocketAddr) -> Result<usize, WebrtcError> {
        if peer != self.server {
            return Err(WebrtcError::Session {
                server: self.server,
                reason: format!("cannot send to {peer}: the session is with the server only"),
            });
        }
        self.conn
            .write(bytes, None)
            .await
            .map_err(|e| WebrtcError::Session {
                server: self.server,
                reason: e.to_string(),
            })
    }

    /// Receives one plaintext datagram from the server.
    pub async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), WebrtcError> {
        let n = self
            .conn
            .read(buf, None)
            .await
            .map_err(|e| WebrtcError::Session {
                server: self.server,
                reason: e.to_string(),
            })?;
        Ok((n, self.server))
    }

    /// Sends close_notify and closes the session.
    pub async fn close(&self) {
        let _ = self.conn.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cfg(args: &[&str]) -> AgentConfig {
        let mut v: Vec<&str> = vec![
            "rig-agent",
            "--server",
            "coaps://127.0.0.1:5684",
            "--endpoint",
            "ep",
        ];
        v.extend_from_slice(args);
        AgentConfig::try_parse_from(v).unwrap()
    }

    fn pki(name: &str) -> &'static str {
        // Leaked on purpose (a few bytes per test), so arrays of flags stay `&str`.
        Box::leak(
            format!("{}/../../fixtures/pki/{name}", env!("CARGO_MANIFEST_DIR")).into_boxed_str(),
        )
    }

    #[test]
    fn rpk_is_refused_with_the_reason() {
        let e = WebrtcClientConfig::new(&cfg(&[
            "--security",
            "rpk",
            "--key",
            pki("rpk-dev-3.key"),
            "--ca",
            pki("rpk-server.pub.pem"),
        ]))
        .unwrap_err();
        assert!(e.contains("rpk") && e.contains("raw public keys"), "{e}");
    }

    const PSK: [&str; 6] = [
        "--security",
        "psk",
        "--psk-identity",
        "id",
        "--psk-key-hex",
        "0011",
    ];

    #[test]
    fn psk_and_x509_configurations_load_with_the_mandatory_suites() {
        let p = WebrtcClientConfig::new(&cfg(&PSK)).unwrap().unwrap();
        assert_eq!(p.suite(), "TLS_PSK_WITH_AES_128_CCM_8");
        assert!(!format!("{p:?}").contains("0011"));
        assert_eq!(p.dtls_config().flight_interval, Duration::from_secs(1));
        let slow = [&PSK[..], &["--dtls-retransmit-initial", "5.75"]].concat();
        let slow = WebrtcClientConfig::new(&cfg(&slow)).unwrap().unwrap();
        assert_eq!(
            slow.dtls_config().flight_interval,
            Duration::from_millis(5750)
        );
        let x = WebrtcClientConfig::new(&cfg(&[
            "--security",
            "x509",
            "--cert",
            pki("client-dev-1.pem"),
            "--key",
            pki("client-dev-1.key"),
            "--ca",
            pki("ca.pem"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(x.suite(), "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8");
        let Credentials::Certificate { server_name, .. } = &x.credentials else {
            panic!("not a certificate configuration")
        };
        assert_eq!(server_name, "127.0.0.1");
    }

    #[test]
    fn bad_files_are_named() {
        let e = WebrtcClientConfig::new(&cfg(&[
            "--security",
            "x509",
            "--cert",
            "/nonexistent.pem",
            "--key",
            pki("client-dev-1.key"),
            "--ca",
            pki("ca.pem"),
        ]))
        .unwrap_err();
        assert!(
            e.contains("--cert") && e.contains("/nonexistent.pem"),
            "{e}"
        );
        // A SEC1 key (the RPK fixtures) is not PKCS#8: the message says how to convert.
        let e = WebrtcClientConfig::new(&cfg(&[
            "--security",
            "x509",
            "--cert",
            pki("client-dev-1.pem"),
            "--key",
            pki("rpk-dev-3.key"),
            "--ca",
            pki("ca.pem"),
        ]))
        .unwrap_err();
        assert!(e.contains("--key") && e.contains("PKCS#8"), "{e}");
        // A certificate file given as the key.
        let e = WebrtcClientConfig::new(&cfg(&[
            "--security",
            "x509",
            "--cert",
            pki("client-dev-1.pem"),
            "--key",
            pki("client-dev-1.pem"),
            "--ca",
            pki("ca.pem"),
        ]))
        .unwrap_err();
        assert!(e.contains("--key") && e.contains("client-dev-1.pem"), "{e}");
    }
}
