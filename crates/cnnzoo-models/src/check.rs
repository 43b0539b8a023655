//! Checks on loaded weights: every value finite and every BatchNorm running variance
//! non-negative, so a damaged checkpoint is refused at load instead of giving NaN logits.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;

/// Largest magnitude accepted in a weight: beyond it a forward pass overflows f32 (a
/// product of two such values is infinite), which only damaged files hold.
pub const MAX_ABS_WEIGHT: f32 = 1e18;

/// Names (dotted paths) of the tensors of `module` that are not usable weights, with why;
/// empty when all are fine.
pub fn weight_problems<M: Module>(module: &M) -> Vec<String> {
    struct Checker {
        path: Vec<String>,
        problems: Vec<String>,
    }
    impl ModuleVisitor for Checker {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let Ok(values) = param
                .val()
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
            else {
                return;
            };
            let name = self.path.join(".");
            let variance = self.path.last().is_some_and(|n| n == "running_var");
            if let Some(v) = values.iter().find(|v| !v.is_finite()) {
                self.problems.push(format!("{name} holds {v}"));
            } else if let Some(v) = values.iter().find(|v| v.abs() > MAX_ABS_WEIGHT) {
                self.problems
                    .push(format!("{name} holds {v:e} (beyond ±{MAX_ABS_WEIGHT:e})"));
            } else if variance && let Some(v) = values.iter().find(|v| **v < 0.0) {
                self.problems
                    .push(format!("{name} holds a negative variance ({v})"));
            }
        }
    }
    let mut checker = Checker {
        path: Vec::new(),
        problems: Vec::new(),
    };
    module.visit(&mut checker);
    checker.problems
}

/// `Ok` when every weight of `module` is usable, else one line naming the first few bad
/// tensors and how many there are.
pub fn check_weights<M: Module>(module: &M) -> Result<(), String> {
    let problems = weight_problems(module);
    if problems.is_empty() {
        return Ok(());
    }
    let shown: Vec<&str> = problems.iter().take(3).map(String::as_str).collect();
    Err(format!(
        "{} damaged tensor(s): {}{}",
        problems.len(),
        shown.join("; "),
        if problems.len() > 3 { "; ..." } else { "" }
    ))
}
