//! The CoAP message layer: a sans-IO state machine over coap-lite's codec.
//!
//! One [`Endpoint`] serves one local socket and any number of peers. It
//! implements RFC 7252 reliability (CON retransmission with randomized
//! exponential back-off, deduplication, piggybacked and separate responses,
//! RST, NON, NSTART), RFC 7959 block-wise transfers (Block1 and Block2, as
//! client and as server, with size negotiation and ETag checks) and RFC 7641
//! Observe (server-side [`ObservationId`] registry with 24-bit sequence
//! numbers, client-side reordering detection, cancellation by RST and by
//! GET with Observe=1).
//!
//! It never reads a clock or touches a socket. The driver owns both:
//!
//! ```text
//!              datagrams in              app calls
//!   socket ──► handle_datagram(now,..) ◄── send_request / respond / notify / cancel
//!   timer  ──► handle_timeout(now)
//!                     │
//!                     ▼
//!   socket ◄── poll_transmit()   timer ◄── poll_timeout()   app ◄── poll_event()
//! ```
//!
//! # Call order (the driver loop)
//! 1. Create the endpoint once: [`Endpoint::new`]`(config, seed)`.
//! 2. Whenever a datagram arrives: [`Endpoint::handle_datagram`]`(now, peer, bytes)`.
//! 3. Whenever the deadline returned by [`Endpoint::poll_timeout`] passes:
//!    [`Endpoint::handle_timeout`]`(now)`.
//! 4. After every `handle_*` call and every app call: drain
//!    [`Endpoint::poll_transmit`] (send each [`Transmit`] to its peer), drain
//!    [`Endpoint::poll_event`] (give each [`Event`] to the application), then
//!    re-arm the timer with [`Endpoint::poll_timeout`].
//!
//! The application answers each [`Event::Request`] with [`Endpoint::respond`]
//! (or [`Endpoint::respond_observe`] to accept an Observe registration). If it
//! takes longer than [`Config::empty_ack_delay`], the endpoint sends an empty
//! ACK and the response later goes out as a separate CON response.
//!
//! # Example: two endpoints, one CON GET and its piggybacked 2.05
//!
//! ```
//! use core::net::SocketAddr;
//! use rig_proto::coap::message::{request, response};
//! use rig_proto::coap::{Config, Endpoint, Event, Method, ResponseCode};
//! use rig_proto::time::Instant;
//!
//! let (c_addr, s_addr): (SocketAddr, SocketAddr) =
//!     ("127.0.0.1:40000".parse().unwrap(), "127.0.0.1:5683".parse().unwrap());
//! let mut client = Endpoint::new(Config::default(), 1);
//! let mut server = Endpoint::new(Config::default(), 2);
//! let now = Instant::ZERO;
//!
//! let id = client.send_request(now, s_addr, request(Method::Get, true, "/3/0/0")).unwrap();
//! let t = client.poll_transmit().unwrap(); // the CON GET
//! server.handle_datagram(now, c_addr, &t.payload);
//! let Some(Event::Request { id: incoming, .. }) = server.poll_event() else { panic!() };
//! let mut r = response(ResponseCode::Content);
//! r.payload = b"rig".to_vec();
//! server.respond(now, incoming, r).unwrap();
//! let t = server.poll_transmit().unwrap(); // the ACK carrying 2.05
//! client.handle_datagram(now, s_addr, &t.payload);
//! match client.poll_event() {
//!     Some(Event::Response { id: done, response, .. }) => {
//!         assert_eq!(done, id);
//!         assert_eq!(response.payload, b"rig");
//!     }
//!     other => panic!("{other:?}"),
//! }
//! assert_eq!(client.poll_timeout(), None); // nothing left to retransmit
//! ```
//!
//! Every request the application sends ends in exactly one terminal event:
//! [`Event::Response`], [`Event::RequestTimedOut`], [`Event::Reset`] or
//! [`Event::TransferFailed`] (unless the application cancels it). An
//! established observation additionally yields [`Event::Notification`]s
//! until it ends.

use alloc::string::String;
use core::fmt;
use core::net::SocketAddr;
use core::time::Duration;

pub use coap_lite::{
    CoapOption, MessageClass, MessageType, Packet, RequestType as Method,
    ResponseType as ResponseCode,
};

pub mod block;
mod endpoint;
pub mod fuzz;
pub mod message;
pub mod observe;
mod rng;

pub use block::BlockValue;
pub use endpoint::{Endpoint, Stats};
pub use message::{FormatError, FormatErrorKind};

use crate::time::scale_down;

