//! Limits on measurements, with a marginal band (OpenHTF's `in_range` with
//! marginal bounds): a value outside `[low, high]` fails, a value inside the
//! limits but outside `[marginal_low, marginal_high]` passes as marginal.
//!
//! Instruments return `(value, unit)`; the engine owns verdicts and calls
//! [`Limits::check`] where a suite gives limits.

/// Limits on one measurement; any bound may be absent.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Limits {
    /// Below this fails.
    pub low: Option<f64>,
    /// Above this fails.
    pub high: Option<f64>,
    /// Below this (but within `low`) is marginal.
    pub marginal_low: Option<f64>,
    /// Above this (but within `high`) is marginal.
    pub marginal_high: Option<f64>,
}

/// How a value fares against its limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitOutcome {
    /// Inside the limits and the marginal band.
    Pass,
    /// Inside the limits, outside the marginal band.
    Marginal,
    /// Outside the limits (or not a number).
    Fail,
}

impl Limits {
    /// Judges a value.
    pub fn check(&self, value: f64) -> LimitOutcome {
        if value.is_nan()
            || self.low.is_some_and(|l| value < l)
            || self.high.is_some_and(|h| value > h)
        {
            return LimitOutcome::Fail;
        }
        if self.marginal_low.is_some_and(|l| value < l)
            || self.marginal_high.is_some_and(|h| value > h)
        {
            return LimitOutcome::Marginal;
        }
        LimitOutcome::Pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_marginal_fail_at_the_edges() {
        let l = Limits {
            low: Some(0.0),
            high: Some(10.0),
            marginal_low: Some(1.0),
            marginal_high: Some(9.0),
        };
        assert_eq!(l.check(5.0), LimitOutcome::Pass);
        assert_eq!(l.check(9.0), LimitOutcome::Pass);
        assert_eq!(l.check(9.5), LimitOutcome::Marginal);
        assert_eq!(l.check(0.5), LimitOutcome::Marginal);
        assert_eq!(l.check(10.0), LimitOutcome::Marginal);
        assert_eq!(l.check(10.01), LimitOutcome::Fail);
        assert_eq!(l.check(-1.0), LimitOutcome::Fail);
        assert_eq!(l.check(f64::NAN), LimitOutcome::Fail);
        assert_eq!(Limits::default().check(1e9), LimitOutcome::Pass);
    }
}
