//! Learning-rate schedules as pure functions of the step, so a resumed run needs only the step.

use serde::{Deserialize, Serialize};

/// The shape of the learning-rate curve after warm-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// Constant.
    Constant,
    /// Multiplied by `gamma` at each milestone (fractions of training), as in the ResNet paper.
    MultiStep {
        /// Milestones as fractions of the total steps (0.5 and 0.75 in the ResNet CIFAR recipe).
        milestones: Vec<f64>,
        /// Factor applied at each milestone.
        gamma: f64,
    },
    /// Cosine from the base rate to zero.
    Cosine,
}

/// A schedule: linear warm-up over `warmup` steps, then `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Peak learning rate.
    pub base_lr: f64,
    /// Shape after warm-up.
    pub kind: ScheduleKind,
    /// Warm-up steps (linear from base_lr / warmup to base_lr).
    pub warmup: usize,
    /// Total training steps.
    pub total: usize,
}

impl Schedule {
    /// The learning rate of step `step` (0-based).
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.base_lr * (step + 1) as f64 / self.warmup as f64;
        }
        let span = self.total.saturating_sub(self.warmup).max(1) as f64;
        let t = ((step - self.warmup) as f64 / span).min(1.0);
        match &self.kind {
            ScheduleKind::Constant => self.base_lr,
            ScheduleKind::MultiStep { milestones, gamma } => {
                let progress = step as f64 / self.total.max(1) as f64;
                let passed = milestones.iter().filter(|m| progress >= **m).count();
                self.base_lr * gamma.powi(passed as i32)
            }
            ScheduleKind::Cosine => 0.5 * self.base_lr * (1.0 + (std::f64::consts::PI * t).cos()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multistep_warmup_and_cosine() {
        let s = Schedule {
            base_lr: 0.1,
            kind: ScheduleKind::MultiStep {
                milestones: vec![0.5, 0.75],
                gamma: 0.1,
            },
            warmup: 0,
            total: 100,
        };
        assert_eq!(s.lr(0), 0.1);
        assert!((s.lr(50) - 0.01).abs() < 1e-12);
        assert!((s.lr(99) - 0.001).abs() < 1e-12);
        let c = Schedule {
            base_lr: 1.0,
            kind: ScheduleKind::Cosine,
            warmup: 10,
            total: 110,
        };
        assert!((c.lr(0) - 0.1).abs() < 1e-12);
        assert!((c.lr(9) - 1.0).abs() < 1e-12);
        assert!((c.lr(10) - 1.0).abs() < 1e-12);
        assert!((c.lr(60) - 0.5).abs() < 1e-12);
        assert!(c.lr(109) < 0.001);
    }
}