/// RFC 7252 §4.8 transmission parameters plus the layer's own knobs.
///
/// Every duration is divided by [`Config::time_scale`] before use (see the
/// `scaled_*` accessors), so a suite can run protocol timers faster without
/// changing message counts.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// ACK_TIMEOUT (default 2 s).
    pub ack_timeout: Duration,
    /// ACK_RANDOM_FACTOR (default 1.5, must be >= 1).
    pub ack_random_factor: f64,
    /// MAX_RETRANSMIT (default 4).
    pub max_retransmit: u8,
    /// NSTART: outstanding interactions per peer (default 1).
    pub nstart: usize,
    /// DEFAULT_LEISURE (default 5 s; for multicast responses, informative here).
    pub default_leisure: Duration,
    /// PROBING_RATE in bytes per second (default 1; informative, see README).
    pub probing_rate: u32,
    /// MAX_LATENCY (default 100 s), used to derive EXCHANGE_LIFETIME.
    pub max_latency: Duration,
    /// Divisor applied to every timer (default 1 = real time).
    pub time_scale: u32,
    /// Length of tokens the endpoint generates, 0..=8 (default 8).
    pub token_len: u8,
    /// Largest datagram the endpoint sends or reassembles per message (default 1152).
    pub max_message_size: usize,
    /// Preferred block size for Block1/Block2, 16..=1024 (default 1024).
    pub preferred_block_size: usize,
    /// How long the app may take before an empty ACK is sent for a CON
    /// request (default 500 ms, scaled).
    pub empty_ack_delay: Duration,
    /// Largest body the endpoint reassembles from blocks (default 16 MiB).
    pub max_body_size: usize,
    /// Upper bound on remembered message ids for deduplication (default 4096);
    /// the oldest entries are dropped first when it is reached.
    pub max_dedup_entries: usize,
    /// Upper bound on cached Block2 bodies and Block1 reassemblies (default 64).
    pub max_block_states: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ack_timeout: Duration::from_secs(2),
            ack_random_factor: 1.5,
            max_retransmit: 4,
            nstart: 1,
            default_leisure: Duration::from_secs(5),
            probing_rate: 1,
            max_latency: Duration::from_secs(100),
            time_scale: 1,
            token_len: 8,
            max_message_size: 1152,
            preferred_block_size: 1024,
            empty_ack_delay: Duration::from_millis(500),
            max_body_size: 16 * 1024 * 1024,
            max_dedup_entries: 4096,
            max_block_states: 64,
        }
    }
}

impl Config {
    fn scaled(&self, d: Duration) -> Duration {
        scale_down(d, self.time_scale)
    }

    fn factor(&self) -> f64 {
        if self.ack_random_factor.is_finite() && self.ack_random_factor >= 1.0 {
            self.ack_random_factor
        } else {
            1.0
        }
    }

    /// `ACK_TIMEOUT × k` without panicking on absurd configurations.
    fn ack_times(&self, k: f64) -> Duration {
        Duration::try_from_secs_f64(self.ack_timeout.as_secs_f64() * k).unwrap_or(Duration::MAX)
    }

    /// MAX_TRANSMIT_SPAN = ACK_TIMEOUT × (2^MAX_RETRANSMIT − 1) × ACK_RANDOM_FACTOR (unscaled).
    pub fn max_transmit_span(&self) -> Duration {
        let n = (1u32 << self.max_retransmit.min(20)) - 1;
        self.ack_times(f64::from(n) * self.factor())
    }

    /// MAX_TRANSMIT_WAIT = ACK_TIMEOUT × (2^(MAX_RETRANSMIT+1) − 1) × ACK_RANDOM_FACTOR (unscaled).
    pub fn max_transmit_wait(&self) -> Duration {
        let n = (1u32 << (self.max_retransmit.min(20) + 1)) - 1;
        self.ack_times(f64::from(n) * self.factor())
    }

    /// PROCESSING_DELAY = ACK_TIMEOUT (unscaled).
    pub fn processing_delay(&self) -> Duration {
        self.ack_timeout
    }

    /// MAX_RTT = 2 × MAX_LATENCY + PROCESSING_DELAY (unscaled).
    pub fn max_rtt(&self) -> Duration {
        self.max_latency
            .saturating_mul(2)
            .saturating_add(self.processing_delay())
    }

    /// EXCHANGE_LIFETIME = MAX_TRANSMIT_SPAN + 2 × MAX_LATENCY + PROCESSING_DELAY
    /// (unscaled; 247 s with the defaults).
    pub fn exchange_lifetime(&self) -> Duration {
        self.max_transmit_span()
            .saturating_add(self.max_latency.saturating_mul(2))
            .saturating_add(self.processing_delay())
    }

    /// NON_LIFETIME = MAX_TRANSMIT_SPAN + MAX_LATENCY (unscaled; 145 s with the defaults).
    pub fn non_lifetime(&self) -> Duration {
        self.max_transmit_span().saturating_add(self.max_latency)
    }

