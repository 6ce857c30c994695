//! `stasis serve`: a small read-only web UI over a run store.
//!
//! Pages: `/` (runs, campaigns and selftests, newest first, filterable by system and
//! nemesis), `/run/<path>`, `/campaign/<path>`, `/selftest/<path>`, and raw files under
//! `/files/<path>`. Paths are relative to the store; nothing outside it is ever served:
//! `..`, `.`, backslashes, NUL and absolute paths are refused before touching the disk, and
//! the canonical (symlinks resolved) target must still lie inside the canonical store.
//!
//! HTTP/1.1 GET and HEAD on `std::net`, one thread per connection, `Connection: close`.

pub mod http;
mod pages;
pub mod scan;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};

use http::{Body, Request, Response};

/// Options of `stasis serve`.
#[derive(clap::Args, Clone, Debug)]
pub struct ServeArgs {
    /// The run store to show (the `--store` of `stasis test`).
    #[arg(default_value = "store")]
    pub store: PathBuf,
    /// Address to listen on. Port 0 picks a free port; the bound address is printed on
    /// the first line of stdout. Anything but a loopback address exposes every file in
    /// the store (histories, node logs, configuration) to whoever can reach it.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
}

/// Connections served at once; more get 503.
const MAX_CONNECTIONS: usize = 64;
const READ_TIMEOUT: Duration = Duration::from_secs(10);
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// `stasis serve`: binds, prints the address, serves until killed. Exit 3 on bad input.
pub fn run(args: &ServeArgs) -> u8 {
    let server = match Server::bind(&args.store, &args.listen) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("stasis serve: {e:#}");
            return 3;
        }
    };
    let addr = server.addr;
    println!("listening on http://{addr}/");
    println!(
        "serving {} read-only; stop with Ctrl-C",
        server.store.display()
    );
    if !addr.ip().is_loopback() {
        eprintln!(
            "stasis serve: warning: {addr} is not a loopback address: every file in the store \
             (histories, node logs, configuration) is readable by anyone who can reach it"
        );
    }
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    server.serve();
    0
}

/// A bound listener over a canonical store directory.
pub struct Server {
    pub store: PathBuf,
    pub addr: SocketAddr,
    listener: TcpListener,
}

impl Server {
    pub fn bind(store: &Path, listen: &str) -> Result<Server> {
        let store = store.canonicalize().with_context(|| {
            format!(
                "{}: no such store directory; pass the directory given to `stasis test --store`",
                store.display()
            )
        })?;
        if !store.is_dir() {
            anyhow::bail!(
                "{}: not a directory; pass the run store directory",
                store.display()
            );
        }
        let listener = TcpListener::bind(listen).with_context(|| {
            format!("cannot listen on {listen:?}; pass --listen HOST:PORT, e.g. 127.0.0.1:8080")
        })?;
        let addr = listener.local_addr()?;
        Ok(Server {
            store,
            addr,
            listener,
        })
    }

