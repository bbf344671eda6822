//! ETS bootstrap cases (0-99): LightweightM2M-1.1-int-0, -1, -2, -4 to -9.
//!
//! Each body starts the DUT itself in configuration C.13 (a bootstrap
//! account only): the engine offers no such start state, so the case starts
//! from `Stopped` and gives the DUT a [`DutConfig`] whose `extra` holds
//! `bootstrap_uri` (the rig's bootstrap server) and `bootstrap_only = true`.
//! For the reference agent those become `--bootstrap-uri` and
//! `--bootstrap-only`. The bootstrap server is bound inside the body, on the
//! LwM2M server's IP with a free port; if that fails (the address lives in a
//! namespace the rig process cannot bind in), the case is Inconclusive and
//! says so. Criteria follow `shared/reference/oma-interop-cases.md` §2.1.

use std::net::SocketAddr;
use std::time::Duration;

use rig_services::bootstrap::{
    AccountSecurity, BootstrapEvent, BootstrapServer, Provisioning, parse_links, wait_for,
};
use rig_services::lwm2m::{self, Code, ObjectPath, Response, ServerEvent};

use crate::case::SecurityMode;
use crate::case::{
    Area, CaseContext, CaseDef, CaseFailure, CaseMeta, CaseResult, EtsConfig, StartState,
};
use crate::start::{self, REGISTER_WAIT, ServerCert, prompt_wait};

const REQUIRES: &[&str] = &["lwm2m"];

fn meta(id: &'static str, title: &'static str, reading: Option<&'static str>) -> CaseMeta {
    CaseMeta {
        id,
        title,
        area: Area::Bootstrap,
        requires: REQUIRES,
        start: StartState::Stopped,
        timeout: Duration::from_secs(90),
        reading,
        unscaled_timeout: false,
        max_time_scale: None,
    }
}

