//! Benchmarks of the CoAP message layer (no sockets): one CON GET with a
//! piggybacked 2.05 through two endpoints, and a 1 MiB Block2 transfer.

#![allow(missing_docs, clippy::unwrap_used, clippy::panic)]

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rig_proto::coap::message::{request, response};
use rig_proto::coap::{Config, Endpoint, Event, Method, Packet, ResponseCode};
use rig_proto::time::Instant;

const CLIENT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 40000);
const SERVER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 5683);

/// Runs one request to completion with a server answering `body`; returns
/// the response payload length and the number of datagrams exchanged.
fn exchange(
    client: &mut Endpoint,
    server: &mut Endpoint,
    now: Instant,
    req: Packet,
    body: &[u8],
) -> (usize, usize) {
    client.send_request(now, SERVER, req).unwrap();
    let mut datagrams = 0;
    loop {
        let mut progressed = false;
        while let Some(t) = client.poll_transmit() {
            server.handle_datagram(now, CLIENT, &t.payload);
            datagrams += 1;
            progressed = true;
        }
        while let Some(e) = server.poll_event() {
            if let Event::Request { id, .. } = e {
                let mut r = response(ResponseCode::Content);
                r.payload = body.to_vec();
                server.respond(now, id, r).unwrap();
            }
        }
        while let Some(t) = server.poll_transmit() {
            client.handle_datagram(now, SERVER, &t.payload);
            datagrams += 1;
            progressed = true;
        }
        while let Some(e) = client.poll_event() {
            if let Event::Response { response, .. } = e {
                return (response.payload.len(), datagrams);
            }
        }
        assert!(progressed, "exchange stalled");
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("coap");
    g.bench_function("con_get_piggybacked_2_05", |b| {
        // Fresh endpoints per iteration batch would measure set-up; reuse
        // them and advance time so dedup state is bounded by its cap.
        let cfg = Config {
            max_dedup_entries: 1024,
            ..Config::default()
        };
        let mut client = Endpoint::new(cfg.clone(), 1);
        let mut server = Endpoint::new(cfg, 2);
        let mut now = Instant::ZERO;
        b.iter(|| {
            now = now + std::time::Duration::from_millis(1);
            client.handle_timeout(now);
            server.handle_timeout(now);
            let (n, d) = exchange(
                &mut client,
                &mut server,
                now,
                request(Method::Get, true, "/3/0/0"),
                b"rig",
            );
            black_box((n, d))
        })
    });
    let body: Vec<u8> = (0..1 << 20).map(|i: u32| i as u8).collect();
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.sample_size(10);
    g.bench_function("block2_1_mib", |b| {
        b.iter(|| {
            let mut client = Endpoint::new(Config::default(), 3);
            let mut server = Endpoint::new(Config::default(), 4);
            let (n, d) = exchange(
                &mut client,
                &mut server,
                Instant::ZERO,
                request(Method::Get, true, "/fw"),
                &body,
            );
            assert_eq!(n, 1 << 20);
            assert_eq!(d, 2048);
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
