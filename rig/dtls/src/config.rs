//! Client and server configuration, and the OpenSSL contexts built from it
//! ([`ClientContext`], [`ServerContext`]). Build a context once and make many sessions from it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use openssl::ex_data::Index;
use openssl::pkey::{PKey, Private, Public};
use openssl::ssl::{
    Ssl, SslContext, SslContextBuilder, SslMethod, SslOptions, SslSession, SslSessionCacheMode,
    SslVerifyMode, SslVersion,
};
use openssl::x509::{X509, X509StoreContext, X509StoreContextRef};

use crate::credentials::{CredentialStore, check_identity, check_key, spki_sha256_hex};
use crate::error::{DtlsError, HandshakeStage, Reason};
use crate::ffi;
use crate::suite::{CipherSuite, cipher_string};

/// What a client proves itself with, and what it trusts.
#[derive(Clone)]
pub enum ClientCredentials {
    /// Pre-shared key (identity ≤ 128 bytes, key ≤ 64 bytes).
    Psk {
        /// The PSK identity.
        identity: Vec<u8>,
        /// The key.
        key: Vec<u8>,
    },
    /// X.509: our chain (leaf first) and key, the CAs we trust, and the server name to check
    /// (DNS name or IP address; a DNS name is also sent as SNI). `None` skips the name check.
    Certificate {
        /// Our certificate chain, leaf first.
        chain: Vec<X509>,
        /// Our private key.
        key: PKey<Private>,
        /// Trusted CA certificates.
        trust: Vec<X509>,
        /// Expected server name.
        server_name: Option<String>,
    },
    /// RFC 7250 raw public keys: our key pair and the server key(s) we pin.
    RawPublicKey {
        /// Our private key.
        key: PKey<Private>,
        /// The accepted server public keys.
        server_keys: Vec<PKey<Public>>,
    },
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Psk { .. } => "Psk",
            Self::Certificate { .. } => "Certificate",
            Self::RawPublicKey { .. } => "RawPublicKey",
        })
    }
}

/// Settings shared by clients and servers.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Largest datagram OpenSSL may emit (record layer included). Default 1280.
    pub mtu: u32,
    /// First handshake retransmission timeout (RFC 6347: 1 s); doubles up to 60 s.
    pub retransmit_initial: Duration,
    /// Overall handshake deadline.
    pub handshake_timeout: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            mtu: 1280,
            retransmit_initial: Duration::from_secs(1),
            handshake_timeout: Duration::from_secs(30),
        }
    }
}

/// A client configuration.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Credentials and trust.
    pub credentials: ClientCredentials,
    /// Offered suites, in order; empty means the defaults for the mode (mandatory CCM_8 first).
    pub cipher_suites: Vec<CipherSuite>,
    /// MTU and timers.
    pub tuning: Tuning,
    /// Keep the last session and offer it for resumption on the next handshake.
    pub resumption: bool,
}

impl ClientConfig {
    /// A configuration with default suites, tuning and resumption on.
    pub fn new(credentials: ClientCredentials) -> Self {
        Self {
            credentials,
            cipher_suites: Vec::new(),
            tuning: Tuning::default(),
            resumption: true,
        }
    }
}

/// The server's own key, and its certificate chain (empty for raw-public-key only).
#[derive(Clone)]
pub struct ServerIdentity {
    /// Private key (P-256 for the LwM2M ECDHE_ECDSA suites).
    pub key: PKey<Private>,
    /// Certificate chain, leaf first; may be empty when only RPK is offered.
    pub chain: Vec<X509>,
}

impl std::fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerIdentity {{ chain: {} certs }}", self.chain.len())
    }
}

/// A server configuration. PSK is on when the store lists PSK devices; certificates and raw
/// public keys are on when `identity` is set.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Devices and their endpoint names.
    pub store: CredentialStore,
    /// Our key and certificate chain.
    pub identity: Option<ServerIdentity>,
    /// CAs that client certificates must chain to.
    pub client_ca: Vec<X509>,
    /// Offer and accept RFC 7250 raw public keys (needs `identity`).
    pub raw_public_keys: bool,
    /// In certificate/RPK suites, refuse a client that sends no certificate or key.
    pub require_client_certificate: bool,
    /// Allowed suites; empty means every suite the configured modes can use.
    pub cipher_suites: Vec<CipherSuite>,
    /// MTU and timers.
    pub tuning: Tuning,
    /// Send a HelloVerifyRequest with an HMAC cookie before keeping any handshake state.
    pub cookie_exchange: bool,
    /// Most concurrent sessions (handshaking or established).
    pub max_sessions: usize,
    /// A session with no traffic for this long is dropped.
    pub idle_timeout: Duration,
}

