//! The console as a person sees it: headless Chromium (the Debian package
//! `chromium`, or `$AISLE_CHROMIUM`) against a server this test starts on a
//! small shop with an admin key. It logs in, opens every page at a desktop
//! and a phone width (a screenshot of each in the folder it prints), checks
//! that the numbers shown equal the API's JSON, promotes, rolls back,
//! creates and stops an experiment through the buttons, checks that a
//! product titled with markup stays text, and that the browser logged no
//! error. The cookie, CSRF and scope rules are checked over plain HTTP
//! below it.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

use aisle_core::{CatalogItem, Event, EventType};
use aisle_serve::{App, ServeConfig};

const ADMIN_KEY: &str = "console-admin-key-0123456789";
const READ_KEY: &str = "console-read-key-0123456789";
/// A title that would run script if a page rendered it as markup.
const EVIL: &str = "<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\">";

/// The shop of the other serve tests, plus a second SASRec version (so that
/// a rollback has somewhere to go) and a product titled with markup that
/// `u1` viewed.
fn console_shop(dir: &Path) -> String {
    let url = common::shop(dir);
    let mut store = aisle_store::open(&url).unwrap();
    store
        .upsert_items(&[CatalogItem {
            id: "i3".into(),
            title: Some(EVIL.into()),
            description: None,
            category: Some("odd".into()),
            price: Some(4.0),
            in_stock: true,
        }])
        .unwrap();
    store
        .append(&[Event {
            key: 9_000_001,
            user: "u1".into(),
            item: "i3".into(),
            ts: 1_700_000_100,
            event_type: EventType::View,
            source_type: "view".into(),
            quantity: None,
            price: None,
            session: None,
            value: None,
        }])
        .unwrap();
    drop(store);
    // One ingest's report and its quarantined rows, as `aisle ingest` keeps
    // them beside the store; a quarantined row holds markup.
    let store_dir = aisle_store::data_dir(&url).unwrap();
    let q = store_dir.join("quarantine");
    std::fs::create_dir_all(&q).unwrap();
    std::fs::write(
        q.join("shop-1700000200-1.jsonl"),
        format!(
            "{}\n",
            json!({"file": "events", "line": 7, "reason": "bad_timestamp", "detail": "no time", "raw": EVIL})
        ),
    )
    .unwrap();
    let report = aisle_ingest::QualityReport {
        dataset: "shop".into(),
        input: "events.csv".into(),
        rows_read: 1234,
        accepted: 1233,
        quarantined: 1,
        by_reason: [("bad_timestamp".to_string(), 1)].into(),
        store: Some(aisle_ingest::StoreOutcome {
            inserted: 1233,
            quarantine_file: Some(q.join("shop-1700000200-1.jsonl").display().to_string()),
            ..Default::default()
        }),
        ..Default::default()
    };
    aisle_store::IngestLog::in_folder(store_dir.clone())
        .save_report(1_700_000_200, &serde_json::to_string(&report).unwrap())
        .unwrap();
    common::promote_tiny_sasrec(dir, common::ITEMS, 5, 200);
    // The last `aisle evaluate` of the store, in the shape it writes.
    let eval = store_dir.join("evaluation");
    std::fs::create_dir_all(&eval).unwrap();
    let row = |model: &str, ndcg: f64, valid: f64| {
        json!({"model": model, "masking": true, "ndcg@10": ndcg, "recall@10": 0.5, "mrr@10": 0.2,
               "coverage@10": 0.3, "valid_ndcg@10": valid, "fit_s": 0.01, "users": 40})
    };
    std::fs::write(
        eval.join("bench.json"),
        json!({"dataset": "shop", "protocol": {"rule": "per user: last item = test"},
               "results": [row("ease", 0.31234, 0.25), row(EVIL, 0.1, 0.05)],
               "best_by_validation": "ease", "warnings": []})
        .to_string(),
    )
    .unwrap();
    url
}

