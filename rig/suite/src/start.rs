//! Bringing the DUT to a case's start state (ETS appendix C).
//!
//! [`reach`] is called by the engine before a case body runs. `Stopped` stops
//! the DUT; `Registered(C.x)` (re)starts it provisioned as configuration C.x
//! (see [`dut_config`]) and waits, bounded by a scaled timeout, for its
//! Register at the rig's LwM2M server. A DUT that cannot be started is an
//! infrastructure error; one that starts but does not register in time makes
//! the case Inconclusive, with a message naming the configuration and the wait.

use std::collections::BTreeMap;
use std::time::Duration;

use rig_bench::dut::DutConfig;
use rig_bench::file::SecuritySpec;
use rig_services::lwm2m::{self, ServerEvent};

use crate::case::{CaseContext, CaseFailure, CaseResult, EtsConfig, SecurityMode, StartState};

/// How long (at time scale 1) a DUT gets from start to its first Register.
pub const REGISTER_WAIT: Duration = Duration::from_secs(30);

/// The shortest real wait for a prompt reaction (a Register after start, an
/// Update after a Write), whatever the time scale: process start-up and
/// scheduling on a loaded machine do not scale.
pub const MIN_PROMPT_WAIT: Duration = Duration::from_secs(5);

/// Lifetime of configuration C.1 and C.3 (`/1/0/1`), in seconds.
pub const C1_LIFETIME_S: u32 = 86_400;

/// The ETS appendix C name of a configuration, e.g. `C.1`.
pub fn config_name(config: EtsConfig) -> &'static str {
    match config {
        EtsConfig::C1 => "C.1",
        EtsConfig::C3 => "C.3",
    }
}

/// The [`DutConfig`] that provisions configuration `config` against the rig's
/// LwM2M server, for the context's endpoint and time scale.
///
/// C.1: one server account, SSID 1, lifetime 86400 s, binding `U`.
/// C.3: C.1 plus default pmin 1 s and default pmax 10 s (the disable timeout
/// 86400 s is the client's default and needs no provisioning).
///
/// `extra` carries the security mode (`security`, always set: `nosec` unless
/// a secure server was bound with [`use_secure_server`]) and that mode's
/// credential keys (`psk_identity`, `psk_key_hex`, `cert_file`, `key_file`,
/// `ca_file`, `server_name`), which the agent's target turns into options and
/// other targets use as placeholders.
pub fn dut_config(cx: &CaseContext, config: EtsConfig) -> DutConfig {
    let (pmin, pmax) = match config {
        EtsConfig::C1 => (None, None),
        EtsConfig::C3 => (Some(1), Some(10)),
    };
    DutConfig {
        endpoint: cx.endpoint.clone(),
        server_uri: cx.server.uri(),
        ssid: 1,
        lifetime_s: C1_LIFETIME_S,
        binding: "U".to_string(),
        default_pmin_s: pmin,
        default_pmax_s: pmax,
        time_scale: cx.time_scale,
        extra: {
            let mut extra = cx.security.dut_extra.clone();
            extra
                .entry("security".to_string())
                .or_insert_with(|| cx.security.mode.as_str().to_string());
            extra
        },
    }
}

/// A protocol wait divided by the time scale, but never shorter than
/// [`MIN_PROMPT_WAIT`].
pub fn prompt_wait(cx: &CaseContext, d: Duration) -> Duration {
    cx.scaled(d).max(MIN_PROMPT_WAIT)
}

/// Brings the DUT to `state`. See the module doc for the verdicts.
///
/// It forgets the deviations the server recorded for the endpoint before the
/// case's body runs (in earlier cases, and while reaching the start state),
/// so each case judges only what the DUT does during its body: a deviation in
/// the Register fails int-101, not every case that starts registered.
pub async fn reach(cx: &mut CaseContext, state: StartState) -> CaseResult {
    cx.server.clear_deviations(&cx.endpoint);
    match state {
        StartState::Stopped => cx
            .dut
            .stop()
            .await
            .map_err(|e| CaseFailure::infra(format!("could not stop the DUT: {e}"))),
        StartState::Registered(config) => {
            let cfg = dut_config(cx, config);
            start_and_wait_register(cx, &cfg, config_name(config)).await?;
            cx.server.clear_deviations(&cx.endpoint);
            Ok(())
        }
    }
}