impl ServerConfig {
    /// Defaults: cookies on, client certificates required, 1024 sessions, 10 min idle.
    pub fn new(store: CredentialStore) -> Self {
        Self {
            store,
            identity: None,
            client_ca: Vec::new(),
            raw_public_keys: true,
            require_client_certificate: true,
            cipher_suites: Vec::new(),
            tuning: Tuning::default(),
            cookie_exchange: true,
            max_sessions: 1024,
            idle_timeout: Duration::from_secs(600),
        }
    }
}

/// Per-connection state the OpenSSL callbacks write into (kept in the SSL's ex_data).
pub(crate) struct Note {
    pub(crate) peer: SocketAddr,
    pub(crate) inner: Mutex<NoteInner>,
}

#[derive(Default)]
pub(crate) struct NoteInner {
    pub(crate) reason: Option<(HandshakeStage, Reason)>,
    pub(crate) endpoint: Option<String>,
    pub(crate) psk_identity: Option<Vec<u8>>,
}

static NOTE_INDEX: OnceLock<Index<Ssl, Note>> = OnceLock::new();

pub(crate) fn note_index() -> Result<Index<Ssl, Note>, DtlsError> {
    if let Some(i) = NOTE_INDEX.get() {
        return Ok(*i);
    }
    let i = Ssl::new_ex_index::<Note>()
        .map_err(|e| DtlsError::Config(format!("SSL ex_data index: {e}")))?;
    Ok(*NOTE_INDEX.get_or_init(|| i))
}

fn with_note(ssl: &openssl::ssl::SslRef, f: impl FnOnce(&SocketAddr, &mut NoteInner)) {
    if let Ok(index) = note_index()
        && let Some(note) = ssl.ex_data(index)
        && let Ok(mut inner) = note.inner.lock()
    {
        f(&note.peer, &mut inner);
    }
}

fn cfg_err(what: &str) -> impl FnOnce(openssl::error::ErrorStack) -> DtlsError + '_ {
    move |e| DtlsError::Config(format!("{what}: {e}"))
}

fn base_builder(suites: &[CipherSuite]) -> Result<SslContextBuilder, DtlsError> {
    let mut b = SslContext::builder(SslMethod::dtls()).map_err(cfg_err("SSL_CTX_new"))?;
    b.set_min_proto_version(Some(SslVersion::DTLS1_2))
        .map_err(cfg_err("DTLS 1.2 minimum"))?;
    b.set_options(SslOptions::NO_QUERY_MTU);
    b.set_cipher_list(&cipher_string(suites))
        .map_err(cfg_err("cipher list"))?;
    Ok(b)
}

fn add_chain(b: &mut SslContextBuilder, chain: &[X509]) -> Result<(), DtlsError> {
    let (leaf, rest) = chain
        .split_first()
        .ok_or_else(|| DtlsError::Config("empty certificate chain".into()))?;
    b.set_certificate(leaf).map_err(cfg_err("certificate"))?;
    for c in rest {
        b.add_extra_chain_cert(c.clone())
            .map_err(cfg_err("chain certificate"))?;
    }
    Ok(())
}

/// A client's OpenSSL context plus what each new session needs.
pub struct ClientContext {
    pub(crate) ctx: SslContext,
    pub(crate) config: ClientConfig,
    pub(crate) last_session: Arc<Mutex<Option<SslSession>>>,
}

impl std::fmt::Debug for ClientContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientContext({:?})", self.config.credentials)
    }
}