/// The bootstrap cases, in id order.
pub(crate) fn cases() -> Vec<CaseDef> {
    vec![
        CaseDef {
            meta: meta(
                "LightweightM2M-1.1-int-0",
                "Client Initiated Bootstrap",
                Some(
                    "From C.13: the Bootstrap-Request is answered 2.04; Bootstrap-Write of /0/0 and \
                     /1/0 (C.1 values, NoSec, towards the rig's LwM2M server) must be 2.04; \
                     Bootstrap-Discover of / must be 2.05 link format with lwm2m=\"1.x\", the \
                     bootstrap account /0/1, /0/0 and /1/0 with ssid=1, and /3/0; Finish must be \
                     2.04 and the client must then register. Any deviation the strict bootstrap \
                     server recorded fails the case.",
                ),
            ),
            body: |cx| Box::pin(int_0(cx)),
        },
        CaseDef {
            meta: meta(
                "LightweightM2M-1.1-int-1",
                "Client Initiated Bootstrap Full (PSK)",
                Some(
                    "As int-0, but the account written to /0/0 is a PSK account (mode 0, \
                     identity and key from the bench's credentials) towards a coaps:// LwM2M \
                     server; the DUT gets its PSK only through the bootstrap (its own start \
                     provisioning is NoSec). After Finish, the client must complete a DTLS-PSK \
                     handshake and register with the endpoint the identity maps to.",
                ),
            ),
            body: |cx| Box::pin(int_1(cx)),
        },
        CaseDef {
            meta: meta(
                "LightweightM2M-1.1-int-2",
                "Client Initiated Bootstrap Full (Cert)",
                Some(
                    "As int-1 with a certificate account (mode 2): /0/0/3 the client \
                     certificate, /0/0/4 the CA that issued the server's certificate (a trust \
                     anchor), /0/0/5 the client's private key, all DER. The server certificate \
                     names the bench's server_name while the account URI holds an IP address, so \
                     the DUT's provisioning carries that name (`server_name`) for the check.",
                ),
            ),
            body: |cx| Box::pin(int_2(cx)),
        },
        CaseDef {
            meta: meta(
                "LightweightM2M-1.1-int-4",
                "Bootstrap Delete",
                Some(
                    "Bootstrap-Delete of /0 and /1 must be 2.02 (also when repeated); a \
                     Discover afterwards must still list the bootstrap account /0/1 and no /1 \
                     instance; after rewriting /0/0 and /1/0 and Finish, the client registers.",
                ),
            ),
            body: |cx| Box::pin(int_4(cx)),
        },
        CaseDef {
            meta: meta(
                "LightweightM2M-1.1-int-5",
                "Server Initiated Bootstrap",
                Some(
                    "After a first bootstrap and Register, Execute /1/0/9 on the LwM2M server \
                     must be 2.04 and be followed by a new Bootstrap-Request; after provisioning \
                     again, the client must register again.",
                ),
            ),
            body: |cx| Box::pin(int_5(cx)),
        },
        CaseDef {
            meta: meta(
                "LightweightM2M-1.1-int-6",
                "Bootstrap Sequence",
                Some(
                    "The rig has no smartcard, so the order checked is: a factory server account \
                     that works is used first (the DUT, provisioned with C.1 plus a bootstrap \
                     account, must register and send no Bootstrap-Request within the register \
                     wait); with no server account (C.13) the DUT must bootstrap, then register.",
                ),
            ),
            body: |cx| Box::pin(int_6(cx)),
        },
        CaseDef {
            meta: CaseMeta {
                timeout: Duration::from_secs(240),
                unscaled_timeout: true,
                max_time_scale: None,
                ..meta(
                    "LightweightM2M-1.1-int-7",
                    "Fallback to bootstrap",
                    Some(
                        "The factory account points at a UDP port of the rig that never answers \
                         (unreachable at the CoAP layer); the DUT also has a bootstrap account. \
                         Its Register attempts must reach that port, and it must fall back to a \
                         Bootstrap-Request within CoAP's MAX_TRANSMIT_WAIT (93 s; CoAP timers are \
                         never scaled) plus 30 s; once provisioned it must register at the rig's \
                         LwM2M server.",
                    ),
                )
            },
            body: |cx| Box::pin(int_7(cx)),
        },
        CaseDef {
            meta: meta(
                "LightweightM2M-1.1-int-8",
                "Bootstrap Read",
                Some(
                    "After writing /0/0 and /1/0, Bootstrap-Read of /1 must be 2.05 and carry \
                     the written lifetime; the ACL object /2 is not supported by every client, \
                     so a Read of /2 may be 2.05 or 4.04, never another code.",
                ),
            ),
            body: |cx| Box::pin(int_8(cx)),
        },
        CaseDef {
            meta: meta(
                "LightweightM2M-1.1-int-9",
                "Bootstrap and Configuration Consistency",
                Some(
                    "From C.13, the server writes only /1/0 (no server Security instance) and \
                     sends Finish: the client must answer 4.06 Not Acceptable. The case then \
                     completes the configuration and checks that Finish is 2.04.",
                ),
            ),
            body: |cx| Box::pin(int_9(cx)),
        },
    ]
}

fn op_failed(what: &str, e: impl std::fmt::Display) -> CaseFailure {
    CaseFailure::fail(format!("{what}: {e}"))
}

fn expect_code(what: &str, r: &Response, code: Code) -> CaseResult {
    if r.code == code {
        Ok(())
    } else {
        Err(CaseFailure::fail(format!(
            "{what}: expected {code}, the client answered {}{}",
            r.code,
            if r.payload.is_empty() {
                String::new()
            } else {
                format!(" ({})", r.text())
            }
        )))
    }
}

/// Binds the bootstrap server, starts the DUT in C.13 and waits for its
/// Bootstrap-Request.
async fn start_c13(cx: &mut CaseContext) -> Result<BootstrapServer, CaseFailure> {
    start_c13_with(cx, |_| {}).await
}

/// Binds the bootstrap server next to the LwM2M server.
async fn bind_bootstrap(cx: &mut CaseContext) -> Result<BootstrapServer, CaseFailure> {
    let ip = cx.server.local_addr().ip();
    let addr = SocketAddr::new(ip, 0);
    let cannot = |e: String| {
        CaseFailure::inconclusive(format!(
            "cannot bind the bootstrap server next to the LwM2M server ({ip}): {e}"
        ))
    };
    let bs = match cx.security.udp_binder.clone() {
        // On the simulated network: a socket made in the services namespace.
        Some(binder) => {
            let socket = binder.bind(addr).map_err(|e| cannot(e.to_string()))?;
            BootstrapServer::from_std(socket).map_err(|e| cannot(e.to_string()))?
        }
        None => BootstrapServer::bind(addr)
            .await
            .map_err(|e| cannot(e.to_string()))?,
    };
    Ok(bs)
}

