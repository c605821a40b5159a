//! Percentiles of measured values.

use std::time::Duration;

use serde_json::{Value, json};

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

#[derive(Debug, Clone, Default)]
pub struct Dist {
    pub sorted: Vec<f64>,
}

impl Dist {
    pub fn new(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        Self { sorted: values }
    }
    pub fn p(&self, p: f64) -> f64 {
        percentile(&self.sorted, p)
    }
    pub fn mean(&self) -> f64 {
        self.sorted.iter().sum::<f64>() / self.sorted.len().max(1) as f64
    }
    pub fn json(&self) -> Value {
        json!({
            "n": self.sorted.len(),
            "p50": self.p(0.5), "p90": self.p(0.9), "p99": self.p(0.99),
            "min": self.sorted.first(), "max": self.sorted.last(), "mean": self.mean(),
        })
    }
    pub fn line(&self) -> String {
        format!(
            "p50 {:.3}  p90 {:.3}  p99 {:.3}  min {:.3}  max {:.3}  (n={})",
            self.p(0.5),
            self.p(0.9),
            self.p(0.99),
            self.sorted.first().copied().unwrap_or(f64::NAN),
            self.sorted.last().copied().unwrap_or(f64::NAN),
            self.sorted.len()
        )
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
