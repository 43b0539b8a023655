//! What several subcommands share: the data set options, the thread pool, the Ctrl-C flag and
//! the data download with its progress bars.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};

/// Which data set and where (flattened into the commands that read one).
#[derive(clap::Args, Debug, Clone)]
pub struct DataArgs {
    /// fashion-mnist, mnist, cifar10, cifar100 or folder:PATH (PATH/train and PATH/val).
    #[arg(long)]
    pub dataset: String,
    /// Folder holding the data set's files (official names).
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// Fetch the data set into --data-dir first if its files are missing (never otherwise).
    #[arg(long)]
    pub download: bool,
}

impl DataArgs {
    /// Fetches the data set first when `--download` asks for it and files are missing.
    pub fn ensure(&self) -> Result<()> {
        let name = self.dataset.to_ascii_lowercase();
        if !self.download || cnnzoo_data::download::resources(&name).is_err() {
            return Ok(());
        }
        let probe = cnnzoo_train::TrainConfig::data_only(&name, self.data_dir.clone());
        match cnnzoo_train::data::open(&probe) {
            Err(cnnzoo_train::TrainError::Data(cnnzoo_data::DataError::Missing { .. })) => {
                eprintln!(
                    "{name}: files missing in {}, downloading",
                    self.data_dir.display()
                );
                download(&name, &self.data_dir)
            }
            _ => Ok(()),
        }
    }

    /// A training configuration of `model` on this data set, writing to `out`.
    pub fn train_config(&self, model: &str, out: PathBuf) -> cnnzoo_train::TrainConfig {
        cnnzoo_train::TrainConfig::new(model, &self.dataset, self.data_dir.clone(), out)
    }
}

/// Downloads a data set with a progress bar per file.
pub fn download(name: &str, dir: &Path) -> Result<()> {
    use indicatif::{ProgressBar, ProgressStyle};
    let style = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )?
    .progress_chars("=> ");
    let mut bar: Option<(String, ProgressBar)> = None;
    cnnzoo_data::download::download(name, dir, |file, got, total| {
        if bar.as_ref().is_none_or(|(f, _)| f != file) {
            if let Some((_, b)) = bar.take() {
                b.finish();
            }
            let b = ProgressBar::new(total)
                .with_style(style.clone())
                .with_message(file.to_string());
            bar = Some((file.to_string(), b));
        }
        if let Some((_, b)) = &bar {
            b.set_position(got);
        }
    })?;
    if let Some((_, b)) = bar {
        b.finish();
    }
    Ok(())
}

/// Sets the size of the thread pool the CPU backend and the loader share.
pub fn set_threads(threads: Option<usize>) -> Result<()> {
    if let Some(t) = threads {
        // Far more threads than cores only thrash (100,000 made no progress at all).
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        if t == 0 || t > 4 * cores {
            bail!(
                "--threads must be between 1 and {} (4 x the {cores} logical CPUs), got {t}",
                4 * cores
            );
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
            .context("cannot size the thread pool")?;
    }
    Ok(())
}

/// A flag set by the first Ctrl-C, SIGTERM or SIGHUP (what `timeout`, Docker, Kubernetes and
/// Slurm send before they kill): training finishes its batch and writes a checkpoint. A second
/// signal exits at once.
pub fn stop_on_ctrl_c() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("\nsecond interrupt: exiting without a checkpoint");
            std::process::exit(130);
        }
        eprintln!(
            "\ninterrupt: finishing the batch and writing a checkpoint (interrupt again to quit now)"
        );
    })
    .context("cannot install the interrupt handler")?;
    Ok(stop)
}
