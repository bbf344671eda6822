//! The LwM2M registration state machines over the CoAP message layer, on a
//! simulated clock: a client `ClientRegistration` talks through an
//! `Endpoint` to a server `Registry` behind another `Endpoint`. Register,
//! periodic Updates before expiry (time-scaled), a server that forgot the
//! client (4.04 → re-register), and De-register.

#![allow(clippy::unwrap_used, clippy::panic)]

mod coap_support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use coap_support::Pair;
use rig_proto::coap::{Config, Endpoint, Event, RequestId};
use rig_proto::registration::{ClientRegistration, RegistrationConfig, RegistrationEvent};
use rig_proto::registry::{Registry, RegistryEvent};
use rig_proto::time::Instant;

struct Client {
    reg: ClientRegistration,
    in_flight: Option<RequestId>,
    events: Vec<(Instant, RegistrationEvent)>,
}

/// Steps the client machine: timers, request out, until quiet.
fn pump(p: &mut Pair, c: &Rc<RefCell<Client>>) {
    let now = p.now;
    let mut cl = c.borrow_mut();
    if cl.reg.poll_timeout().is_some_and(|t| t <= now) {
        cl.reg.handle_timeout(now);
    }
    if cl.in_flight.is_none()
        && let Some(req) = cl.reg.poll_request(now)
    {
        let id = p.client.send_request(now, p.server_addr, req).unwrap();
        cl.in_flight = Some(id);
    }
}

type Setup = (
    Pair,
    Rc<RefCell<Client>>,
    Rc<RefCell<Registry>>,
    Rc<RefCell<Vec<RegistryEvent>>>,
);

fn setup(time_scale: u32, lifetime: u32) -> Setup {
    let cfg = Config {
        time_scale,
        ..Config::default()
    };
    let mut p = Pair::new(Endpoint::new(cfg.clone(), 1), Endpoint::new(cfg, 2));
    let mut rc = RegistrationConfig::new("dev1", lifetime, "</1/0>,</3/0>");
    rc.time_scale = time_scale;
    let client = Rc::new(RefCell::new(Client {
        reg: ClientRegistration::new(rc),
        in_flight: None,
        events: Vec::new(),
    }));
    let registry = Rc::new(RefCell::new(Registry::new(time_scale)));
    let server_events = Rc::new(RefCell::new(Vec::new()));
    let (r2, e2) = (registry.clone(), server_events.clone());
    p.server_app = Some(Box::new(move |ep, now, ev| {
        if let Event::Request { id, peer, request } = ev {
            let (resp, what) = r2.borrow_mut().handle_request(now, *peer, request);
            e2.borrow_mut().push(what);
            ep.respond(now, *id, resp.unwrap()).unwrap();
        }
    }));
    let c2 = client.clone();
    p.client_app = Some(Box::new(move |_, now, ev| {
        let mut c = c2.borrow_mut();
        let out = match ev {
            Event::Response { id, response, .. } if Some(*id) == c.in_flight => {
                c.in_flight = None;
                c.reg.handle_response(now, response)
            }
            Event::RequestTimedOut { id } | Event::Reset { id } if Some(*id) == c.in_flight => {
                c.in_flight = None;
                c.reg.handle_failure(now)
            }
            _ => None,
        };
        if let Some(e) = out {
            c.events.push((now, e));
        }
    }));
    (p, client, registry, server_events)
}

/// Drives pair and client machine together for `d`, in steps of at most
/// 100 ms of simulated time so the client machine's timers are hit exactly.
fn run(p: &mut Pair, c: &Rc<RefCell<Client>>, d: Duration) {
    let end = p.now + d;
    for _ in 0..100_000 {
        pump(p, c);
        p.drive_until(p.now);
        pump(p, c);
        if p.now >= end {
            return;
        }
        let next = [
            c.borrow().reg.poll_timeout(),
            Some(p.now + Duration::from_millis(100)),
            Some(end),
        ]
        .into_iter()
        .flatten()
        .filter(|t| *t > p.now)
        .min()
        .unwrap_or(end);
        p.drive_until(next);
    }
    panic!("run: step bound exceeded");
}

#[test]
fn register_then_updates_before_every_expiry_with_time_scale() {
    // lifetime 300 s at time scale 10: Update every 300 - 93 = 207 s, i.e. 20.7 s.
    let (mut p, c, registry, _) = setup(10, 300);
    let t0 = p.now;
    c.borrow_mut().reg.register(p.now);
    run(&mut p, &c, Duration::from_secs(100));
    let events = c.borrow().events.clone();
    assert!(
        matches!(&events[0].1, RegistrationEvent::Registered { location } if location == &["rd", "1"])
    );
    let updates: Vec<u64> = events
        .iter()
        .filter(|(_, e)| *e == RegistrationEvent::Updated)
        .map(|(t, _)| t.saturating_duration_since(t0).as_millis() as u64)
        .collect();
    assert_eq!(updates, vec![20_700, 41_400, 62_100, 82_800]);
    // The server never saw the registration expire.
    let reg = registry.borrow();
    let r = reg.get("dev1").unwrap();
    assert!(r.expires_at > p.now);
    assert_eq!(r.lifetime, 300);
}

#[test]
fn update_to_a_server_that_forgot_the_client_reregisters() {
    let (mut p, c, registry, server_events) = setup(1, 300);
    c.borrow_mut().reg.register(p.now);
    run(&mut p, &c, Duration::from_secs(10));
    // The server loses its state.
    registry.borrow_mut().deregister("1");
    c.borrow_mut().reg.trigger_update(p.now);
    run(&mut p, &c, Duration::from_secs(10));
    let events: Vec<RegistrationEvent> = c.borrow().events.iter().map(|(_, e)| e.clone()).collect();
    assert_eq!(
        events,
        vec![
            RegistrationEvent::Registered {
                location: vec!["rd".into(), "1".into()]
            },
            RegistrationEvent::UpdateFailed {
                code: Some("4.04".into())
            },
            RegistrationEvent::Registered {
                location: vec!["rd".into(), "2".into()]
            },
        ]
    );
    assert!(
        server_events
            .borrow()
            .iter()
            .any(|e| matches!(e, RegistryEvent::UnknownLocation { .. }))
    );
    // Every Register/Update was clean.
    for e in server_events.borrow().iter() {
        if let RegistryEvent::Registered { deviations, .. }
        | RegistryEvent::Updated { deviations, .. } = e
        {
            assert!(deviations.is_empty(), "{deviations:?}");
        }
    }
    c.borrow_mut().reg.deregister(p.now);
    run(&mut p, &c, Duration::from_secs(10));
    assert_eq!(
        c.borrow().events.last().unwrap().1,
        RegistrationEvent::Deregistered
    );
    assert!(registry.borrow().is_empty());
}