struct Server {
    addr: std::net::SocketAddr,
    app: Arc<App>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(store: &str) -> Server {
        let mut cfg = ServeConfig::new(store, "127.0.0.1:0".parse().unwrap());
        cfg.admin_key = Some(ADMIN_KEY.into());
        cfg.read_key = Some(READ_KEY.into());
        let app = App::open(cfg).unwrap();
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std_listener.local_addr().unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let a = app.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                aisle_serve::serve_on(a, listener, async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
            });
        });
        Server {
            addr,
            app,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A blocking HTTP/1.1 request (Connection: close): status, headers, body.
fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    // Chunked bodies: good enough to search in; JSON bodies come whole.
    (status, headers, body.to_string())
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn form_login(addr: std::net::SocketAddr, key: &str) -> (u16, Vec<(String, String)>) {
    let body = format!("key={key}");
    let (s, h, _) = http(
        addr,
        "POST",
        "/console/login",
        &[("content-type", "application/x-www-form-urlencoded")],
        &body,
    );
    (s, h)
}

fn session_cookie(h: &[(String, String)]) -> String {
    header(h, "set-cookie")
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_string()
}

/// The CSRF token a console page hands its script.
fn csrf_token(srv: &Server, cookie: &str) -> String {
    let (_, _, page) = http(
        srv.addr,
        "GET",
        "/console/models",
        &[("cookie", cookie)],
        "",
    );
    page.split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the page's CSRF token")
        .to_string()
}

/// `POST /v1/admin/models/rollback` as the console's script sends it: the
/// session cookie, and the CSRF token when given.
fn rollback_with_cookie(srv: &Server, cookie: &str, token: Option<&str>) -> (u16, String) {
    let mut headers = vec![("cookie", cookie), ("content-type", "application/json")];
    if let Some(t) = token {
        headers.push(("x-csrf-token", t));
    }
    let (s, _, body) = http(srv.addr, "POST", "/v1/admin/models/rollback", &headers, "");
    (s, body)
}

#[test]
fn a_page_without_a_session_sends_the_browser_to_the_login_form() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&console_shop(dir.path()));
    let (s, h, _) = http(srv.addr, "GET", "/console/models", &[], "");
    assert_eq!(s, 303);
    assert_eq!(header(&h, "location"), Some("/console/login"));
    let (s, _) = form_login(srv.addr, "not-a-key");
    assert_eq!(s, 401);
}

#[test]
fn a_login_sets_an_httponly_samesite_strict_cookie_that_opens_the_pages() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&console_shop(dir.path()));
    let (s, h) = form_login(srv.addr, ADMIN_KEY);
    assert_eq!(s, 303);
    let set = header(&h, "set-cookie").unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = session_cookie(&h);
    let (s, h, body) = http(
        srv.addr,
        "GET",
        "/console/models",
        &[("cookie", &cookie)],
        "",
    );
    assert_eq!(s, 200);
    assert!(header(&h, "content-security-policy").is_some_and(|c| c.contains("script-src 'self'")));
    assert!(
        body.contains("data-api=\"/v1/admin/models/rollback\""),
        "admin sees buttons"
    );
}

#[test]
fn an_api_write_with_the_cookie_but_without_its_csrf_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&console_shop(dir.path()));
    let (_, h) = form_login(srv.addr, ADMIN_KEY);
    let cookie = session_cookie(&h);
    let (s, body) = rollback_with_cookie(&srv, &cookie, None);
    assert_eq!(s, 403, "{body}");
    assert!(body.contains("x-csrf-token"), "{body}");
    // With the token the page carries, the same call goes through.
    let token = csrf_token(&srv, &cookie);
    let (s, body) = rollback_with_cookie(&srv, &cookie, Some(&token));
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("sasrec-100.safetensors"), "{body}");
}

#[test]
fn a_read_scoped_session_sees_the_pages_but_no_buttons_and_cannot_act() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&console_shop(dir.path()));
    let (s, h) = form_login(srv.addr, READ_KEY);
    assert_eq!(s, 303);
    let cookie = session_cookie(&h);
    for page in [
        "overview",
        "data",
        "models",
        "experiments",
        "search",
        "shopper",
    ] {
        let (s, _, body) = http(
            srv.addr,
            "GET",
            &format!("/console/{page}"),
            &[("cookie", &cookie)],
            "",
        );
        assert_eq!(s, 200, "{page}");
        assert!(
            !body.contains("data-api="),
            "{page} shows a button to a read key"
        );
    }
    let token = csrf_token(&srv, &cookie);
    let (s, body) = rollback_with_cookie(&srv, &cookie, Some(&token));
    assert_eq!(s, 403, "{body}");
}

#[test]
fn a_product_titled_with_markup_is_escaped_in_the_shopper_page() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&console_shop(dir.path()));
    let (_, h) = form_login(srv.addr, ADMIN_KEY);
    let cookie = session_cookie(&h);
    let (s, _, body) = http(
        srv.addr,
        "GET",
        "/console/shopper?user=u1",
        &[("cookie", &cookie)],
        "",
    );
    assert_eq!(s, 200);
    assert!(body.contains("&lt;script&gt;window.__pwned=1&lt;/script&gt;"));
    assert!(!body.contains("<script>window.__pwned"));
}