    /// [`Config::exchange_lifetime`] divided by the time scale.
    pub fn scaled_exchange_lifetime(&self) -> Duration {
        self.scaled(self.exchange_lifetime())
    }

    /// [`Config::non_lifetime`] divided by the time scale.
    pub fn scaled_non_lifetime(&self) -> Duration {
        self.scaled(self.non_lifetime())
    }

    /// [`Config::max_transmit_wait`] divided by the time scale.
    pub fn scaled_max_transmit_wait(&self) -> Duration {
        self.scaled(self.max_transmit_wait())
    }

    /// ACK_TIMEOUT divided by the time scale.
    pub fn scaled_ack_timeout(&self) -> Duration {
        self.scaled(self.ack_timeout)
    }

    /// Block size actually used: the preferred size rounded down to a power of two in 16..=1024.
    pub fn block_size(&self) -> usize {
        block::szx_to_size(block::size_to_szx(self.preferred_block_size))
    }
}

/// Identifies a request this endpoint sent (client role).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// Identifies a request this endpoint received (server role), to answer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IncomingId(pub u64);

/// Identifies an observation this endpoint serves (server role).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObservationId(pub u64);

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub peer: SocketAddr,
    /// Encoded CoAP message.
    pub payload: alloc::vec::Vec<u8>,
}

/// How a Block2 response to a request is delivered to the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Block2Mode {
    /// Fetch every block and deliver one [`Event::Response`] with the whole body.
    #[default]
    Reassemble,
    /// Fetch every block but deliver each one as it arrives: [`Event::ResponseBlock`]
    /// for every block with `more` set, and [`Event::Response`] for the last.
    Stream,
}

/// Per-request options for [`Endpoint::send_request_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestOptions {
    /// Block2 delivery mode (only GET and FETCH fetch follow-up blocks).
    pub block2: Block2Mode,
    /// Start the Block2 transfer at this block number (resume); 0 = from the start.
    pub block2_start: u32,
    /// Block size to use for this request instead of [`Config::preferred_block_size`].
    pub block_size: Option<usize>,
}

/// Why an observation ended on the server side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    /// The client answered a notification with RST.
    Reset,
    /// The client sent GET with Observe=1.
    Deregistered,
    /// A CON notification was never acknowledged.
    TimedOut,
}

/// Why a separate response or a block transfer failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferError {
    /// Block2 blocks had different ETags (the resource changed mid-transfer).
    EtagMismatch,
    /// A block arrived with an unexpected number.
    UnexpectedBlock {
        /// Expected block number.
        expected: u32,
        /// Received block number.
        got: u32,
    },
    /// The reassembled body would exceed [`Config::max_body_size`].
    TooLarge {
        /// Size reached.
        size: usize,
        /// Configured limit.
        limit: usize,
    },
    /// A Block option could not be decoded.
    BadBlockOption(String),
    /// A follow-up message could not be encoded.
    Encode(String),
}

impl fmt::Display for TransferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransferError::EtagMismatch => write!(f, "ETag changed between blocks"),
            TransferError::UnexpectedBlock { expected, got } => {
                write!(f, "expected block {expected}, got block {got}")
            }
            TransferError::TooLarge { size, limit } => {
                write!(f, "body of {size} bytes exceeds the limit of {limit}")
            }
            TransferError::BadBlockOption(e) => write!(f, "bad block option: {e}"),
            TransferError::Encode(e) => write!(f, "cannot encode follow-up: {e}"),
        }
    }
}

/// Something the application must know about.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A new (deduplicated, reassembled) request; answer it with
    /// [`Endpoint::respond`] or [`Endpoint::respond_observe`].
    Request {
        /// Handle to answer with.
        id: IncomingId,
        /// Who sent it.
        peer: SocketAddr,
        /// The request; for Block1 uploads, the whole reassembled payload.
        request: Packet,
    },
    /// The final response to a request this endpoint sent (for Block2, the
    /// whole reassembled body unless [`Block2Mode::Stream`] was asked for).
    Response {
        /// The request it answers.
        id: RequestId,
        /// Who sent it.
        peer: SocketAddr,
        /// The response.
        response: Packet,
    },
    /// One block of a [`Block2Mode::Stream`] transfer (not the last one).
    ResponseBlock {
        /// The request it answers.
        id: RequestId,
        /// Who sent it.
        peer: SocketAddr,
        /// The Block2 value of this block.
        block: BlockValue,
        /// The response carrying this block.
        response: Packet,
    },
    /// A fresh notification for an established observation (RFC 7641);
    /// stale (reordered) ones are dropped and counted in [`Stats`].
    Notification {
        /// The Observe request.
        id: RequestId,
        /// Who sent it.
        peer: SocketAddr,
        /// The notification.
        response: Packet,
    },
    /// A CON request got no ACK after MAX_RETRANSMIT retransmissions, or no
    /// response arrived in time.
    RequestTimedOut {
        /// The request.
        id: RequestId,
    },
    /// The peer answered a request with RST.
    Reset {
        /// The request.
        id: RequestId,
    },
    /// A block-wise transfer failed.
    TransferFailed {
        /// The request.
        id: RequestId,
        /// What went wrong.
        error: TransferError,
    },
    /// A separate CON response was never acknowledged, or was answered with RST.
    ResponseFailed {
        /// The incoming request it answered.
        id: IncomingId,
        /// True if RST, false if timed out.
        reset: bool,
    },
    /// An observation this endpoint served has ended.
    ObservationCancelled {
        /// The observation.
        id: ObservationId,
        /// The observer.
        peer: SocketAddr,
        /// Why.
        reason: CancelReason,
    },
    /// A datagram that is not well-formed CoAP (a CON one was answered with RST).
    Malformed {
        /// Who sent it.
        peer: SocketAddr,
        /// What is wrong and where.
        error: FormatError,
    },
}

