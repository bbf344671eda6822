//! [`Server`]: one UDP socket's worth of peers, demultiplexed by address into [`Session`]s.
//!
//! Sans-IO like the session: feed `(peer, datagram, now)`, drain `(peer, datagram)` to send,
//! plaintext per peer, and [`ServerEvent`]s (established, failed with reason, rejected, closed,
//! expired) that the services log and turn into case failures.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::config::{ServerConfig, ServerContext};
use crate::error::{DtlsError, HandshakeFailure, Reason};
use crate::record;
use crate::session::{PeerIdentity, Session, SessionState};
use crate::suite::CipherSuite;

/// Something that happened to a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// A handshake completed.
    Established {
        /// The remote address.
        peer: SocketAddr,
        /// The endpoint its credentials map to.
        endpoint: Option<String>,
        /// What it proved.
        identity: Option<PeerIdentity>,
        /// The negotiated suite.
        cipher_suite: Option<CipherSuite>,
        /// Whether it resumed an earlier session.
        resumed: bool,
    },
    /// A handshake failed.
    Failed(HandshakeFailure),
    /// A datagram was refused without a session (NoSec, not a ClientHello, session limit).
    Rejected {
        /// The remote address.
        peer: SocketAddr,
        /// Why.
        reason: Reason,
    },
    /// The peer closed (close_notify).
    Closed {
        /// The remote address.
        peer: SocketAddr,
    },
    /// The session was idle too long and was dropped.
    Expired {
        /// The remote address.
        peer: SocketAddr,
    },
}

impl std::fmt::Display for ServerEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Established {
                peer,
                endpoint,
                cipher_suite,
                resumed,
                ..
            } => write!(
                f,
                "peer {peer}: DTLS established (endpoint {}, {}{})",
                endpoint.as_deref().unwrap_or("?"),
                cipher_suite.map_or_else(|| "unknown suite".to_owned(), |s| s.name.to_owned()),
                if *resumed { ", resumed" } else { "" }
            ),
            Self::Failed(fail) => write!(f, "{fail}"),
            Self::Rejected { peer, reason } => {
                write!(f, "peer {peer}: datagram rejected: {reason}")
            }
            Self::Closed { peer } => write!(f, "peer {peer}: closed by peer"),
            Self::Expired { peer } => write!(f, "peer {peer}: idle session expired"),
        }
    }
}

/// The DTLS server demultiplexer.
#[derive(Debug)]
pub struct Server {
    ctx: Arc<ServerContext>,
    sessions: HashMap<SocketAddr, Session>,
    transmits: VecDeque<(SocketAddr, Vec<u8>)>,
    plaintext: VecDeque<(SocketAddr, Vec<u8>)>,
    events: VecDeque<ServerEvent>,
}

impl Server {
    /// Builds the server from its configuration.
    pub fn new(config: ServerConfig) -> Result<Self, DtlsError> {
        Ok(Self::with_context(Arc::new(ServerContext::new(config)?)))
    }

