//! ETS security cases (400-499): LightweightM2M-1.1-int-401 to -403.
//!
//! Each case binds a `coaps://` LwM2M server next to the run's plain one
//! ([`start::use_secure_server`]: on loopback, or in the services namespace
//! of the simulated network), loaded from the bench's `[security]`
//! credentials, and provisions the DUT with the mode and its credential files
//! (ETS configurations C.1 with security mode 0 / C.17 with mode 2, see
//! `shared/reference/oma-interop-cases.md` §1 and §2.5). A handshake the
//! server refuses fails the case with the server's reason (e.g. `wrong_psk`,
//! `unknown_ca`), so a wrong credential in the bench is visible.
//!
//! The registration cases run over every mode through the suite matrix (see
//! `suites/security.toml`); these three fix their own mode and run once.

use std::time::Duration;

use rig_dtls::CipherSuite;
use rig_services::lwm2m::{self, ContentFormat, ObjectPath, ServerEvent};
use tokio::sync::broadcast;

use crate::case::{
    Area, CaseContext, CaseDef, CaseFailure, CaseMeta, CaseResult, EtsConfig, SecurityMode,
    StartState,
};
use crate::start::{self, REGISTER_WAIT, ServerCert, prompt_wait};

const REQUIRES: &[&str] = &["lwm2m"];

/// After int-403's first refused handshake, how long (at least, real time)
/// the case keeps watching that no Register follows (the agent retries after
/// 1 s, 2 s, ...: at least one retry falls inside).
const REFUSAL_WATCH: Duration = Duration::from_secs(3);

/// The security cases, in id order.
pub(crate) fn cases() -> Vec<CaseDef> {
    vec![
        CaseDef {
            meta: CaseMeta {
                id: "LightweightM2M-1.1-int-401",
                title: "UDP Channel Security, Pre-shared Key Mode",
                area: Area::Security,
                requires: REQUIRES,
                start: StartState::Stopped,
                timeout: Duration::from_secs(60),
                reading: Some(
                    "C.1 with security mode 0 (PSK): the server offers only \
                     TLS_PSK_WITH_AES_128_CCM_8; the DUT must complete the handshake with it, \
                     Register (2.01) with the endpoint its PSK identity maps to in the credential \
                     store, and answer Read /3/0 (TLV) with 2.05, all over DTLS. The negotiated \
                     suite is recorded as measurement dtls.cipher_suite (its IANA number).",
                ),
                unscaled_timeout: false,
                max_time_scale: None,
            },
            body: |cx| Box::pin(int_401(cx)),
        },
        CaseDef {
            meta: CaseMeta {
                id: "LightweightM2M-1.1-int-402",
                title: "UDP Channel Security, Certificate Mode",
                area: Area::Security,
                requires: REQUIRES,
                start: StartState::Stopped,
                timeout: Duration::from_secs(60),
                reading: Some(
                    "C.17 (security mode 2, X.509): the server presents the bench's server \
                     certificate and offers only TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8; it requires \
                     a client certificate chaining to the bench's CA. The DUT checks the server \
                     certificate against `server_name` (server.example.com by default). Pass: \
                     the handshake completes, the Register's ep equals the endpoint the client \
                     certificate's identity (subject CN, through the store) maps to, and Read \
                     /3/0 answers 2.05.",
                ),
                unscaled_timeout: false,
                max_time_scale: None,
            },
            body: |cx| Box::pin(int_402(cx)),
        },
        CaseDef {
            meta: CaseMeta {
                id: "LightweightM2M-1.1-int-403",
                title: "Certificate Mode, Server Identity Mismatch",
                area: Area::Security,
                requires: REQUIRES,
                start: StartState::Stopped,
                timeout: Duration::from_secs(60),
                reading: Some(
                    "The ETS points the DUT at server-fail.example.com while the server holds a \
                     certificate for server.example.com. The rig does the mirror image, which \
                     tests the same client check: the DUT expects `server_name` \
                     (server.example.com) and the server presents a CA-valid certificate issued \
                     only for another host (the bench's wrong_host_cert, \
                     server-fail.example.com). Pass: the server sees the DUT abort the handshake \
                     (an alert: rejected_by_peer) and no Register arrives in the following \
                     seconds, retries included; the reason is in the case message. Fail: the \
                     DUT registers. A handshake the server itself refuses (e.g. the client \
                     certificate) is Inconclusive.",
                ),
                unscaled_timeout: false,
                max_time_scale: None,
            },
            body: |cx| Box::pin(int_403(cx)),
        },
    ]
}