/// Starts the DUT with `cfg` and waits for its Register. Returns the
/// `Registered` event and the time the DUT was told to start. `what` names the
/// configuration for messages (e.g. `C.1`).
pub async fn start_and_wait_register(
    cx: &mut CaseContext,
    cfg: &DutConfig,
    what: &str,
) -> Result<(ServerEvent, tokio::time::Instant), CaseFailure> {
    // Subscribe before starting, so a fast Register cannot be missed.
    let mut events = cx.server.events();
    let started = tokio::time::Instant::now();
    cx.step(format!("starting the DUT with configuration {what}"));
    cx.dut
        .start(cfg)
        .await
        .map_err(|e| CaseFailure::infra(format!("could not start the DUT: {e}")))?;
    let wait = prompt_wait(cx, REGISTER_WAIT);
    let ep = cx.endpoint.clone();
    // On a secure server, a refused handshake ends the wait at once: the
    // server's reason is the case's failure (a timed-out handshake may still
    // be retried, so it does not).
    match lwm2m::wait_for(&mut events, wait, |e| match e {
        ServerEvent::Registered { endpoint, .. } => *endpoint == ep,
        ServerEvent::HandshakeFailed { reason, .. } => reason != "timed_out",
        _ => false,
    })
    .await
    {
        Some(ServerEvent::HandshakeFailed {
            reason, message, ..
        }) => Err(CaseFailure::fail(format!(
            "could not reach start state {what}: the server refused the DUT's DTLS handshake ({reason}): {message}"
        ))),
        Some(event) => Ok((event, started)),
        None => {
            let tail = cx.dut.console().tail(5);
            Err(CaseFailure::inconclusive(format!(
                "could not reach start state {what}: no Register from endpoint `{ep}` within {:.1} s{}",
                wait.as_secs_f64(),
                if tail.trim().is_empty() {
                    String::new()
                } else {
                    format!("; last console lines:\n{tail}")
                }
            )))
        }
    }
}

/// Which certificate a secure server presents in X.509 mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ServerCert {
    /// The bench's `server_cert` (it names `server_name`).
    #[default]
    Normal,
    /// The bench's `wrong_host_cert`: issued for another host (ETS int-403).
    WrongHost,
}

/// What a secure server and the DUT need for one mode, from the bench's
/// `[security]` credentials (see [`secure_setup`]).
#[derive(Debug)]
pub struct SecureSetup {
    /// The server's DTLS configuration (credential store, own identity, CAs).
    pub dtls: rig_dtls::ServerConfig,
    /// The endpoint the device's credentials map to in the store: the DUT
    /// must register with it (X.509: the certificate's CN when the store does
    /// not list it).
    pub endpoint: String,
    /// The `DutConfig::extra` keys that provision the DUT for the mode.
    pub extra: BTreeMap<String, String>,
}

fn path_str(p: &std::path::Path) -> String {
    p.display().to_string()
}

/// Reads the credential store file named by the bench.
pub fn load_store(spec: &SecuritySpec) -> Result<rig_dtls::CredentialStore, String> {
    let path = &spec.store;
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("credential store {}: {e}", path.display()))?;
    let store: rig_dtls::CredentialStore =
        toml::from_str(&text).map_err(|e| format!("credential store {}: {e}", path.display()))?;
    store
        .validate()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(store)
}

/// The common name of a certificate file's first certificate.
#[allow(deprecated)] // as_utf8: a CN with a NUL byte is no endpoint name anyway
pub fn certificate_cn(path: &std::path::Path) -> Result<String, String> {
    let chain = rig_dtls::load_certificates(path).map_err(|e| e.to_string())?;
    chain
        .first()
        .and_then(|c| {
            c.subject_name()
                .entries_by_nid(openssl::nid::Nid::COMMONNAME)
                .next()
                .and_then(|e| e.data().as_utf8().ok())
                .map(|s| s.to_string())
        })
        .ok_or_else(|| format!("{}: the certificate has no subject CN", path.display()))
}

