//! The only module that talks to the kernel directly: `AF_PACKET` raw
//! sockets, `ppoll`, the ethtool ioctl that turns offloads off, entering a
//! network namespace in a child (`pre_exec`) and reading our capabilities.
//!
//! `unsafe` is allowed here, and only here, because these are FFI calls
//! with C structs (`sockaddr_ll`, `ifreq`, `ethtool_value`, `tpacket_stats`)
//! that neither `nix` 0.32 nor `libc` wraps safely. Each block says what it
//! relies on.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::sched::CloneFlags;

use crate::error::NetError;

const ETH_P_ALL: u16 = 0x0003;
const SOL_PACKET: libc::c_int = 263;
const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
const PACKET_STATISTICS: libc::c_int = 6;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const PACKET_MR_PROMISC: libc::c_ushort = 1;
const PACKET_OUTGOING: u8 = 4;
const SIOCETHTOOL: libc::c_ulong = 0x8946;
// Legacy ethtool "set one feature" commands (include/uapi/linux/ethtool.h).
const ETHTOOL_SRXCSUM: u32 = 0x15;
const ETHTOOL_STXCSUM: u32 = 0x17;
const ETHTOOL_SSG: u32 = 0x19;
const ETHTOOL_STSO: u32 = 0x1f;
const ETHTOOL_SGSO: u32 = 0x24;
const ETHTOOL_SGRO: u32 = 0x2c;

fn sys_err(what: impl Into<String>) -> impl FnOnce(Errno) -> NetError {
    let what = what.into();
    move |source| NetError::Sys { what, source }
}

/// Opens a namespace file (`/var/run/netns/<name>`) for `setns`.
pub(crate) fn open_netns(path: &Path) -> Result<OwnedFd, NetError> {
    let f = std::fs::File::open(path).map_err(|source| NetError::Io {
        what: format!("opening network namespace {}", path.display()),
        source,
    })?;
    Ok(OwnedFd::from(f))
}

/// Moves the calling thread into the network namespace `fd`.
pub(crate) fn setns_net(fd: &OwnedFd, name: &str) -> Result<(), NetError> {
    nix::sched::setns(fd, CloneFlags::CLONE_NEWNET)
        .map_err(sys_err(format!("entering network namespace {name}")))
}