/// As [`start_c13`], with a last change to the DUT's provisioning.
async fn start_c13_with(
    cx: &mut CaseContext,
    edit: impl FnOnce(&mut rig_bench::dut::DutConfig),
) -> Result<BootstrapServer, CaseFailure> {
    let bs = bind_bootstrap(cx).await?;
    let mut cfg = start::dut_config(cx, EtsConfig::C1);
    cfg.extra.insert("bootstrap_uri".into(), bs.uri());
    cfg.extra.insert("bootstrap_only".into(), "true".into());
    edit(&mut cfg);
    let mut events = bs.events();
    cx.step(format!(
        "starting the DUT in configuration C.13 (bootstrap server {})",
        bs.uri()
    ));
    cx.dut
        .start(&cfg)
        .await
        .map_err(|e| CaseFailure::infra(format!("could not start the DUT: {e}")))?;
    let wait = prompt_wait(cx, REGISTER_WAIT);
    let ep = cx.endpoint.clone();
    let got = wait_for(
        &mut events,
        wait,
        |e| matches!(e, BootstrapEvent::BootstrapRequest { endpoint, .. } if *endpoint == ep),
    )
    .await;
    if got.is_none() {
        return Err(CaseFailure::not_applicable(format!(
            "could not reach start state C.13: no Bootstrap-Request from `{ep}` within {:.1} s \
             (the DUT must take the `bootstrap_uri` and `bootstrap_only` provisioning keys)",
            wait.as_secs_f64()
        )));
    }
    bs.clear_deviations(&ep);
    Ok(bs)
}

/// Writes the C.1 account (NoSec, towards the rig's LwM2M server) into /0/0 and /1/0.
async fn write_c1(ep: &str, server_uri: &str, bs: &BootstrapServer) -> CaseResult {
    let account = Provisioning::nosec(server_uri);
    let r = bs
        .write(ep, &ObjectPath::instance(0, 0), &account.security_records())
        .await
        .map_err(|e| op_failed("Bootstrap-Write /0/0", e))?;
    expect_code("Bootstrap-Write /0/0", &r, Code::CHANGED)?;
    let r = bs
        .write(ep, &ObjectPath::instance(1, 0), &account.server_records())
        .await
        .map_err(|e| op_failed("Bootstrap-Write /1/0", e))?;
    expect_code("Bootstrap-Write /1/0", &r, Code::CHANGED)
}

/// Finish (2.04 expected), then waits for the Register.
async fn finish_and_register(cx: &mut CaseContext, bs: &BootstrapServer) -> CaseResult {
    let mut events = cx.server.events();
    let r = bs
        .finish(&cx.endpoint)
        .await
        .map_err(|e| op_failed("Bootstrap-Finish", e))?;
    expect_code("Bootstrap-Finish", &r, Code::CHANGED)?;
    wait_register(cx, &mut events).await
}

async fn wait_register(
    cx: &mut CaseContext,
    events: &mut tokio::sync::broadcast::Receiver<ServerEvent>,
) -> CaseResult {
    let wait = prompt_wait(cx, REGISTER_WAIT);
    let ep = cx.endpoint.clone();
    lwm2m::wait_for(events, wait, |e| {
        matches!(e, ServerEvent::Registered { endpoint, .. } if *endpoint == ep)
    })
    .await
    .map(drop)
    .ok_or_else(|| {
        CaseFailure::fail(format!(
            "no Register from `{ep}` at the provisioned server within {:.1} s after Bootstrap-Finish",
            wait.as_secs_f64()
        ))
    })
}

/// Fails if the strict bootstrap server recorded any deviation.
fn no_deviations(cx: &CaseContext, bs: &BootstrapServer) -> CaseResult {
    let d = bs.deviations(&cx.endpoint);
    if d.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = d.iter().map(ToString::to_string).collect();
    Err(CaseFailure::fail(format!(
        "the bootstrap server recorded {} deviation(s) from `{}`: {}",
        list.len(),
        cx.endpoint,
        list.join("; ")
    )))
}

