//! A hub-shaped HTTP server on loopback for tests (feature `test-server`): it answers as the
//! Hugging Face hub does, `HEAD/GET /{repo}/resolve/{revision}/{file}` with `X-Repo-Commit` and
//! `ETag`, `.safetensors` files (LFS) redirected to a CDN path with `X-Linked-Etag` (their
//! sha256) and `X-Linked-Size`, Range requests, and `X-Error-Code` on 401/404; plain files under
//! `/models/` for direct URLs. It can corrupt or cut off what it serves.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use tiny_http::{Header, Response, Server, StatusCode};

/// The commit every file is served at.
pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// How the server misbehaves when it serves file content.
#[derive(Clone, Copy, PartialEq)]
pub enum Mode {
    /// Serves the files as they are.
    Normal,
    /// One byte changed, same length.
    Corrupt,
    /// Full length announced, half sent, then the connection closes.
    Drop,
}

/// A running server; it stops when dropped.
pub struct TestHub {
    /// `http://127.0.0.1:port`.
    pub url: String,
    log: Arc<Mutex<Vec<String>>>,
    mode: Arc<Mutex<Mode>>,
    server: Arc<Server>,
}

impl Drop for TestHub {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

/// Lowercase hex sha256.
pub fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

fn header(k: &str, v: &str) -> Header {
    Header::from_bytes(k.as_bytes(), v.as_bytes()).unwrap()
}

/// Reads `data`, then fails: the transfer breaks off.
struct Breaks(std::io::Cursor<Vec<u8>>);

impl Read for Breaks {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.0.read(buf)? {
            0 => Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "dropped",
            )),
            n => Ok(n),
        }
    }
}

/// Starts a server holding `files` (name -> content; `.safetensors` files are LFS) in the
/// model repository `repo`, the same files under `/models/`.
pub fn serve(repo: &str, files: HashMap<String, Vec<u8>>) -> TestHub {
    let repo = repo.to_string();
    let server = Arc::new(Server::http("127.0.0.1:0").unwrap());
    let url = format!("http://{}", server.server_addr().to_ip().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let mode = Arc::new(Mutex::new(Mode::Normal));
    let (s, l, m, base) = (server.clone(), log.clone(), mode.clone(), url.clone());
    std::thread::spawn(move || {
        for req in s.incoming_requests() {
            let path = req.url().to_string();
            let range = req
                .headers()
                .iter()
                .find(|h| h.field.equiv("Range"))
                .map(|h| h.value.to_string());
            l.lock().unwrap().push(format!(
                "{} {path} {}",
                req.method(),
                range.clone().unwrap_or_default()
            ));
            let prefix = format!("/{repo}/resolve/");
            let content = |name: &str| files.get(name).cloned();
            if let Some(rest) = path.strip_prefix(&prefix) {
                let file = rest.split_once('/').map_or("", |(_, f)| f);
                let Some(data) = content(file) else {
                    let r = Response::empty(StatusCode(404))
                        .with_header(header("X-Error-Code", "EntryNotFound"));
                    let _ = req.respond(r);
                    continue;
                };
                let sha = sha256(&data);
                let r = if file.ends_with(".safetensors") {
                    Response::empty(StatusCode(302))
                        .with_header(header("Location", &format!("{base}/cdn/{file}")))
                        .with_header(header("X-Linked-Etag", &format!("\"{sha}\"")))
                        .with_header(header("X-Linked-Size", &data.len().to_string()))
                        .with_header(header("ETag", "\"not-the-content-hash\""))
                        .with_header(header("X-Repo-Commit", COMMIT))
                        .boxed()
                } else {
                    // Small files: a git blob id, not a sha256 (not checked, as by the hub).
                    Response::from_data(data)
                        .with_header(header("ETag", &format!("\"{}\"", &sha[..40])))
                        .with_header(header("X-Repo-Commit", COMMIT))
                        .boxed()
                };
                let _ = req.respond(r);
            } else if let Some(file) = path
                .strip_prefix("/cdn/")
                .or_else(|| path.strip_prefix("/models/"))
                && let Some(mut data) = content(file)
            {
                let start: usize = range
                    .as_deref()
                    .and_then(|r| r.strip_prefix("bytes="))
                    .and_then(|r| r.trim_end_matches('-').parse().ok())
                    .unwrap_or(0);
                let total = data.len();
                let mode = *m.lock().unwrap();
                if mode == Mode::Corrupt {
                    data[total / 2] ^= 0xff;
                }
                let body = data[start..].to_vec();
                let len = body.len();
                let status = if start > 0 { 206 } else { 200 };
                let mut headers = vec![header("Accept-Ranges", "bytes")];
                if start > 0 {
                    headers.push(header(
                        "Content-Range",
                        &format!("bytes {start}-{}/{total}", total - 1),
                    ));
                }
                let r = if mode == Mode::Drop {
                    let half = body[..len / 2].to_vec();
                    Response::new(
                        StatusCode(status),
                        headers,
                        Box::new(Breaks(std::io::Cursor::new(half))) as Box<dyn Read + Send>,
                        Some(len),
                        None,
                    )
                } else {
                    Response::new(
                        StatusCode(status),
                        headers,
                        Box::new(std::io::Cursor::new(body)) as Box<dyn Read + Send>,
                        Some(len),
                        None,
                    )
                };
                let _ = req.respond(r);
            } else {
                let r = Response::empty(StatusCode(401))
                    .with_header(header("X-Error-Code", "RepoNotFound"));
                let _ = req.respond(r);
            }
        }
    });
    TestHub {
        url,
        log,
        mode,
        server,
    }
}

impl TestHub {
    /// Changes how the following requests are served.
    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// The requests so far (`METHOD path range`), clearing the log.
    pub fn take_log(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}
