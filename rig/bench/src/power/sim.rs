//! A simulated INA219 at the register level, behind `embedded_hal::i2c::I2c`.
//!
//! It follows the datasheet (TI SBOS448, §8.6): six 16-bit big-endian
//! registers reached through a register pointer (the first byte of a write);
//! configuration `0x00` (power-on value `0x399F`, bit 15 resets every
//! register, BRNG bit 13, PGA bits 12-11, BADC bits 10-7, SADC bits 6-3, MODE
//! bits 2-0), shunt voltage `0x01` (10 µV LSB, signed, clipped to the PGA
//! range), bus voltage `0x02` (4 mV LSB in bits 15-3, CNVR bit 1, OVF bit 0),
//! power `0x03` (`current × bus / 5000`; reading it clears CNVR), current
//! `0x04` (`shunt × calibration / 4096`) and calibration `0x05` (bit 0 always
//! reads 0; until it is written, current and power read 0).
//!
//! Conversions happen on the chip's own schedule: in continuous mode one
//! completes every conversion period (the shunt and bus conversion times from
//! the ADC settings, added when both are measured), in triggered mode once
//! after the configuration write. Each conversion takes the mean current of
//! the [`PowerModel`] over the conversion period (which is what the ADC's
//! averaging does) and the bus voltage on the load side of the shunt. Time
//! comes from a [`SimClock`]: real time for the sampler, or a manual clock for
//! tests that need exact values.
//!
//! A chip may have a *frame feed* ([`SimIna219::with_feed`]): before each
//! register access it drains the frames seen since the last one (e.g. the
//! bridge's tap of the DUT's link) into the model, so every conversion
//! includes the traffic that happened before it was read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use embedded_hal::i2c::{ErrorKind, ErrorType, I2c, NoAcknowledgeSource, Operation};

use super::model::{FrameEvent, PowerModel};

/// Where live frames come from: called before each register access, it
/// appends the frames seen since its last call (times on the chip's clock).
pub type FrameFeed = Box<dyn FnMut(&mut Vec<FrameEvent>) + Send>;

/// Feed frames are forgotten once their tail is this far behind the clock.
const FORGET_AFTER: Duration = Duration::from_secs(5);

/// The power-on value of the configuration register.
pub const CONFIG_POR: u16 = 0x399F;

/// The time base of the simulated chip.
#[derive(Clone, Debug)]
pub enum SimClock {
    /// Time since this instant (shared with the sampler and the frame feed).
    Real(Instant),
    /// Time set by hand, in nanoseconds (tests).
    Manual(Arc<AtomicU64>),
}

impl SimClock {
    /// A manual clock at zero, and the handle that sets it.
    pub fn manual() -> (Self, Arc<AtomicU64>) {
        let h = Arc::new(AtomicU64::new(0));
        (SimClock::Manual(h.clone()), h)
    }

    /// The current time.
    pub fn now(&self) -> Duration {
        match self {
            SimClock::Real(t0) => t0.elapsed(),
            SimClock::Manual(ns) => Duration::from_nanos(ns.load(Ordering::SeqCst)),
        }
    }
}

/// An I2C error of the simulated bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimI2cError {
    /// No device answered at this address.
    NoDevice(u8),
    /// A register pointer that does not exist.
    BadRegister(u8),
    /// A write of the wrong length (a register write is pointer + 2 bytes).
    BadLength(usize),
}

impl embedded_hal::i2c::Error for SimI2cError {
    fn kind(&self) -> ErrorKind {
        match self {
            SimI2cError::NoDevice(_) => ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address),
            SimI2cError::BadRegister(_) | SimI2cError::BadLength(_) => {
                ErrorKind::NoAcknowledge(NoAcknowledgeSource::Data)
            }
        }
    }
}

impl std::fmt::Display for SimI2cError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SimI2cError::NoDevice(a) => write!(f, "no device at I2C address {a:#04x}"),
            SimI2cError::BadRegister(r) => write!(f, "no INA219 register {r:#04x}"),
            SimI2cError::BadLength(n) => write!(f, "a register write is 3 bytes, got {n}"),
        }
    }
}

impl std::error::Error for SimI2cError {}

