//! Fetching the standard data sets from their official addresses, with checksums.
//!
//! Every file is downloaded to `NAME.part`, its MD5 checked against the published value, then
//! renamed into place; a file already present with the right checksum is not fetched again.
//! CIFAR archives are unpacked member by member (only the expected regular files, so an
//! archive cannot write outside the target folder).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

use crate::cifar::Cifar;
use crate::error::DataError;

/// A file to fetch: where from, under which name, and its published MD5.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Address.
    pub url: String,
    /// File name in the target folder.
    pub file: String,
    /// Published MD5 (lowercase hex).
    pub md5: String,
}

fn res(base: &str, file: &str, md5: &str) -> Resource {
    Resource {
        url: format!("{base}{file}"),
        file: file.into(),
        md5: md5.into(),
    }
}

/// Data sets `cnnzoo data download` knows.
pub const KNOWN: [&str; 4] = ["mnist", "fashion-mnist", "cifar10", "cifar100"];

/// The official files of a data set (torchvision's addresses and checksums).
pub fn resources(name: &str) -> Result<Vec<Resource>, DataError> {
    let mnist = "https://ossci-datasets.s3.amazonaws.com/mnist/";
    let fashion = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/";
    let toronto = "https://www.cs.toronto.edu/~kriz/";
    Ok(match name {
        "mnist" => vec![
            res(
                mnist,
                "train-images-idx3-ubyte.gz",
                "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            ),
            res(
                mnist,
                "train-labels-idx1-ubyte.gz",
                "d53e105ee54ea40749a09fcbcd1e9432",
            ),
            res(
                mnist,
                "t10k-images-idx3-ubyte.gz",
                "9fb629c4189551a2d022fa330f9573f3",
            ),
            res(
                mnist,
                "t10k-labels-idx1-ubyte.gz",
                "ec29112dd5afa0611ce80d1b7f02629c",
            ),
        ],
        "fashion-mnist" | "fashion_mnist" | "fmnist" => vec![
            res(
                fashion,
                "train-images-idx3-ubyte.gz",
                "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            ),
            res(
                fashion,
                "train-labels-idx1-ubyte.gz",
                "25c81989df183df01b3e8a0aad5dffbe",
            ),
            res(
                fashion,
                "t10k-images-idx3-ubyte.gz",
                "bef4ecab320f06d8554ea6380940ec79",
            ),
            res(
                fashion,
                "t10k-labels-idx1-ubyte.gz",
                "bb300cfdad3c16e7a12a480ee83cd310",
            ),
        ],
        "cifar10" | "cifar-10" => vec![res(
            toronto,
            "cifar-10-binary.tar.gz",
            "c32a1d4ab5d03f1284b67883e8d87530",
        )],
        "cifar100" | "cifar-100" => vec![res(
            toronto,
            "cifar-100-binary.tar.gz",
            "03b5dce01913d631647c71ecec9e9cb8",
        )],
        other => {
            return Err(DataError::Invalid(format!(
                "no download for '{other}' (known: {})",
                KNOWN.join(", ")
            )));
        }
    })
}

/// MD5 of a file, lowercase hex.
pub fn md5_file(path: &Path) -> Result<String, DataError> {
    let mut f = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut h = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| DataError::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:x}", h.finalize()))
}

fn offline_hint(resources: &[Resource], dir: &Path) -> String {
    let names: Vec<&str> = resources.iter().map(|r| r.file.as_str()).collect();
    format!(
        "without network access, place {} in {} (from {})",
        names.join(", "),
        dir.display(),
        resources
            .iter()
            .map(|r| r.url.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Fetches `resources` into `dir`; `progress(file, bytes_done, bytes_total)` is called as
/// bytes arrive (total 0 when unknown). Files already present with the right MD5 are kept.
pub fn fetch(
    resources: &[Resource],
    dir: &Path,
    mut progress: impl FnMut(&str, u64, u64),
) -> Result<Vec<PathBuf>, DataError> {
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let mut done = Vec::new();
    for r in resources {
        let target = dir.join(&r.file);
        if target.is_file() && md5_file(&target)? == r.md5 {
            done.push(target);
            continue;
        }
        let part = dir.join(format!("{}.part", r.file));
        let response = ureq::get(&r.url).call().map_err(|e| {
            DataError::Download(format!(
                "cannot fetch {}: {e}; {}",
                r.url,
                offline_hint(resources, dir)
            ))
        })?;
        let total = response
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = response.into_body().into_reader();
        let mut out = std::fs::File::create(&part).map_err(|e| DataError::io(&part, e))?;
        let mut hash = Md5::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut got = 0u64;
        loop {
            let n = body.read(&mut buf).map_err(|e| {
                DataError::Download(format!(
                    "{}: connection broke after {got} bytes: {e}",
                    r.url
                ))
            })?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(|e| DataError::io(&part, e))?;
            got += n as u64;
            progress(&r.file, got, total);
        }
        drop(out);
        let md5 = format!("{:x}", hash.finalize());
        if md5 != r.md5 {
            let _ = std::fs::remove_file(&part);
            return Err(DataError::Download(format!(
                "{}: checksum mismatch (MD5 {md5}, expected {}); the download was discarded",
                r.url, r.md5
            )));
        }
        std::fs::rename(&part, &target).map_err(|e| DataError::io(&target, e))?;
        done.push(target);
    }
    Ok(done)
}

/// Unpacks the expected binary files of a CIFAR archive into `dir/<official folder>`.
pub fn unpack_cifar(archive: &Path, which: Cifar, dir: &Path) -> Result<PathBuf, DataError> {
    let folder = which.folder();
    let root = dir.join(folder);
    std::fs::create_dir_all(&root).map_err(|e| DataError::io(&root, e))?;
    let mut wanted: Vec<String> = which.files(true);
    wanted.extend(which.files(false));
    wanted.push(match which {
        Cifar::Ten => "batches.meta.txt".into(),
        Cifar::Hundred => "fine_label_names.txt".into(),
    });
    let file = std::fs::File::open(archive).map_err(|e| DataError::io(archive, e))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let bad = |e: std::io::Error| DataError::format(archive, format!("cannot unpack: {e}"));
    let mut found = Vec::new();
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let path = entry.path().map_err(bad)?.into_owned();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let parent_ok = path.parent().and_then(|p| p.to_str()) == Some(folder);
        if parent_ok && entry.header().entry_type().is_file() && wanted.contains(&name) {
            let dest = root.join(&name);
            let mut out = std::fs::File::create(&dest).map_err(|e| DataError::io(&dest, e))?;
            std::io::copy(&mut entry, &mut out).map_err(|e| DataError::io(&dest, e))?;
            found.push(name);
        }
    }
    let missing: Vec<&String> = wanted.iter().filter(|w| !found.contains(w)).collect();
    if !missing.is_empty() {
        return Err(DataError::format(
            archive,
            format!(
                "archive lacks {folder}/{}",
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(root)
}

/// Downloads (and for CIFAR unpacks) the data set `name` into `dir`.
pub fn download(
    name: &str,
    dir: &Path,
    progress: impl FnMut(&str, u64, u64),
) -> Result<(), DataError> {
    let list = resources(name)?;
    let files = fetch(&list, dir, progress)?;
    let cifar = match name {
        "cifar10" | "cifar-10" => Some(Cifar::Ten),
        "cifar100" | "cifar-100" => Some(Cifar::Hundred),
        _ => None,
    };
    if let Some(which) = cifar {
        unpack_cifar(&files[0], which, dir)?;
    }
    Ok(())
}
