//! Where each service of `rig serve` listens: `--listen ADDR` (or the bench's
//! address) turned into one socket address per listener.
//!
//! The port of `--listen` is the LwM2M server's CoAP port (default 5683). The
//! other listeners sit at fixed offsets from it, so two `rig serve` on one host
//! only need two base ports; MQTT and HTTP keep their usual ports. Port 0 gives
//! every listener a free port (the banner prints the real ones).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The LwM2M server's CoAP port when none is given (RFC 7252).
pub(super) const DEFAULT_PORT: u16 = 5683;
/// The MQTT-over-TLS port when the base port is not 0.
pub(super) const MQTT_PORT: u16 = 8883;
/// The HTTP file server's port when the base port is not 0.
pub(super) const HTTP_PORT: u16 = 8080;

/// Offsets from the base port.
const COAPS: u16 = 1;
const COAPS_RPK: u16 = 2;
const FILES_COAP: u16 = 3;
const BOOTSTRAP: u16 = 100;
const BOOTSTRAP_SECURE: u16 = 101;

/// `--listen` as typed: an address, with or without a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Listen {
    /// The IP address to bind.
    pub(crate) ip: IpAddr,
    /// The base port, if given.
    pub(crate) port: Option<u16>,
}

/// Parses `--listen`: `IP`, `IP:PORT`, `[IPv6]:PORT` or `:PORT` (= 127.0.0.1).
pub(crate) fn parse_listen(s: &str) -> Result<Listen, String> {
    let s = s.trim();
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(Listen {
            ip: addr.ip(),
            port: Some(addr.port()),
        });
    }
    if let Ok(ip) = s.trim_start_matches('[').trim_end_matches(']').parse() {
        return Ok(Listen { ip, port: None });
    }
    if let Some(p) = s.strip_prefix(':')
        && let Ok(port) = p.parse::<u16>()
    {
        return Ok(Listen {
            ip: Ipv4Addr::LOCALHOST.into(),
            port: Some(port),
        });
    }
    Err(format!(
        "`{s}` is not an address to listen on: give IP, IP:PORT, [IPv6]:PORT or :PORT \
         (e.g. 127.0.0.1:5683, 0.0.0.0, [::1]:0; port 0 picks free ports)"
    ))
}

/// One socket address per listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Ports {
    /// LwM2M server, NoSec.
    pub(super) coap: SocketAddr,
    /// LwM2M server, DTLS (PSK, RPK with the certificate's key, X.509).
    pub(super) coaps: SocketAddr,
    /// LwM2M server, DTLS RPK with `[security] rpk_server_key`.
    pub(super) coaps_rpk: SocketAddr,
    /// Bootstrap server, NoSec.
    pub(super) bootstrap: SocketAddr,
    /// Bootstrap server, DTLS.
    pub(super) bootstrap_secure: SocketAddr,
    /// CoAP Block2 file server.
    pub(super) files_coap: SocketAddr,
    /// HTTP file server.
    pub(super) files_http: SocketAddr,
    /// MQTT broker (TLS).
    pub(super) mqtt: SocketAddr,
}

impl Ports {
    /// The listeners for `ip` and base port `port` (0: every port free).
    pub(super) fn new(ip: IpAddr, port: u16) -> Result<Ports, String> {
        let at = |p: u16| SocketAddr::new(ip, p);
        if port == 0 {
            let any = at(0);
            return Ok(Ports {
                coap: any,
                coaps: any,
                coaps_rpk: any,
                bootstrap: any,
                bootstrap_secure: any,
                files_coap: any,
                files_http: any,
                mqtt: any,
            });
        }
        let off = |o: u16| {
            port.checked_add(o).map(at).ok_or_else(|| {
                format!(
                    "port {port} is too high: rig serve also listens on port+{BOOTSTRAP_SECURE} \
                     (the secure bootstrap server); use a port up to {}",
                    u16::MAX - BOOTSTRAP_SECURE
                )
            })
        };
        Ok(Ports {
            coap: at(port),
            coaps: off(COAPS)?,
            coaps_rpk: off(COAPS_RPK)?,
            files_coap: off(FILES_COAP)?,
            bootstrap: off(BOOTSTRAP)?,
            bootstrap_secure: off(BOOTSTRAP_SECURE)?,
            files_http: at(HTTP_PORT),
            mqtt: at(MQTT_PORT),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_forms() {
        assert_eq!(
            parse_listen("127.0.0.1:0").unwrap(),
            Listen {
                ip: Ipv4Addr::LOCALHOST.into(),
                port: Some(0)
            }
        );
        assert_eq!(parse_listen("0.0.0.0").unwrap().port, None);
        assert_eq!(parse_listen("[::1]:5683").unwrap().port, Some(5683));
        assert!(parse_listen("::1").unwrap().ip.is_ipv6());
        assert_eq!(parse_listen(":6000").unwrap().port, Some(6000));
        let err = parse_listen("nonsense").unwrap_err();
        assert!(
            err.contains("`nonsense`") && err.contains("IP:PORT"),
            "{err}"
        );
        assert!(parse_listen("127.0.0.1:99999").is_err());
    }

    #[test]
    fn ports_follow_the_base() {
        let p = Ports::new(Ipv4Addr::LOCALHOST.into(), DEFAULT_PORT).unwrap();
        assert_eq!(p.coap.port(), 5683);
        assert_eq!(p.coaps.port(), 5684);
        assert_eq!(p.coaps_rpk.port(), 5685);
        assert_eq!(p.files_coap.port(), 5686);
        assert_eq!(p.bootstrap.port(), 5783);
        assert_eq!(p.bootstrap_secure.port(), 5784);
        assert_eq!(p.mqtt.port(), 8883);
        assert_eq!(p.files_http.port(), 8080);
        let free = Ports::new(Ipv4Addr::LOCALHOST.into(), 0).unwrap();
        assert_eq!(free.mqtt.port(), 0);
        assert_eq!(free.coaps.port(), 0);
        let err = Ports::new(Ipv4Addr::LOCALHOST.into(), 65500).unwrap_err();
        assert!(err.contains("too high"), "{err}");
    }
}
