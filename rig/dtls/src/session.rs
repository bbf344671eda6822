//! [`Session`]: one DTLS 1.2 association as a sans-IO datagram pipe.
//!
//! ```text
//!   records in ──► handle_datagram ─┐                 ┌─► poll_plaintext ──► CoAP
//!                                   │  OpenSSL (SSL)  │
//!   records out ◄── poll_transmit ◄─┘                 └── send ◄── CoAP
//!                   poll_timeout / handle_timeout (retransmission timer, caller's clock)
//! ```
//!
//! OpenSSL never touches a socket: it reads and writes an in-memory `Pipe` that yields one
//! datagram per read. The caller moves datagrams between the pipe and the network and passes
//! `now` in; the session reports when it next needs [`Session::handle_timeout`].

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openssl::ssl::{ErrorCode, Ssl, SslSession, SslStream};

use crate::config::{ClientContext, ClientCredentials, Note, NoteInner, ServerContext, note_index};
use crate::credentials::CredentialStore;
use crate::error::{AlertDirection, DtlsError, HandshakeFailure, HandshakeStage, Reason};
use crate::ffi;
use crate::record::{self, Alert};
use crate::suite::CipherSuite;

/// Largest plaintext read at once (DTLS record limit).
const MAX_PLAINTEXT: usize = 16 * 1024 + 256;
/// Most plaintext datagrams queued by `send` before the handshake completes.
const MAX_PENDING_SEND: usize = 64;

/// The in-memory transport OpenSSL reads from and writes to.
#[derive(Debug, Default)]
struct Pipe {
    incoming: VecDeque<Vec<u8>>,
    outgoing: VecDeque<Vec<u8>>,
    /// Highest epoch-0 record sequence number we sent (for a crafted alert).
    max_seq0: Option<u64>,
    /// Last plaintext alert we sent.
    alert_sent: Option<Alert>,
    /// Whether OpenSSL sent a HelloVerifyRequest (cookie exchange).
    hello_verify_sent: bool,
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.incoming.pop_front() {
            Some(d) => {
                let n = d.len().min(buf.len());
                buf[..n].copy_from_slice(&d[..n]);
                Ok(n)
            }
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for r in record::records(buf) {
            if r.epoch == 0 {
                self.max_seq0 = Some(self.max_seq0.map_or(r.sequence, |s| s.max(r.sequence)));
            }
        }
        if let Some(a) = record::plaintext_alert(buf) {
            self.alert_sent = Some(a);
        }
        self.hello_verify_sent |= record::is_hello_verify_request(buf);
        self.outgoing.push_back(buf.to_vec());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Which side of the handshake we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// We sent the ClientHello.
    Client,
    /// We answered it.
    Server,
}

/// Where a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// Handshake in progress.
    Handshaking,
    /// Keys agreed; application data flows.
    Established,
    /// The handshake failed; see [`Session::failure`].
    Failed,
    /// Closed by either side (close_notify) or by [`Session::close`].
    Closed,
}

/// Who the peer proved to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerIdentity {
    /// The PSK identity it used.
    Psk(Vec<u8>),
    /// The subject CN and DER of its certificate.
    Certificate {
        /// Subject common name (empty if none).
        subject_cn: String,
        /// The leaf certificate, DER.
        der: Vec<u8>,
    },
    /// Its raw public key, DER SubjectPublicKeyInfo.
    RawPublicKey(Vec<u8>),
}

