//! The training recipe that the experiments training their arms share (flattened into their
//! arguments), and the command line their reports quote.

use std::path::PathBuf;

use anyhow::Result;

/// The training recipe of the experiments that train their arms.
#[derive(clap::Args, Debug, Clone)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: super::DataArgs,
    /// Epochs per arm.
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    /// Train on this many samples (evenly spaced) per arm.
    #[arg(long)]
    subset: Option<usize>,
    /// Evaluate on this many samples.
    #[arg(long)]
    test_subset: Option<usize>,
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Peak learning rate (SGD, momentum 0.9, weight decay 5e-4, cosine).
    #[arg(long, default_value_t = 0.1)]
    lr: f64,
    /// Linear warm-up in epochs (deep plain nets need one at lr 0.1).
    #[arg(long, default_value_t = 1.0)]
    warmup_epochs: f64,
    /// Seed, the same for every arm.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Output folder (default runs/experiment-NAME): one run folder per arm, report.md,
    /// experiment.png, results.json.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl TrainArgs {
    /// The recipe these flags describe, writing under `out` (validated).
    pub fn recipe(&self, out: PathBuf) -> Result<cnnzoo_train::TrainConfig> {
        let mut recipe = self.data.train_config("resnet20", out);
        recipe.epochs = self.epochs;
        recipe.train_subset = self.subset;
        recipe.test_subset = self.test_subset;
        recipe.batch_size = self.batch_size;
        recipe.lr = self.lr;
        recipe.warmup_epochs = self.warmup_epochs;
        recipe.seed = self.seed;
        recipe.validate().map_err(anyhow::Error::msg)?;
        Ok(recipe)
    }
}

/// The command line as run, for reports.
pub fn command_line() -> String {
    std::env::args()
        .enumerate()
        .map(|(i, a)| if i == 0 { "cnnzoo".into() } else { a })
        .collect::<Vec<_>>()
        .join(" ")
}
