//! Bringing the DUT to a case's start state (ETS appendix C).
//!
//! [`reach`] is called by the engine before a case body runs. `Stopped` stops
//! the DUT; `Registered(C.x)` (re)starts it provisioned as configuration C.x
//! (see [`dut_config`]) and waits, bounded by a scaled timeout, for its
//! Register at the rig's LwM2M server. A DUT that cannot be started is an
//! infrastructure error; one that starts but does not register in time makes
//! the case Inconclusive, with a message naming the configuration and the wait.

use std::time::Duration;

use rig_bench::dut::DutConfig;
use rig_services::lwm2m::{self, ServerEvent};

use crate::case::{CaseContext, CaseFailure, CaseResult, EtsConfig, StartState};

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
        extra: Default::default(),
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
    match lwm2m::wait_for(
        &mut events,
        wait,
        |e| matches!(e, ServerEvent::Registered { endpoint, .. } if *endpoint == ep),
    )
    .await
    {
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