// ---------------------------------------------------------------------------
// The browser.

fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("AISLE_CHROMIUM") {
        return PathBuf::from(p);
    }
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(o) = Command::new("which").arg(c).output() {
            if o.status.success() {
                return PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
            }
        }
    }
    panic!(
        "no Chromium: install the Debian package `chromium` (scripts/install-chromium.sh) or set AISLE_CHROMIUM"
    );
}

struct Browser {
    child: Child,
    ws: WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
    next: u64,
    session: String,
    /// Errors the page logged (console.error, exceptions, CSP refusals).
    errors: Vec<String>,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn launch() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(chromium())
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--remote-debugging-port=0",
                "--remote-allow-origins=*",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let ws_url = loop {
            let line = lines
                .next()
                .expect("chromium printed its DevTools address")
                .unwrap();
            if let Some(u) = line.split("DevTools listening on ").nth(1) {
                break u.trim().to_string();
            }
        };
        // Keep draining stderr so that chromium never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        let (ws, _) = tungstenite::connect(&ws_url).expect("the DevTools socket");
        let mut b = Browser {
            child,
            ws,
            next: 0,
            session: String::new(),
            errors: Vec::new(),
            _profile: profile,
        };
        let target = b.send("Target.createTarget", json!({"url": "about:blank"}), false);
        let target_id = target["targetId"].as_str().unwrap().to_string();
        let attached = b.send(
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
            false,
        );
        b.session = attached["sessionId"].as_str().unwrap().to_string();
        for m in ["Page.enable", "Runtime.enable", "Log.enable"] {
            b.send(m, json!({}), true);
        }
        b
    }

    fn send(&mut self, method: &str, params: Value, in_page: bool) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if in_page {
            msg["sessionId"] = json!(self.session);
        }
        self.ws.send(Message::text(msg.to_string())).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(Instant::now() < deadline, "no answer to {method}");
            let m = self.ws.read().unwrap();
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            self.note(&v);
            if v["id"].as_u64() == Some(id) {
                if let Some(e) = v.get("error") {
                    panic!("{method}: {e}");
                }
                return v["result"].clone();
            }
        }
    }

    /// Keeps the errors an event reports.
    fn note(&mut self, v: &Value) {
        match v["method"].as_str() {
            Some("Runtime.exceptionThrown") => self
                .errors
                .push(format!("exception: {}", v["params"]["exceptionDetails"])),
            Some("Runtime.consoleAPICalled") if v["params"]["type"] == "error" => self
                .errors
                .push(format!("console.error: {}", v["params"]["args"])),
            Some("Log.entryAdded") if v["params"]["entry"]["level"] == "error" => {
                let text = v["params"]["entry"]["text"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                // A favicon the console does not have is not the page's error.
                if !v["params"]["entry"]["url"]
                    .as_str()
                    .unwrap_or("")
                    .ends_with("/favicon.ico")
                {
                    self.errors.push(format!("log: {text}"));
                }
            }
            _ => {}
        }
    }

    fn eval(&mut self, js: &str) -> Value {
        let r = self.send(
            "Runtime.evaluate",
            json!({"expression": js, "awaitPromise": true, "returnByValue": true}),
            true,
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{js}: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Navigates and waits until the page has loaded (and its scripts ran).
    fn open(&mut self, url: &str) {
        self.send("Page.navigate", json!({"url": url}), true);
        self.wait_loaded(url);
    }

    fn wait_loaded(&mut self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let state = self.eval("document.readyState + ' ' + location.pathname");
            if state.as_str().is_some_and(|s| s.starts_with("complete")) {
                return;
            }
            assert!(Instant::now() < deadline, "{what} did not load: {state}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `js` is true.
    fn wait_for(&mut self, js: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.eval(js) != json!(true) {
            assert!(Instant::now() < deadline, "waited in vain for {js}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn width(&mut self, w: u32, mobile: bool) {
        self.send(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": w, "height": 900, "deviceScaleFactor": 1, "mobile": mobile}),
            true,
        );
    }

    fn screenshot(&mut self, path: &Path) {
        use base64::Engine;
        let r = self.send(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
            true,
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The folder the screenshots go to.
fn shots() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn the_console_in_a_browser_shows_the_apis_numbers_and_its_buttons_act() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&console_shop(dir.path()));
    // Some traffic for the pages to show: lists, a search that finds
    // nothing, a click.
    let auth = [("x-api-key", ADMIN_KEY)];
    for u in ["u1", "u2", "u3"] {
        http(
            srv.addr,
            "GET",
            &format!("/v1/users/{u}/recommendations?k=5"),
            &auth,
            "",
        );
    }
    http(srv.addr, "GET", "/v1/search?q=item&k=5&user=u1", &auth, "");
    http(
        srv.addr,
        "GET",
        "/v1/search?q=zzzzqqq&k=5&mode=keyword",
        &auth,
        "",
    );
    srv.app.online.flush();

    let mut b = Browser::launch();
    b.open(&srv.url("/console/overview"));
    assert_eq!(b.eval("location.pathname"), json!("/console/login"));
    b.eval(&format!(
        "document.getElementById('key').value = '{ADMIN_KEY}'; document.querySelector('form').submit(); true"
    ));
    b.wait_for("location.pathname === '/console/overview' && document.readyState === 'complete'");

    let folder = shots();
    let mut timings = Vec::new();
    for page in [
        "overview",
        "data",
        "models",
        "experiments",
        "search",
        "shopper",
    ] {
        let url = srv.url(&format!(
            "/console/{page}{}",
            if page == "shopper" {
                "?user=u1&item=i2"
            } else {
                ""
            }
        ));
        for (w, mobile, tag) in [(1280, false, "desktop"), (390, true, "phone")] {
            b.width(w, mobile);
            b.open(&url);
            let t = b.eval(
                "(() => { const n = performance.getEntriesByType('navigation')[0];
                  const bytes = performance.getEntriesByType('resource').reduce((s, r) => s + r.transferSize, n.transferSize);
                  return [n.loadEventEnd, bytes, document.documentElement.scrollWidth]; })()",
            );
            timings.push(format!("{page} {tag}: {t}"));
            // Readable at 390 px: nothing wider than the screen.
            if mobile {
                assert!(
                    t[2].as_f64().unwrap() <= 390.0 + 1.0,
                    "{page} is wider than a phone: {t}"
                );
            }
            // Every control has a label (or a name of its own).
            let unlabelled = b.eval(
                "[...document.querySelectorAll('input:not([type=hidden]), select')]
                   .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.name)",
            );
            assert_eq!(unlabelled, json!([]), "{page}: controls without labels");
            b.screenshot(&folder.join(format!("{page}-{tag}.png")));
        }
    }
    eprintln!("console page timings [load ms, bytes, width]: {timings:#?}");
    eprintln!("screenshots in {}", folder.display());

    // The numbers shown are the API's.
    b.width(1280, false);
    b.open(&srv.url("/console/overview"));
    let api = b.eval("fetch('/v1/admin/overview').then(r => r.json())");
    let shown = b.eval("document.getElementById('catalog-items').textContent");
    assert_eq!(
        shown.as_str().unwrap().replace(',', ""),
        api["catalog_items"].to_string()
    );
    let shown = b.eval("document.getElementById('users').textContent");
    assert_eq!(
        shown.as_str().unwrap().replace(',', ""),
        api["users"].to_string()
    );

    b.open(&srv.url("/console/data"));
    let api = b.eval("fetch('/v1/admin/data').then(r => r.json())");
    let shown = b.eval("document.getElementById('store-events').textContent");
    assert_eq!(
        shown.as_str().unwrap().replace(',', ""),
        api["store"]["events"].to_string()
    );
    let last = api["daily"].as_array().unwrap().last().unwrap().clone();
    let row = b.eval(&format!(
        "(() => {{ const r = document.querySelector('#daily tr[data-day=\"{}\"]');
                  return [r.querySelector('.new-users').textContent, r.querySelector('.new-items').textContent]; }})()",
        last["date"].as_str().unwrap()
    ));
    assert_eq!(
        row,
        json!([last["new_users"].to_string(), last["new_items"].to_string()])
    );
    let ingest = b.eval("document.querySelector('#ingests tbody tr').textContent");
    assert_eq!(api["ingests"][0]["rows_read"], json!(1234));
    assert!(ingest.as_str().unwrap().contains("1,234"), "{ingest}");
    assert_eq!(
        b.eval("document.querySelector('.quarantine pre').textContent.includes('<script>window.__pwned=1</script>')"),
        json!(true)
    );
    assert_eq!(b.eval("window.__pwned === undefined"), json!(true));

    b.open(&srv.url("/console/models"));
    let api = b.eval("fetch('/v1/admin/evaluation').then(r => r.json())");
    let shown =
        b.eval("document.querySelector('#leaderboard tr[data-model=\"ease\"] .ndcg').textContent");
    let want = api["report"]["results"][0]["ndcg@10"].as_f64().unwrap();
    assert_eq!(shown, json!(format!("{want:.4}")));
    // The promoted version's training curve: one point per epoch in the API.
    let models = b.eval("fetch('/v1/admin/models').then(r => r.json())");
    let versions = models["versions"].as_array().expect("versions");
    let promoted = versions
        .iter()
        .find(|v| v["promoted"] == json!(true))
        .unwrap();
    let epochs = promoted["meta"]["curve"].as_array().unwrap().len();
    let points = b.eval(&format!(
        "document.querySelector('figure.curve[data-version=\"{}\"] polyline.loss').getAttribute('points').split(' ').length",
        promoted["version"].as_str().unwrap()
    ));
    assert_eq!(points, json!(epochs));
    assert_eq!(b.eval("window.__pwned === undefined"), json!(true));

    b.open(&srv.url("/console/search"));
    let api = b.eval("fetch('/v1/admin/search/queries').then(r => r.json())");
    let shown = b.eval("document.getElementById('searches').textContent");
    assert_eq!(
        shown.as_str().unwrap().replace(',', ""),
        api["searches"].to_string()
    );
    let zero = b.eval("document.getElementById('zero-queries').textContent");
    assert!(zero.as_str().unwrap().contains("zzzzqqq"), "{zero}");

    // The markup in a title stays text wherever it shows.
    b.open(&srv.url("/console/shopper?user=u1"));
    assert_eq!(b.eval("window.__pwned === undefined"), json!(true));
    assert_eq!(
        b.eval("document.getElementById('history').textContent.includes('<script>window.__pwned=1</script>')"),
        json!(true)
    );
    b.open(&srv.url("/console/search"));
    b.eval("document.getElementById('q').value = 'the item'; document.getElementById('live-search').requestSubmit(); true");
    b.wait_for("document.querySelectorAll('#live-results li').length > 0");
    assert_eq!(b.eval("window.__pwned === undefined"), json!(true));
    // How the query was read comes first.
    let read = b.eval("document.getElementById('live-read').textContent");
    let read = read.as_str().unwrap();
    assert!(
        read.starts_with("read as") && read.contains("left out: the"),
        "{read}"
    );

    // Roll back, then promote the newer version again, through the buttons.
    b.open(&srv.url("/console/models"));
    b.eval("document.getElementById('rollback').click(); document.getElementById('rollback').click(); true");
    b.wait_for("document.getElementById('status').textContent.startsWith('Done')");
    let models = b.eval("fetch('/v1/admin/models').then(r => r.json())");
    assert_eq!(
        models["serving"]["version"],
        json!("sasrec-100.safetensors")
    );
    b.open(&srv.url("/console/models"));
    b.eval(
        "(() => { const b = document.querySelector('tr[data-version=\"sasrec-200.safetensors\"] button');
                  b.click(); b.click(); return true; })()",
    );
    b.wait_for("document.getElementById('status').textContent.startsWith('Done')");
    let models = b.eval("fetch('/v1/admin/models').then(r => r.json())");
    assert_eq!(
        models["serving"]["version"],
        json!("sasrec-200.safetensors")
    );

    // Create an experiment with the form, then stop it.
    b.open(&srv.url("/console/experiments"));
    b.eval(
        "(() => { document.getElementById('x-name').value = 'console-ab';
                  document.getElementById('create-experiment').requestSubmit(); return true; })()",
    );
    b.wait_for("document.getElementById('status').textContent.startsWith('Done')");
    let list = b.eval("fetch('/v1/admin/experiments').then(r => r.json())");
    assert_eq!(list["experiments"][0]["name"], json!("console-ab"));
    assert_eq!(list["experiments"][0]["running"], json!(true));
    b.open(&srv.url("/console/experiments"));
    let report = b.eval("fetch('/v1/admin/experiments/console-ab/report').then(r => r.json())");
    let verdict = b.eval(
        "document.querySelector('[data-experiment=\"console-ab\"] .verdict').dataset.verdict",
    );
    assert_eq!(verdict, report["verdict"]);
    b.eval(
        "(() => { const b = document.querySelector('[data-experiment=\"console-ab\"] button[data-api$=\"/stop\"]');
                  b.click(); b.click(); return true; })()",
    );
    b.wait_for("document.getElementById('status').textContent.startsWith('Done')");
    let list = b.eval("fetch('/v1/admin/experiments').then(r => r.json())");
    assert_eq!(list["experiments"][0]["running"], json!(false));

    // Let the reload after the last action finish, then read the log.
    std::thread::sleep(Duration::from_millis(1200));
    b.eval("true");
    assert!(
        b.errors.is_empty(),
        "the browser logged errors: {:#?}",
        b.errors
    );
}