/// One DTLS association (client or server side) as a datagram pipe.
pub struct Session {
    stream: SslStream<Pipe>,
    peer: SocketAddr,
    role: Role,
    state: SessionState,
    started: Instant,
    handshake_timeout: Duration,
    deadline: Option<Instant>,
    last_activity: Instant,
    handshake_duration: Option<Duration>,
    plaintext: VecDeque<Vec<u8>>,
    pending_send: VecDeque<Vec<u8>>,
    failure: Option<HandshakeFailure>,
    alert_received: Option<Alert>,
    server_hello_seen: bool,
    ccs_received: bool,
    resumption: Option<Arc<Mutex<Option<SslSession>>>>,
    store: Option<Arc<CredentialStore>>,
    client_psk_identity: Option<Vec<u8>>,
    expected_host: Option<String>,
    endpoint: Option<String>,
    identity: Option<PeerIdentity>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("peer", &self.peer)
            .field("role", &self.role)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

fn new_ssl(
    ctx: &openssl::ssl::SslContextRef,
    peer: SocketAddr,
    mtu: u32,
    retransmit: Duration,
) -> Result<Ssl, DtlsError> {
    let cfg = |what: &'static str| {
        move |e: openssl::error::ErrorStack| DtlsError::Config(format!("{what}: {e}"))
    };
    let mut ssl = Ssl::new(ctx).map_err(cfg("SSL_new"))?;
    ssl.set_mtu(mtu).map_err(cfg("MTU"))?;
    ffi::set_retransmit_initial(&mut ssl, retransmit).map_err(DtlsError::Config)?;
    ssl.set_ex_data(
        note_index()?,
        Note {
            peer,
            inner: Mutex::new(NoteInner::default()),
        },
    );
    Ok(ssl)
}

impl Session {
    /// Starts a client handshake towards `peer`; the ClientHello is ready in
    /// [`Session::poll_transmit`] on return.
    pub fn client(ctx: &ClientContext, peer: SocketAddr, now: Instant) -> Result<Self, DtlsError> {
        let c = &ctx.config;
        let mut ssl = new_ssl(&ctx.ctx, peer, c.tuning.mtu, c.tuning.retransmit_initial)?;
        let mut expected_host = None;
        let mut client_psk_identity = None;
        match &c.credentials {
            ClientCredentials::Certificate {
                server_name: Some(name),
                ..
            } => {
                expected_host = Some(name.clone());
                let param = ssl.param_mut();
                match name.parse::<std::net::IpAddr>() {
                    Ok(ip) => param.set_ip(ip),
                    Err(_) => param.set_host(name),
                }
                .map_err(|e| DtlsError::Config(format!("server name {name:?}: {e}")))?;
                if name.parse::<std::net::IpAddr>().is_err() {
                    ssl.set_hostname(name)
                        .map_err(|e| DtlsError::Config(format!("SNI {name:?}: {e}")))?;
                }
            }
            ClientCredentials::RawPublicKey { server_keys, .. } => {
                ffi::pin_rpks(&mut ssl, server_keys).map_err(DtlsError::Config)?;
            }
            ClientCredentials::Psk { identity, .. } => client_psk_identity = Some(identity.clone()),
            ClientCredentials::Certificate { .. } => {}
        }
        let resumption = c.resumption.then(|| ctx.last_session.clone());
        if let Some(slot) = &resumption
            && let Ok(guard) = slot.lock()
            && let Some(sess) = guard.as_ref()
        {
            ffi::set_session(&mut ssl, sess).map_err(DtlsError::Config)?;
        }
        ssl.set_connect_state();
        let mut s = Self::new(ssl, peer, Role::Client, now, c.tuning.handshake_timeout)?;
        s.resumption = resumption;
        s.client_psk_identity = client_psk_identity;
        s.expected_host = expected_host;
        s.drive(now);
        Ok(s)
    }

    /// Creates the server side for `peer`; feed it the peer's ClientHello next.
    pub fn server(ctx: &ServerContext, peer: SocketAddr, now: Instant) -> Result<Self, DtlsError> {
        let t = &ctx.config.tuning;
        let mut ssl = new_ssl(&ctx.ctx, peer, t.mtu, t.retransmit_initial)?;
        ssl.set_accept_state();
        let mut s = Self::new(ssl, peer, Role::Server, now, t.handshake_timeout)?;
        s.store = Some(ctx.store.clone());
        Ok(s)
    }

