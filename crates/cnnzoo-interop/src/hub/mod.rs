//! Files from the Hugging Face hub and from direct URLs, cached where Python caches them.
//!
//! Hub files use `huggingface_hub`'s cache layout and location (`HF_HUB_CACHE`, else
//! `HF_HOME/hub`, else `~/.cache/huggingface/hub`): `models--{org}--{name}/blobs/{etag}`, the
//! file itself; `snapshots/{commit}/{file}`, a relative link to it; `refs/{revision}`, the
//! commit. Files Python downloaded are used as they are, and Python uses ours. Direct URLs go
//! where `torch.hub` puts them (`$TORCH_HOME/hub/checkpoints`, default `~/.cache/torch`), with
//! its convention of a sha256 prefix in the file name (`resnet50-0676ba61.pth`) checked.
//!
//! A download is written to `{blob}.incomplete` (the name `huggingface_hub` uses, so either
//! resumes the other's), checked against the hub's sha256 (the `X-Linked-Etag` of LFS files)
//! and its size, and only then renamed into place: an interrupted download never leaves a file
//! that looks complete, and a corrupted one leaves nothing. The HTTP client is `ureq`; the
//! `hf-hub` crate was not used because its blocking client renames a download into the cache
//! before any check and has no offline mode or `HF_HUB_CACHE`.

#[cfg(feature = "test-server")]
pub mod test_server;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use thiserror::Error;