impl ClientContext {
    /// Validates the configuration and builds the context.
    pub fn new(config: ClientConfig) -> Result<Self, DtlsError> {
        let suites = match (&config.credentials, config.cipher_suites.is_empty()) {
            (_, false) => config.cipher_suites.clone(),
            (ClientCredentials::Psk { .. }, true) => CipherSuite::default_psk(),
            (_, true) => CipherSuite::default_ecdsa(),
        };
        let mut b = base_builder(&suites)?;
        match &config.credentials {
            ClientCredentials::Psk { identity, key } => {
                check_identity(identity).map_err(DtlsError::Config)?;
                check_key(key).map_err(DtlsError::Config)?;
                let (identity, key) = (identity.clone(), key.clone());
                b.set_psk_client_callback(move |_ssl, _hint, id_out, key_out| {
                    if id_out.len() <= identity.len() || key_out.len() < key.len() {
                        return Ok(0);
                    }
                    id_out[..identity.len()].copy_from_slice(&identity);
                    id_out[identity.len()] = 0;
                    key_out[..key.len()].copy_from_slice(&key);
                    Ok(key.len())
                });
            }
            ClientCredentials::Certificate {
                chain, key, trust, ..
            } => {
                add_chain(&mut b, chain)?;
                b.set_private_key(key).map_err(cfg_err("private key"))?;
                b.check_private_key()
                    .map_err(cfg_err("private key does not match certificate"))?;
                for ca in trust {
                    b.cert_store_mut()
                        .add_cert(ca.clone())
                        .map_err(cfg_err("trusted CA"))?;
                }
                b.set_verify(SslVerifyMode::PEER);
            }
            ClientCredentials::RawPublicKey { key, server_keys } => {
                if server_keys.is_empty() {
                    return Err(DtlsError::Config(
                        "raw public key mode needs at least one pinned server key".into(),
                    ));
                }
                b.set_private_key(key).map_err(cfg_err("private key"))?;
                let rpk = [ffi::CERT_TYPE_RPK];
                ffi::set_cert_types(&mut b, &rpk, &rpk).map_err(DtlsError::Config)?;
                ffi::ctx_dane_enable(&mut b).map_err(DtlsError::Config)?;
                b.set_verify(SslVerifyMode::PEER);
            }
        }
        if config.resumption {
            b.set_session_cache_mode(SslSessionCacheMode::CLIENT);
        }
        Ok(Self {
            ctx: b.build(),
            config,
            last_session: Arc::new(Mutex::new(None)),
        })
    }

    /// The configuration this context was built from.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Forgets the session kept for resumption.
    pub fn forget_session(&self) {
        if let Ok(mut s) = self.last_session.lock() {
            *s = None;
        }
    }
}

/// A server's OpenSSL context.
pub struct ServerContext {
    pub(crate) ctx: SslContext,
    pub(crate) config: ServerConfig,
    pub(crate) store: Arc<CredentialStore>,
}

impl std::fmt::Debug for ServerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerContext({:?})", self.config.identity)
    }
}

