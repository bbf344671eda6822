//! The server's socket task: a thin driver and nothing more.
//!
//! It owns the UDP socket and the [`ServerCore`], and loops: wait for a
//! datagram, an operation request, the core's next deadline or shutdown →
//! hand it to the core with the current time → send everything the core wants
//! sent. It takes no protocol decision.

use std::time::Duration;

use std::net::SocketAddr;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::OpRequest;
use super::core::ServerCore;

/// The largest datagram the server accepts (CoAP over UDP, no IP fragmentation
/// assumed, but a generous buffer so oversize input is seen, not truncated).
const MAX_DATAGRAM: usize = 65_535;

/// The datagram transport under the CoAP endpoint: plain UDP (`coap://`) or
/// DTLS (`coaps://`). The core never learns which one it is, except for the
/// authenticated identity the DTLS layer reports per peer.
pub(super) enum Transport {
    /// NoSec.
    Udp(UdpSocket),
    /// DTLS 1.2 (rig-dtls): plaintext datagrams per peer, plus handshake events.
    Dtls(rig_dtls::DtlsServerSocket),
}

impl Transport {
    async fn send_to(&self, bytes: &[u8], peer: SocketAddr) {
        // A send error is a peer problem (ICMP unreachable, no session): the
        // core's retransmission handles it.
        match self {
            Transport::Udp(s) => {
                let _ = s.send_to(bytes, peer).await;
            }
            Transport::Dtls(s) => {
                let _ = s.send_to(bytes, peer).await;
            }
        }
    }

    async fn recv_from(&self, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
        match self {
            Transport::Udp(s) => s.recv_from(buf).await.ok(),
            Transport::Dtls(s) => s.recv_from(buf).await.ok(),
        }
    }

    fn try_event(&self) -> Option<rig_dtls::ServerEvent> {
        match self {
            Transport::Udp(_) => None,
            Transport::Dtls(s) => s.try_event(),
        }
    }

    async fn next_event(&self) -> Option<rig_dtls::ServerEvent> {
        match self {
            Transport::Udp(_) => std::future::pending().await,
            Transport::Dtls(s) => s.next_event().await,
        }
    }
}

/// Runs until shutdown fires or every handle is gone.
pub(super) async fn run(
    socket: Transport,
    mut core: ServerCore,
    mut ops: mpsc::Receiver<OpRequest>,
    mut shutdown: watch::Receiver<bool>,
) {
    let epoch = Instant::now();
    core.set_epoch(epoch);
    let now = move || rig_proto::time::Instant::from_micros(epoch.elapsed().as_micros() as u64);
    let to_tokio = move |t: rig_proto::time::Instant| epoch + Duration::from_micros(t.as_micros());
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut ops_open = true;
    loop {
        // Send everything pending before sleeping.
        while let Some((peer, bytes)) = core.poll_transmit() {
            socket.send_to(&bytes, peer).await;
        }
        let deadline = core.poll_timeout().map(to_tokio);
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
            received = socket.recv_from(&mut buf) => {
                match received {
                    Some((n, peer)) => {
                        // A session's Established event is queued before its
                        // first plaintext: apply it first, so the Register
                        // is checked against the authenticated identity.
                        while let Some(event) = socket.try_event() {
                            core.handle_dtls_event(event);
                        }
                        core.handle_datagram(now(), peer, &buf[..n]);
                    }
                    // Linux reports ICMP port unreachable of an earlier send
                    // as an error on the next receive; nothing to do.
                    None => continue,
                }
            }
            event = socket.next_event() => {
                if let Some(event) = event {
                    core.handle_dtls_event(event);
                }
            }
            op = ops.recv(), if ops_open => {
                match op {
                    Some(op) => core.handle_op(now(), op),
                    None => ops_open = false,
                }
            }
            _ = sleep_until(deadline) => core.handle_timeout(now()),
        }
    }
    core.shutdown();
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
