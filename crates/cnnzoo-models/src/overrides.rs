//! Design changes applied on top of a registered residual network: the ablations of the ResNet
//! and SE papers (activation, normalisation, shortcut option, SE ratio and position), the
//! pre-activation order, WRN's block dropout and stochastic depth, without a registry entry per
//! combination.

use serde::{Deserialize, Serialize};

use crate::blocks::squeeze_excite::{SePosition, SeSettings};
use crate::blocks::{Activation, Norm, ShortcutKind};
use crate::error::ModelError;
use crate::models::ModelConfig;
use crate::registry::{ModelOptions, create};

/// Changes to a registered residual network's design; `None` keeps the registry's choice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Overrides {
    /// Non-linearity of every unit (relu, sigmoid, tanh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Activation>,
    /// Normalisation of every unit (batchnorm or none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub norm: Option<Norm>,
    /// Shortcut option A / B / C, or none (a plain network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shortcut: Option<ShortcutKind>,
    /// SE reduction ratio r; on a network without SE this adds SE units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub se_reduction: Option<usize>,
    /// Where the SE units sit; on a network without SE this adds SE units (r = 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub se_position: Option<SePosition>,
    /// Rounding of the SE reduced width (timm: 8; 1 keeps channels / r exactly, as the SE
    /// paper's ratio sweep needs on narrow CIFAR networks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub se_divisor: Option<usize>,
    /// Pre-activation order (identity mappings) on or off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preact: Option<bool>,
    /// Dropout between the convolutions of every block (WRN), in `[0, 1)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_dropout: Option<f64>,
    /// Stochastic depth: the deepest block's drop probability, in `[0, 1)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_path: Option<f64>,
}

impl Overrides {
    /// True when nothing is overridden.
    pub fn is_empty(&self) -> bool {
        *self == Overrides::default()
    }

    /// A short label such as `act=sigmoid,norm=none` (empty when nothing is overridden).
    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        if let Some(a) = self.act {
            parts.push(format!("act={}", a.name()));
        }
        if let Some(n) = self.norm {
            parts.push(format!(
                "norm={}",
                match n {
                    Norm::BatchNorm => "batchnorm",
                    Norm::None => "none",
                }
            ));
        }
        if let Some(s) = self.shortcut {
            parts.push(format!(
                "shortcut={}",
                match s {
                    ShortcutKind::ZeroPad => "A",
                    ShortcutKind::Projection => "B",
                    ShortcutKind::AllProjection => "C",
                    ShortcutKind::None => "none",
                }
            ));
        }
        if let Some(r) = self.se_reduction {
            parts.push(format!("se_r={r}"));
        }
        if let Some(p) = self.se_position {
            parts.push(format!("se_pos={p:?}").to_ascii_lowercase());
        }
        if let Some(d) = self.se_divisor {
            parts.push(format!("se_div={d}"));
        }
        if let Some(p) = self.preact {
            parts.push(format!("preact={p}"));
        }
        if let Some(p) = self.block_dropout {
            parts.push(format!("block_dropout={p}"));
        }
        if let Some(p) = self.drop_path {
            parts.push(format!("drop_path={p}"));
        }
        parts.join(",")
    }

    /// Applies the changes to `config` of model `name`; families other than the residual
    /// networks only accept an empty set.
    pub fn apply(&self, name: &str, config: ModelConfig) -> Result<ModelConfig, ModelError> {
        if self.is_empty() {
            return Ok(config);
        }
        let ModelConfig::ResNet(mut c) = config else {
            return Err(ModelError::InvalidConfig {
                model: name.into(),
                reason: format!(
                    "design overrides ({}) apply to the residual family (resnet, resnext, seresnet, plain, preact) only",
                    self.label()
                ),
            });
        };
        if let Some(a) = self.act {
            c.act = a;
        }
        if let Some(n) = self.norm {
            c.norm = n;
        }
        if let Some(s) = self.shortcut {
            c.shortcut = s;
        }
        if let Some(p) = self.preact {
            c.preact = p;
        }
        for (what, p) in [
            ("block dropout", self.block_dropout),
            ("drop path", self.drop_path),
        ] {
            if let Some(p) = p
                && !(0.0..1.0).contains(&p)
            {
                return Err(ModelError::InvalidConfig {
                    model: name.into(),
                    reason: format!("{what} {p} is not a probability in [0, 1)"),
                });
            }
        }
        if let Some(p) = self.block_dropout {
            c.block_dropout = p;
        }
        if let Some(p) = self.drop_path {
            c.drop_path_rate = p;
        }
        if self.se_reduction.is_some() || self.se_position.is_some() || self.se_divisor.is_some() {
            let mut se = c.se.take().unwrap_or_else(SeSettings::new);
            if let Some(r) = self.se_reduction {
                if r == 0 {
                    return Err(ModelError::InvalidConfig {
                        model: name.into(),
                        reason: "the SE reduction ratio must be at least 1".into(),
                    });
                }
                se.reduction = r;
            }
            if let Some(p) = self.se_position {
                se.position = p;
            }
            if let Some(d) = self.se_divisor {
                if d == 0 {
                    return Err(ModelError::InvalidConfig {
                        model: name.into(),
                        reason: "the SE width divisor must be at least 1".into(),
                    });
                }
                se.divisor = d;
            }
            c.se = Some(se);
        }
        let config = ModelConfig::ResNet(c);
        config.validate()?;
        Ok(config)
    }
}