/// Conversion time of one ADC setting (BADC/SADC field), datasheet Table 5.
pub fn adc_conversion_us(field: u16) -> u32 {
    match field & 0xF {
        0b0000 | 0b0100 => 84,
        0b0001 | 0b0101 => 148,
        0b0010 | 0b0110 => 276,
        0b0011 | 0b0111 | 0b1000 => 532,
        0b1001 => 1_060,
        0b1010 => 2_130,
        0b1011 => 4_260,
        0b1100 => 8_510,
        0b1101 => 17_020,
        0b1110 => 34_050,
        _ => 68_100,
    }
}

/// The conversion period of a configuration: the shunt and/or bus
/// conversion times for the measured signals; `None` when the ADC is off.
pub fn conversion_period(config: u16) -> Option<Duration> {
    let mode = config & 0b111;
    let bus = adc_conversion_us(config >> 7);
    let shunt = adc_conversion_us(config >> 3);
    let us = match mode & 0b11 {
        0 => return None,
        1 => shunt,
        2 => bus,
        _ => shunt + bus,
    };
    Some(Duration::from_micros(u64::from(us)))
}

/// A simulated INA219 on a simulated I2C bus.
#[derive(Debug)]
pub struct SimIna219 {
    address: u8,
    shunt_ohms: f64,
    model: Arc<Mutex<PowerModel>>,
    clock: SimClock,
    pointer: u8,
    config: u16,
    calibration: u16,
    shunt: u16,
    bus: u16,
    power: u16,
    current: u16,
    /// When the current conversion schedule started.
    epoch: Duration,
    /// Conversions completed in this schedule.
    done: u64,
    /// Register accesses, for tests that count bus traffic.
    accesses: u64,
    feed: Option<Feed>,
}

/// A [`FrameFeed`] and its buffer.
struct Feed {
    next: FrameFeed,
    buf: Vec<FrameEvent>,
    fed: u64,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed").field("fed", &self.fed).finish()
    }
}

impl SimIna219 {
    /// A chip at `address` measuring the model's current through `shunt_ohms`.
    pub fn new(
        address: u8,
        shunt_ohms: f64,
        model: Arc<Mutex<PowerModel>>,
        clock: SimClock,
    ) -> Self {
        let epoch = clock.now();
        Self {
            address,
            shunt_ohms,
            model,
            clock,
            pointer: 0,
            config: CONFIG_POR,
            calibration: 0,
            shunt: 0,
            bus: 0,
            power: 0,
            current: 0,
            epoch,
            done: 0,
            accesses: 0,
            feed: None,
        }
    }

    /// Feeds the model from `feed` before every register access.
    pub fn with_feed(mut self, feed: FrameFeed) -> Self {
        self.feed = Some(Feed {
            next: feed,
            buf: Vec::new(),
            fed: 0,
        });
        self
    }

    /// How many frames the feed has delivered to the model.
    pub fn frames_fed(&self) -> u64 {
        self.feed.as_ref().map_or(0, |f| f.fed)
    }

    /// Drains the feed into the model; forgets frames long past.
    fn pull_feed(&mut self) {
        let Some(feed) = &mut self.feed else {
            return;
        };
        (feed.next)(&mut feed.buf);
        if feed.buf.is_empty() {
            return;
        }
        let mut m = self.model.lock().unwrap_or_else(|e| e.into_inner());
        for f in feed.buf.drain(..) {
            m.add_frame(f);
            feed.fed += 1;
        }
        if m.frames() > 256 {
            m.forget_before(self.clock.now().saturating_sub(FORGET_AFTER));
        }
    }

    /// How many register reads and writes the chip has served.
    pub fn accesses(&self) -> u64 {
        self.accesses
    }

    fn reset(&mut self) {
        self.config = CONFIG_POR;
        self.calibration = 0;
        self.shunt = 0;
        self.bus = 0;
        self.power = 0;
        self.current = 0;
        self.restart();
    }

    fn restart(&mut self) {
        self.epoch = self.clock.now();
        self.done = 0;
    }

    /// Runs the conversions that have completed by now (only the last one
    /// matters: registers hold the latest result).
    fn advance(&mut self) {
        self.pull_feed();
        let Some(period) = conversion_period(self.config) else {
            return;
        };
        let continuous = self.config & 0b100 != 0;
        let elapsed = self.clock.now().saturating_sub(self.epoch);
        let mut n = (elapsed.as_nanos() / period.as_nanos().max(1)) as u64;
        if !continuous {
            n = n.min(1);
        }
        if n > self.done {
            self.done = n;
            let end = self.epoch + period * u32::try_from(n).unwrap_or(u32::MAX);
            self.convert(end.saturating_sub(period), end);
        }
    }

