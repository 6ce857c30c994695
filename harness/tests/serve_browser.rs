//! `stasis serve` in a real browser: Debian's headless Chromium loads the run list and
//! run pages, and the test checks the DOM after the page's scripts ran (one row per
//! stored run; every plot image decoded with a non-zero natural width, as recorded by the
//! page's own script in `data-natural-width`). Screenshots are kept under Cargo's
//! target/tmp/serve-browser/ and their paths printed. Escaping paths get 404 here too.
//!
//! Needs `/usr/bin/chromium` (scripts/setup.sh installs it); without it the test fails.

mod serve_fixture;

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serve_fixture::{Server, run_rows};

const CHROMIUM: &str = "/usr/bin/chromium";
const BROWSER_TIMEOUT: Duration = Duration::from_secs(120);

fn require_chromium() {
    assert!(
        Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} is missing: this test drives Debian's headless Chromium; install it with \
         `sudo scripts/setup.sh` (or `apt-get install chromium`)"
    );
}

/// Runs headless Chromium on `url` with `extra` flags and a fresh profile; returns stdout.
fn chromium(url: &str, extra: &[String]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a hung browser and its helpers can be killed together.
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {CHROMIUM}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > BROWSER_TIMEOUT {
            let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            panic!("chromium did not finish {url} within {BROWSER_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = out_t.join().unwrap();
    let stderr = err_t.join().unwrap();
    assert!(
        status.success(),
        "chromium failed on {url}: {status}\n{stderr}"
    );
    stdout
}

fn dump_dom(url: &str) -> String {
    let dom = chromium(url, &["--dump-dom".to_owned()]);
    assert!(dom.contains("</html>"), "no DOM dumped for {url}: {dom:?}");
    dom
}

fn screenshot(url: &str, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve-browser");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    chromium(
        url,
        &[
            format!("--screenshot={}", path.display()),
            "--window-size=1280,900".to_owned(),
        ],
    );
    let png =
        std::fs::read(&path).unwrap_or_else(|e| panic!("no screenshot at {}: {e}", path.display()));
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        path.display()
    );
    // 1280x900: the width and height in IHDR.
    assert_eq!(
        &png[16..24],
        &[0, 0, 5, 0, 0, 0, 3, 0x84],
        "{}",
        path.display()
    );
    println!("screenshot: {}", path.display());
    path
}

/// `(attribute -> value)` of every `<img>` in a serialized DOM.
fn images(dom: &str) -> Vec<Vec<(String, String)>> {
    dom.split("<img ")
        .skip(1)
        .map(|rest| {
            let tag = rest.split('>').next().unwrap_or_default();
            let mut attrs = Vec::new();
            let mut s = tag;
            while let Some(eq) = s.find("=\"") {
                let name = s[..eq].trim().to_owned();
                let after = &s[eq + 2..];
                let end = after.find('"').unwrap_or(after.len());
                attrs.push((name, after[..end].to_owned()));
                s = &after[(end + 1).min(after.len())..];
            }
            attrs
        })
        .collect()
}

fn attr<'a>(img: &'a [(String, String)], name: &str) -> Option<&'a str> {
    img.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[test]
fn the_ui_in_headless_chromium() {
    require_chromium();
    let f = serve_fixture::build();
    let s = Server::start(&f.store);

    // The run list: one row per stored run, newest first.
    let dom = dump_dom(&s.url("/"));
    let expected: Vec<String> = f.runs.iter().map(|r| r.rel.clone()).collect();
    assert_eq!(run_rows(&dom), expected, "{dom}");
    assert_eq!(dom.matches("<tr class=\"row run ").count(), f.runs.len());
    assert!(dom.contains(&format!("data-rel=\"{}\"", f.campaign_rel)));
    // The filter (a plain GET form) as the browser would submit it.
    let dom = dump_dom(&s.url("/?system=raft&nemesis="));
    let raft: Vec<String> = f
        .runs
        .iter()
        .filter(|r| r.system == "raft")
        .map(|r| r.rel.clone())
        .collect();
    assert_eq!(run_rows(&dom), raft);

    // Run pages: every plot image loaded with a non-zero natural width.
    let mut checked = 0;
    for run in f.runs.iter().filter(|r| !r.images.is_empty()) {
        let dom = dump_dom(&s.url(&format!("/run/{}", run.rel)));
        let imgs = images(&dom);
        assert_eq!(imgs.len(), run.images.len(), "{}: {dom}", run.rel);
        for img in &imgs {
            let src = attr(img, "src").unwrap_or_default();
            let width: u32 = attr(img, "data-natural-width")
                .unwrap_or_else(|| panic!("{src}: the page script did not run: {img:?}"))
                .parse()
                .unwrap();
            assert!(width > 0, "{src} did not load (natural width 0)");
            assert_eq!(attr(img, "data-state"), Some("loaded"), "{src}");
            checked += 1;
        }
        let n = run.images.len();
        assert!(
            dom.contains(&format!(
                "data-total=\"{n}\" data-loaded=\"{n}\">{n} of {n} images loaded</span>"
            )),
            "{}: {dom}",
            run.rel
        );
        // Summary text from disk shown as text, its markup inert.
        assert!(dom.contains("verdict: "), "{}", run.rel);
        assert!(!dom.contains("<title>pwned"));
    }
    assert_eq!(
        checked,
        f.runs.iter().map(|r| r.images.len()).sum::<usize>()
    );
    assert!(checked >= 10);

    // A broken image is reported as such (the check above can fail).
    std::fs::write(
        f.store.join(&f.runs[0].rel).join("broken.png"),
        b"not a png",
    )
    .unwrap();
    let dom = dump_dom(&s.url(&format!("/run/{}", f.runs[0].rel)));
    let broken: Vec<_> = images(&dom)
        .into_iter()
        .filter(|i| attr(i, "src").is_some_and(|s| s.ends_with("/broken.png")))
        .collect();
    assert_eq!(broken.len(), 1);
    assert_eq!(attr(&broken[0], "data-natural-width"), Some("0"));
    assert_eq!(attr(&broken[0], "data-state"), Some("broken"));
    std::fs::remove_file(f.store.join(&f.runs[0].rel).join("broken.png")).unwrap();

    // The campaign page links its cells to their runs.
    let dom = dump_dom(&s.url(&format!("/campaign/{}", f.campaign_rel)));
    assert!(dom.contains(&format!("href=\"/run/{}\"", f.runs[5].rel)));

    // Escapes: as the browser sends them, and raw (a browser normalises `..` itself).
    // (`/files/etc` is a symlink to /etc planted in the store.)
    let dom = dump_dom(&s.url("/files/etc/passwd"));
    assert!(dom.contains("404 not found"), "{dom}");
    assert!(!dom.contains("root:x:0:0"));
    for path in [
        "/files/etc/passwd",
        "/files/secret-link",
        "/files/%2e%2e/secret",
        "/files/../../etc/passwd",
        "/files/%2e%2e/%2e%2e/etc/passwd",
        "/files/..%2f..%2fetc%2fpasswd",
        "/files/..\\..\\etc\\passwd",
    ] {
        assert_eq!(s.get(path).status, 404, "{path}");
    }

    // Artifacts to look at.
    screenshot(&s.url("/"), "index.png");
    screenshot(&s.url(&format!("/run/{}", f.runs[0].rel)), "run.png");
    screenshot(
        &s.url(&format!("/run/{}", f.runs[1].rel)),
        "run-invalid.png",
    );
    screenshot(
        &s.url(&format!("/campaign/{}", f.campaign_rel)),
        "campaign.png",
    );
}
