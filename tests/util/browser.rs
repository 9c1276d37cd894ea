//! One headless Chromium (Debian's chromium, driven over WebDriver by Debian's
//! chromium-driver, both installed by scripts/test) for the page tests: screenshots kept as
//! CI artefacts, pages waited for after a click, and axe-core's accessibility check.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// chromedriver (Debian's chromium-driver) on a free port, and one headless Chromium session,
/// JavaScript off unless `script`; both end when dropped.
pub struct Browser {
    driver: Child,
    client: Option<fantoccini::Client>,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    pub async fn start(script: bool) -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver: scripts/test installs it)");
        let profile = tempfile::tempdir().unwrap();
        // The flags keep Chromium off the network it does not need (this machine has none).
        let mut options = serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--window-size=1000,1300", format!("--user-data-dir={}", profile.path().display())],
        });
        if !script {
            options["prefs"] = serde_json::json!({"profile.managed_default_content_settings.javascript": 2});
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        let started = Instant::now();
        let client = loop {
            let connected = fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await;
            match connected {
                Ok(client) => break client,
                Err(e) => {
                    assert!(started.elapsed() < Duration::from_secs(30), "no WebDriver session: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        Browser {
            driver,
            client: Some(client),
            _profile: profile,
        }
    }

    pub fn c(&self) -> &fantoccini::Client {
        self.client.as_ref().unwrap()
    }

    pub async fn goto(&self, url: &str) {
        self.c().goto(url).await.unwrap_or_else(|e| panic!("{url}: {e}"));
    }

    pub async fn text(&self) -> String {
        self.c().source().await.unwrap()
    }

    /// Waits (up to 20 s) for the page a click or a key led to: its source contains `what`.
    pub async fn wait_for(&self, what: &str) -> String {
        let started = Instant::now();
        loop {
            let page = self.text().await;
            if page.contains(what) {
                return page;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "no `{what}` in {page}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Types `text` on the keyboard into whatever has the focus (special keys as
    /// `fantoccini::key::Key` characters).
    pub async fn keys(&self, text: &str) {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        let mut actions = KeyActions::new("keyboard".into());
        for value in text.chars() {
            actions = actions.then(KeyAction::Down { value }).then(KeyAction::Up { value });
        }
        self.c().perform_actions(actions).await.expect("keys typed");
    }

    /// Presses Tab, from wherever the focus is, until the element `css` has it: proof that
    /// the keyboard alone reaches it (at most 100 presses; needs JavaScript for the check).
    pub async fn tab_to(&self, css: &str) {
        let tab: char = fantoccini::key::Key::Tab.into();
        for _ in 0..100 {
            let here = self
                .c()
                .execute(
                    "return !!document.activeElement && document.activeElement.matches(arguments[0]);",
                    vec![serde_json::json!(css)],
                )
                .await
                .expect("the focus read");
            if here == serde_json::json!(true) {
                return;
            }
            self.keys(&tab.to_string()).await;
        }
        panic!("the keyboard does not reach `{css}`: {}", self.text().await);
    }

    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.c()
            .find(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"))
    }

    /// Keeps a screenshot of the page as a CI artefact (target/ci-artefacts/NAME.png).
    pub async fn shot(&self, name: &str) {
        let png = self.c().screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ci-artefacts");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// The accessibility problems axe-core (tests/browser, installed by scripts/test) finds
    /// on the page that are serious or critical, as "rule: help (where)". Needs JavaScript.
    pub async fn serious_accessibility_problems(&self) -> Vec<String> {
        let axe = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/node_modules/axe-core/axe.min.js");
        let axe = std::fs::read_to_string(&axe).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (scripts/test installs it: npm ci --prefix tests/browser)",
                axe.display()
            )
        });
        self.c()
            .execute(&format!("{axe}\nreturn typeof axe;"), vec![])
            .await
            .expect("axe-core injected");
        let found = self
            .c()
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})
                   .then(r => done(r.violations
                     .filter(v => v.impact === 'serious' || v.impact === 'critical')
                     .map(v => v.id + ': ' + v.help + ' (' + v.nodes.map(n => n.target.join(' ')).join(', ') + ')')))
                   .catch(e => done(['axe failed: ' + e]));",
                vec![],
            )
            .await
            .expect("axe ran");
        serde_json::from_value(found).expect("a list of problems")
    }

    pub async fn close(mut self) {
        if let Some(client) = self.client.take() {
            let _ = client.close().await;
        }
    }
}
