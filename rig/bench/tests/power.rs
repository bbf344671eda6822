//! The `ina219` driver reads the simulated INA219 end to end: register-level
//! values match the energy model within the chip's LSBs, the conversion-ready
//! flag behaves as the datasheet says, and the sampler's CSV and energy match
//! an analytic integral of the model.

#![allow(clippy::unwrap_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use embedded_hal::i2c::I2c;
use rig_bench::power::{
    CSV_HEADER, Direction, FrameEvent, Ina219Meter, Meter, MeterConfig, PowerModel, PowerProfile,
    Sampler, SimClock, SimIna219, open_sim,
};

fn ms(x: u64) -> u64 {
    x * 1_000_000
}

#[test]
fn the_driver_reads_bus_voltage_current_and_power_of_the_model_within_one_lsb() {
    let profile = PowerProfile::by_name("ethernet").unwrap();
    let model = Arc::new(Mutex::new(PowerModel::new(profile)));
    let (clock, now) = SimClock::manual();
    let chip = SimIna219::new(0x40, 0.1, model.clone(), clock);
    let config = MeterConfig::default(); // 0.1 Ω, 3.2 A, no averaging
    let mut meter = Ina219Meter::new(chip, config, Instant::now()).unwrap();

    // Nothing converted yet at t = 0.
    assert_eq!(meter.poll().unwrap(), None);
    now.store(ms(2), Ordering::SeqCst);
    let s = meter
        .poll()
        .unwrap()
        .expect("a conversion is ready after 2 ms");
    // 540 mA baseline through 0.1 Ω from 5.1 V.
    let i = 0.540;
    assert!((s.shunt_mv - i * 0.1 * 1000.0).abs() <= 0.01, "{s:?}");
    assert!((s.bus_v - (5.1 - i * 0.1)).abs() <= 0.004, "{s:?}");
    let lsb_ma = config.current_lsb_ua() as f64 / 1000.0;
    // Current = shunt × cal / 4096 in LSBs: off by the calibration's rounding
    // (≤ 0.4 %) plus one LSB.
    assert!(
        (s.current_ma - 540.0).abs() <= 540.0 * 0.004 + lsb_ma,
        "{s:?}"
    );
    let p_lsb_mw = 20.0 * lsb_ma;
    assert!(
        (s.power_mw - s.current_ma * s.bus_v).abs() <= p_lsb_mw + 0.5,
        "{s:?}"
    );
    // Reading the power register cleared CNVR: no new conversion until the
    // next period has passed.
    assert_eq!(meter.poll().unwrap(), None);
    now.store(ms(4), Ordering::SeqCst);
    assert!(meter.poll().unwrap().is_some());

    // A transmit burst raises the current of the conversion that covers it.
    model.lock().unwrap().add_frame(FrameEvent {
        at: Duration::from_millis(5),
        bytes: 1_000_000,
        direction: Direction::Tx,
        ip: true,
    });
    now.store(ms(10), Ordering::SeqCst);
    let s = meter.poll().unwrap().unwrap();
    assert!(
        (s.current_ma - 600.0).abs() <= 600.0 * 0.004 + lsb_ma,
        "{s:?}"
    );
}

#[test]
fn registers_follow_the_datasheet_layout() {
    let model = Arc::new(Mutex::new(PowerModel::new(
        PowerProfile::by_name("lte-m").unwrap(),
    )));
    let (clock, now) = SimClock::manual();
    let mut chip = SimIna219::new(0x41, 1.0, model, clock);
    let mut buf = [0u8; 2];
    // Power-on configuration.
    chip.write_read(0x41, &[0x00], &mut buf).unwrap();
    assert_eq!(u16::from_be_bytes(buf), 0x399F);
    // Calibration bit 0 reads back as 0.
    chip.write(0x41, &[0x05, 0x12, 0x35]).unwrap();
    chip.write_read(0x41, &[0x05], &mut buf).unwrap();
    assert_eq!(u16::from_be_bytes(buf), 0x1234);
    // After one conversion: CNVR (bit 1) set in the bus register.
    now.store(ms(2), Ordering::SeqCst);
    chip.write_read(0x41, &[0x02], &mut buf).unwrap();
    let bus = u16::from_be_bytes(buf);
    assert_eq!(bus & 0b10, 0b10);
    // 3.7 V − 0.5027 mA × 1 Ω = 3.6995 V = 925 × 4 mV.
    assert_eq!(bus >> 3, 925);
    // Shunt: 0.5027 mA × 1 Ω = 0.5027 mV = 50 × 10 µV.
    chip.write_read(0x41, &[0x01], &mut buf).unwrap();
    assert_eq!(i16::from_be_bytes(buf), 50);
    // Current = shunt × cal / 4096 = 50 × 0x1234 / 4096.
    chip.write_read(0x41, &[0x04], &mut buf).unwrap();
    assert_eq!(i16::from_be_bytes(buf), (50 * 0x1234 / 4096) as i16);
    // Reading power clears CNVR.
    chip.write_read(0x41, &[0x03], &mut buf).unwrap();
    chip.write_read(0x41, &[0x02], &mut buf).unwrap();
    assert_eq!(u16::from_be_bytes(buf) & 0b10, 0);
    // Reset (bit 15) restores every register.
    chip.write(0x41, &[0x00, 0x80, 0x00]).unwrap();
    chip.write_read(0x41, &[0x05], &mut buf).unwrap();
    assert_eq!(u16::from_be_bytes(buf), 0);
    // Another address does not answer; a bad register is refused.
    assert!(chip.write_read(0x40, &[0x00], &mut buf).is_err());
    assert!(chip.write_read(0x41, &[0x07], &mut buf).is_err());
}