/// Discover of `/`, checked; returns the link text.
async fn discover(ep: &str, bs: &BootstrapServer) -> Result<String, CaseFailure> {
    let r = bs
        .discover(ep, &ObjectPath::Root)
        .await
        .map_err(|e| op_failed("Bootstrap-Discover /", e))?;
    expect_code("Bootstrap-Discover /", &r, Code::CONTENT)?;
    let links = parse_links(&r).map_err(|e| op_failed("Bootstrap-Discover / link format", e))?;
    let targets: Vec<String> = links.iter().map(|l| l.target.to_string()).collect();
    if !targets.iter().any(|t| t == "/3/0") {
        return Err(CaseFailure::fail(format!(
            "Bootstrap-Discover /: expected a </3/0> link, saw {}",
            r.text()
        )));
    }
    Ok(r.text())
}

/// 0: Client Initiated Bootstrap.
async fn int_0(cx: &mut CaseContext) -> CaseResult {
    let bs = start_c13(cx).await?;
    write_c1(&cx.endpoint, &cx.server.uri(), &bs).await?;
    let text = discover(&cx.endpoint, &bs).await?;
    for want in ["</0/0>", "</0/1>", "</1/0>"] {
        if !text.contains(want) {
            return Err(CaseFailure::fail(format!(
                "Bootstrap-Discover /: expected a {want} link, saw {text}"
            )));
        }
    }
    for (inst, want) in [("</0/0>", "ssid=1"), ("</1/0>", "ssid=1")] {
        let attrs = text
            .split(',')
            .find(|l| l.starts_with(inst))
            .unwrap_or_default();
        if !attrs.contains(want) {
            return Err(CaseFailure::fail(format!(
                "Bootstrap-Discover /: expected {inst} with {want}, saw `{attrs}`"
            )));
        }
    }
    finish_and_register(cx, &bs).await?;
    no_deviations(cx, &bs)
}

/// 4: Bootstrap Delete.
async fn int_4(cx: &mut CaseContext) -> CaseResult {
    let bs = start_c13(cx).await?;
    write_c1(&cx.endpoint, &cx.server.uri(), &bs).await?;
    let ep = cx.endpoint.clone();
    for path in [
        ObjectPath::object(0),
        ObjectPath::object(1),
        ObjectPath::object(1),
    ] {
        let r = bs
            .delete(&ep, &path)
            .await
            .map_err(|e| op_failed(&format!("Bootstrap-Delete {path}"), e))?;
        expect_code(&format!("Bootstrap-Delete {path}"), &r, Code::DELETED)?;
    }
    let text = discover(&cx.endpoint, &bs).await?;
    if !text.contains("</0/1>") {
        return Err(CaseFailure::fail(format!(
            "after Bootstrap-Delete /0 the bootstrap account /0/1 must survive; Discover saw {text}"
        )));
    }
    if text.contains("</1/") || text.contains("</0/0>") {
        return Err(CaseFailure::fail(format!(
            "after Bootstrap-Delete /0 and /1 no server account may remain; Discover saw {text}"
        )));
    }
    write_c1(&cx.endpoint, &cx.server.uri(), &bs).await?;
    finish_and_register(cx, &bs).await?;
    no_deviations(cx, &bs)
}

/// 5: Server Initiated Bootstrap.
async fn int_5(cx: &mut CaseContext) -> CaseResult {
    let bs = start_c13(cx).await?;
    write_c1(&cx.endpoint, &cx.server.uri(), &bs).await?;
    finish_and_register(cx, &bs).await?;
    let ep = cx.endpoint.clone();
    let mut bs_events = bs.events();
    cx.step("Execute /1/0/9 (Bootstrap-Request Trigger)");
    let r = cx
        .server
        .execute(&ep, &ObjectPath::resource(1, 0, 9), None)
        .await
        .map_err(|e| op_failed("Execute /1/0/9", e))?;
    expect_code("Execute /1/0/9", &r, Code::CHANGED)?;
    let wait = prompt_wait(cx, REGISTER_WAIT);
    wait_for(
        &mut bs_events,
        wait,
        |e| matches!(e, BootstrapEvent::BootstrapRequest { endpoint, .. } if *endpoint == ep),
    )
    .await
    .ok_or_else(|| {
        CaseFailure::fail(format!(
            "no Bootstrap-Request within {:.1} s after Execute /1/0/9",
            wait.as_secs_f64()
        ))
    })?;
    write_c1(&cx.endpoint, &cx.server.uri(), &bs).await?;
    finish_and_register(cx, &bs).await?;
    no_deviations(cx, &bs)
}

