//! The simulated bench: three network namespaces per run.
//!
//! ```text
//!   rig-<pid>-<tag>-dut          rig-<pid>-<tag>-br            rig-<pid>-<tag>-svc
//!   eth0 10.77.0.2/24  <-veth->  dut  [rig bridge]  svc  <-veth->  eth0 10.77.0.1/24
//! ```
//!
//! The middle namespace holds the two host-side veth ends, with no
//! addresses and IPv6 off, so the kernel never sends anything on them; the
//! rig process opens `AF_PACKET` sockets there and moves every frame (see
//! [`crate::bridge`]). Namespaces isolate everything, so the addresses and
//! interface names are the same in every run and two runs still coexist;
//! only the namespace names differ. They carry the owner's PID, which is
//! how [`cleanup_stale`] knows a crashed run's leftovers. Deleting a
//! namespace deletes its veth ends, and so their peers.
//!
//! Offloads (checksum, SG, TSO, GSO, GRO) are off on all four ends, so
//! every frame is at most 1514 bytes and carries real checksums; IPv6 is
//! off in all three namespaces, so no router/neighbour solicitations.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crate::bridge::{Bridge, BridgeConfig};
use crate::error::NetError;
use crate::sys;

/// Prefix of every namespace we create.
pub const PREFIX: &str = "rig-";
const NETNS_DIR: &str = "/var/run/netns";
/// MAC of the DUT's interface (locally administered: 02:"rig":00:02).
pub const DUT_MAC: [u8; 6] = [0x02, 0x72, 0x69, 0x67, 0x00, 0x02];
/// MAC of the services' interface.
pub const SERVICES_MAC: [u8; 6] = [0x02, 0x72, 0x69, 0x67, 0x00, 0x01];
/// The DUT's address.
pub const DUT_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
/// The services' address.
pub const SERVICES_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// Prefix length of the link.
pub const PREFIX_LEN: u8 = 24;
/// MTU of the link.
pub const MTU: u32 = 1500;
/// Name of the interface inside the DUT and services namespaces.
pub const IFACE: &str = "eth0";

const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;
const CAP_SYS_ADMIN: u32 = 21;

/// Checks that this process may build namespaces; the error names what
/// is missing and how to grant it.
pub fn check_capabilities() -> Result<(), NetError> {
    check_capability_mask(sys::effective_caps())
}