/// Why [`Endpoint::send_request`] refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The packet's code is not a request method.
    NotARequest(String),
    /// The packet's type is ACK or RST; requests are CON or NON.
    BadType(&'static str),
    /// The encoded message exceeds [`Config::max_message_size`] even after
    /// block-wise splitting.
    TooLarge {
        /// Encoded size.
        size: usize,
        /// Limit.
        limit: usize,
    },
    /// coap-lite could not encode the packet.
    Encode(String),
    /// The request is not in a state that allows this call.
    InvalidState(&'static str),
    /// This feature is not implemented.
    Unsupported(&'static str),
    /// No such request.
    UnknownRequest(RequestId),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::NotARequest(c) => write!(f, "code {c} is not a request method"),
            SendError::BadType(t) => write!(f, "a request cannot be sent as {t}"),
            SendError::TooLarge { size, limit } => {
                write!(f, "message of {size} bytes exceeds the limit of {limit}")
            }
            SendError::Encode(e) => write!(f, "cannot encode: {e}"),
            SendError::InvalidState(s) => write!(f, "invalid state: {s}"),
            SendError::Unsupported(s) => write!(f, "unsupported: {s}"),
            SendError::UnknownRequest(id) => write!(f, "unknown request {}", id.0),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for SendError {}

/// Why [`Endpoint::respond`] or [`Endpoint::notify`] refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RespondError {
    /// No pending incoming request with this id (already answered or expired).
    UnknownExchange(IncomingId),
    /// No observation with this id.
    UnknownObservation(ObservationId),
    /// The packet's code is not a response code.
    NotAResponse(String),
    /// `respond_observe` on a request without Observe=0, or with a non-2.xx code.
    NotObservable(&'static str),
    /// The encoded message exceeds [`Config::max_message_size`].
    TooLarge {
        /// Encoded size.
        size: usize,
        /// Limit.
        limit: usize,
    },
    /// coap-lite could not encode the packet.
    Encode(String),
}

impl fmt::Display for RespondError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RespondError::UnknownExchange(id) => write!(f, "no pending request {}", id.0),
            RespondError::UnknownObservation(id) => write!(f, "no observation {}", id.0),
            RespondError::NotAResponse(c) => write!(f, "code {c} is not a response code"),
            RespondError::NotObservable(why) => write!(f, "cannot accept observation: {why}"),
            RespondError::TooLarge { size, limit } => {
                write!(f, "message of {size} bytes exceeds the limit of {limit}")
            }
            RespondError::Encode(e) => write!(f, "cannot encode: {e}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for RespondError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_parameters_match_rfc7252_section_4_8_2() {
        let c = Config::default();
        assert_eq!(c.max_transmit_span(), Duration::from_secs(45));
        assert_eq!(c.max_transmit_wait(), Duration::from_secs(93));
        assert_eq!(c.max_rtt(), Duration::from_secs(202));
        assert_eq!(c.exchange_lifetime(), Duration::from_secs(247));
        assert_eq!(c.non_lifetime(), Duration::from_secs(145));
        let absurd = Config {
            ack_timeout: Duration::MAX,
            max_latency: Duration::MAX,
            ack_random_factor: f64::NAN,
            ..Config::default()
        };
        assert_eq!(absurd.exchange_lifetime(), Duration::MAX);
        assert_eq!(absurd.max_transmit_wait(), Duration::MAX);
        let scaled = Config {
            time_scale: 10,
            ..Config::default()
        };
        assert_eq!(
            scaled.scaled_exchange_lifetime(),
            Duration::from_millis(24_700)
        );
        assert_eq!(c.block_size(), 1024);
    }
}