/// Makes `cmd` enter the network namespace `fd` between fork and exec.
pub(crate) fn pre_exec_setns(cmd: &mut Command, fd: Arc<OwnedFd>) {
    let raw = fd.as_raw_fd();
    // SAFETY: the closure runs in the forked child before exec and only
    // calls setns(2), which is async-signal-safe. `fd` is kept alive by the
    // Arc moved into the closure, which the Command owns until it is dropped.
    unsafe {
        cmd.pre_exec(move || {
            let _keep = &fd;
            if libc::setns(raw, libc::CLONE_NEWNET) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

/// Effective capabilities of this process (the `CapEff` mask).
pub(crate) fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// Turns off checksum offload, scatter-gather, TSO, GSO and GRO on
/// `iface` in the calling thread's namespace, so every frame on the wire
/// is at most MTU + 14 bytes and carries real checksums.
pub(crate) fn disable_offloads(iface: &str) -> Result<(), NetError> {
    let what = || format!("turning offloads off on {iface}");
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(sys_err(what()))?;
    for cmd in [
        ETHTOOL_STSO,
        ETHTOOL_SGSO,
        ETHTOOL_SGRO,
        ETHTOOL_SSG,
        ETHTOOL_STXCSUM,
        ETHTOOL_SRXCSUM,
    ] {
        #[repr(C)]
        struct EthtoolValue {
            cmd: u32,
            data: u32,
        }
        #[repr(C)]
        struct IfreqData {
            name: [u8; 16],
            data: *mut libc::c_void,
            pad: [u8; 16],
        }
        let mut val = EthtoolValue { cmd, data: 0 };
        let mut req = IfreqData {
            name: [0; 16],
            data: (&raw mut val).cast(),
            pad: [0; 16],
        };
        let n = iface.len().min(15);
        req.name[..n].copy_from_slice(&iface.as_bytes()[..n]);
        // SAFETY: SIOCETHTOOL reads `struct ifreq` (name + pointer in the
        // union, 40 bytes on LP64, matched by IfreqData) and the
        // `ethtool_value` it points to; both live until the call returns.
        let r = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL as _, &raw mut req) };
        if r < 0 {
            let e = Errno::last();
            // Some features cannot be changed on some drivers; that is fine
            // as long as the result is "off or absent".
            if e != Errno::EOPNOTSUPP && e != Errno::EINVAL {
                return Err(NetError::Sys {
                    what: format!("{} (ethtool cmd {cmd:#x})", what()),
                    source: e,
                });
            }
        }
    }
    Ok(())
}

/// A raw `AF_PACKET` socket bound to one interface, receiving every frame
/// that arrives on it (not the ones it sends), non-blocking.
#[derive(Debug)]
pub(crate) struct PacketSocket {
    fd: OwnedFd,
    iface: String,
}

impl PacketSocket {
    /// Opens and binds the socket in the calling thread's namespace.
    pub(crate) fn open(iface: &str) -> Result<Self, NetError> {
        let what = |s: &str| format!("packet socket on {iface}: {s}");
        let name = CString::new(iface).map_err(|_| NetError::Sys {
            what: what("interface name has a NUL byte"),
            source: Errno::EINVAL,
        })?;
        // SAFETY: plain C calls with valid arguments; the returned fd is
        // checked and immediately owned.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if index == 0 {
            return Err(NetError::Sys {
                what: what("no such interface"),
                source: Errno::last(),
            });
        }
        // SAFETY: see above.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                i32::from(ETH_P_ALL.to_be()),
            )
        };
        if raw < 0 {
            let e = Errno::last();
            return Err(NetError::Sys {
                what: what(if e == Errno::EPERM {
                    "socket(AF_PACKET) needs CAP_NET_RAW"
                } else {
                    "socket(AF_PACKET)"
                }),
                source: e,
            });
        }
        // SAFETY: `raw` is a fresh, valid descriptor that nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let one: libc::c_int = 1;
        // Best effort: older kernels lack it, and we also filter on pkttype.
        setsockopt(&fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one).ok();
        let buf: libc::c_int = 8 * 1024 * 1024;
        if setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &buf).is_err() {
            setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &buf).ok();
        }
        if setsockopt(&fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &buf).is_err() {
            setsockopt(&fd, libc::SOL_SOCKET, libc::SO_SNDBUF, &buf).ok();
        }
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_ALL.to_be();
        sll.sll_ifindex = index as i32;
        // SAFETY: bind reads `size_of::<sockaddr_ll>()` bytes from `sll`.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const sll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if r < 0 {
            return Err(NetError::Sys {
                what: what("bind"),
                source: Errno::last(),
            });
        }
        #[repr(C)]
        struct PacketMreq {
            ifindex: libc::c_int,
            kind: libc::c_ushort,
            alen: libc::c_ushort,
            address: [u8; 8],
        }
        let mreq = PacketMreq {
            ifindex: index as i32,
            kind: PACKET_MR_PROMISC,
            alen: 0,
            address: [0; 8],
        };
        setsockopt(&fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mreq)
            .map_err(sys_err(what("promiscuous mode")))?;
        // Drain whatever queued between socket() and bind() (other
        // interfaces' frames can land there).
        let mut scratch = [0u8; 2048];
        while let Ok(Some(_)) = Self::recv_raw(&fd, &mut scratch) {}
        Ok(Self {
            fd,
            iface: iface.to_owned(),
        })
    }

    fn recv_raw(fd: &OwnedFd, buf: &mut [u8]) -> Result<Option<(usize, bool)>, Errno> {
        // SAFETY: as in open().
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: recvfrom writes at most buf.len() bytes into buf and at
        // most `len` bytes into sll.
        let n = unsafe {
            libc::recvfrom(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_TRUNC,
                (&raw mut sll).cast(),
                &mut len,
            )
        };
        if n < 0 {
            let e = Errno::last();
            return if e == Errno::EAGAIN || e == Errno::EINTR {
                Ok(None)
            } else {
                Err(e)
            };
        }
        Ok(Some((n as usize, sll.sll_pkttype == PACKET_OUTGOING)))
    }

    /// Receives one incoming frame into `buf`. `Ok(None)`: nothing queued.
    /// A frame longer than `buf` is reported with its true length, so the
    /// caller can see it was cut (`n > buf.len()`).
    pub(crate) fn recv(&self, buf: &mut [u8]) -> Result<Option<usize>, NetError> {
        loop {
            match Self::recv_raw(&self.fd, buf) {
                Ok(Some((_, true))) => continue,
                Ok(Some((n, false))) => return Ok(Some(n)),
                Ok(None) => return Ok(None),
                Err(e) => return Err(sys_err(format!("receiving on {}", self.iface))(e)),
            }
        }
    }

    /// Sends one frame out of the interface. Retries a few times when the
    /// queue is momentarily full; returns false if it still could not.
    pub(crate) fn send(&self, frame: &[u8]) -> Result<bool, NetError> {
        for attempt in 0..200 {
            // SAFETY: send reads frame.len() bytes from frame.
            let n =
                unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
            if n >= 0 {
                return Ok(true);
            }
            match Errno::last() {
                Errno::EAGAIN | Errno::ENOBUFS | Errno::EINTR => {
                    if attempt > 10 {
                        std::thread::sleep(Duration::from_micros(50));
                    }
                }
                e => return Err(sys_err(format!("sending on {}", self.iface))(e)),
            }
        }
        Ok(false)
    }

    /// Kernel counters (frames received, frames dropped for lack of buffer)
    /// since the last call.
    pub(crate) fn stats(&self) -> (u32, u32) {
        let mut st = [0u32; 2];
        let mut len = std::mem::size_of_val(&st) as libc::socklen_t;
        // SAFETY: PACKET_STATISTICS writes a `struct tpacket_stats` (two
        // u32) into `st`, bounded by `len`.
        let r = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                SOL_PACKET,
                PACKET_STATISTICS,
                st.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if r < 0 { (0, 0) } else { (st[0], st[1]) }
    }

    /// The raw descriptor, for polling.
    pub(crate) fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

fn setsockopt<T>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    val: &T,
) -> Result<(), Errno> {
    // SAFETY: the kernel reads size_of::<T>() bytes from `val`.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (val as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// Waits until one of `fds` is readable or `timeout` passes, with
/// nanosecond resolution (unlike poll(2)'s milliseconds). Returns which
/// descriptors are readable.
pub(crate) fn ppoll_readable(fds: &[RawFd], timeout: Duration) -> Result<Vec<bool>, NetError> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: ppoll reads and writes `pfds.len()` pollfd entries and reads
    // `ts`; a null sigmask leaves the mask unchanged.
    let r = unsafe {
        libc::ppoll(
            pfds.as_mut_ptr(),
            pfds.len() as libc::nfds_t,
            &ts,
            std::ptr::null(),
        )
    };
    if r < 0 {
        let e = Errno::last();
        if e == Errno::EINTR {
            return Ok(vec![false; fds.len()]);
        }
        return Err(sys_err("ppoll in the bridge")(e));
    }
    Ok(pfds
        .iter()
        .map(|p| p.revents & (libc::POLLIN | libc::POLLERR) != 0)
        .collect())
}
