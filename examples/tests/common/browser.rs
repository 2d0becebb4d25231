//! Debian's headless Chromium, driven over the DevTools protocol
//! (`chromiumoxide`), for the tests that check what a page shows. The
//! browser is `/usr/bin/chromium` (or `$CHROMIUM`), installed by
//! `scripts/browser-test`; never a downloaded build.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chromiumoxide::browser::{Browser as Cdp, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::page::CaptureScreenshotFormat;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::Page;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;
use tower_drain_tests::HANG;

/// The flags a headless browser needs here: no sandbox (root), no GPU, and
/// no background traffic (this machine reaches no outside host).
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// Run in a page before its own scripts: records, in `window.watched`,
/// every `EventSource` the page opens (`sources`, the objects themselves)
/// and every `WebSocket` (`sockets`: `{url, opened, code, reason}`, the
/// code and reason of its `close` event). It only watches: each behaves as
/// the browser's own.
const WATCH: &str = r#"(() => {
  const watched = { sources: [], sockets: [] };
  window.watched = watched;
  const NativeEventSource = window.EventSource;
  window.EventSource = class extends NativeEventSource {
    constructor(...args) {
      super(...args);
      watched.sources.push(this);
    }
  };
  const NativeWebSocket = window.WebSocket;
  window.WebSocket = class extends NativeWebSocket {
    constructor(...args) {
      super(...args);
      const seen = { url: this.url, opened: false, code: null, reason: null };
      watched.sockets.push(seen);
      this.addEventListener("open", () => { seen.opened = true; });
      this.addEventListener("close", (e) => { seen.code = e.code; seen.reason = e.reason; });
    }
  };
})();"#;

/// One headless Chromium, ours: closed (and, failing that, killed by its
/// pid) when dropped.
pub(crate) struct Browser {
    cdp: Cdp,
    events: JoinHandle<()>,
    profile: PathBuf,
}

impl Browser {
    pub(crate) async fn launch(name: &str) -> Self {
        let executable = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let profile =
            std::env::temp_dir().join(format!("tower-drain-browser-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        let config = BrowserConfig::builder()
            .chrome_executable(&executable)
            .disable_default_args()
            .args(FLAGS.iter().copied())
            .no_sandbox()
            .user_data_dir(&profile)
            .window_size(900, 700)
            .launch_timeout(HANG)
            .request_timeout(Duration::from_secs(10))
            .build()
            .expect("a browser configuration");
        let (cdp, mut handler) = Cdp::launch(config)
            .await
            .unwrap_or_else(|e| panic!("{executable} starts (run scripts/browser-test): {e}"));
        // The protocol's messages flow while this task polls them.
        let events = tokio::spawn(async move { while handler.next().await.is_some() {} });
        Self {
            cdp,
            events,
            profile,
        }
    }

    pub(crate) async fn open(&self, url: &str) -> Page {
        self.cdp.new_page(url).await.expect("the page opens")
    }

    /// Opens `url` with [`WATCH`] run before the page's own scripts, so
    /// that a test can read `watched` (what the page's connections did)
    /// whatever the page keeps in its own scope.
    pub(crate) async fn open_watched(&self, url: &str) -> Page {
        let page = self.open("about:blank").await;
        page.evaluate_on_new_document(WATCH)
            .await
            .expect("the watcher is installed");
        page.goto(url).await.expect("the page opens");
        page.wait_for_navigation().await.expect("the page loads");
        page
    }

    /// Closes the browser and waits (bounded) for its process; kills it by
    /// its pid if it lingers.
    pub(crate) async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.cdp.close()).await;
        if tokio::time::timeout(Duration::from_secs(5), self.cdp.wait())
            .await
            .is_err()
        {
            let _ = self.cdp.kill().await;
        }
        self.events.abort();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Evaluates `expression` in `page` and returns its value.
pub(crate) async fn eval<T: DeserializeOwned>(page: &Page, expression: &str) -> T {
    page.evaluate(expression)
        .await
        .unwrap_or_else(|e| panic!("{expression}: {e}"))
        .into_value()
        .unwrap_or_else(|e| panic!("{expression}: {e}"))
}

/// Evaluates `expression` every 20 ms until `done` holds for its value, and
/// returns that value; fails the test after [`HANG`].
pub(crate) async fn wait_for<T: DeserializeOwned>(
    page: &Page,
    what: &str,
    expression: &str,
    done: impl Fn(&T) -> bool,
) -> T {
    let until = Instant::now() + HANG;
    loop {
        let value: T = eval(page, expression).await;
        if done(&value) {
            return value;
        }
        assert!(Instant::now() < until, "the page never showed {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Saves a PNG of `page` under `target/browser/` (CI keeps it), and returns
/// its path.
pub(crate) async fn screenshot(page: &Page, name: &str) -> PathBuf {
    let png = page
        .screenshot(
            ScreenshotParams::builder()
                .format(CaptureScreenshotFormat::Png)
                .build(),
        )
        .await
        .expect("a screenshot");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/browser");
    std::fs::create_dir_all(&dir).expect("target/browser");
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, png).expect("the screenshot is written");
    path
}
