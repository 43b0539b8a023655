//! ImageFolder scanning: a tree of class folders, files, FIFOs and links built from the
//! input, opened and read. Input: lines `K path`, K one of f (file), d (folder), p (FIFO),
//! l (link to the previous entry); a file's contents follow its path after a tab.
#![no_main]

use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use cnnzoo_data::Dataset;
use cnnzoo_data::folder::ImageFolder;
use libfuzzer_sys::fuzz_target;

fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("cnnzoo-fuzz-folder-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// A relative path that stays inside the root (no `..`, no absolute parts).
fn inside(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    let ok = !path.is_empty()
        && p.components().count() <= 3
        && p.components().all(|c| matches!(c, Component::Normal(_)));
    ok.then(|| p.to_path_buf())
}

fuzz_target!(|data: &[u8]| {
    let root = scratch().join("root");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let text = String::from_utf8_lossy(data);
    let mut previous: Option<PathBuf> = None;
    for line in text.lines().take(16) {
        let Some((kind, rest)) = line.split_once(' ') else {
            continue;
        };
        let (name, contents) = rest.split_once('\t').unwrap_or((rest, ""));
        let Some(rel) = inside(name) else {
            continue;
        };
        let path = root.join(&rel);
        // Never write through an existing entry: opening a FIFO the input made would block
        // this harness (not the code under test, which skips FIFOs).
        if path.symlink_metadata().is_ok() {
            continue;
        }
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let _ = match kind {
            "f" => std::fs::write(&path, contents.as_bytes()),
            "d" => std::fs::create_dir_all(&path),
            "p" => {
                if let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) {
                    // SAFETY: a valid NUL-terminated path; mkfifo has no other precondition.
                    unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
                }
                Ok(())
            }
            "l" => match &previous {
                Some(target) => std::os::unix::fs::symlink(target, &path),
                None => Ok(()),
            },
            _ => Ok(()),
        };
        previous = Some(path);
    }
    if let Ok(set) = ImageFolder::open(&root, 3) {
        assert!(!set.classes.is_empty());
        for i in 0..set.len().min(4) {
            let _ = set.get(i);
        }
    }
});
