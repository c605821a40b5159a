//! Percentiles of measured values, kept in an HDR histogram (`hdrhistogram`).

use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// Values are recorded in thousandths of their unit (µs for milliseconds, mB for bytes):
/// exact below 2.048 units, and within 0.1% (three significant figures) above.
const SCALE: f64 = 1e3;
const SIGFIG: u8 = 3;

/// A distribution of measured values (milliseconds, bytes, ...).
#[derive(Debug, Clone)]
pub struct Dist {
    /// Every value, in thousandths of its unit.
    hist: Histogram<u64>,
}

impl Default for Dist {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl Dist {
    pub fn new(values: Vec<f64>) -> Self {
        let mut d = Self { hist: Histogram::new(SIGFIG).expect("3 significant figures are valid") };
        for v in values {
            d.record(v);
        }
        d
    }
    /// Adds one value (negative values count as 0).
    pub fn record(&mut self, value: f64) {
        let v = (value.max(0.0) * SCALE).round() as u64;
        // The histogram grows to fit; beyond i64::MAX / 2 (never, for these units) it clamps.
        if self.hist.record(v).is_err() {
            self.hist.saturating_record(v);
        }
    }
    pub fn len(&self) -> u64 {
        self.hist.len()
    }
    fn unscale(&self, v: u64) -> f64 {
        if self.hist.is_empty() { f64::NAN } else { v as f64 / SCALE }
    }
    /// The value at quantile `p` by nearest rank (`p` = 1.0 is the largest).
    pub fn p(&self, p: f64) -> f64 {
        self.unscale(self.hist.value_at_quantile(p))
    }
    pub fn min(&self) -> f64 {
        self.unscale(self.hist.min())
    }
    pub fn max(&self) -> f64 {
        self.unscale(self.hist.max())
    }
    pub fn mean(&self) -> f64 {
        self.hist.mean() / SCALE
    }
    pub fn json(&self) -> Value {
        let some = |v: f64| if self.hist.is_empty() { None } else { Some(v) };
        json!({
            "n": self.len(),
            "p50": self.p(0.5), "p90": self.p(0.9), "p99": self.p(0.99),
            "min": some(self.min()), "max": some(self.max()), "mean": self.mean(),
        })
    }
    pub fn line(&self) -> String {
        format!(
            "p50 {:.3}  p90 {:.3}  p99 {:.3}  min {:.3}  max {:.3}  (n={})",
            self.p(0.5),
            self.p(0.9),
            self.p(0.99),
            self.min(),
            self.max(),
            self.len()
        )
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