async fn int_401(cx: &mut CaseContext) -> CaseResult {
    register_and_read(cx, SecurityMode::Psk, CipherSuite::PSK_AES_128_CCM_8).await
}

async fn int_402(cx: &mut CaseContext) -> CaseResult {
    register_and_read(
        cx,
        SecurityMode::X509,
        CipherSuite::ECDHE_ECDSA_AES_128_CCM_8,
    )
    .await
}

/// The secure session the server reported for `endpoint` among the events
/// already received (it precedes the Register).
fn session_of(
    events: &mut broadcast::Receiver<ServerEvent>,
    endpoint: &str,
) -> Option<(Option<String>, Option<String>)> {
    let mut found = None;
    // Bounded: the channel holds at most its capacity.
    for _ in 0..4096 {
        match events.try_recv() {
            Ok(ServerEvent::SecureSession {
                endpoint: ep,
                cipher_suite,
                ..
            }) => {
                if ep.as_deref() == Some(endpoint) || found.is_none() {
                    found = Some((ep, cipher_suite));
                }
            }
            Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) => {}
            Err(_) => break,
        }
    }
    found
}

/// 401/402: secure server for `mode` offering only `suite`, start the DUT
/// with C.1 over it, check the session and the Register, then Read /3/0.
async fn register_and_read(
    cx: &mut CaseContext,
    mode: SecurityMode,
    suite: CipherSuite,
) -> CaseResult {
    start::use_secure_server(cx, mode, &[suite], ServerCert::Normal).await?;
    let mut events = cx.server.events();
    let cfg = start::dut_config(cx, EtsConfig::C1);
    let what = format!("C.1 over DTLS ({mode})");
    start::start_and_wait_register(cx, &cfg, &what).await?;
    let ep = cx.endpoint.clone();
    let Some((session_ep, negotiated)) = session_of(&mut events, &ep) else {
        return Err(CaseFailure::fail(format!(
            "endpoint `{ep}` registered, but the server saw no completed DTLS handshake before it"
        )));
    };
    if session_ep.as_deref() != Some(ep.as_str()) {
        return Err(CaseFailure::fail(format!(
            "the DUT's credentials map to endpoint {} in the credential store, but it registered as `{ep}`",
            session_ep.map_or_else(|| "(none)".to_string(), |e| format!("`{e}`"))
        )));
    }
    match negotiated.as_deref() {
        Some(name) if name == suite.name => {
            cx.step(format!("DTLS session with {name}"));
            cx.measure("dtls.cipher_suite", "iana", f64::from(suite.iana));
        }
        other => {
            return Err(CaseFailure::fail(format!(
                "expected cipher suite {}, the session negotiated {}",
                suite.name,
                other.unwrap_or("(unknown)")
            )));
        }
    }
    let deviations = cx.server.deviations(&ep);
    if let Some(d) = deviations.first() {
        return Err(CaseFailure::fail(format!(
            "the server recorded {} deviation(s) for `{ep}`, first: {}",
            deviations.len(),
            d.what
        )));
    }
    cx.step("Read /3/0 (TLV) over DTLS");
    let path: ObjectPath = "/3/0"
        .parse()
        .map_err(|e| CaseFailure::infra(format!("path /3/0: {e:?}")))?;
    let response = cx
        .server
        .read(&ep, &path, Some(ContentFormat::Tlv))
        .await
        .map_err(|e| CaseFailure::fail(format!("Read /3/0 over DTLS: {e}")))?;
    if response.code != lwm2m::Code::CONTENT {
        return Err(CaseFailure::fail(format!(
            "Read /3/0 over DTLS: expected 2.05 Content, got {} ({})",
            response.code,
            response.text()
        )));
    }
    if response.decoded.is_none() {
        return Err(CaseFailure::fail(format!(
            "Read /3/0 over DTLS: 2.05 with a payload that is not valid {:?}",
            response.content_format
        )));
    }
    Ok(())
}