/// 8: Bootstrap Read.
async fn int_8(cx: &mut CaseContext) -> CaseResult {
    let bs = start_c13(cx).await?;
    write_c1(&cx.endpoint, &cx.server.uri(), &bs).await?;
    let ep = cx.endpoint.clone();
    let r = bs
        .read(&ep, &ObjectPath::object(1), None)
        .await
        .map_err(|e| op_failed("Bootstrap-Read /1", e))?;
    expect_code("Bootstrap-Read /1", &r, Code::CONTENT)?;
    let lifetime = r.decoded.as_ref().and_then(|v| {
        v.iter()
            .find(|x| x.path == ObjectPath::resource(1, 0, 1))
            .and_then(|x| x.value.as_i64())
    });
    if lifetime != Some(i64::from(start::C1_LIFETIME_S)) {
        return Err(CaseFailure::fail(format!(
            "Bootstrap-Read /1: expected /1/0/1 = {}, saw {lifetime:?} (format {:?}, payload {} bytes)",
            start::C1_LIFETIME_S,
            r.content_format,
            r.payload.len()
        )));
    }
    let r = bs
        .read(&ep, &ObjectPath::object(2), None)
        .await
        .map_err(|e| op_failed("Bootstrap-Read /2", e))?;
    if r.code != Code::CONTENT && r.code != Code::NOT_FOUND {
        return Err(CaseFailure::fail(format!(
            "Bootstrap-Read /2: expected 2.05 or 4.04, the client answered {}",
            r.code
        )));
    }
    finish_and_register(cx, &bs).await?;
    no_deviations(cx, &bs)
}

/// 9: Bootstrap and Configuration Consistency.
async fn int_9(cx: &mut CaseContext) -> CaseResult {
    let bs = start_c13(cx).await?;
    let ep = cx.endpoint.clone();
    let account = Provisioning::nosec(&cx.server.uri());
    let r = bs
        .write(&ep, &ObjectPath::instance(1, 0), &account.server_records())
        .await
        .map_err(|e| op_failed("Bootstrap-Write /1/0", e))?;
    expect_code("Bootstrap-Write /1/0", &r, Code::CHANGED)?;
    let r = bs
        .finish(&ep)
        .await
        .map_err(|e| op_failed("Bootstrap-Finish", e))?;
    expect_code(
        "Bootstrap-Finish with no server Security instance",
        &r,
        Code::NOT_ACCEPTABLE,
    )?;
    write_c1(&cx.endpoint, &cx.server.uri(), &bs).await?;
    finish_and_register(cx, &bs).await?;
    no_deviations(cx, &bs)
}

/// The provisioning keys that carry the DUT's own security credentials.
const SECURITY_KEYS: [&str; 7] = [
    "security",
    "psk_identity",
    "psk_key_hex",
    "psk_key_file",
    "cert_file",
    "key_file",
    "ca_file",
];

/// Writes `account` into /0/x and /1/y.
async fn write_account(ep: &str, bs: &BootstrapServer, account: &Provisioning) -> CaseResult {
    let sec = ObjectPath::instance(0, account.security_instance);
    let r = bs
        .write(ep, &sec, &account.security_records())
        .await
        .map_err(|e| op_failed(&format!("Bootstrap-Write {sec}"), e))?;
    expect_code(&format!("Bootstrap-Write {sec}"), &r, Code::CHANGED)?;
    let srv = ObjectPath::instance(1, account.server_instance);
    let r = bs
        .write(ep, &srv, &account.server_records())
        .await
        .map_err(|e| op_failed(&format!("Bootstrap-Write {srv}"), e))?;
    expect_code(&format!("Bootstrap-Write {srv}"), &r, Code::CHANGED)
}

/// Fails if the (secure) LwM2M server recorded a deviation for the endpoint.
fn no_server_deviations(cx: &CaseContext) -> CaseResult {
    let d = cx.server.deviations(&cx.endpoint);
    if d.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = d.iter().map(ToString::to_string).collect();
    Err(CaseFailure::fail(format!(
        "the LwM2M server recorded {} deviation(s) from `{}`: {}",
        list.len(),
        cx.endpoint,
        list.join("; ")
    )))
}