impl std::str::FromStr for Overrides {
    type Err = String;

    /// Parses the [`label`](Overrides::label) syntax: `key=value` pairs separated by commas,
    /// keys `act`, `norm`, `shortcut`, `se_r`, `se_pos`, `se_div`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut o = Overrides::default();
        for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, value)) = pair.split_once('=') else {
                return Err(format!("'{pair}' is not key=value"));
            };
            let value = value.trim();
            match key.trim().replace('-', "_").as_str() {
                "act" => o.act = Some(value.parse()?),
                "norm" => o.norm = Some(value.parse()?),
                "shortcut" => o.shortcut = Some(value.parse()?),
                "se_r" | "se_reduction" => {
                    o.se_reduction = Some(
                        value
                            .parse()
                            .map_err(|_| format!("se_r: '{value}' is not a whole number"))?,
                    );
                }
                "se_pos" | "se_position" => o.se_position = Some(value.parse()?),
                "se_div" | "se_divisor" => {
                    o.se_divisor = Some(
                        value
                            .parse()
                            .map_err(|_| format!("se_div: '{value}' is not a whole number"))?,
                    );
                }
                "preact" => {
                    o.preact = Some(match value.to_ascii_lowercase().as_str() {
                        "true" | "1" | "yes" | "on" => true,
                        "false" | "0" | "no" | "off" => false,
                        _ => return Err(format!("preact: '{value}' is not true or false")),
                    });
                }
                "block_dropout" | "drop_path" => {
                    let p: f64 = value
                        .parse()
                        .ok()
                        .filter(|p| (0.0..1.0).contains(p))
                        .ok_or_else(|| {
                            format!("{key}: '{value}' is not a probability in [0, 1)")
                        })?;
                    if key.trim().starts_with("block") {
                        o.block_dropout = Some(p);
                    } else {
                        o.drop_path = Some(p);
                    }
                }
                other => {
                    return Err(format!(
                        "unknown override '{other}' (known: act, norm, shortcut, se_r, se_pos, se_div, preact, block_dropout, drop_path)"
                    ));
                }
            }
        }
        Ok(o)
    }
}