    /// Accepts connections forever, one thread each.
    pub fn serve(self) {
        let store = Arc::new(self.store);
        let live = Arc::new(AtomicUsize::new(0));
        for stream in self.listener.incoming() {
            let Ok(stream) = stream else { continue };
            if live.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                live.fetch_sub(1, Ordering::SeqCst);
                let mut stream = stream;
                let _ = Response::text(503, "too many connections; retry shortly")
                    .write_to(&mut stream, true);
                continue;
            }
            let store = Arc::clone(&store);
            let live2 = Arc::clone(&live);
            let spawned = std::thread::Builder::new()
                .name("stasis-serve".into())
                .spawn(move || {
                    connection(stream, &store);
                    live2.fetch_sub(1, Ordering::SeqCst);
                });
            if spawned.is_err() {
                live.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

fn connection(mut stream: TcpStream, store: &Path) {
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let (response, with_body) = match http::read_head(&mut stream).and_then(|h| http::parse(&h)) {
        Ok(req) => {
            let head_only = req.method == "HEAD";
            let resp =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handle(store, &req)))
                    .unwrap_or_else(|_| {
                        Response::text(500, "internal error while building this page")
                    });
            tracing::info!(method = %req.method, path = %req.path, status = resp.status, "serve");
            (resp, !head_only)
        }
        Err(e) => (Response::text(e.status, e.reason), true),
    };
    let _ = response.write_to(&mut stream, with_body);
}

/// Answers one parsed request.
pub fn handle(store: &Path, req: &Request) -> Response {
    if req.method != "GET" && req.method != "HEAD" {
        return Response::text(405, "only GET and HEAD are served here")
            .header("Allow", "GET, HEAD");
    }
    let query = http::parse_query(&req.query);
    let path = req.path.as_str();
    if path == "/" {
        return pages::index(store, &query);
    }
    for (prefix, kind) in [
        ("/run/", scan::Kind::Run),
        ("/campaign/", scan::Kind::Campaign),
        ("/selftest/", scan::Kind::Selftest),
    ] {
        if let Some(rel) = path.strip_prefix(prefix) {
            return match resolve(store, rel) {
                Some(dir) if dir.join(kind.marker()).is_file() => {
                    pages::dir_page(store, &dir, kind)
                }
                _ => not_found(),
            };
        }
    }
    if let Some(rel) = path.strip_prefix("/files/") {
        let download = query.iter().any(|(k, v)| k == "download" && v != "0");
        return match resolve(store, rel) {
            Some(file) => raw_file(&file, download),
            None => not_found(),
        };
    }
    not_found()
}

fn not_found() -> Response {
    Response::html(404, pages::not_found())
}

fn raw_file(path: &Path, download: bool) -> Response {
    // Only regular files: opening a FIFO would block this thread, a directory is a page.
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return not_found();
    }
    let Ok(file) = std::fs::File::open(path) else {
        return not_found();
    };
    let Ok(meta) = file.metadata() else {
        return not_found();
    };
    if !meta.is_file() {
        return not_found();
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("file")
        .to_owned();
    let mut resp = Response {
        status: 200,
        content_type: http::content_type(&name).to_owned(),
        headers: vec![("Cache-Control", "no-cache".into())],
        body: Body::File(file, meta.len()),
    };
    if download {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        resp = resp.header(
            "Content-Disposition",
            format!("attachment; filename=\"{safe}\""),
        );
    }
    resp
}

/// Maps a request path (percent-encoded, relative to the store) to a canonical path
/// inside `store` (itself canonical), or `None` if it names anything else.
pub fn resolve(store: &Path, raw: &str) -> Option<PathBuf> {
    let bytes = http::percent_decode(raw, false)?;
    if bytes.contains(&0) || bytes.contains(&b'\\') {
        return None;
    }
    let rel = String::from_utf8(bytes).ok()?;
    if rel.starts_with('/') {
        return None;
    }
    let mut path = store.to_path_buf();
    for seg in rel.split('/') {
        match seg {
            "" => {}
            "." | ".." => return None,
            seg => path.push(seg),
        }
    }
    let canon = path.canonicalize().ok()?;
    canon.starts_with(store).then_some(canon)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_refuses_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().canonicalize().unwrap().join("store");
        std::fs::create_dir_all(store.join("t/run")).unwrap();
        std::fs::write(store.join("t/run/a.txt"), "a").unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink("t/run", store.join("latest")).unwrap();
        std::os::unix::fs::symlink("/etc", store.join("etc")).unwrap();
        std::os::unix::fs::symlink("../secret", store.join("t/secret")).unwrap();
        assert_eq!(
            resolve(&store, "t/run/a.txt"),
            Some(store.join("t/run/a.txt"))
        );
        assert_eq!(
            resolve(&store, "t//run/a.txt"),
            Some(store.join("t/run/a.txt"))
        );
        assert_eq!(
            resolve(&store, "latest/a%2etxt"),
            Some(store.join("t/run/a.txt"))
        );
        for bad in [
            "../secret",
            "t/../../secret",
            "%2e%2e/secret",
            "%2E%2e%2fsecret",
            "t/./run/a.txt",
            "..%5csecret",
            "t\\..\\..\\secret",
            "/etc/passwd",
            "%2fetc%2fpasswd",
            "t/run/a.txt%00",
            "etc/passwd",
            "t/secret",
            "nope",
            "%zz",
            "%ff",
        ] {
            assert_eq!(resolve(&store, bad), None, "{bad}");
        }
    }
}
