//! Cost of the pure impairment core and of accounting, per frame (no
//! sockets): what the bridge thread spends besides the syscalls.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rig_net::account::{Accounting, Direction};
use rig_net::{DirectionConfig, LossModel, Pipeline};

fn frame() -> Vec<u8> {
    let mut f = vec![0u8; 1514];
    f[12] = 0x08;
    f[14] = 0x45;
    f[16..18].copy_from_slice(&1500u16.to_be_bytes());
    f[23] = 17;
    f[36..38].copy_from_slice(&5683u16.to_be_bytes());
    f[38..40].copy_from_slice(&1480u16.to_be_bytes());
    f
}

fn bench(c: &mut Criterion) {
    let f = frame();
    let mut g = c.benchmark_group("per_frame");
    g.throughput(Throughput::Elements(1));
    g.bench_function("pipeline_transparent", |b| {
        let mut p = Pipeline::transparent();
        let mut t = Duration::ZERO;
        b.iter(|| {
            t += Duration::from_micros(10);
            p.handle_frame(t, f.clone());
            black_box(p.poll_transmit(t));
        });
    });
    g.bench_function("pipeline_loss_rate_delay_jitter", |b| {
        let cfg = DirectionConfig {
            loss: Some(LossModel::Random { probability: 0.01 }),
            rate_kbit: Some(1_000_000.0),
            delay_ms: 1.0,
            jitter_ms: 0.5,
            ..Default::default()
        };
        let mut p = Pipeline::new(&cfg, 1, 0).expect("valid config");
        let mut t = Duration::ZERO;
        b.iter(|| {
            t += Duration::from_micros(20);
            p.handle_frame(t, f.clone());
            while let Some(x) = p.poll_transmit(t) {
                black_box(x);
            }
            while let Some(x) = p.poll_dropped() {
                black_box(x);
            }
        });
    });
    g.bench_function("accounting_add", |b| {
        let mut a = Accounting::new(Duration::ZERO);
        let mut t = Duration::ZERO;
        b.iter(|| {
            t += Duration::from_micros(10);
            a.add(t, Direction::Up, black_box(&f));
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