/// 1: Client Initiated Bootstrap Full (PSK).
async fn int_1(cx: &mut CaseContext) -> CaseResult {
    start::use_secure_server(cx, SecurityMode::Psk, &[], ServerCert::Normal).await?;
    let extra = cx.security.dut_extra.clone();
    let (Some(identity), Some(key_hex)) = (extra.get("psk_identity"), extra.get("psk_key_hex"))
    else {
        return Err(CaseFailure::infra(
            "the PSK setup gave no psk_identity/psk_key_hex",
        ));
    };
    let key = rig_dtls::from_hex(key_hex)
        .map_err(|e| CaseFailure::infra(format!("psk_key_hex of the bench: {e}")))?;
    let bs = start_c13_with(cx, |cfg| {
        for k in SECURITY_KEYS {
            cfg.extra.remove(k);
        }
        cfg.extra.insert("security".into(), "nosec".into());
    })
    .await?;
    let mut account = Provisioning::nosec(&cx.server.uri());
    account.security = AccountSecurity::Psk {
        identity: identity.clone().into_bytes(),
        key,
    };
    cx.step(format!(
        "writing a PSK account (identity `{identity}`) towards {}",
        cx.server.uri()
    ));
    write_account(&cx.endpoint, &bs, &account).await?;
    finish_and_register(cx, &bs).await?;
    no_deviations(cx, &bs)?;
    no_server_deviations(cx)
}

/// The DER of a PEM file's first certificate, or of its private key.
fn der_of(path: &std::path::Path, key: bool) -> Result<Vec<u8>, CaseFailure> {
    let bad = |e: String| CaseFailure::infra(format!("{}: {e}", path.display()));
    if key {
        let k = rig_dtls::load_private_key(path).map_err(|e| bad(e.to_string()))?;
        k.private_key_to_der().map_err(|e| bad(e.to_string()))
    } else {
        let chain = rig_dtls::load_certificates(path).map_err(|e| bad(e.to_string()))?;
        chain
            .first()
            .ok_or_else(|| bad("no certificate".into()))?
            .to_der()
            .map_err(|e| bad(e.to_string()))
    }
}

/// 2: Client Initiated Bootstrap Full (Cert).
async fn int_2(cx: &mut CaseContext) -> CaseResult {
    start::use_secure_server(cx, SecurityMode::X509, &[], ServerCert::Normal).await?;
    let Some(spec) = cx.security.credentials.clone() else {
        return Err(CaseFailure::not_applicable(
            "certificate bootstrap needs the bench's [security] credentials",
        ));
    };
    let account_security = AccountSecurity::Certificate {
        client_cert_der: der_of(&spec.client_cert, false)?,
        client_private_der: der_of(&spec.client_key, true)?,
        server_cert_der: der_of(&spec.ca, false)?,
    };
    let server_name = spec.server_name.clone();
    let bs = start_c13_with(cx, |cfg| {
        for k in SECURITY_KEYS {
            cfg.extra.remove(k);
        }
        // The mode is named so the server name reaches the DUT; the
        // credentials come only from the bootstrap.
        cfg.extra.insert("security".into(), "x509".into());
        cfg.extra.insert("server_name".into(), server_name);
    })
    .await?;
    let mut account = Provisioning::nosec(&cx.server.uri());
    account.security = account_security;
    cx.step(format!(
        "writing a certificate account towards {}",
        cx.server.uri()
    ));
    write_account(&cx.endpoint, &bs, &account).await?;
    finish_and_register(cx, &bs).await?;
    no_deviations(cx, &bs)?;
    no_server_deviations(cx)
}