#[test]
fn the_data_page_warns_when_recent_events_drift_from_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&console_shop(dir.path()));
    let (_, h) = form_login(srv.addr, ADMIN_KEY);
    let cookie = session_cookie(&h);
    // Recent events are only carts, where the reference (the shop's events
    // from 2023) was views and purchases. (The page keeps its figures for a
    // minute while events arrive, so it is first read after them.)
    let events: Vec<Value> = (0..250)
        .map(|i| json!({"user_id": format!("u{}", i % 10), "item_id": format!("i{}", i % 12), "type": "add_to_cart"}))
        .collect();
    let (s, _, body) = http(
        srv.addr,
        "POST",
        "/v1/events",
        &[
            ("x-api-key", ADMIN_KEY),
            ("content-type", "application/json"),
        ],
        &json!({ "events": events }).to_string(),
    );
    assert_eq!(s, 200, "{body}");
    // The figures are recomputed in the background once events arrived:
    // the page shows the new ones within moments.
    let mut after = String::new();
    for _ in 0..100 {
        let (s, _, body) = http(srv.addr, "GET", "/console/data", &[("cookie", &cookie)], "");
        assert_eq!(s, 200);
        after = body;
        if after.contains("id=\"drift-warning\"") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(after.contains("id=\"drift-warning\""), "a warning: {after}");
    // The days between the shop's events (2023) and today's carts are one
    // quiet row, not a row per empty day.
    assert_eq!(after.matches("data-quiet-from=").count(), 1, "{after}");
    assert!(after.contains("days)</span>"), "{after}");
    let row = after
        .split("data-signal=\"event type\"")
        .nth(1)
        .expect("an event type row");
    assert!(row.contains("major shift"), "{row}");
}

