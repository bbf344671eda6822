//! The agent's command line: which server, which endpoint, which timers.

use std::time::Duration;

use clap::Parser;

/// An LwM2M 1.1 client (the rig's reference DUT), driven by a line console on
/// stdin/stdout. The console protocol is described in firmware/agent/README.md.
///
/// Example:
///   rig-agent --server coap://127.0.0.1:5683 --endpoint ep1 --lifetime 86400
#[derive(Clone, Debug, Parser, PartialEq)]
#[command(name = "rig-agent", version, about, long_about)]
pub struct AgentConfig {
    /// The LwM2M server URI, `coap://host:port` (NoSec over UDP).
    #[arg(long, value_name = "URI")]
    pub server: String,
    /// The endpoint client name sent as `ep=`.
    #[arg(long, value_name = "EP")]
    pub endpoint: String,
    /// Registration lifetime `/1/0/1`, in seconds.
    #[arg(long, value_name = "S", default_value_t = 86_400, value_parser = clap::value_parser!(u32).range(1..))]
    pub lifetime: u32,
    /// Divides the agent's protocol timers (Update schedule, disable timeout);
    /// wire values are unchanged. CoAP retransmission timers are never scaled.
    #[arg(long, value_name = "N", default_value_t = 1.0, value_parser = parse_scale)]
    pub time_scale: f64,
    /// Short Server ID `/1/0/0` (and `/0/0/10`).
    #[arg(long, value_name = "ID", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..65535))]
    pub ssid: u16,
    /// Binding `/1/0/7`.
    #[arg(long, value_name = "B", default_value = "U", value_parser = parse_binding)]
    pub binding: String,
    /// Default minimum period `/1/0/2`, in seconds.
    #[arg(long, value_name = "S")]
    pub pmin: Option<u32>,
    /// Default maximum period `/1/0/3`, in seconds.
    #[arg(long, value_name = "S")]
    pub pmax: Option<u32>,
    /// Disable timeout `/1/0/5`, in seconds.
    #[arg(long, value_name = "S", default_value_t = 86_400)]
    pub disable_timeout: u32,
    /// TEST ONLY: plant one specific protocol deviation, to prove the rig
    /// catches it (repeatable). See firmware/agent/README.md.
    #[arg(long = "deviate", value_name = "DEVIATION", value_enum, hide = true)]
    pub deviate: Vec<Deviation>,
}

/// A deviation the agent can plant on purpose (test only): each one breaks
/// exactly one pass criterion of one ETS case, so a test can prove that the
/// rig fails that case and names the deviation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Deviation {
    /// List the Security object `</0/0>` in the Register (int-101).
    ListSecurityObject,
    /// Omit the `lwm2m` parameter from the Register (int-101).
    NoLwm2mVersion,
    /// Answer a lifetime Write but send no Update with `lt` (int-102).
    IgnoreLifetimeWrite,
    /// Never send the periodic Update before the lifetime runs out (int-102).
    NoPeriodicUpdate,
    /// Answer Execute /1/x/4 (Disable) but do not de-register (int-103).
    IgnoreDisable,
    /// Answer Execute /1/x/8 with an Update that carries parameters (int-104).
    TriggerUpdateWithParams,
}

fn parse_scale(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if !(v.is_finite() && v >= 1.0) {
        return Err(format!("the time scale must be a number >= 1, got `{s}`"));
    }
    Ok(v)
}

fn parse_binding(s: &str) -> Result<String, String> {
    if s == "U" {
        Ok(s.to_string())
    } else {
        Err(format!(
            "binding `{s}` is not supported; this agent supports only `U` (UDP)"
        ))
    }
}

impl AgentConfig {
    /// A protocol duration divided by the time scale.
    pub fn scaled(&self, d: Duration) -> Duration {
        d.div_f64(self.time_scale)
    }

    /// Whether a test-only deviation is switched on.
    pub fn deviates(&self, d: Deviation) -> bool {
        self.deviate.contains(&d)
    }

    /// The time scale as the integer divisor rig-proto's timers take (rounded).
    pub fn time_scale_u32(&self) -> u32 {
        self.time_scale.round().clamp(1.0, f64::from(u32::MAX)) as u32
    }

    /// The server's socket address from `--server` (`coap://host:port`, port
    /// 5683 if absent). Host names are resolved.
    pub fn server_addr(&self) -> Result<std::net::SocketAddr, String> {
        let rest = self.server.strip_prefix("coap://").ok_or_else(|| {
            format!(
                "--server `{}`: only `coap://` (NoSec over UDP) is supported",
                self.server
            )
        })?;
        let hostport = rest.trim_end_matches('/');
        if hostport.is_empty() || hostport.contains('/') {
            return Err(format!(
                "--server `{}`: expected coap://host:port",
                self.server
            ));
        }
        let with_port = if hostport.ends_with(']') || !hostport.contains(':') {
            format!("{hostport}:5683")
        } else {
            hostport.to_string()
        };
        use std::net::ToSocketAddrs;
        with_port
            .to_socket_addrs()
            .map_err(|e| {
                format!(
                    "--server `{}`: cannot resolve `{with_port}`: {e}",
                    self.server
                )
            })?
            .next()
            .ok_or_else(|| {
                format!(
                    "--server `{}`: `{with_port}` resolves to no address",
                    self.server
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(args: &[&str]) -> Result<AgentConfig, clap::Error> {
        let mut v = vec![
            "rig-agent",
            "--server",
            "coap://127.0.0.1:5683",
            "--endpoint",
            "ep",
        ];
        v.extend_from_slice(args);
        AgentConfig::try_parse_from(v)
    }

    #[test]
    fn defaults_are_configuration_c1() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.lifetime, 86_400);
        assert_eq!(c.ssid, 1);
        assert_eq!(c.binding, "U");
        assert_eq!(c.time_scale, 1.0);
        assert_eq!(c.server_addr().unwrap(), "127.0.0.1:5683".parse().unwrap());
    }

    #[test]
    fn bad_values_are_refused_with_the_flag_named() {
        let e = cfg(&["--time-scale", "0.5"]).unwrap_err().to_string();
        assert!(e.contains("--time-scale"), "{e}");
        let e = cfg(&["--binding", "T"]).unwrap_err().to_string();
        assert!(e.contains("only `U`"), "{e}");
        let e = cfg(&["--lifetime", "0"]).unwrap_err().to_string();
        assert!(e.contains("--lifetime"), "{e}");
    }

    #[test]
    fn server_uri_forms() {
        let mut c = cfg(&[]).unwrap();
        c.server = "coap://127.0.0.1".into();
        assert_eq!(c.server_addr().unwrap().port(), 5683);
        c.server = "coaps://127.0.0.1:5684".into();
        assert!(c.server_addr().unwrap_err().contains("only `coap://`"));
        c.server = "coap://[::1]:7000".into();
        assert_eq!(c.server_addr().unwrap(), "[::1]:7000".parse().unwrap());
    }
}