#[test]
fn a_shunt_voltage_beyond_the_pga_range_sets_the_overflow_flag() {
    // 3 A through 1 Ω is 3 V, far beyond ±320 mV.
    let mut profile = PowerProfile::by_name("ethernet").unwrap();
    profile.baseline_ma = 3000.0;
    let model = Arc::new(Mutex::new(PowerModel::new(profile)));
    let (clock, now) = SimClock::manual();
    let mut chip = SimIna219::new(0x40, 1.0, model, clock);
    chip.write(0x40, &[0x05, 0x10, 0x00]).unwrap();
    now.store(ms(2), Ordering::SeqCst);
    let mut buf = [0u8; 2];
    chip.write_read(0x40, &[0x02], &mut buf).unwrap();
    assert_eq!(u16::from_be_bytes(buf) & 1, 1, "OVF");
    chip.write_read(0x40, &[0x01], &mut buf).unwrap();
    assert_eq!(i16::from_be_bytes(buf), 32000);
}

#[test]
fn a_missing_chip_is_a_clear_error() {
    let model = Arc::new(Mutex::new(PowerModel::new(
        PowerProfile::by_name("wifi").unwrap(),
    )));
    let chip = SimIna219::new(0x45, 0.1, model, SimClock::manual().0);
    let e = Ina219Meter::new(chip, MeterConfig::default(), Instant::now())
        .unwrap_err()
        .to_string();
    assert!(e.contains("no INA219 answered at 0x40"), "{e}");
    let e = rig_bench::power::open_i2c(
        std::path::Path::new("/dev/i2c-rig-none"),
        MeterConfig::default(),
        Instant::now(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("/dev/i2c-rig-none"), "{e}");
}

#[test]
fn the_sampler_writes_csv_at_the_conversion_rate_and_integrates_energy() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("power/dut.csv");
    let epoch = Instant::now();
    // An LTE-M module measured through 1 Ω, 200 mA full scale, 8 averages
    // (8.5 ms per ADC, 17 ms per shunt + bus conversion).
    let config = MeterConfig {
        address: 0x40,
        shunt_ohms: 1.0,
        max_current_a: 0.2,
        averaging: 8,
    };
    let profile = PowerProfile::by_name("lte-m").unwrap();
    let (meter, model) = open_sim(profile, config, epoch).unwrap();
    assert_eq!(meter.conversion_period(), Duration::from_micros(8_520));
    let sampler = Sampler::start(Box::new(meter), Some(&csv)).unwrap();
    // A 5 kB upload at 0.3 s: 0.01 + 40000/300e3 s of transmit, then the tail.
    model.lock().unwrap().add_frame(FrameEvent {
        at: Duration::from_millis(300),
        bytes: 5_000,
        direction: Direction::Tx,
        ip: true,
    });
    std::thread::sleep(Duration::from_millis(1_300));
    let trace = sampler.stop().unwrap();

    let n = trace.samples.len();
    // ~1.3 s / 8.52 ms ≈ 152 conversions; allow for a loaded machine.
    assert!(n > 60 && n <= 160, "{n} samples");
    for w in trace.samples.windows(2) {
        assert!(w[1].t_s > w[0].t_s, "{w:?}");
    }
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(CSV_HEADER));
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|f| f.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), n);
    assert!(rows.iter().all(|r| r.len() == 5));

    // Energy over [0.2, 1.2) s against the model's exact integral (load side).
    let (a, b) = (0.2, 1.2);
    let got = trace.energy(a, b);
    let expected = model.lock().unwrap().load_energy_mj(
        Duration::from_secs_f64(a),
        Duration::from_secs_f64(b),
        1.0,
    );
    let err = (got.mj - expected).abs() / expected;
    assert!(err < 0.05, "sampled {} mJ, model {expected} mJ", got.mj);
    assert!((got.wh - got.mj / 3.6e6).abs() < 1e-15);
    // The burst is in the trace: some sample well above the 0.5 mA idle.
    assert!(trace.samples.iter().any(|s| s.current_ma > 50.0));
}