    fn convert(&mut self, from: Duration, to: Duration) {
        let (ma, supply_v) = {
            let mut m = self.model.lock().unwrap_or_else(|e| e.into_inner());
            (m.mean_current_ma(from, to), m.profile().supply_v)
        };
        let amps = ma / 1000.0;
        // Shunt: 10 µV LSB, clipped to the PGA range (±40 mV × 2^PG).
        let pg = (self.config >> 11) & 0b11;
        let fs_10uv = 4000.0 * f64::from(1u16 << pg);
        let shunt_10uv = (amps * self.shunt_ohms * 1e5).round();
        let mut overflow = false;
        let shunt_10uv = if shunt_10uv.abs() > fs_10uv {
            overflow = true;
            fs_10uv.copysign(shunt_10uv)
        } else {
            shunt_10uv
        };
        // The chip's two's complement register (PGA sign extension is the same
        // value for an i16).
        self.shunt = (shunt_10uv as i16) as u16;
        // Bus: load side of the shunt, 4 mV LSB, clipped to the range.
        let bus_fs = if self.config & (1 << 13) != 0 {
            32.0
        } else {
            16.0
        };
        let bus_v = (supply_v - amps * self.shunt_ohms).clamp(0.0, bus_fs);
        let bus_4mv = ((bus_v / 0.004).round() as u32).min(0x1FFF) as u16;
        // Current and power from the calibration (datasheet eq. 4 and 5).
        let (current, power) = if self.calibration == 0 {
            (0i64, 0i64)
        } else {
            let c = i64::from(shunt_10uv as i16) * i64::from(self.calibration) / 4096;
            let p = c.abs() * i64::from(bus_4mv) / 5000;
            (c, p)
        };
        if current > i64::from(i16::MAX) || current < i64::from(i16::MIN) || power > 0xFFFF {
            overflow = true;
        }
        self.current = (current.clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16) as u16;
        self.power = power.clamp(0, 0xFFFF) as u16;
        self.bus = (bus_4mv << 3) | 0b10 | u16::from(overflow);
    }

    fn read_register(&mut self, reg: u8) -> Result<u16, SimI2cError> {
        self.advance();
        Ok(match reg {
            0 => self.config,
            1 => self.shunt,
            2 => self.bus,
            3 => {
                // Reading the power register clears the conversion-ready flag.
                let p = self.power;
                self.bus &= !0b10;
                p
            }
            4 => self.current,
            5 => self.calibration,
            r => return Err(SimI2cError::BadRegister(r)),
        })
    }

    fn write_register(&mut self, reg: u8, value: u16) -> Result<(), SimI2cError> {
        self.advance();
        match reg {
            0 => {
                if value & 0x8000 != 0 {
                    self.reset();
                } else {
                    self.config = value;
                    // A configuration write starts a new conversion (and
                    // triggers one in triggered mode).
                    self.bus &= !0b10;
                    self.restart();
                }
            }
            5 => self.calibration = value & !1,
            1..=4 => {} // read-only registers ignore writes
            r => return Err(SimI2cError::BadRegister(r)),
        }
        Ok(())
    }
}

impl ErrorType for SimIna219 {
    type Error = SimI2cError;
}

impl I2c for SimIna219 {
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), Self::Error> {
        if address != self.address {
            return Err(SimI2cError::NoDevice(address));
        }
        for op in operations {
            self.accesses += 1;
            match op {
                Operation::Write(bytes) => match bytes.len() {
                    0 => {}
                    1 => self.pointer = bytes[0],
                    3 => {
                        self.pointer = bytes[0];
                        self.write_register(bytes[0], u16::from_be_bytes([bytes[1], bytes[2]]))?;
                    }
                    n => return Err(SimI2cError::BadLength(n)),
                },
                Operation::Read(buf) => {
                    let v = self.read_register(self.pointer)?.to_be_bytes();
                    for (i, b) in buf.iter_mut().enumerate() {
                        *b = v.get(i).copied().unwrap_or(0xFF);
                    }
                }
            }
        }
        Ok(())
    }
}