/// Builds what mode `mode` needs from the bench's credentials: the server's
/// DTLS configuration (restricted to `suites` unless empty), the endpoint the
/// device's credentials map to (`fallback` when the store does not list them:
/// the server will then refuse the handshake, which is what a wrong
/// credential should cause), and the DUT's provisioning. Errors name the file.
pub fn secure_setup(
    spec: &SecuritySpec,
    mode: SecurityMode,
    suites: &[rig_dtls::CipherSuite],
    cert: ServerCert,
    fallback: &str,
) -> Result<SecureSetup, String> {
    let store = load_store(spec)?;
    let mut extra = BTreeMap::new();
    extra.insert("security".to_string(), mode.as_str().to_string());
    let mut dtls = rig_dtls::ServerConfig::new(store.clone());
    dtls.cipher_suites = suites.to_vec();
    let endpoint = match mode {
        SecurityMode::NoSec => {
            return Err("NoSec needs no secure server".into());
        }
        SecurityMode::Psk => {
            let identity = match &spec.psk_identity {
                Some(i) => i.clone(),
                None => store
                    .psk
                    .first()
                    .and_then(|e| e.identity.clone())
                    .ok_or_else(|| {
                        format!(
                            "{}: no [[psk]] entry with a text `identity`; set psk_identity in the bench's [security]",
                            spec.store.display()
                        )
                    })?,
            };
            let listed = store.psk(identity.as_bytes());
            let key = match (&spec.psk_key_hex, &listed) {
                (Some(k), _) => k.clone(),
                (None, Some((_, key))) => rig_dtls::to_hex(key),
                (None, None) => {
                    return Err(format!(
                        "no PSK key for identity `{identity}`: the store {} does not list it and the bench's [security] gives no psk_key_hex",
                        spec.store.display()
                    ));
                }
            };
            extra.insert("psk_identity".into(), identity);
            extra.insert("psk_key_hex".into(), key);
            if let Some(f) = &spec.psk_key_file {
                extra.insert("psk_key_file".into(), path_str(f));
            }
            listed.map_or_else(|| fallback.to_string(), |(ep, _)| ep.to_string())
        }
        SecurityMode::X509 => {
            let (cert_file, key_file) = match cert {
                ServerCert::Normal => (&spec.server_cert, &spec.server_key),
                ServerCert::WrongHost => (&spec.wrong_host_cert, &spec.wrong_host_key),
            };
            dtls.identity = Some(rig_dtls::ServerIdentity {
                key: rig_dtls::load_private_key(key_file).map_err(|e| e.to_string())?,
                chain: rig_dtls::load_certificates(cert_file).map_err(|e| e.to_string())?,
            });
            dtls.client_ca = rig_dtls::load_certificates(&spec.ca).map_err(|e| e.to_string())?;
            dtls.raw_public_keys = false;
            let cn = certificate_cn(&spec.client_cert)?;
            extra.insert("cert_file".into(), path_str(&spec.client_cert));
            extra.insert("key_file".into(), path_str(&spec.client_key));
            extra.insert("ca_file".into(), path_str(&spec.ca));
            extra.insert("server_name".into(), spec.server_name.clone());
            store
                .endpoint_for_subject(&cn)
                .map_or(cn.clone(), str::to_string)
        }
        SecurityMode::Rpk => {
            dtls.identity = Some(rig_dtls::ServerIdentity {
                key: rig_dtls::load_private_key(&spec.rpk_server_key).map_err(|e| e.to_string())?,
                chain: Vec::new(),
            });
            dtls.raw_public_keys = true;
            let key =
                rig_dtls::load_private_key(&spec.rpk_client_key).map_err(|e| e.to_string())?;
            let spki = rig_dtls::public_der(&key).map_err(|e| e.to_string())?;
            extra.insert("key_file".into(), path_str(&spec.rpk_client_key));
            extra.insert("ca_file".into(), path_str(&spec.rpk_server_public));
            store
                .endpoint_for_spki(&spki)
                .map_or_else(|| fallback.to_string(), str::to_string)
        }
    };
    Ok(SecureSetup {
        dtls,
        endpoint,
        extra,
    })
}

