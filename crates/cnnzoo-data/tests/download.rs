//! Downloads against a local HTTP server (no outside network): checksum verified, mismatch
//! rejected, unreachable address explained, CIFAR archive unpacked.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;

use cnnzoo_data::cifar::{self, Cifar};
use cnnzoo_data::download::{Resource, fetch, md5_file, resources, unpack_cifar};

/// Serves `body` to the next `n` connections on 127.0.0.1; returns the base address.
fn serve(body: Vec<u8>, n: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(n) {
            let mut s = stream.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    format!("http://{addr}/")
}

fn md5_of(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x");
    std::fs::write(&p, bytes).unwrap();
    md5_file(&p).unwrap()
}

#[test]
fn verified_download_lands_and_is_not_fetched_twice() {
    let body = b"hello cnnzoo".to_vec();
    let base = serve(body.clone(), 1);
    let dir = tempfile::tempdir().unwrap();
    let r = Resource {
        url: format!("{base}f.bin"),
        file: "f.bin".into(),
        md5: md5_of(&body),
    };
    let mut seen = 0;
    fetch(std::slice::from_ref(&r), dir.path(), |_, got, _| seen = got).unwrap();
    assert_eq!(std::fs::read(dir.path().join("f.bin")).unwrap(), body);
    assert_eq!(seen, body.len() as u64);
    // The server is gone; a present, verified file is kept without fetching.
    fetch(&[r], dir.path(), |_, _, _| {}).unwrap();
}

#[test]
fn checksum_mismatch_is_rejected_and_nothing_is_left() {
    let base = serve(b"tampered".to_vec(), 1);
    let dir = tempfile::tempdir().unwrap();
    let r = Resource {
        url: format!("{base}g.bin"),
        file: "g.bin".into(),
        md5: "0".repeat(32),
    };
    let e = fetch(&[r], dir.path(), |_, _, _| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("checksum mismatch"), "{e}");
    assert!(!dir.path().join("g.bin").exists() && !dir.path().join("g.bin.part").exists());
}

#[test]
fn offline_error_says_which_files_to_place_where() {
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let mut list = resources("fashion-mnist").unwrap();
    for r in &mut list {
        r.url = format!("http://127.0.0.1:{port}/{}", r.file);
    }
    let e = fetch(&list, dir.path(), |_, _, _| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cannot fetch") && e.contains("t10k-labels-idx1-ubyte.gz"),
        "{e}"
    );
    assert!(e.contains(&dir.path().display().to_string()), "{e}");
    assert!(resources("imagenet").is_err());
}

fn tar_gz(entries: &[(&str, Vec<u8>)], path: &Path) {
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(path).unwrap(),
        flate2::Compression::fast(),
    );
    let mut b = tar::Builder::new(gz);
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data.as_slice()).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap();
}

#[test]
fn cifar_archive_unpacks_only_its_own_files() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("c.tar.gz");
    let record: Vec<u8> = std::iter::once(1u8)
        .chain(std::iter::repeat_n(9u8, 3072))
        .collect();
    let mut entries: Vec<(&str, Vec<u8>)> = vec![
        ("cifar-10-batches-bin/test_batch.bin", record.clone()),
        (
            "cifar-10-batches-bin/batches.meta.txt",
            b"a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n".to_vec(),
        ),
        ("cifar-10-batches-bin/readme.html", b"x".to_vec()),
    ];
    let names: Vec<String> = (1..=5)
        .map(|i| format!("cifar-10-batches-bin/data_batch_{i}.bin"))
        .collect();
    for n in &names {
        entries.push((n.as_str(), record.clone()));
    }
    tar_gz(&entries, &archive);
    let out = tempfile::tempdir().unwrap();
    let root = unpack_cifar(&archive, Cifar::Ten, out.path()).unwrap();
    assert!(!root.join("readme.html").exists());
    let test = cifar::load_split(out.path(), Cifar::Ten, false).unwrap();
    assert_eq!(test.labels, vec![1]);
    assert_eq!(test.classes[9], "j");

    // An archive missing a batch is an error naming it.
    tar_gz(&entries[..2], &archive);
    let e = unpack_cifar(&archive, Cifar::Ten, tempfile::tempdir().unwrap().path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("data_batch_1.bin"), "{e}");
}