/// The public hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Why a file could not be had.
#[derive(Debug, Error)]
pub enum HubError {
    /// No answer from the server (no network, DNS, refused, timed out).
    #[error(
        "cannot reach {endpoint} ({reason}); check the network, or set HF_ENDPOINT to a mirror; files already in {cache} are used with --offline (HF_HUB_OFFLINE=1)"
    )]
    Unreachable {
        /// The server.
        endpoint: String,
        /// What the client said.
        reason: String,
        /// The cache folder.
        cache: PathBuf,
    },
    /// The repository does not exist (or is private).
    #[error("{repo} is not on {endpoint} (no such repository, or a private one)")]
    RepoNotFound {
        /// `org/name`.
        repo: String,
        /// The server.
        endpoint: String,
    },
    /// The repository has no such file (or revision).
    #[error("{repo} has no file {file} at revision {revision}")]
    EntryNotFound {
        /// `org/name`.
        repo: String,
        /// The file.
        file: String,
        /// Branch, tag or commit.
        revision: String,
    },
    /// Offline, and the file is not in the cache.
    #[error(
        "offline: {what} is not in the cache ({cache}); run once without --offline and HF_HUB_OFFLINE to download it"
    )]
    NotCached {
        /// The file, by repository or URL.
        what: String,
        /// Where it was looked for.
        cache: PathBuf,
    },
    /// The downloaded content is not what the server announced; nothing was cached.
    #[error(
        "{url}: the download does not match its {what} (expected {expected}, got {got}); nothing was kept, try again"
    )]
    Corrupt {
        /// The file's address.
        url: String,
        /// `sha256` or `size`.
        what: String,
        /// Announced.
        expected: String,
        /// Received.
        got: String,
    },
    /// The transfer stopped early; the partial file is kept to resume.
    #[error("{url}: the download stopped after {got} bytes ({reason}); run again to resume")]
    Interrupted {
        /// The file's address.
        url: String,
        /// Bytes received so far.
        got: u64,
        /// What the client said.
        reason: String,
    },
    /// An address the client cannot use.
    #[error("{url}: {reason}")]
    BadUrl {
        /// The address.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An HTTP status that says neither "not found" nor success.
    #[error("{url}: the server answered HTTP {status}")]
    Http {
        /// The address.
        url: String,
        /// The status code.
        status: u16,
    },
    /// A cache file could not be read or written.
    #[error("{path}: {reason}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the system said.
        reason: String,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> HubError + '_ {
    move |e| HubError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// A client of one hub endpoint with its cache.
#[derive(Debug, Clone)]
pub struct Hub {
    /// Base address (`https://huggingface.co`, or a mirror's).
    pub endpoint: String,
    /// The hub cache folder (`.../huggingface/hub`).
    pub cache: PathBuf,
    /// The direct-URL cache folder (`.../torch/hub/checkpoints`).
    pub url_cache: PathBuf,
    /// Never touch the network; use cached files only.
    pub offline: bool,
    /// Show a progress bar while downloading (on a terminal).
    pub progress: bool,
    /// Bearer token for private repositories (`HF_TOKEN`).
    pub token: Option<String>,
}

/// What the server says about a hub file before it is downloaded.
struct Meta {
    commit: String,
    etag: String,
    size: Option<u64>,
    /// Where the content is (the hub redirects LFS files to a CDN).
    location: String,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn home_cache() -> PathBuf {
    env("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| Path::new(&h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"))
}

fn truthy(v: Option<String>) -> bool {
    v.is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
}

impl Hub {
    /// The hub as `huggingface_hub` configures it from the environment: `HF_ENDPOINT`,
    /// `HF_HUB_CACHE` / `HF_HOME`, `HF_HUB_OFFLINE`, `HF_TOKEN`; and `TORCH_HOME` for URLs.
    pub fn from_env() -> Self {
        let cache = env("HF_HUB_CACHE").map_or_else(
            || {
                env("HF_HOME")
                    .map_or_else(|| home_cache().join("huggingface"), PathBuf::from)
                    .join("hub")
            },
            PathBuf::from,
        );
        let torch = env("TORCH_HOME").map_or_else(|| home_cache().join("torch"), PathBuf::from);
        Hub {
            endpoint: env("HF_ENDPOINT")
                .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string())
                .trim_end_matches('/')
                .to_string(),
            cache,
            url_cache: torch.join("hub").join("checkpoints"),
            offline: truthy(env("HF_HUB_OFFLINE")),
            progress: true,
            token: env("HF_TOKEN"),
        }
    }

    fn agent(&self, redirects: u32) -> ureq::Agent {
        ureq::Agent::config_builder()
            .max_redirects(redirects)
            .max_redirects_will_error(false)
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_recv_response(Some(Duration::from_secs(30)))
            .timeout_recv_body(Some(Duration::from_secs(60)))
            .user_agent(concat!("cnnzoo/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent()
    }

    fn repo_dir(&self, repo: &str) -> PathBuf {
        self.cache
            .join(format!("models--{}", repo.replace('/', "--")))
    }

    /// The cached copy of `file` of `repo` at `revision`, if there is one.
    pub fn cached(&self, repo: &str, revision: &str, file: &str) -> Option<PathBuf> {
        let dir = self.repo_dir(repo);
        let commit = std::fs::read_to_string(dir.join("refs").join(revision))
            .map_or_else(|_| revision.to_string(), |s| s.trim().to_string());
        let path = dir.join("snapshots").join(commit).join(file);
        path.is_file().then_some(path)
    }

    /// The local path of `file` of the model repository `repo` at `revision`, downloaded into
    /// the cache unless it is there already.
    pub fn file(&self, repo: &str, revision: &str, file: &str) -> Result<PathBuf, HubError> {
        let not_cached = || HubError::NotCached {
            what: format!("{repo}/{file}"),
            cache: self.cache.clone(),
        };
        if self.offline {
            return self.cached(repo, revision, file).ok_or_else(not_cached);
        }
        let url = format!("{}/{repo}/resolve/{revision}/{file}", self.endpoint);
        let meta = match self.meta(&url, repo, revision, file) {
            Ok(m) => m,
            // As huggingface_hub does: without a network, a cached copy is good enough.
            Err(e @ HubError::Unreachable { .. }) => {
                return self.cached(repo, revision, file).ok_or(e);
            }
            Err(e) => return Err(e),
        };
        let dir = self.repo_dir(repo);
        let pointer = dir.join("snapshots").join(&meta.commit).join(file);
        if !pointer.is_file() {
            let blob = dir.join("blobs").join(&meta.etag);
            if !blob.is_file() {
                let expect = if is_sha256(&meta.etag) {
                    Expect::Sha256(meta.etag.clone())
                } else {
                    Expect::Nothing
                };
                self.download(&meta.location, &blob, meta.size, &expect, file)?;
            }
            link(&blob, &pointer)?;
        }
        if revision != meta.commit {
            let refs = dir.join("refs");
            std::fs::create_dir_all(&refs).map_err(io_error(&refs))?;
            let r = refs.join(revision);
            std::fs::write(&r, &meta.commit).map_err(io_error(&r))?;
        }
        Ok(pointer)
    }

    /// The local path of a direct URL's file, downloaded into the URL cache unless it is there;
    /// a sha256 prefix in the file name (`name-<hex>.ext`) is checked, as `torch.hub` does.
    pub fn url(&self, url: &str) -> Result<PathBuf, HubError> {
        let name = url
            .split(['?', '#'])
            .next()
            .and_then(|u| u.rsplit('/').next())
            // The name becomes a cache path: nothing that could leave the folder.
            .filter(|n| !n.is_empty() && *n != "." && *n != ".." && !n.contains('\\'))
            .ok_or_else(|| HubError::BadUrl {
                url: url.to_string(),
                reason: "it names no file (the cache keeps files by their name)".into(),
            })?;
        let dest = self.url_cache.join(name);
        if dest.is_file() {
            return Ok(dest);
        }
        if self.offline {
            return Err(HubError::NotCached {
                what: url.to_string(),
                cache: self.url_cache.clone(),
            });
        }
        let expect = hash_prefix(name).map_or(Expect::Nothing, Expect::Sha256Prefix);
        self.download(url, &dest, None, &expect, name)?;
        Ok(dest)
    }

    fn unreachable(&self, endpoint: &str, e: &ureq::Error) -> HubError {
        HubError::Unreachable {
            endpoint: endpoint.to_string(),
            reason: e.to_string(),
            cache: self.cache.clone(),
        }
    }

    fn head(
        &self,
        agent: &ureq::Agent,
        url: &str,
    ) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        let mut r = agent.head(url).header("Accept-Encoding", "identity");
        if let Some(t) = &self.token {
            r = r.header("Authorization", &format!("Bearer {t}"));
        }
        r.call()
    }

    /// HEAD the file, following the hub's relative redirects (renamed repositories) but not
    /// its absolute ones (the CDN of LFS files), whose headers describe the file.
    fn meta(&self, url: &str, repo: &str, revision: &str, file: &str) -> Result<Meta, HubError> {
        let agent = self.agent(0);
        let mut url = url.to_string();
        for _ in 0..5 {
            let resp = self
                .head(&agent, &url)
                .map_err(|e| self.unreachable(&self.endpoint, &e))?;
            let status = resp.status().as_u16();
            let header = |name: &str| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(|v| v.trim_matches('"').to_string())
            };
            let location = header("location");
            if (300..400).contains(&status)
                && let Some(loc) = &location
                && loc.starts_with('/')
            {
                url = format!("{}{loc}", origin(&url));
                continue;
            }
            match status {
                200..=399 => {}
                401 | 403 | 404 => {
                    let code = header("x-error-code").unwrap_or_default();
                    return Err(
                        if code == "RepoNotFound" || (code.is_empty() && status != 404) {
                            HubError::RepoNotFound {
                                repo: repo.to_string(),
                                endpoint: self.endpoint.clone(),
                            }
                        } else {
                            HubError::EntryNotFound {
                                repo: repo.to_string(),
                                file: file.to_string(),
                                revision: revision.to_string(),
                            }
                        },
                    );
                }
                _ => return Err(HubError::Http { url, status }),
            }
            let missing = |what: &str| HubError::Http {
                url: format!("{url} (no {what} header: not a hub server?)"),
                status,
            };
            let commit = header("x-repo-commit").ok_or_else(|| missing("X-Repo-Commit"))?;
            let etag = header("x-linked-etag")
                .or_else(|| header("etag"))
                .ok_or_else(|| missing("ETag"))?;
            let size = header("x-linked-size")
                .or_else(|| header("content-length"))
                .and_then(|s| s.parse().ok());
            let location = match location {
                Some(loc) if (300..400).contains(&status) => loc,
                _ => url.clone(),
            };
            // An etag becomes a file name: refuse anything that could leave the folder.
            if etag.is_empty() || !etag.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(missing("usable ETag"));
            }
            return Ok(Meta {
                commit,
                etag,
                size,
                location,
            });
        }
        Err(HubError::BadUrl {
            url,
            reason: "more than 5 redirects within the hub".into(),
        })
    }

    /// Downloads `url` to `dest` through `dest.incomplete`, resuming a partial file, checking
    /// the size and hash before the rename.
    fn download(
        &self,
        url: &str,
        dest: &Path,
        size: Option<u64>,
        expect: &Expect,
        label: &str,
    ) -> Result<(), HubError> {
        let dir = dest.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let partial = dest.with_file_name(format!(
            "{}.incomplete",
            dest.file_name().unwrap_or_default().to_string_lossy()
        ));
        let mut hasher = Sha256::new();
        let mut have = 0u64;
        if let Ok(mut f) = std::fs::File::open(&partial) {
            have =
                std::io::copy(&mut f, &mut HashWriter(&mut hasher)).map_err(io_error(&partial))?;
        }
        if size.is_some_and(|s| have > s) {
            have = 0;
            hasher = Sha256::new();
        }
        let agent = self.agent(10);
        let mut req = agent.get(url).header("Accept-Encoding", "identity");
        if have > 0 {
            req = req.header("Range", &format!("bytes={have}-"));
        }
        if let Some(t) = &self.token
            && url.starts_with(&self.endpoint)
        {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        let origin = origin(url);
        let mut resp = req.call().map_err(|e| self.unreachable(&origin, &e))?;
        let status = resp.status().as_u16();
        let append = status == 206 && have > 0;
        if !append {
            if !(200..300).contains(&status) {
                return Err(HubError::Http {
                    url: url.to_string(),
                    status,
                });
            }
            have = 0;
            hasher = Sha256::new();
        }
        let total = size.or_else(|| resp.body().content_length().map(|n| n + have));
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(&partial)
            .map_err(io_error(&partial))?;
        let bar = self.bar(total, label);
        bar.set_position(have);
        let mut reader = resp.body_mut().as_reader();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    bar.abandon();
                    return Err(HubError::Interrupted {
                        url: url.to_string(),
                        got: have,
                        reason: e.to_string(),
                    });
                }
            };
            out.write_all(&buf[..n]).map_err(io_error(&partial))?;
            hasher.update(&buf[..n]);
            have += n as u64;
            bar.set_position(have);
        }
        out.sync_all().map_err(io_error(&partial))?;
        drop(out);
        bar.finish_and_clear();
        if let Some(t) = total
            && have < t
        {
            return Err(HubError::Interrupted {
                url: url.to_string(),
                got: have,
                reason: format!("the server closed the connection before byte {t}"),
            });
        }
        let corrupt = |what: &str, expected: String, got: String| {
            let _ = std::fs::remove_file(&partial);
            HubError::Corrupt {
                url: url.to_string(),
                what: what.to_string(),
                expected,
                got,
            }
        };
        if let Some(t) = total
            && have != t
        {
            return Err(corrupt("size", t.to_string(), have.to_string()));
        }
        let digest = format!("{:x}", hasher.finalize());
        match expect {
            Expect::Sha256(h) if !digest.eq_ignore_ascii_case(h) => {
                return Err(corrupt("sha256", h.clone(), digest));
            }
            Expect::Sha256Prefix(p) if !digest.starts_with(p.as_str()) => {
                return Err(corrupt("sha256 prefix in the file name", p.clone(), digest));
            }
            _ => {}
        }
        std::fs::rename(&partial, dest).map_err(io_error(dest))
    }

    fn bar(&self, total: Option<u64>, label: &str) -> indicatif::ProgressBar {
        if !self.progress {
            return indicatif::ProgressBar::hidden();
        }
        let bar = match total {
            Some(t) => indicatif::ProgressBar::new(t),
            None => indicatif::ProgressBar::no_length(),
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(format!("downloading {label}"));
        bar
    }
}

