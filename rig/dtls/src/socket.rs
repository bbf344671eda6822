//! tokio adapters: [`DtlsServerSocket`] and [`DtlsClientSocket`] look like datagram sockets of
//! plaintext (`recv_from` / `send_to`), so the LwM2M server and the agent can swap a plain
//! `UdpSocket` for a secured one. A background task owns the UDP socket and the sans-IO state,
//! and runs the timers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::config::{ClientContext, ServerConfig};
use crate::error::DtlsError;
use crate::server::{Server, ServerEvent};
use crate::session::{PeerIdentity, Session, SessionState};
use crate::suite::CipherSuite;

const CHANNEL: usize = 1024;
const MAX_DATAGRAM: usize = 65_535;

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> DtlsError {
    let context = context.into();
    move |e| DtlsError::Io {
        context,
        message: e.to_string(),
    }
}

fn sleep_until(deadline: Option<Instant>) -> tokio::time::Sleep {
    let far = Instant::now() + std::time::Duration::from_secs(3600);
    tokio::time::sleep_until(tokio::time::Instant::from_std(deadline.unwrap_or(far)))
}

enum Command {
    Send(SocketAddr, Vec<u8>, oneshot::Sender<Result<(), DtlsError>>),
    Close(SocketAddr),
}

/// A DTLS server on one UDP socket that reads and writes plaintext datagrams per peer.
#[derive(Debug)]
pub struct DtlsServerSocket {
    local: SocketAddr,
    plaintext: Mutex<mpsc::Receiver<(SocketAddr, Vec<u8>)>>,
    events: Mutex<mpsc::UnboundedReceiver<ServerEvent>>,
    commands: mpsc::Sender<Command>,
    task: JoinHandle<()>,
}

impl DtlsServerSocket {
    /// Binds `addr` and serves DTLS there.
    pub async fn bind(addr: SocketAddr, config: ServerConfig) -> Result<Self, DtlsError> {
        let server = Server::new(config)?;
        let socket = UdpSocket::bind(addr)
            .await
            .map_err(io_err(format!("bind {addr}")))?;
        let local = socket.local_addr().map_err(io_err("local address"))?;
        let (plain_tx, plain_rx) = mpsc::channel(CHANNEL);
        let (event_tx, event_rx) = mpsc::unbounded_channel();
        let (cmd_tx, cmd_rx) = mpsc::channel(CHANNEL);
        let task = tokio::spawn(serve(socket, server, plain_tx, event_tx, cmd_rx));
        Ok(Self {
            local,
            plaintext: Mutex::new(plain_rx),
            events: Mutex::new(event_rx),
            commands: cmd_tx,
            task,
        })
    }