    fn new(
        ssl: Ssl,
        peer: SocketAddr,
        role: Role,
        now: Instant,
        handshake_timeout: Duration,
    ) -> Result<Self, DtlsError> {
        let stream = SslStream::new(ssl, Pipe::default())
            .map_err(|e| DtlsError::Config(format!("SSL stream: {e}")))?;
        Ok(Self {
            stream,
            peer,
            role,
            state: SessionState::Handshaking,
            started: now,
            handshake_timeout,
            deadline: None,
            last_activity: now,
            handshake_duration: None,
            plaintext: VecDeque::new(),
            pending_send: VecDeque::new(),
            failure: None,
            alert_received: None,
            server_hello_seen: false,
            ccs_received: false,
            resumption: None,
            store: None,
            client_psk_identity: None,
            expected_host: None,
            endpoint: None,
            identity: None,
        })
    }

    /// Feeds one received datagram (one or more DTLS records).
    pub fn handle_datagram(&mut self, datagram: &[u8], now: Instant) -> Result<(), DtlsError> {
        match self.state {
            SessionState::Failed | SessionState::Closed => {
                return Err(DtlsError::Closed { peer: self.peer });
            }
            _ => {}
        }
        if !record::looks_like_dtls(datagram) {
            return Err(DtlsError::Rejected {
                peer: self.peer,
                reason: Reason::NotDtls,
            });
        }
        self.last_activity = now;
        if let Some(a) = record::plaintext_alert(datagram) {
            self.alert_received = Some(a);
        }
        self.server_hello_seen |= record::records(datagram).any(|r| {
            r.content_type == record::CT_HANDSHAKE && r.epoch == 0 && r.body.first() == Some(&2)
        });
        self.ccs_received |=
            record::records(datagram).any(|r| r.content_type == record::CT_CHANGE_CIPHER_SPEC);
        let finished_attempt = self.role == Role::Server
            && self.state == SessionState::Handshaking
            && self.ccs_received
            && record::records(datagram)
                .any(|r| r.epoch >= 1 && r.content_type == record::CT_HANDSHAKE);
        let out_before = self.stream.get_mut().outgoing.len();
        self.stream.get_mut().incoming.push_back(datagram.to_vec());
        self.drive(now);
        // "read change cipher spec": OpenSSL has the peer's CCS and is waiting for a Finished
        // that decrypts, so the epoch-1 record we just gave it was discarded.
        if finished_attempt
            && self.state == SessionState::Handshaking
            && self.stream.ssl().state_string_long() == "SSLv3/TLS read change cipher spec"
            && self.stream.get_mut().outgoing.len() == out_before
        {
            // OpenSSL silently drops a Finished whose MAC fails (RFC 6347 §4.1.2.7), which
            // would leave both sides retransmitting until the deadline. The peer's keys differ
            // from ours: say so with a decrypt_error alert and fail now.
            let seq = self.stream.get_mut().max_seq0.map_or(0, |s| s + 1);
            let alert = record::fatal_alert_record(51, seq);
            let pipe = self.stream.get_mut();
            pipe.alert_sent = Some(Alert::fatal(51));
            pipe.outgoing.push_back(alert);
            let psk = self.note(|n| n.psk_identity.is_some());
            let reason = if psk {
                Reason::WrongPsk
            } else {
                Reason::Protocol("the peer's Finished message did not verify".into())
            };
            self.fail(HandshakeStage::Finished, reason);
        }
        match &self.failure {
            Some(f) if self.state == SessionState::Failed => Err(f.clone().into()),
            _ => Ok(()),
        }
    }

