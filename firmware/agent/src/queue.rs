//! Queue mode (LwM2M 1.1 TS §6.5), sans-IO: when the agent is reachable.
//!
//! A queue-mode client (`--queue-mode`, or `--binding UQ` as LwM2M 1.0
//! provisioned it) registers with the `Q` parameter and stays reachable for
//! CoAP's MAX_TRANSMIT_WAIT (93 s, divided by `--time-scale`) after each
//! datagram it sends or receives. Then it sleeps: the radio of a real device
//! is off, so the agent drops every incoming request until its next uplink
//! (a periodic Update, a console `update`, a notification) wakes it. Answers
//! to its own requests still arrive (they follow its uplink).
//!
//! Test-only deviations (`--deviate`): `answer-while-sleeping` never sleeps;
//! `no-wake-on-update` drops every request once it first slept.

use std::time::Duration;

use rig_proto::coap;
use rig_proto::time::Instant;

use crate::config::{AgentConfig, Deviation};

/// When the agent is reachable; see the module doc.
#[derive(Clone, Debug)]
pub struct QueueMode {
    enabled: bool,
    window: Duration,
    awake_until: Option<Instant>,
    /// The agent went to sleep at least once (for `no-wake-on-update`).
    slept: bool,
    /// Sleep was announced in the log.
    announced: bool,
    never_sleep: bool,
    never_wake: bool,
}

impl QueueMode {
    /// Queue mode as `cfg` says (off: always reachable).
    pub fn new(cfg: &AgentConfig) -> QueueMode {
        QueueMode {
            enabled: enabled(cfg),
            window: cfg.scaled(coap::Config::default().max_transmit_wait()),
            awake_until: None,
            slept: false,
            announced: false,
            never_sleep: cfg.deviates(Deviation::AnswerWhileSleeping),
            never_wake: cfg.deviates(Deviation::NoWakeOnUpdate),
        }
    }

    /// Whether queue mode is on.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The agent sent a datagram (an uplink) or received one while awake.
    pub fn on_traffic(&mut self, now: Instant) {
        if self.enabled {
            self.awake_until = Some(now + self.window);
            self.announced = false;
        }
    }

    /// Whether an incoming request must be dropped now (the agent sleeps).
    pub fn drops_request(&mut self, now: Instant) -> bool {
        if !self.enabled || self.never_sleep {
            return false;
        }
        let asleep = self.awake_until.is_some_and(|t| now >= t);
        self.slept |= asleep;
        asleep || (self.never_wake && self.slept)
    }

    /// When the agent falls asleep next (to log it), if it is awake.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.enabled && !self.announced {
            self.awake_until
        } else {
            None
        }
    }

    /// Runs the timer: a log line when the agent falls asleep.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<String> {
        if self.enabled && !self.announced && self.awake_until.is_some_and(|t| now >= t) {
            self.announced = true;
            self.slept = true;
            return Some(format!(
                "queue mode: RX window closed after {:.1} s without traffic; sleeping until the next uplink",
                self.window.as_secs_f64()
            ));
        }
        None
    }
}

/// Whether `cfg` asks for queue mode (`--queue-mode` or `--binding UQ`).
pub fn enabled(cfg: &AgentConfig) -> bool {
    cfg.queue_mode || cfg.binding.contains('Q')
}

/// The configuration the client runs with: a 1.0-style `UQ` binding becomes
/// binding `U` (what `/1/0/7` holds in 1.1) with queue mode on.
pub fn normalize(mut cfg: AgentConfig) -> AgentConfig {
    if cfg.binding.contains('Q') {
        cfg.binding = cfg.binding.replace('Q', "");
        cfg.queue_mode = true;
    }
    cfg
}

/// Sets queue mode in the registration machine's configuration: the `Q`
/// parameter, or (deviation `queue-mode-in-binding`) `b=UQ` without it.
pub fn configure(cfg: &AgentConfig, rc: &mut rig_proto::registration::RegistrationConfig) {
    if !enabled(cfg) {
        return;
    }
    if cfg.deviates(Deviation::QueueModeInBinding) {
        rc.binding = Some(format!("{}Q", rc.binding.as_deref().unwrap_or("U")));
        rc.queue_mode = false;
    } else {
        rc.queue_mode = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cfg(args: &[&str]) -> AgentConfig {
        let mut v = vec![
            "rig-agent",
            "--server",
            "coap://127.0.0.1:1",
            "--endpoint",
            "q",
        ];
        v.extend_from_slice(args);
        AgentConfig::try_parse_from(v).unwrap()
    }

    #[test]
    fn sleeps_after_the_scaled_window_and_wakes_on_traffic() {
        let mut q = QueueMode::new(&cfg(&["--queue-mode", "--time-scale", "10"]));
        let t0 = Instant::ZERO;
        q.on_traffic(t0);
        assert!(!q.drops_request(t0 + Duration::from_millis(9_000)));
        assert_eq!(q.poll_timeout(), Some(t0 + Duration::from_millis(9_300)));
        let late = t0 + Duration::from_millis(9_400);
        assert!(q.handle_timeout(late).is_some());
        assert!(q.drops_request(late));
        q.on_traffic(late);
        assert!(!q.drops_request(late + Duration::from_secs(1)));
    }

    #[test]
    fn off_by_default_and_uq_turns_it_on() {
        let mut q = QueueMode::new(&cfg(&[]));
        q.on_traffic(Instant::ZERO);
        assert!(!q.drops_request(Instant::ZERO + Duration::from_secs(1000)));
        let c = normalize(cfg(&["--binding", "UQ"]));
        assert_eq!(c.binding, "U");
        assert!(c.queue_mode);
    }

    #[test]
    fn the_deviations_change_exactly_one_thing() {
        let t0 = Instant::ZERO;
        let mut awake = QueueMode::new(&cfg(&[
            "--queue-mode",
            "--deviate",
            "answer-while-sleeping",
        ]));
        awake.on_traffic(t0);
        assert!(!awake.drops_request(t0 + Duration::from_secs(500)));
        let mut stuck = QueueMode::new(&cfg(&["--queue-mode", "--deviate", "no-wake-on-update"]));
        stuck.on_traffic(t0);
        assert!(stuck.drops_request(t0 + Duration::from_secs(100)));
        stuck.on_traffic(t0 + Duration::from_secs(100));
        assert!(stuck.drops_request(t0 + Duration::from_secs(101)));
    }
}