    /// Serves DTLS on a socket bound elsewhere (e.g. inside a network
    /// namespace, on a fixed port). Must be called inside a tokio runtime.
    pub fn from_std(socket: std::net::UdpSocket, config: ServerConfig) -> Result<Self, DtlsError> {
        let server = Server::new(config)?;
        socket
            .set_nonblocking(true)
            .map_err(io_err("set_nonblocking"))?;
        let socket = UdpSocket::from_std(socket).map_err(io_err("from_std"))?;
        let local = socket.local_addr().map_err(io_err("local address"))?;
        let (plain_tx, plain_rx) = mpsc::channel(CHANNEL);
        let (event_tx, event_rx) = mpsc::unbounded_channel();
        let (cmd_tx, cmd_rx) = mpsc::channel(CHANNEL);
        let task = tokio::spawn(serve(socket, server, plain_tx, event_tx, cmd_rx));
        Ok(Self {
            local,
            plaintext: Mutex::new(plain_rx),
            events: Mutex::new(event_rx),
            commands: cmd_tx,
            task,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Receives the next decrypted datagram and its peer (truncated to `buf`).
    pub async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), DtlsError> {
        let (peer, data) =
            self.plaintext
                .lock()
                .await
                .recv()
                .await
                .ok_or_else(|| DtlsError::Io {
                    context: format!("DTLS server on {}", self.local),
                    message: "server task stopped".into(),
                })?;
        let n = data.len().min(buf.len());
        buf[..n].copy_from_slice(&data[..n]);
        Ok((n, peer))
    }

    /// Encrypts and sends a datagram to a peer with a session.
    pub async fn send_to(&self, buf: &[u8], peer: SocketAddr) -> Result<usize, DtlsError> {
        let (tx, rx) = oneshot::channel();
        let stopped = || DtlsError::Io {
            context: "DTLS server".into(),
            message: "server task stopped".into(),
        };
        self.commands
            .send(Command::Send(peer, buf.to_vec(), tx))
            .await
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())??;
        Ok(buf.len())
    }

    /// Closes a peer's session (close_notify).
    pub async fn close_peer(&self, peer: SocketAddr) {
        let _ = self.commands.send(Command::Close(peer)).await;
    }

    /// Waits for the next event (handshake done or failed, rejection, close, expiry).
    pub async fn next_event(&self) -> Option<ServerEvent> {
        self.events.lock().await.recv().await
    }

    /// The next event if one is waiting.
    pub fn try_event(&self) -> Option<ServerEvent> {
        self.events.try_lock().ok()?.try_recv().ok()
    }
}

impl Drop for DtlsServerSocket {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    socket: UdpSocket,
    mut server: Server,
    plain_tx: mpsc::Sender<(SocketAddr, Vec<u8>)>,
    event_tx: mpsc::UnboundedSender<ServerEvent>,
    mut cmd_rx: mpsc::Receiver<Command>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        while let Some((peer, d)) = server.poll_transmit() {
            let _ = socket.send_to(&d, peer).await;
        }
        while let Some(p) = server.poll_plaintext() {
            if plain_tx.send(p).await.is_err() {
                return;
            }
        }
        while let Some(e) = server.poll_event() {
            let _ = event_tx.send(e);
        }
        let timer = sleep_until(server.poll_timeout());
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                if let Ok((n, peer)) = r {
                    server.handle_datagram(peer, &buf[..n], Instant::now());
                }
            }
            cmd = cmd_rx.recv() => match cmd {
                Some(Command::Send(peer, data, reply)) => {
                    let _ = reply.send(server.send(peer, &data));
                }
                Some(Command::Close(peer)) => server.close(peer),
                None => return,
            },
            () = timer => server.handle_timeout(Instant::now()),
        }
    }
}

/// A DTLS client connected to one server, reading and writing plaintext datagrams.
#[derive(Debug)]
pub struct DtlsClientSocket {
    local: SocketAddr,
    peer: SocketAddr,
    plaintext: Mutex<mpsc::Receiver<Vec<u8>>>,
    commands: mpsc::Sender<Command>,
    cipher_suite: Option<CipherSuite>,
    resumed: bool,
    identity: Option<PeerIdentity>,
    task: JoinHandle<()>,
}

impl DtlsClientSocket {
    /// Binds `bind`, runs the handshake with `server` (bounded by the configured handshake
    /// timeout) and returns once keys are agreed.
    pub async fn connect(
        bind: SocketAddr,
        server: SocketAddr,
        ctx: Arc<ClientContext>,
    ) -> Result<Self, DtlsError> {
        let socket = UdpSocket::bind(bind)
            .await
            .map_err(io_err(format!("bind {bind}")))?;
        socket
            .connect(server)
            .await
            .map_err(io_err(format!("connect {server}")))?;
        let local = socket.local_addr().map_err(io_err("local address"))?;
        let mut session = Session::client(&ctx, server, Instant::now())?;
        let mut buf = vec![0u8; MAX_DATAGRAM];
        while session.state() == SessionState::Handshaking {
            while let Some(d) = session.poll_transmit() {
                let _ = socket.send(&d).await;
            }
            let timer = sleep_until(session.poll_timeout());
            tokio::select! {
                r = socket.recv(&mut buf) => {
                    if let Ok(n) = r {
                        let _ = session.handle_datagram(&buf[..n], Instant::now());
                    }
                }
                () = timer => { let _ = session.handle_timeout(Instant::now()); }
            }
        }
        while let Some(d) = session.poll_transmit() {
            let _ = socket.send(&d).await;
        }
        if let Some(f) = session.failure() {
            return Err(f.clone().into());
        }
        if session.state() != SessionState::Established {
            return Err(DtlsError::Closed { peer: server });
        }
        let (plain_tx, plain_rx) = mpsc::channel(CHANNEL);
        let (cmd_tx, cmd_rx) = mpsc::channel(CHANNEL);
        let cipher_suite = session.cipher_suite();
        let resumed = session.resumed();
        let identity = session.peer_identity().cloned();
        let task = tokio::spawn(run_client(socket, session, plain_tx, cmd_rx));
        Ok(Self {
            local,
            peer: server,
            plaintext: Mutex::new(plain_rx),
            commands: cmd_tx,
            cipher_suite,
            resumed,
            identity,
            task,
        })
    }