/// Makes the case talk `mode`: binds a DTLS server next to the run's plain
/// one (through the run's [`crate::case::SecureBinder`], so on the simulated
/// network it lives in the services namespace too), and makes it the case's
/// server; the case's endpoint becomes the one the device's credentials map
/// to, and the DUT's provisioning ([`dut_config`]) carries the mode and the
/// credential files. NoSec changes nothing. The engine shuts the secure
/// server down when the case ends.
///
/// Not Applicable when the run has no binder or no credentials; an
/// infrastructure error when the credentials cannot be loaded or the server
/// cannot be bound.
pub async fn use_secure_server(
    cx: &mut CaseContext,
    mode: SecurityMode,
    suites: &[rig_dtls::CipherSuite],
    cert: ServerCert,
) -> CaseResult {
    if mode == SecurityMode::NoSec {
        return Ok(());
    }
    let Some(binder) = cx.security.binder.clone() else {
        return Err(CaseFailure::not_applicable(format!(
            "security mode {mode} needs a coaps:// server, and this run cannot bind one"
        )));
    };
    let Some(spec) = cx.security.credentials.clone() else {
        return Err(CaseFailure::not_applicable(format!(
            "security mode {mode} needs the bench's [security] credentials, and this run has none"
        )));
    };
    let setup = secure_setup(&spec, mode, suites, cert, &cx.endpoint)
        .map_err(|e| CaseFailure::infra(format!("{}: [security]: {e}", mode.as_str())))?;
    let server = binder
        .bind(cx.server.config().clone(), setup.dtls)
        .await
        .map_err(|e| CaseFailure::infra(format!("cannot start the coaps:// LwM2M server: {e}")))?;
    cx.step(format!(
        "security {mode}: DTLS server at {} for endpoint `{}`",
        server.uri(),
        setup.endpoint
    ));
    if cx.security.mode != SecurityMode::NoSec {
        cx.server.shutdown();
    }
    cx.server = server;
    cx.endpoint = setup.endpoint;
    cx.security.mode = mode;
    cx.security.dut_extra = setup.extra;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SecuritySpec {
        // The test PKI, found from this crate's folder.
        SecuritySpec::defaults(std::path::Path::new(env!("CARGO_MANIFEST_DIR")))
    }

    #[test]
    fn psk_setup_maps_the_identity_to_its_endpoint_and_provisions_the_key() {
        let s = secure_setup(
            &spec(),
            SecurityMode::Psk,
            &[rig_dtls::CipherSuite::PSK_AES_128_CCM_8],
            ServerCert::Normal,
            "rig-run",
        )
        .unwrap();
        assert_eq!(s.endpoint, "rig-dev-psk");
        assert_eq!(s.extra["security"], "psk");
        assert_eq!(s.extra["psk_identity"], "rig-dev-psk");
        let store = load_store(&spec()).unwrap();
        let (_, key) = store.psk(b"rig-dev-psk").unwrap();
        assert_eq!(s.extra["psk_key_hex"], rig_dtls::to_hex(&key));
        assert_eq!(
            s.dtls.cipher_suites,
            [rig_dtls::CipherSuite::PSK_AES_128_CCM_8]
        );
        assert!(s.dtls.identity.is_none());
    }

    #[test]
    fn a_bench_psk_key_is_given_to_the_dut_while_the_server_keeps_the_store() {
        let mut sp = spec();
        sp.psk_key_hex = Some("00ff".into());
        let s = secure_setup(&sp, SecurityMode::Psk, &[], ServerCert::Normal, "x").unwrap();
        assert_eq!(s.extra["psk_key_hex"], "00ff");
        assert_eq!(s.endpoint, "rig-dev-psk");
        // An identity the store does not list keeps the run's endpoint.
        sp.psk_identity = Some("nobody".into());
        let s = secure_setup(&sp, SecurityMode::Psk, &[], ServerCert::Normal, "x").unwrap();
        assert_eq!(s.endpoint, "x");
        sp.psk_key_hex = None;
        let e = secure_setup(&sp, SecurityMode::Psk, &[], ServerCert::Normal, "x").unwrap_err();
        assert!(e.contains("no PSK key for identity `nobody`"), "{e}");
    }

    #[test]
    fn x509_and_rpk_setups_map_the_certificate_cn_and_the_public_key() {
        let sp = spec();
        let s = secure_setup(&sp, SecurityMode::X509, &[], ServerCert::Normal, "x").unwrap();
        assert_eq!(s.endpoint, "rig-dev-1");
        assert_eq!(s.extra["server_name"], "server.example.com");
        assert!(s.extra["cert_file"].ends_with("client-dev-1.pem"));
        assert!(s.extra["ca_file"].ends_with("ca.pem"));
        assert_eq!(s.dtls.identity.as_ref().map(|i| i.chain.len()), Some(2));
        let w = secure_setup(&sp, SecurityMode::X509, &[], ServerCert::WrongHost, "x").unwrap();
        assert_eq!(w.dtls.identity.as_ref().map(|i| i.chain.len()), Some(1));
        let r = secure_setup(&sp, SecurityMode::Rpk, &[], ServerCert::Normal, "x").unwrap();
        assert_eq!(r.endpoint, "rig-dev-3");
        assert!(r.extra["key_file"].ends_with("rpk-dev-3.key"));
        assert!(r.extra["ca_file"].ends_with("rpk-server.pub.pem"));
        assert!(r.dtls.raw_public_keys);
    }

    #[test]
    fn a_missing_credential_file_is_named() {
        let mut sp = spec();
        sp.client_cert = "/nonexistent/dev.pem".into();
        let e = secure_setup(&sp, SecurityMode::X509, &[], ServerCert::Normal, "x").unwrap_err();
        assert!(e.contains("/nonexistent/dev.pem"), "{e}");
        sp.store = "/nonexistent/store.toml".into();
        let e = secure_setup(&sp, SecurityMode::Psk, &[], ServerCert::Normal, "x").unwrap_err();
        assert!(
            e.starts_with("credential store /nonexistent/store.toml"),
            "{e}"
        );
    }
}