    /// A server sharing an already built context.
    pub fn with_context(ctx: Arc<ServerContext>) -> Self {
        Self {
            ctx,
            sessions: HashMap::new(),
            transmits: VecDeque::new(),
            plaintext: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Feeds one datagram from `peer`.
    pub fn handle_datagram(&mut self, peer: SocketAddr, datagram: &[u8], now: Instant) {
        if !record::looks_like_dtls(datagram) {
            self.events.push_back(ServerEvent::Rejected {
                peer,
                reason: Reason::NotDtls,
            });
            return;
        }
        let hello = record::is_client_hello(datagram);
        let restart = self
            .sessions
            .get(&peer)
            .is_some_and(|s| hello && s.state() != SessionState::Handshaking);
        if restart {
            self.sessions.remove(&peer);
        }
        if !self.sessions.contains_key(&peer) {
            if !hello {
                self.events.push_back(ServerEvent::Rejected {
                    peer,
                    reason: Reason::Protocol(
                        "DTLS record from a peer with no session that is not a ClientHello".into(),
                    ),
                });
                return;
            }
            let limit = self.ctx.config.max_sessions;
            if self.sessions.len() >= limit {
                self.events.push_back(ServerEvent::Rejected {
                    peer,
                    reason: Reason::Protocol(format!("session limit of {limit} reached")),
                });
                return;
            }
            match Session::server(&self.ctx, peer, now) {
                Ok(s) => {
                    self.sessions.insert(peer, s);
                }
                Err(e) => {
                    self.events.push_back(ServerEvent::Rejected {
                        peer,
                        reason: Reason::Protocol(e.to_string()),
                    });
                    return;
                }
            }
        }
        let Some(session) = self.sessions.get_mut(&peer) else {
            return;
        };
        let before = session.state();
        let _ = session.handle_datagram(datagram, now);
        self.collect(peer, before);
    }

    fn collect(&mut self, peer: SocketAddr, before: SessionState) {
        let Some(session) = self.sessions.get_mut(&peer) else {
            return;
        };
        while let Some(d) = session.poll_transmit() {
            self.transmits.push_back((peer, d));
        }
        while let Some(p) = session.poll_plaintext() {
            self.plaintext.push_back((peer, p));
        }
        let after = session.state();
        if before == after {
            return;
        }
        match after {
            SessionState::Established => self.events.push_back(ServerEvent::Established {
                peer,
                endpoint: session.endpoint().map(str::to_owned),
                identity: session.peer_identity().cloned(),
                cipher_suite: session.cipher_suite(),
                resumed: session.resumed(),
            }),
            SessionState::Failed => {
                if let Some(f) = session.failure() {
                    self.events.push_back(ServerEvent::Failed(f.clone()));
                }
                self.sessions.remove(&peer);
            }
            SessionState::Closed => {
                self.events.push_back(ServerEvent::Closed { peer });
                self.sessions.remove(&peer);
            }
            SessionState::Handshaking => {}
        }
    }

    /// Encrypts a datagram for an established (or handshaking) peer.
    pub fn send(&mut self, peer: SocketAddr, plaintext: &[u8]) -> Result<(), DtlsError> {
        let session = self
            .sessions
            .get_mut(&peer)
            .ok_or(DtlsError::Closed { peer })?;
        session.send(plaintext)?;
        while let Some(d) = session.poll_transmit() {
            self.transmits.push_back((peer, d));
        }
        Ok(())
    }

    /// The next datagram to put on the wire.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.transmits.pop_front()
    }

    /// The next decrypted datagram.
    pub fn poll_plaintext(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.plaintext.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// The earliest time [`Server::handle_timeout`] has work: a retransmission, a handshake
    /// deadline or an idle expiry.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let idle = self.ctx.config.idle_timeout;
        self.sessions
            .values()
            .map(|s| {
                let expiry = s.last_activity() + idle;
                s.poll_timeout().map_or(expiry, |t| t.min(expiry))
            })
            .min()
    }

    /// Runs timers: retransmissions, handshake deadlines, idle expiry.
    pub fn handle_timeout(&mut self, now: Instant) {
        let idle = self.ctx.config.idle_timeout;
        let peers: Vec<SocketAddr> = self.sessions.keys().copied().collect();
        for peer in peers {
            let Some(s) = self.sessions.get_mut(&peer) else {
                continue;
            };
            if now >= s.last_activity() + idle {
                self.sessions.remove(&peer);
                self.events.push_back(ServerEvent::Expired { peer });
                continue;
            }
            let before = s.state();
            let _ = s.handle_timeout(now);
            self.collect(peer, before);
        }
    }

    /// Closes one peer's session with close_notify.
    pub fn close(&mut self, peer: SocketAddr) {
        if let Some(s) = self.sessions.get_mut(&peer) {
            s.close();
            while let Some(d) = s.poll_transmit() {
                self.transmits.push_back((peer, d));
            }
            self.sessions.remove(&peer);
        }
    }

    /// The session for a peer.
    pub fn session(&self, peer: &SocketAddr) -> Option<&Session> {
        self.sessions.get(peer)
    }

    /// Number of sessions (handshaking or established).
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// True when no session exists.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}