    /// Encrypts and sends one datagram.
    pub async fn send(&self, buf: &[u8]) -> Result<usize, DtlsError> {
        let (tx, rx) = oneshot::channel();
        let stopped = || DtlsError::Closed { peer: self.peer };
        self.commands
            .send(Command::Send(self.peer, buf.to_vec(), tx))
            .await
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())??;
        Ok(buf.len())
    }

    /// Receives one decrypted datagram (truncated to `buf`).
    pub async fn recv(&self, buf: &mut [u8]) -> Result<usize, DtlsError> {
        let data = self
            .plaintext
            .lock()
            .await
            .recv()
            .await
            .ok_or(DtlsError::Closed { peer: self.peer })?;
        let n = data.len().min(buf.len());
        buf[..n].copy_from_slice(&data[..n]);
        Ok(n)
    }

    /// Like [`DtlsClientSocket::send`]; `peer` must be the server.
    pub async fn send_to(&self, buf: &[u8], peer: SocketAddr) -> Result<usize, DtlsError> {
        if peer != self.peer {
            return Err(DtlsError::Config(format!(
                "this DTLS client is connected to {}, not {peer}",
                self.peer
            )));
        }
        self.send(buf).await
    }

    /// Like [`DtlsClientSocket::recv`], with the server's address.
    pub async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), DtlsError> {
        Ok((self.recv(buf).await?, self.peer))
    }

    /// Sends close_notify and stops.
    pub async fn close(&self) {
        let _ = self.commands.send(Command::Close(self.peer)).await;
    }

    /// Our address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The server's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The negotiated suite.
    pub fn cipher_suite(&self) -> Option<CipherSuite> {
        self.cipher_suite
    }

    /// Whether the handshake resumed an earlier session.
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// What the server proved (certificate or raw public key).
    pub fn peer_identity(&self) -> Option<&PeerIdentity> {
        self.identity.as_ref()
    }
}

impl Drop for DtlsClientSocket {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run_client(
    socket: UdpSocket,
    mut session: Session,
    plain_tx: mpsc::Sender<Vec<u8>>,
    mut cmd_rx: mpsc::Receiver<Command>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        while let Some(d) = session.poll_transmit() {
            let _ = socket.send(&d).await;
        }
        while let Some(p) = session.poll_plaintext() {
            if plain_tx.send(p).await.is_err() {
                return;
            }
        }
        if session.state() != SessionState::Established {
            return;
        }
        tokio::select! {
            r = socket.recv(&mut buf) => {
                if let Ok(n) = r {
                    let _ = session.handle_datagram(&buf[..n], Instant::now());
                }
            }
            cmd = cmd_rx.recv() => match cmd {
                Some(Command::Send(_, data, reply)) => { let _ = reply.send(session.send(&data)); }
                Some(Command::Close(_)) | None => {
                    session.close();
                    while let Some(d) = session.poll_transmit() {
                        let _ = socket.send(&d).await;
                    }
                    return;
                }
            },
        }
    }
}
