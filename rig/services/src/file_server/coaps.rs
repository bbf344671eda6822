//! CoAPS for the file server: a [`DatagramTransport`] that runs rig-dtls's
//! sans-IO [`rig_dtls::Server`] over an already bound UDP socket, so the
//! CoAP Block2 server of [`super::coap`] serves `coaps://` unchanged.
//!
//! Why not `rig_dtls::DtlsServerSocket`: it binds its own socket by address,
//! and a case on the simulated network must bind inside the services
//! namespace (`CaseNetwork::bind_udp`), which hands over a ready
//! `std::net::UdpSocket`. This adapter takes that socket.
//!
//! One task owns the socket and the DTLS state: it feeds received records to
//! the server, forwards decrypted datagrams to [`DtlsTransport::recv_from`],
//! encrypts what [`DtlsTransport::send_to`] hands it, and runs the handshake
//! timers. It also counts completed handshakes (per peer address), which the
//! FOTA interruption cases report as `fota.extra_handshakes`, and the
//! datagrams both ways split into session set-up (handshake, alerts) and
//! application data, which the floor case uses to keep the handshake out of
//! its ratio.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::FileServerError;
use super::coap::DatagramTransport;

const MAX_DATAGRAM: usize = 65_535;

enum Command {
    Send(SocketAddr, Vec<u8>, oneshot::Sender<io::Result<()>>),
}

/// What the DTLS side saw: completed handshakes and failures, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DtlsLog {
    /// Handshakes completed (full or resumed).
    pub handshakes: u64,
    /// Handshakes that failed or datagrams refused, as rig-dtls words them.
    pub failures: Vec<String>,
    /// Every event as text, in order.
    pub events: Vec<String>,
    /// Datagrams, both ways, whose first record is not application data
    /// (handshake, ChangeCipherSpec, alerts): the session's set-up cost.
    pub setup_datagrams: u64,
    /// UDP payload bytes of those datagrams.
    pub setup_bytes: u64,
    /// Datagrams, both ways, carrying application data (CoAP).
    pub data_datagrams: u64,
    /// UDP payload bytes of those datagrams.
    pub data_bytes: u64,
}

/// DTLS record content type of application data (RFC 6347 §4.1).
const APPLICATION_DATA: u8 = 23;

fn count(log: &Mutex<DtlsLog>, datagram: &[u8]) {
    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
    let n = datagram.len() as u64;
    if datagram.first() == Some(&APPLICATION_DATA) {
        log.data_datagrams += 1;
        log.data_bytes += n;
    } else {
        log.setup_datagrams += 1;
        log.setup_bytes += n;
    }
}

/// A DTLS server on one UDP socket, presented as a datagram transport of
/// plaintext. Dropping it stops its task.
#[derive(Debug)]
pub struct DtlsTransport {
    local: SocketAddr,
    plaintext: tokio::sync::Mutex<mpsc::Receiver<(SocketAddr, Vec<u8>)>>,
    commands: mpsc::Sender<Command>,
    log: Arc<Mutex<DtlsLog>>,
    task: JoinHandle<()>,
}

impl DtlsTransport {
    /// Serves DTLS with `config` on `socket` (a std socket, bound anywhere,
    /// e.g. inside a network namespace). Must be called inside a tokio runtime.
    pub fn from_std(
        socket: std::net::UdpSocket,
        config: rig_dtls::ServerConfig,
    ) -> Result<DtlsTransport, FileServerError> {
        let io_err = |context: &str| {
            let context = context.to_string();
            move |source| FileServerError::Io { context, source }
        };
        let local = socket
            .local_addr()
            .map_err(io_err("local address of the CoAPS file server"))?;
        socket
            .set_nonblocking(true)
            .map_err(io_err("non-blocking CoAPS socket"))?;
        let socket = UdpSocket::from_std(socket).map_err(io_err("CoAPS socket into tokio"))?;
        let server = rig_dtls::Server::new(config)
            .map_err(|e| FileServerError::Tls(format!("DTLS server configuration: {e}")))?;
        let (plain_tx, plain_rx) = mpsc::channel(1024);
        let (cmd_tx, cmd_rx) = mpsc::channel(1024);
        let log = Arc::new(Mutex::new(DtlsLog::default()));
        let task = tokio::spawn(serve(socket, server, plain_tx, cmd_rx, log.clone()));
        Ok(DtlsTransport {
            local,
            plaintext: tokio::sync::Mutex::new(plain_rx),
            commands: cmd_tx,
            log,
            task,
        })
    }

    /// A handle on the DTLS log (shared, live).
    pub fn log_handle(&self) -> Arc<Mutex<DtlsLog>> {
        self.log.clone()
    }
}

impl Drop for DtlsTransport {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn stopped() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "DTLS server task stopped")
}

#[async_trait::async_trait]
impl DatagramTransport for DtlsTransport {
    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let (peer, data) = self
            .plaintext
            .lock()
            .await
            .recv()
            .await
            .ok_or_else(stopped)?;
        let n = data.len().min(buf.len());
        buf[..n].copy_from_slice(&data[..n]);
        Ok((n, peer))
    }

    async fn send_to(&self, buf: &[u8], peer: SocketAddr) -> io::Result<usize> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Send(peer, buf.to_vec(), tx))
            .await
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())??;
        Ok(buf.len())
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    fn scheme(&self) -> &'static str {
        "coaps"
    }
}

fn note(log: &Mutex<DtlsLog>, event: &rig_dtls::ServerEvent) {
    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
    match event {
        rig_dtls::ServerEvent::Established { .. } => log.handshakes += 1,
        rig_dtls::ServerEvent::Failed(_) | rig_dtls::ServerEvent::Rejected { .. } => {
            log.failures.push(event.to_string());
        }
        _ => {}
    }
    // Bounded: a flood of refused datagrams must not grow without end.
    if log.events.len() < 10_000 {
        log.events.push(event.to_string());
    }
}

async fn serve(
    socket: UdpSocket,
    mut server: rig_dtls::Server,
    plain_tx: mpsc::Sender<(SocketAddr, Vec<u8>)>,
    mut cmd_rx: mpsc::Receiver<Command>,
    log: Arc<Mutex<DtlsLog>>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        while let Some((peer, d)) = server.poll_transmit() {
            // A failed UDP send is like a lost datagram: the peer retransmits.
            if socket.send_to(&d, peer).await.is_ok() {
                count(&log, &d);
            }
        }
        while let Some(p) = server.poll_plaintext() {
            if plain_tx.send(p).await.is_err() {
                return;
            }
        }
        while let Some(e) = server.poll_event() {
            note(&log, &e);
        }
        let deadline = server
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                if let Ok((n, peer)) = r {
                    count(&log, &buf[..n]);
                    server.handle_datagram(peer, &buf[..n], Instant::now());
                }
            }
            cmd = cmd_rx.recv() => match cmd {
                Some(Command::Send(peer, data, reply)) => {
                    let r = server
                        .send(peer, &data)
                        .map_err(|e| io::Error::new(io::ErrorKind::NotConnected, e.to_string()));
                    let _ = reply.send(r);
                }
                None => return,
            },
            () = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => {
                server.handle_timeout(Instant::now());
            }
        }
    }
}