/// 6: Bootstrap Sequence.
async fn int_6(cx: &mut CaseContext) -> CaseResult {
    // Phase 1: a working factory account and a bootstrap account.
    let bs = bind_bootstrap(cx).await?;
    let mut cfg = start::dut_config(cx, EtsConfig::C1);
    cfg.extra.insert("bootstrap_uri".into(), bs.uri());
    let mut bs_events = bs.events();
    let ep = cx.endpoint.clone();
    cx.step(format!(
        "starting the DUT with C.1 and a bootstrap account ({})",
        bs.uri()
    ));
    let mut events = cx.server.events();
    cx.dut
        .start(&cfg)
        .await
        .map_err(|e| CaseFailure::infra(format!("could not start the DUT: {e}")))?;
    let wait = prompt_wait(cx, REGISTER_WAIT);
    let first = lwm2m::wait_for(
        &mut events,
        wait,
        |e| matches!(e, ServerEvent::Registered { endpoint, .. } if *endpoint == ep),
    )
    .await;
    let bootstrapped = wait_for(
        &mut bs_events,
        Duration::ZERO,
        |e| matches!(e, BootstrapEvent::BootstrapRequest { endpoint, .. } if *endpoint == ep),
    )
    .await
    .is_some()
        || bs.session(&ep).is_some();
    if bootstrapped {
        return Err(CaseFailure::fail(
            "with a working factory server account the DUT sent a Bootstrap-Request; it must \
             register with the existing server first",
        ));
    }
    if first.is_none() {
        return Err(CaseFailure::fail(format!(
            "with a factory server account (C.1) and a bootstrap account, no Register from \
             `{ep}` within {:.1} s",
            wait.as_secs_f64()
        )));
    }
    cx.dut
        .stop()
        .await
        .map_err(|e| CaseFailure::infra(format!("could not stop the DUT: {e}")))?;
    bs.shutdown();
    // Phase 2: no server account: bootstrap, then register.
    cx.step("restarting the DUT with the bootstrap account only (C.13)");
    let bs = start_c13(cx).await?;
    write_c1(&cx.endpoint, &cx.server.uri(), &bs).await?;
    finish_and_register(cx, &bs).await?;
    no_deviations(cx, &bs)
}

/// 7: Fallback to bootstrap.
async fn int_7(cx: &mut CaseContext) -> CaseResult {
    let bs = bind_bootstrap(cx).await?;
    // The unreachable factory server: a bound socket nobody answers on.
    let ip = cx.server.local_addr().ip();
    let dead = match cx.security.udp_binder.clone() {
        Some(binder) => binder.bind(SocketAddr::new(ip, 0)),
        None => std::net::UdpSocket::bind(SocketAddr::new(ip, 0)),
    }
    .map_err(|e| CaseFailure::inconclusive(format!("cannot bind the dead server port: {e}")))?;
    let dead_addr = dead
        .local_addr()
        .map_err(|e| CaseFailure::infra(e.to_string()))?;
    dead.set_read_timeout(Some(Duration::from_millis(50)))
        .map_err(|e| CaseFailure::infra(e.to_string()))?;
    let mut cfg = start::dut_config(cx, EtsConfig::C1);
    cfg.server_uri = format!("coap://{dead_addr}");
    cfg.extra.insert("bootstrap_uri".into(), bs.uri());
    let mut bs_events = bs.events();
    let ep = cx.endpoint.clone();
    cx.step(format!(
        "starting the DUT with its factory server at {dead_addr} (never answers) and a bootstrap account"
    ));
    cx.dut
        .start(&cfg)
        .await
        .map_err(|e| CaseFailure::infra(format!("could not start the DUT: {e}")))?;
    let wait = Duration::from_secs(93 + 30);
    let started = tokio::time::Instant::now();
    let got = wait_for(
        &mut bs_events,
        wait,
        |e| matches!(e, BootstrapEvent::BootstrapRequest { endpoint, .. } if *endpoint == ep),
    )
    .await;
    // How many datagrams the dead server got (the Register and its retransmissions).
    let mut tries = 0usize;
    let mut buf = [0u8; 2048];
    for _ in 0..64 {
        match dead.recv_from(&mut buf) {
            Ok(_) => tries += 1,
            Err(_) => break,
        }
    }
    if got.is_none() {
        return Err(CaseFailure::fail(format!(
            "the factory server never answered ({tries} datagram(s) reached it); expected a \
             fallback Bootstrap-Request within {:.0} s, saw none",
            wait.as_secs_f64()
        )));
    }
    cx.measure("bootstrap.fallback_s", "s", started.elapsed().as_secs_f64());
    if tries == 0 {
        return Err(CaseFailure::fail(
            "the DUT bootstrapped without trying its factory server first (no datagram reached it)",
        ));
    }
    bs.clear_deviations(&ep);
    write_c1(&cx.endpoint, &cx.server.uri(), &bs).await?;
    finish_and_register(cx, &bs).await?;
    no_deviations(cx, &bs)
}