impl ServerContext {
    /// Validates the configuration and builds the context.
    pub fn new(config: ServerConfig) -> Result<Self, DtlsError> {
        config.store.validate()?;
        let store = Arc::new(config.store.clone());
        let psk = store.has_psk();
        let certs = config.identity.is_some();
        if !psk && !certs {
            return Err(DtlsError::Config(
                "server has neither PSK devices in its credential store nor an identity (key/certificate)"
                    .into(),
            ));
        }
        let suites = if config.cipher_suites.is_empty() {
            let mut s = Vec::new();
            if psk {
                s.extend(CipherSuite::default_psk());
            }
            if certs {
                s.extend(CipherSuite::default_ecdsa());
            }
            s
        } else {
            config.cipher_suites.clone()
        };
        let mut b = base_builder(&suites)?;
        b.set_session_id_context(b"rig-dtls")
            .map_err(cfg_err("session id context"))?;
        if psk {
            let store = store.clone();
            b.set_psk_server_callback(move |ssl, identity, key_out| {
                let identity = identity.unwrap_or_default();
                match store.psk(identity) {
                    Some((endpoint, key)) if key.len() <= key_out.len() => {
                        key_out[..key.len()].copy_from_slice(&key);
                        with_note(ssl, |_, n| {
                            n.endpoint = Some(endpoint.to_owned());
                            n.psk_identity = Some(identity.to_vec());
                        });
                        Ok(key.len())
                    }
                    _ => {
                        with_note(ssl, |_, n| {
                            n.psk_identity = Some(identity.to_vec());
                            n.reason = Some((
                                HandshakeStage::KeyExchange,
                                Reason::UnknownPskIdentity {
                                    identity: String::from_utf8_lossy(identity).into_owned(),
                                },
                            ));
                        });
                        Ok(0)
                    }
                }
            });
        }
        if let Some(id) = &config.identity {
            b.set_private_key(&id.key).map_err(cfg_err("server key"))?;
            if !id.chain.is_empty() {
                add_chain(&mut b, &id.chain)?;
                b.check_private_key()
                    .map_err(cfg_err("server key does not match its certificate"))?;
            }
            if config.raw_public_keys {
                let server_types: &[u8] = if id.chain.is_empty() {
                    &[ffi::CERT_TYPE_RPK]
                } else {
                    &[ffi::CERT_TYPE_RPK, ffi::CERT_TYPE_X509]
                };
                ffi::set_cert_types(
                    &mut b,
                    server_types,
                    &[ffi::CERT_TYPE_RPK, ffi::CERT_TYPE_X509],
                )
                .map_err(DtlsError::Config)?;
            }
            for ca in &config.client_ca {
                b.cert_store_mut()
                    .add_cert(ca.clone())
                    .map_err(cfg_err("client CA"))?;
            }
            let mode = if config.require_client_certificate {
                SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT
            } else {
                SslVerifyMode::PEER
            };
            let store = store.clone();
            b.set_verify_callback(mode, move |preverify, ctx| {
                verify_client(preverify, ctx, &store)
            });
        }
        if config.cookie_exchange {
            b.set_options(SslOptions::COOKIE_EXCHANGE);
            let mut secret = [0u8; 32];
            openssl::rand::rand_bytes(&mut secret).map_err(cfg_err("cookie secret"))?;
            let secret = Arc::new(secret);
            let s2 = secret.clone();
            b.set_cookie_generate_cb(move |ssl, out| {
                let mac = cookie(ssl, &secret[..])?;
                let n = mac.len().min(out.len());
                out[..n].copy_from_slice(&mac[..n]);
                Ok(n)
            });
            b.set_cookie_verify_cb(move |ssl, got| {
                cookie(ssl, &s2[..])
                    .map(|mac| {
                        got.len() <= mac.len()
                            && openssl::memcmp::eq(&mac[..got.len()], got)
                            && !got.is_empty()
                    })
                    .unwrap_or(false)
            });
        }
        Ok(Self {
            ctx: b.build(),
            config,
            store,
        })
    }

    /// The configuration this context was built from.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }
}

/// HMAC-SHA256 over the peer's address with the server's secret (RFC 6347 §4.2.1).
fn cookie(
    ssl: &openssl::ssl::SslRef,
    secret: &[u8],
) -> Result<Vec<u8>, openssl::error::ErrorStack> {
    let mut peer = None;
    with_note(ssl, |p, _| peer = Some(*p));
    let peer = peer.map(|p| p.to_string()).unwrap_or_default();
    let key = PKey::hmac(secret)?;
    let mut signer = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key)?;
    signer.update(peer.as_bytes())?;
    signer.sign_to_vec()
}

fn verify_client(preverify: bool, ctx: &mut X509StoreContextRef, store: &CredentialStore) -> bool {
    let ssl = X509StoreContext::ssl_idx()
        .ok()
        .and_then(|i| ctx.ex_data(i));
    if let Some(spki) = ffi::store_ctx_rpk_der(ctx) {
        let endpoint = store.endpoint_for_spki(&spki).map(str::to_owned);
        let ok = endpoint.is_some();
        if let Some(ssl) = ssl {
            with_note(ssl, |_, n| match endpoint {
                Some(ep) => n.endpoint = Some(ep),
                None => {
                    n.reason = Some((
                        HandshakeStage::VerifyingClientCertificate,
                        Reason::UnknownPublicKey {
                            spki_sha256: spki_sha256_hex(&spki),
                        },
                    ))
                }
            });
        }
        return ok;
    }
    preverify
}