/// [`create`] with design overrides applied.
pub fn create_with(
    name: &str,
    options: ModelOptions,
    overrides: &Overrides,
) -> Result<ModelConfig, ModelError> {
    overrides.apply(name, create(name, options)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::residual::Shortcut;
    use burn::module::Module;
    use burn::tensor::Device;

    #[test]
    fn overrides_change_the_built_network() {
        let device = Device::default();
        let plain = Overrides {
            act: Some(Activation::Sigmoid),
            norm: Some(Norm::None),
            shortcut: Some(ShortcutKind::None),
            ..Default::default()
        };
        assert_eq!(plain.label(), "act=sigmoid,norm=none,shortcut=none");
        let ModelConfig::ResNet(c) =
            create_with("resnet20", ModelOptions::default(), &plain).unwrap()
        else {
            panic!("resnet20 is a residual network");
        };
        assert_eq!(
            (c.act, c.norm, c.shortcut),
            (Activation::Sigmoid, Norm::None, ShortcutKind::None)
        );
        let model = ModelConfig::ResNet(c).init(&device);
        let crate::Model::ResNet(net) = model else {
            panic!("a ResNet config builds a ResNet");
        };
        let block = &net.stages[1][0];
        assert!(block.conv1.bn.is_none() && block.conv1.conv.bias.is_some());
        assert_eq!(block.conv1.act, Some(Activation::Sigmoid));
        assert!(matches!(block.shortcut, Shortcut::None));

        assert_eq!(plain.label().parse::<Overrides>().unwrap(), plain);
        let se: Overrides = "se_r=4".parse().unwrap();
        assert_eq!(se.se_reduction, Some(4));
        let all: Overrides = "shortcut=C, se_pos=identity, act=tanh, norm=bn"
            .parse()
            .unwrap();
        assert_eq!(all.label().parse::<Overrides>().unwrap(), all);
        assert!("act=swish".parse::<Overrides>().is_err());
        let pre: Overrides = "preact=true,block_dropout=0.3,drop_path=0.1"
            .parse()
            .unwrap();
        assert_eq!(pre.label().parse::<Overrides>().unwrap(), pre);
        let ModelConfig::ResNet(c) =
            create_with("resnet20", ModelOptions::default(), &pre).unwrap()
        else {
            panic!("resnet20 is a residual network");
        };
        assert!(c.preact);
        assert!((c.block_dropout - 0.3).abs() < 1e-12 && (c.drop_path_rate - 0.1).abs() < 1e-12);
        assert!("drop_path=1.5".parse::<Overrides>().is_err());
        assert!("preact=maybe".parse::<Overrides>().is_err());
        assert!(
            "depth=3"
                .parse::<Overrides>()
                .unwrap_err()
                .contains("unknown override")
        );
        assert!("act".parse::<Overrides>().is_err());
        let with_se = create_with("resnet20", ModelOptions::default(), &se).unwrap();
        let without = create("resnet20", ModelOptions::default()).unwrap();
        assert!(with_se.init(&device).num_params() > without.init(&device).num_params());
        // timm rounds 16 / 16 up to 8 channels; divisor 1 keeps the paper's 16 / r.
        let params = |spec: &str| {
            create_with(
                "seresnet20",
                ModelOptions::default(),
                &spec.parse().unwrap(),
            )
            .unwrap()
            .init(&device)
            .num_params()
        };
        assert_eq!(params("se_r=16"), params("se_r=32"));
        assert!(params("se_r=16,se_div=1") > params("se_r=32,se_div=1"));
    }

    #[test]
    fn overrides_outside_the_residual_family_are_an_error() {
        let o = Overrides {
            act: Some(Activation::Tanh),
            ..Default::default()
        };
        let e = create_with("densenet121", ModelOptions::default(), &o).unwrap_err();
        assert!(e.to_string().contains("residual family"), "{e}");
        assert!(
            create_with(
                "densenet121",
                ModelOptions::default(),
                &Overrides::default()
            )
            .is_ok()
        );
        let zero = Overrides {
            se_reduction: Some(0),
            ..Default::default()
        };
        assert!(create_with("resnet20", ModelOptions::default(), &zero).is_err());
    }
}