/// What a download's content must hash to.
enum Expect {
    Nothing,
    Sha256(String),
    Sha256Prefix(String),
}

struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// `torch.hub`'s hash prefix: the hex run between the last `-` and the first `.` after it.
fn hash_prefix(name: &str) -> Option<String> {
    let stem = name.split('.').next()?;
    let (_, hex) = stem.rsplit_once('-')?;
    (!hex.is_empty()
        && hex
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()))
    .then(|| hex.to_string())
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> String {
    let after = url.find("://").map_or(0, |i| i + 3);
    match url[after..].find('/') {
        Some(i) => url[..after + i].to_string(),
        None => url.to_string(),
    }
}

/// Points `pointer` at `blob` with a relative link (a copy where links are not allowed).
fn link(blob: &Path, pointer: &Path) -> Result<(), HubError> {
    let dir = pointer.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let _ = std::fs::remove_file(pointer);
    #[cfg(unix)]
    {
        // snapshots/<commit>/<file...> -> ../../blobs/<etag>, one more `..` per subfolder.
        let depth = pointer
            .strip_prefix(
                blob.parent()
                    .and_then(Path::parent)
                    .unwrap_or(Path::new("")),
            )
            .map_or(2, |p| p.components().count() - 1);
        let mut rel = PathBuf::new();
        for _ in 0..depth {
            rel.push("..");
        }
        rel.push("blobs");
        rel.push(blob.file_name().unwrap_or_default());
        if std::os::unix::fs::symlink(&rel, pointer).is_ok() {
            return Ok(());
        }
    }
    std::fs::copy(blob, pointer)
        .map(|_| ())
        .map_err(io_error(pointer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torch_hash_prefixes_are_read_from_file_names() {
        assert_eq!(
            hash_prefix("resnet50-0676ba61.pth").as_deref(),
            Some("0676ba61")
        );
        assert_eq!(
            hash_prefix("googlenet-1378be20.pth").as_deref(),
            Some("1378be20")
        );
        assert_eq!(hash_prefix("model.pth"), None);
        assert_eq!(hash_prefix("my-weights.pth"), None);
    }

    #[test]
    fn origins_keep_scheme_host_and_port() {
        assert_eq!(origin("http://127.0.0.1:9/a/b"), "http://127.0.0.1:9");
        assert_eq!(origin("https://huggingface.co"), "https://huggingface.co");
    }
}