async fn int_403(cx: &mut CaseContext) -> CaseResult {
    start::use_secure_server(cx, SecurityMode::X509, &[], ServerCert::WrongHost).await?;
    let mut events = cx.server.events();
    let cfg = start::dut_config(cx, EtsConfig::C1);
    let mark = cx.dut.console().mark();
    cx.step("starting the DUT against a server certificate for another host");
    // A DUT may only report itself ready once it has a session (the reference
    // agent does): a start that times out is judged by what the server saw
    // meanwhile (the events are buffered), and is an infrastructure error only
    // if the server saw nothing.
    let started = cx.dut.start(&cfg).await;
    let ep = cx.endpoint.clone();
    let wait = if started.is_ok() {
        prompt_wait(cx, REGISTER_WAIT)
    } else {
        Duration::from_millis(500)
    };
    let first = lwm2m::wait_for(&mut events, wait, |e| match e {
        ServerEvent::Registered { endpoint, .. } => *endpoint == ep,
        ServerEvent::HandshakeFailed { .. } => true,
        _ => false,
    })
    .await;
    let registered_fail = || {
        CaseFailure::fail(format!(
            "the DUT registered as `{ep}` with a server whose certificate is issued for another \
             host: it did not check the server's identity against `{}`",
            cfg.extra.get("server_name").map_or("?", String::as_str)
        ))
    };
    let (reason, message) = match (first, started) {
        (None, Err(e)) => {
            return Err(CaseFailure::infra(format!("could not start the DUT: {e}")));
        }
        (None, Ok(())) => {
            return Err(CaseFailure::inconclusive(format!(
                "no DTLS handshake from the DUT within {:.1} s",
                wait.as_secs_f64()
            )));
        }
        (
            Some(ServerEvent::HandshakeFailed {
                reason, message, ..
            }),
            _,
        ) => (reason, message),
        (Some(_), _) => return Err(registered_fail()),
    };
    if reason != "rejected_by_peer" {
        return Err(CaseFailure::inconclusive(format!(
            "the handshake failed at the server for a reason of its own ({reason}: {message}), \
             before the DUT could judge the server certificate; check the bench's [security] \
             client credentials"
        )));
    }
    // The refusal must hold: no Register in the next seconds (retries included).
    cx.step("the DUT refused the handshake; watching that no Register follows");
    let watch = cx.scaled(REFUSAL_WATCH * 2).max(REFUSAL_WATCH);
    let ep2 = ep.clone();
    if lwm2m::wait_for(
        &mut events,
        watch,
        |e| matches!(e, ServerEvent::Registered { endpoint, .. } if *endpoint == ep2),
    )
    .await
    .is_some()
    {
        return Err(registered_fail());
    }
    let console = cx.dut.console().since(mark);
    let dut_line = console
        .lines()
        .find(|l| l.contains("error dtls"))
        .map(|l| format!("; the DUT said: {}", l.trim()))
        .unwrap_or_default();
    cx.security.note = Some(format!(
        "the DUT refused the server certificate for another host: the server saw the handshake \
         fail ({reason}): {message}{dut_line}"
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_case_states_its_reading_and_fixes_a_security_area() {
        for c in cases() {
            assert_eq!(c.meta.area, Area::Security, "{}", c.meta.id);
            assert!(
                c.meta.reading.is_some_and(|r| r.len() > 40),
                "{}",
                c.meta.id
            );
            assert_eq!(c.meta.start, StartState::Stopped);
        }
        let ids: Vec<_> = cases().iter().map(|c| c.meta.id).collect();
        assert_eq!(
            ids,
            [
                "LightweightM2M-1.1-int-401",
                "LightweightM2M-1.1-int-402",
                "LightweightM2M-1.1-int-403"
            ]
        );
    }
}