    /// The next datagram to send to the peer.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.stream.get_mut().outgoing.pop_front()
    }

    /// The next decrypted application datagram.
    pub fn poll_plaintext(&mut self) -> Option<Vec<u8>> {
        self.plaintext.pop_front()
    }

    /// Encrypts one application datagram. Before the handshake completes it is queued (up to 64).
    pub fn send(&mut self, plaintext: &[u8]) -> Result<(), DtlsError> {
        match self.state {
            SessionState::Established => self.write(plaintext),
            SessionState::Handshaking if self.pending_send.len() < MAX_PENDING_SEND => {
                self.pending_send.push_back(plaintext.to_vec());
                Ok(())
            }
            SessionState::Handshaking => Err(DtlsError::Ssl {
                peer: self.peer,
                message: "send queue full while the handshake is in progress".into(),
            }),
            _ => Err(DtlsError::Closed { peer: self.peer }),
        }
    }

    fn write(&mut self, plaintext: &[u8]) -> Result<(), DtlsError> {
        self.stream
            .ssl_write(plaintext)
            .map(|_| ())
            .map_err(|e| DtlsError::Ssl {
                peer: self.peer,
                message: format!("write of {} bytes failed: {e}", plaintext.len()),
            })
    }

    /// When [`Session::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            SessionState::Handshaking => {
                let hs = self.started + self.handshake_timeout;
                Some(self.deadline.map_or(hs, |d| d.min(hs)))
            }
            _ => None,
        }
    }

    /// Runs the retransmission timer: retransmits the last flight when due, fails the
    /// handshake when its deadline passed or retransmissions are exhausted.
    ///
    /// OpenSSL also checks its own clock before retransmitting, so a `now` ahead of real time
    /// cannot make it retransmit earlier than the real timer; `now` drives everything else.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsError> {
        if self.state != SessionState::Handshaking {
            return Ok(());
        }
        if now >= self.started + self.handshake_timeout {
            self.fail(
                HandshakeStage::Waiting,
                Reason::TimedOut(self.handshake_timeout),
            );
        } else if self.deadline.is_some_and(|d| now >= d) {
            let rc = ffi::dtls_handle_timeout(self.stream.ssl());
            if rc < 0 {
                self.fail(
                    HandshakeStage::Waiting,
                    Reason::TimedOut(now.saturating_duration_since(self.started)),
                );
            } else {
                self.update_deadline(now);
            }
        }
        match &self.failure {
            Some(f) => Err(f.clone().into()),
            None => Ok(()),
        }
    }

    fn update_deadline(&mut self, now: Instant) {
        self.deadline = ffi::dtls_get_timeout(self.stream.ssl()).map(|left| now + left);
    }

    fn drive(&mut self, now: Instant) {
        if self.state == SessionState::Handshaking {
            match self.stream.do_handshake() {
                Ok(()) => self.established(now),
                Err(e) if matches!(e.code(), ErrorCode::WANT_READ | ErrorCode::WANT_WRITE) => {
                    self.update_deadline(now);
                }
                Err(e) => {
                    let (stage, reason) = self.classify(&e);
                    self.fail(stage, reason);
                }
            }
        }
        if self.state == SessionState::Established {
            self.read_all();
        }
    }

    fn established(&mut self, now: Instant) {
        self.state = SessionState::Established;
        self.deadline = None;
        self.handshake_duration = Some(now.saturating_duration_since(self.started));
        let ssl = self.stream.ssl();
        if let Some(slot) = &self.resumption
            && let Some(sess) = ssl.session()
            && let Ok(mut guard) = slot.lock()
        {
            *guard = Some(sess.to_owned());
        }
        let (server_type, client_type) = ffi::negotiated_cert_types(ssl);
        let peer_rpk = i32::from(ffi::CERT_TYPE_RPK)
            == if self.role == Role::Client {
                server_type
            } else {
                client_type
            };
        self.identity = if let Some(id) = ssl.psk_identity().filter(|i| !i.is_empty()) {
            Some(PeerIdentity::Psk(id.to_vec()))
        } else if peer_rpk {
            ffi::peer_rpk_der(ssl).map(PeerIdentity::RawPublicKey)
        } else {
            ssl.peer_certificate().map(|c| PeerIdentity::Certificate {
                subject_cn: c
                    .subject_name()
                    .entries_by_nid(openssl::nid::Nid::COMMONNAME)
                    .next()
                    .and_then(|e| e.data().to_string().ok())
                    .unwrap_or_default(),
                der: c.to_der().unwrap_or_default(),
            })
        };
        if self.role == Role::Server {
            let noted = self.note(|n| n.endpoint.clone());
            self.endpoint = noted.or_else(|| match (&self.identity, &self.store) {
                (Some(PeerIdentity::Certificate { subject_cn, .. }), Some(store)) => Some(
                    store
                        .endpoint_for_subject(subject_cn)
                        .unwrap_or(subject_cn)
                        .to_owned(),
                ),
                (Some(PeerIdentity::RawPublicKey(spki)), Some(store)) => {
                    store.endpoint_for_spki(spki).map(str::to_owned)
                }
                _ => None,
            });
        }
        while let Some(p) = self.pending_send.pop_front() {
            if self.write(&p).is_err() {
                break;
            }
        }
    }

    fn read_all(&mut self) {
        let mut buf = vec![0u8; MAX_PLAINTEXT];
        loop {
            match self.stream.ssl_read(&mut buf) {
                Ok(n) => self.plaintext.push_back(buf[..n].to_vec()),
                Err(e) if e.code() == ErrorCode::ZERO_RETURN => {
                    self.state = SessionState::Closed;
                    break;
                }
                Err(_) => break,
            }
        }
    }

    fn note<T>(&self, f: impl FnOnce(&NoteInner) -> T) -> T
    where
        T: Default,
    {
        note_index()
            .ok()
            .and_then(|i| self.stream.ssl().ex_data(i))
            .and_then(|n| n.inner.lock().ok().map(|g| f(&g)))
            .unwrap_or_default()
    }

    fn fail(&mut self, stage: HandshakeStage, reason: Reason) {
        let alert = match (self.stream.get_mut().alert_sent, self.alert_received) {
            (_, Some(a)) if a.description != 0 => Some((AlertDirection::Received, a)),
            (Some(a), _) => Some((AlertDirection::Sent, a)),
            _ => None,
        };
        self.state = SessionState::Failed;
        self.deadline = None;
        self.failure = Some(HandshakeFailure {
            peer: self.peer,
            stage,
            alert,
            reason,
        });
    }

    /// Works out the stage and the specific reason of a failed handshake.
    fn classify(&mut self, e: &openssl::ssl::Error) -> (HandshakeStage, Reason) {
        if let Some(noted) = self.note(|n| n.reason.clone()) {
            return noted;
        }
        let reasons: Vec<i32> = e
            .ssl_error()
            .map(|s| s.errors().iter().map(|e| e.reason_code()).collect())
            .unwrap_or_default();
        let verify_stage = match self.role {
            Role::Client => HandshakeStage::VerifyingServerCertificate,
            Role::Server => HandshakeStage::VerifyingClientCertificate,
        };
        let received = reasons
            .iter()
            .find(|&&r| (1000..1256).contains(&r))
            .and_then(|r| u8::try_from(r - 1000).ok())
            .map(Alert::fatal)
            .or(self.alert_received);
        if let Some(a) = received {
            self.alert_received = Some(a);
        }
        let state = self.stream.ssl().state_string_long().to_ascii_lowercase();
        let stage_from_state = if state.contains("hello") {
            HandshakeStage::Hello
        } else if state.contains("certificate") {
            verify_stage
        } else if state.contains("key exchange") {
            HandshakeStage::KeyExchange
        } else if state.contains("finished") || state.contains("change cipher") {
            HandshakeStage::Finished
        } else {
            HandshakeStage::Waiting
        };
        if reasons.contains(&134) {
            // SSL_R_CERTIFICATE_VERIFY_FAILED: classify by the X.509 / DANE verify result.
            let v = self.stream.ssl().verify_result();
            let detail = v.error_string().to_owned();
            let reason = match v.as_raw() {
                9 | 10 => Reason::CertificateExpired { detail },
                2 | 18 | 19 | 20 | 21 => Reason::UnknownCa { detail },
                62 | 64 => Reason::HostnameMismatch {
                    expected: self.expected_host.clone().unwrap_or_default(),
                },
                65 | 95 => Reason::PinnedKeyMismatch,
                _ => Reason::CertificateRejected { detail },
            };
            return (verify_stage, reason);
        }
        if reasons.contains(&193) {
            return (HandshakeStage::Hello, Reason::NoSharedCipherSuite);
        }
        if reasons.contains(&199) {
            return (verify_stage, Reason::NoPeerCertificate);
        }
        if let Some(a) = received {
            let psk_id = self
                .client_psk_identity
                .as_deref()
                .map(|i| String::from_utf8_lossy(i).into_owned());
            return match (a.description, psk_id) {
                (115, Some(identity)) => (
                    HandshakeStage::KeyExchange,
                    Reason::UnknownPskIdentity { identity },
                ),
                (51 | 20, Some(_)) => (HandshakeStage::Finished, Reason::WrongPsk),
                (48, _) => (
                    verify_stage_of_peer(self.role),
                    Reason::UnknownCa {
                        detail: "the peer does not trust our CA".into(),
                    },
                ),
                (45, _) => (
                    verify_stage_of_peer(self.role),
                    Reason::CertificateExpired {
                        detail: "the peer says our certificate expired".into(),
                    },
                ),
                (40, _) if self.role == Role::Client && !self.server_hello_seen => {
                    (HandshakeStage::Hello, Reason::NoSharedCipherSuite)
                }
                (42 | 43 | 46, _) => (verify_stage_of_peer(self.role), Reason::RejectedByPeer),
                _ => (stage_from_state, Reason::RejectedByPeer),
            };
        }
        (stage_from_state, Reason::Protocol(e.to_string()))
    }

    /// Sends close_notify (if established) and closes the session.
    pub fn close(&mut self) {
        if self.state == SessionState::Established {
            let _ = self.stream.shutdown();
        }
        if self.state != SessionState::Failed {
            self.state = SessionState::Closed;
        }
    }

    /// The current state.
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// True once keys are agreed.
    pub fn is_established(&self) -> bool {
        self.state == SessionState::Established
    }

    /// Why the handshake failed, if it did.
    pub fn failure(&self) -> Option<&HandshakeFailure> {
        self.failure.as_ref()
    }

    /// The remote address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Client or server.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The LwM2M endpoint the peer's credentials map to (server side).
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// What the peer proved.
    pub fn peer_identity(&self) -> Option<&PeerIdentity> {
        self.identity.as_ref()
    }

    /// The negotiated suite.
    pub fn cipher_suite(&self) -> Option<CipherSuite> {
        let c = self.stream.ssl().current_cipher()?;
        CipherSuite::from_name(c.standard_name().unwrap_or(c.name()))
    }

    /// True if this handshake resumed an earlier session.
    pub fn resumed(&self) -> bool {
        self.stream.ssl().session_reused()
    }

    /// True if the server sent a HelloVerifyRequest (cookie exchange) in this session.
    pub fn cookie_exchanged(&self) -> bool {
        self.stream.get_ref().hello_verify_sent
    }

    /// How long the handshake took, in the caller's clock.
    pub fn handshake_duration(&self) -> Option<Duration> {
        self.handshake_duration
    }

    /// Last time a datagram arrived.
    pub fn last_activity(&self) -> Instant {
        self.last_activity
    }
}

fn verify_stage_of_peer(role: Role) -> HandshakeStage {
    match role {
        // The server rejected our (client) certificate.
        Role::Client => HandshakeStage::VerifyingClientCertificate,
        Role::Server => HandshakeStage::VerifyingServerCertificate,
    }
}