#[test]
fn the_data_route_answers_a_read_key_with_days_ingests_quarantine_and_drift() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&console_shop(dir.path()));
    let (s, _, body) = http(
        srv.addr,
        "GET",
        "/v1/admin/data",
        &[("x-api-key", READ_KEY)],
        "",
    );
    assert_eq!(s, 200, "{body}");
    let d: Value = serde_json::from_str(&body).unwrap();
    // The per-day table ends on the newest event's day and counts no more
    // events than the store holds.
    let days = d["daily"].as_array().unwrap();
    let newest = d["store"]["time_max"].as_i64().unwrap();
    let (y, m, dd) = aisle_core::time::civil_from_days(newest.div_euclid(86_400));
    assert_eq!(
        days.last().unwrap()["date"],
        json!(format!("{y:04}-{m:02}-{dd:02}"))
    );
    let events: u64 = days.iter().map(|x| x["events"].as_u64().unwrap()).sum();
    assert!(events > 0 && events <= d["store"]["events"].as_u64().unwrap());
    let by_type: u64 = days
        .iter()
        .flat_map(|x| x["by_type"].as_object().unwrap().values())
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(by_type, events);
    // The ingest's kept report and its quarantined row.
    assert_eq!(d["ingests"][0]["rows_read"], json!(1234));
    assert_eq!(
        d["ingests"][0]["quarantine_file"],
        json!("shop-1700000200-1.jsonl")
    );
    assert_eq!(
        d["quarantine"][0]["by_reason"][0],
        json!({"reason": "bad_timestamp", "rows": 1})
    );
    assert_eq!(d["drift"]["signals"].as_array().unwrap().len(), 4);
    // The shop's events all fall in the last 7 days of its data: the
    // reference has none, too few to read a level from.
    assert_eq!(d["drift"]["reference_events"], 0);
    assert_eq!(d["drift"]["min_events"], 200);
    assert!(d["drift"]["signals"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["level"].is_null()));
    assert!(d["refreshing"].is_boolean());
    // Without a key: refused.
    let (s, _, _) = http(srv.addr, "GET", "/v1/admin/data", &[], "");
    assert_eq!(s, 401);
}