fn check_capability_mask(caps: u64) -> Result<(), NetError> {
    let missing: Vec<&str> = [
        (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
        (CAP_NET_RAW, "CAP_NET_RAW"),
        (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
    ]
    .iter()
    .filter(|(bit, _)| caps & (1u64 << bit) == 0)
    .map(|(_, n)| *n)
    .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(NetError::MissingCapability {
            missing: missing.join(", "),
        })
    }
}

fn mac_str(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Runs `ip` with `args`; the error carries the command line and stderr.
pub(crate) fn ip(args: &[&str]) -> Result<(), NetError> {
    let line = format!("ip {}", args.join(" "));
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| NetError::Command {
            command: line.clone(),
            status: format!("could not run `ip` (install iproute2): {e}"),
            stderr: String::new(),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetError::Command {
            command: line,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// One named network namespace of the simulated bench.
#[derive(Debug, Clone)]
pub struct Namespace {
    name: String,
    addr: Option<Ipv4Addr>,
    mac: Option<[u8; 6]>,
}

impl Namespace {
    /// The namespace name (as `ip netns` lists it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's address on the link (none for the bridge namespace).
    pub fn addr(&self) -> Option<Ipv4Addr> {
        self.addr
    }

    /// The MAC address of its interface.
    pub fn mac(&self) -> Option<[u8; 6]> {
        self.mac
    }

    /// The interface name inside the namespace (`eth0`).
    pub fn interface(&self) -> &'static str {
        IFACE
    }

    /// The namespace file (`/var/run/netns/<name>`).
    pub fn path(&self) -> PathBuf {
        PathBuf::from(NETNS_DIR).join(&self.name)
    }

    fn open(&self) -> Result<OwnedFd, NetError> {
        sys::open_netns(&self.path())
    }

    /// Makes `cmd` run inside this namespace (by `setns` in the child
    /// before exec). Works for `tokio::process::Command` too: build the
    /// `std` one, call this, then `tokio::process::Command::from(cmd)`.
    pub fn enter(&self, cmd: &mut Command) -> Result<(), NetError> {
        let fd = Arc::new(self.open()?);
        sys::pre_exec_setns(cmd, fd);
        Ok(())
    }

    /// A `Command` for `program` that runs inside this namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Result<Command, NetError> {
        let mut cmd = Command::new(program);
        self.enter(&mut cmd)?;
        Ok(cmd)
    }

    /// Runs `f` on a thread that has entered this namespace, and returns
    /// its result. Sockets created in `f` stay in this namespace for their
    /// whole life, wherever they are used afterwards.
    pub fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> Result<R, NetError> {
        let fd = self.open()?;
        let name = self.name.as_str();
        std::thread::scope(|s| {
            s.spawn(move || {
                sys::setns_net(&fd, name)?;
                Ok(f())
            })
            .join()
            .map_err(|_| NetError::BridgeGone(format!("thread in namespace {name} panicked")))?
        })
    }

    /// Binds a UDP socket inside this namespace.
    pub fn bind_udp(&self, addr: SocketAddr) -> Result<UdpSocket, NetError> {
        let what = format!("binding UDP {addr} in {}", self.name);
        self.run(|| UdpSocket::bind(addr))?
            .map_err(|source| NetError::Io { what, source })
    }

    /// Binds a TCP listener inside this namespace.
    pub fn bind_tcp(&self, addr: SocketAddr) -> Result<TcpListener, NetError> {
        let what = format!("binding TCP {addr} in {}", self.name);
        self.run(|| TcpListener::bind(addr))?
            .map_err(|source| NetError::Io { what, source })
    }

    /// Opens a TCP connection from inside this namespace.
    pub fn connect_tcp(&self, addr: SocketAddr, timeout: Duration) -> Result<TcpStream, NetError> {
        let what = format!("connecting TCP to {addr} from {}", self.name);
        self.run(|| TcpStream::connect_timeout(&addr, timeout))?
            .map_err(|source| NetError::Io { what, source })
    }

    fn sysctl(&self, key: &str, value: &str) -> Result<(), NetError> {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        let what = format!("setting {key}={value} in {}", self.name);
        self.run(|| std::fs::write(&path, value))?
            .map_err(|source| NetError::Io { what, source })
    }
}

/// The simulated network of one run. Dropping it tears it down.
#[derive(Debug)]
pub struct SimNetwork {
    tag: String,
    dut: Namespace,
    services: Namespace,
    bridge: Namespace,
    alive: bool,
}

fn short_tag(run_id: &str) -> String {
    let t: String = run_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let t = if t.len() > 12 {
        &t[t.len() - 12..]
    } else {
        &t[..]
    };
    if t.is_empty() {
        "run".into()
    } else {
        t.to_owned()
    }
}

impl SimNetwork {
    /// Builds the namespaces, veths, addresses and routes for `run_id`
    /// (removing leftovers of crashed runs first). Needs CAP_NET_ADMIN,
    /// CAP_NET_RAW and CAP_SYS_ADMIN (root).
    pub fn create(run_id: &str) -> Result<Self, NetError> {
        check_capabilities()?;
        cleanup_stale()?;
        let tag = format!("{}-{}", std::process::id(), short_tag(run_id));
        let ns = |role: &str, addr, mac| Namespace {
            name: format!("{PREFIX}{tag}-{role}"),
            addr,
            mac,
        };
        let mut net = SimNetwork {
            dut: ns("dut", Some(DUT_ADDR), Some(DUT_MAC)),
            services: ns("svc", Some(SERVICES_ADDR), Some(SERVICES_MAC)),
            bridge: ns("br", None, None),
            tag,
            alive: true,
        };
        if let Err(e) = net.build() {
            net.teardown_inner();
            return Err(e);
        }
        Ok(net)
    }

    fn build(&mut self) -> Result<(), NetError> {
        for n in [&self.dut, &self.services, &self.bridge] {
            if n.path().exists() {
                return Err(NetError::Command {
                    command: format!("ip netns add {}", n.name),
                    status: "refused".into(),
                    stderr: "a namespace of that name already exists (same run id twice in one process?)"
                        .into(),
                });
            }
            ip(&["netns", "add", &n.name])?;
            // IPv6 off before any interface exists, so none ever gets a
            // link-local address or sends a solicitation.
            n.sysctl("net.ipv6.conf.all.disable_ipv6", "1")?;
            n.sysctl("net.ipv6.conf.default.disable_ipv6", "1")?;
            ip(&["-n", &n.name, "link", "set", "lo", "up"])?;
        }
        let br = self.bridge.name.clone();
        for (end, n) in [("dut", &self.dut), ("svc", &self.services)] {
            let mtu = MTU.to_string();
            ip(&[
                "-n", &br, "link", "add", end, "mtu", &mtu, "type", "veth", "peer", "name", IFACE,
                "mtu", &mtu, "netns", &n.name,
            ])?;
            let mac = mac_str(n.mac.unwrap_or(DUT_MAC));
            ip(&["-n", &n.name, "link", "set", IFACE, "address", &mac])?;
            let iface_off = n.run(|| sys::disable_offloads(IFACE))?;
            iface_off?;
            self.bridge.run(|| sys::disable_offloads(end))??;
            let addr = format!("{}/{PREFIX_LEN}", n.addr.unwrap_or(DUT_ADDR));
            ip(&["-n", &n.name, "addr", "add", &addr, "dev", IFACE])?;
            ip(&["-n", &br, "link", "set", end, "up"])?;
            ip(&["-n", &n.name, "link", "set", IFACE, "up"])?;
        }
        ip(&[
            "-n",
            &self.dut.name,
            "route",
            "add",
            "default",
            "via",
            &SERVICES_ADDR.to_string(),
        ])?;
        Ok(())
    }

    /// The run tag in the namespace names (`<pid>-<run id tail>`).
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The DUT's namespace.
    pub fn dut(&self) -> &Namespace {
        &self.dut
    }

    /// The services' namespace.
    pub fn services(&self) -> &Namespace {
        &self.services
    }

    /// The namespace holding the bridge's veth ends.
    pub fn bridge_namespace(&self) -> &Namespace {
        &self.bridge
    }

    /// Starts the userspace bridge between the DUT and the services. Until
    /// it runs, the two namespaces cannot reach each other.
    pub fn start_bridge(&self, cfg: BridgeConfig) -> Result<Bridge, NetError> {
        Bridge::start(&self.bridge, "dut", "svc", cfg)
    }

    fn teardown_inner(&mut self) -> Vec<NetError> {
        let mut errs = Vec::new();
        if !self.alive {
            return errs;
        }
        self.alive = false;
        for n in [&self.dut, &self.services, &self.bridge] {
            if n.path().exists()
                && let Err(e) = ip(&["netns", "del", &n.name])
            {
                errs.push(e);
            }
        }
        errs
    }

    /// Removes the namespaces (and so every veth). Stop bridges first.
    pub fn teardown(mut self) -> Result<(), NetError> {
        match self.teardown_inner().into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for SimNetwork {
    fn drop(&mut self) {
        self.teardown_inner();
    }
}

/// Two namespaces joined by a plain veth pair with nothing in the middle:
/// the baseline the bridge is measured against (same addresses, MACs,
/// MTU and offload settings as [`SimNetwork`]). Dropping it tears it down.
#[derive(Debug)]
pub struct DirectLink {
    dut: Namespace,
    services: Namespace,
    alive: bool,
}

impl DirectLink {
    /// Builds the pair for `run_id`.
    pub fn create(run_id: &str) -> Result<Self, NetError> {
        check_capabilities()?;
        let tag = format!("{}-{}", std::process::id(), short_tag(run_id));
        let mut link = DirectLink {
            dut: Namespace {
                name: format!("{PREFIX}{tag}-dut"),
                addr: Some(DUT_ADDR),
                mac: Some(DUT_MAC),
            },
            services: Namespace {
                name: format!("{PREFIX}{tag}-svc"),
                addr: Some(SERVICES_ADDR),
                mac: Some(SERVICES_MAC),
            },
            alive: true,
        };
        if let Err(e) = link.build() {
            link.teardown_inner();
            return Err(e);
        }
        Ok(link)
    }

    fn build(&self) -> Result<(), NetError> {
        for n in [&self.dut, &self.services] {
            ip(&["netns", "add", &n.name])?;
            n.sysctl("net.ipv6.conf.all.disable_ipv6", "1")?;
            n.sysctl("net.ipv6.conf.default.disable_ipv6", "1")?;
            ip(&["-n", &n.name, "link", "set", "lo", "up"])?;
        }
        let mtu = MTU.to_string();
        ip(&[
            "-n",
            &self.dut.name,
            "link",
            "add",
            IFACE,
            "mtu",
            &mtu,
            "type",
            "veth",
            "peer",
            "name",
            IFACE,
            "mtu",
            &mtu,
            "netns",
            &self.services.name,
        ])?;
        for n in [&self.dut, &self.services] {
            let mac = mac_str(n.mac.unwrap_or(DUT_MAC));
            ip(&["-n", &n.name, "link", "set", IFACE, "address", &mac])?;
            n.run(|| sys::disable_offloads(IFACE))??;
            let addr = format!("{}/{PREFIX_LEN}", n.addr.unwrap_or(DUT_ADDR));
            ip(&["-n", &n.name, "addr", "add", &addr, "dev", IFACE])?;
            ip(&["-n", &n.name, "link", "set", IFACE, "up"])?;
        }
        Ok(())
    }

    /// The DUT side.
    pub fn dut(&self) -> &Namespace {
        &self.dut
    }

    /// The services side.
    pub fn services(&self) -> &Namespace {
        &self.services
    }

    fn teardown_inner(&mut self) {
        if std::mem::take(&mut self.alive) {
            for n in [&self.dut, &self.services] {
                if n.path().exists() {
                    ip(&["netns", "del", &n.name]).ok();
                }
            }
        }
    }
}

impl Drop for DirectLink {
    fn drop(&mut self) {
        self.teardown_inner();
    }
}

/// Deletes every namespace this process created (`rig-<our pid>-...`).
/// For a Ctrl-C handler: it needs no handle on the [`SimNetwork`]s, which
/// then find their namespaces gone and drop quietly. Returns the names.
pub fn cleanup_own() -> Result<Vec<String>, NetError> {
    let mine = format!("{PREFIX}{}-", std::process::id());
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return Ok(removed);
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(&mine) {
            ip(&["netns", "del", &name])?;
            removed.push(name);
        }
    }
    Ok(removed)
}

/// Deletes namespaces named `rig-<pid>-...` whose process is gone (a crashed
/// or killed run). Returns the names it removed.
pub fn cleanup_stale() -> Result<Vec<String>, NetError> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return Ok(removed);
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if PathBuf::from(format!("/proc/{pid}")).exists() {
            continue;
        }
        ip(&["netns", "del", &name])?;
        removed.push(name);
    }
    Ok(removed)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn missing_capabilities_are_named_with_the_fix() {
        let e = check_capability_mask(0).unwrap_err().to_string();
        assert!(
            e.contains("CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_ADMIN"),
            "{e}"
        );
        assert!(
            e.contains("setcap cap_net_admin,cap_net_raw,cap_sys_admin+ep"),
            "{e}"
        );
        let only_raw_missing = !(1u64 << CAP_NET_RAW);
        let e = check_capability_mask(only_raw_missing)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("missing capability CAP_NET_RAW:"), "{e}");
        assert!(check_capability_mask(u64::MAX).is_ok());
    }

    #[test]
    fn run_tags_are_short_and_safe() {
        assert_eq!(short_tag("2026-11-27T21:00:00Z/run#1"), "T210000Zrun1");
        assert_eq!(short_tag("::"), "run");
    }
}
