//! The participation pages in a real headless browser (Debian's `chromium`
//! driven through `chromedriver`): first-time setup, a slider moving the
//! benefits calculator, saving changing the registration another node sees,
//! and opting out removing the node from `get_available_custodians`. Plus
//! the pages' guards (loopback host, CSRF, clear 400s) over plain HTTP.
//! Then the dashboard's view of the network: the region's nodes, the node's
//! own content, repairs and the history plot, before and after the only
//! holder of that content dies, and that looking at it writes no record.
//!
//! Set `ELOHIM_SCREENSHOTS=1` to refresh the screenshots in `docs/img/`.

use elohim_sidecar::custody::PublishRequest;
use elohim_tests::sidecars::SidecarNet;
use elohim_tests::webdriver::{Browser, Driver, KEY_END};
use node_registry_integrity::zome_fns::{GetAvailableCustodians, GetNode};
use node_registry_integrity::*;
use std::path::Path;
use std::time::Duration;

/// The text of the first element matching `css`, waiting up to 20 s for it.
/// The live calculator replaces its output's elements (`innerHTML`), so one
/// found a moment ago may be gone by the time it is read: then it is found
/// again.
async fn text(c: &Browser, css: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let e = loop {
        match c.wait_for(css, 20).await {
            Ok(e) => match c.text(&e).await {
                Ok(t) => return t,
                Err(e) if e.contains("stale element") && tokio::time::Instant::now() < deadline => {
                    continue
                }
                Err(e) => break e,
            },
            Err(e) => break e,
        }
    };
    let alert = match c.find("[role=alert]").await {
        Ok(a) => c.text(&a).await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    panic!("{css} on {:?}: {e}; page alert: {alert:?}", c.url().await)
}

async fn click_button(c: &Browser, name: &str, value: &str) {
    let b = c
        .find(&format!("button[name='{name}'][value='{value}']"))
        .await
        .unwrap_or_else(|e| panic!("button {name}={value}: {e}"));
    c.click(&b).await.unwrap();
}

async fn path_of(c: &Browser) -> String {
    let url = c.url().await.unwrap();
    let after_host = url.splitn(4, '/').nth(3).unwrap_or("");
    format!("/{}", after_host.split(['?', '#']).next().unwrap_or(""))
}

/// Saves a PNG screenshot next to the test data and, when asked, into
/// `docs/img/`.
async fn screenshot(c: &Browser, scratch: &Path, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    std::fs::write(scratch.join(name), &png).unwrap();
    if std::env::var_os("ELOHIM_SCREENSHOTS").is_some() {
        let docs = elohim_tests::manifest_dir().join("../docs/img");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::write(docs.join(name), &png).unwrap();
    }
}

/// How many elements match `css` now (no waiting).
async fn count(c: &Browser, css: &str) -> u64 {
    let script = format!(
        "return document.querySelectorAll({}).length;",
        serde_json::to_string(css).unwrap()
    );
    c.execute(&script)
        .await
        .unwrap_or_else(|e| panic!("counting {css}: {e}"))
        .as_u64()
        .unwrap_or(0)
}

/// The text of the first element matching `css` now, if there is one (no
/// waiting, no panic: for polling a page that may show an error instead).
async fn now_text(c: &Browser, css: &str) -> Option<String> {
    let script = format!(
        "var e = document.querySelector({}); return e ? e.textContent.trim() : null;",
        serde_json::to_string(css).unwrap()
    );
    c.execute(&script).await.ok()?.as_str().map(str::to_string)
}

/// Records on node 0's identity and reader chains: a page view must add
/// none (its working key writes leases and verdicts on its own schedule).
async fn quiet_chains(net: &SidecarNet) -> usize {
    let mut n = 0;
    for cell in [
        net.cell_id(0).await,
        net.app_cell_id(0, elohim_sidecar::READER_APP_ID).await,
    ] {
        n += elohim_tests::source_chain(&net.conductors[0], &cell)
            .await
            .len();
    }
    n
}

/// Polls `f` until it returns Some, failing after `secs`.
async fn until<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn participation_pages_in_a_real_browser() {
    // Node 2 joins only for the network part: a second monitor of node 1
    // (a failure needs two), taking no custody itself.
    let mut net = SidecarNet::start(3, &[0, 1], |i, c| {
        c.http.history_sample_secs = 10;
        if i == 2 {
            c.participation.custodian_opt_in = false;
        }
    })
    .await;
    let config_file = net.dirs[0].path().join("elohim.toml");
    net.node(0).agent.set_config_file(config_file.clone());
    let me = net.node_id(0);
    let observer = net.node(1).agent.clone();
    net.await_custodians(1, 2).await;
    let base = format!("http://localhost:{}", net.node(0).http_addr.port());
    let scratch = net.dirs[0].path().to_path_buf();

    // --- guards, over plain HTTP (what a browser without JS also does) ----
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http
        .get(format!("{base}/settings"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a DNS-rebinding host is refused");
    let r = http
        .post(format!("{base}/settings"))
        .form(&[("action", "save"), ("storage_percent", "50")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "no CSRF token, no change");
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("did not come from this node"));
    let csrf = elohim_sidecar::http::ui::csrf_token(&net.node(0).api_token);
    let form = |storage: &str, action: &str| {
        vec![
            ("csrf", csrf.clone()),
            ("action", action.to_string()),
            ("participate", "on".into()),
            ("storage_percent", storage.to_string()),
            ("bandwidth_percent", "45".into()),
            ("cpu_percent", "20".into()),
            ("off_peak_start_hour", "22".into()),
            ("off_peak_end_hour", "6".into()),
        ]
    };
    let r = http
        .post(format!("{base}/settings"))
        .form(&form("lots", "save"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("storage_percent: &quot;lots&quot; is not a number from 0 to 100"));
    // Without JavaScript, "Recalculate" recomputes on the server, saving
    // nothing.
    let r = http
        .post(format!("{base}/settings"))
        .form(&form("25", "preview"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Steward"));
    assert!(!config_file.exists(), "a preview saves nothing");

    // --- first-time setup -------------------------------------------------
    let driver = Driver::start().await;
    let c = driver.browser().await;
    c.goto(&format!("{base}/")).await.unwrap();
    assert_eq!(
        text(&c, "h1").await,
        "Welcome to Elohim Network Participation"
    );
    assert_eq!(path_of(&c).await, "/setup");
    screenshot(&c, &scratch, "setup.png").await;
    click_button(&c, "choice", "recommended").await;
    assert!(text(&c, "[data-testid=flash]")
        .await
        .contains("recommended"));
    assert_eq!(path_of(&c).await, "/dashboard");
    let saved = elohim_sidecar::config::Config::load(&config_file).unwrap();
    assert!(saved.participation.setup_complete && saved.participation.custodian_opt_in);

    // --- a slider moves the calculator, live -------------------------------
    c.goto(&format!("{base}/settings")).await.unwrap();
    assert_eq!(text(&c, "[data-testid=tier]").await, "Guardian");
    c.execute("window.__same_page = true;").await.unwrap();
    for id in ["storage_percent", "bandwidth_percent", "cpu_percent"] {
        let slider = c.find(&format!("#{id}")).await.unwrap();
        c.send_keys(&slider, KEY_END).await.unwrap();
    }
    until(20, "the calculator shows pioneer", || async {
        (text(&c, "[data-testid=tier]").await == "Pioneer").then_some(())
    })
    .await;
    assert_eq!(text(&c, "[data-testid=points]").await, "2000");
    assert_eq!(
        c.execute("return window.__same_page === true;")
            .await
            .unwrap(),
        serde_json::json!(true),
        "updated without reloading the page"
    );
    assert!(text(&c, "#storage_percent-out").await.contains("(100%)"));
    screenshot(&c, &scratch, "settings.png").await;

    // --- save: the registration another node sees changes ------------------
    click_button(&c, "action", "save").await;
    assert!(text(&c, "[data-testid=flash]").await.contains("Saved"));
    let reg = until(120, "node 1 sees node 0 as pioneer", || {
        let observer = observer.clone();
        let me = me.clone();
        async move {
            let r: Option<RegisteredNode> = observer.call_fn::<GetNode>(me).await.ok()?;
            r.filter(|r| r.registration.steward_tier == "pioneer")
        }
    })
    .await;
    assert!(reg.registration.custodian_opt_in);
    assert!((reg.registration.max_custody_gb - 500.0).abs() < 1e-6);
    let saved = elohim_sidecar::config::Config::load(&config_file).unwrap();
    assert_eq!(saved.participation.storage_percent, 100.0);

    c.goto(&format!("{base}/dashboard")).await.unwrap();
    assert_eq!(text(&c, "[data-testid=dash-tier]").await, "pioneer");
    until(30, "the dashboard shows heartbeats", || async {
        c.refresh().await.ok()?;
        let n: u64 = text(&c, "[data-testid=heartbeats]")
            .await
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        (n > 0
            && text(&c, "[data-testid=liveness]")
                .await
                .starts_with("alive"))
        .then_some(())
    })
    .await;
    screenshot(&c, &scratch, "dashboard.png").await;

    // --- opt out: no new assignments ----------------------------------------
    c.goto(&format!("{base}/settings")).await.unwrap();
    click_button(&c, "action", "opt_out").await;
    assert!(text(&c, "[data-testid=flash]").await.contains("opted out"));
    assert_eq!(text(&c, "[data-testid=tier]").await, "none");
    until(120, "node 0 leaves get_available_custodians", || {
        let observer = observer.clone();
        let me = me.clone();
        async move {
            let c: Vec<RankedCustodian> = observer
                .call_fn::<GetAvailableCustodians>(CustodianFilters::default())
                .await
                .ok()?;
            (!c.iter().any(|r| r.registration.node_id == me)).then_some(())
        }
    })
    .await;
    let saved = elohim_sidecar::config::Config::load(&config_file).unwrap();
    assert!(!saved.participation.custodian_opt_in);
    c.goto(&format!("{base}/earnings")).await.unwrap();
    assert_eq!(text(&c, "[data-testid=earned]").await, "0.000");

    // --- the network as node 0 sees it ---------------------------------------
    // Node 0 publishes a file kept as one full replica: on node 1, the only
    // custodian (an owner never keeps its own content).
    let file = scratch.join("notes.txt");
    std::fs::write(&file, vec![7u8; 50_000]).unwrap();
    let published = net
        .node(0)
        .custody
        .publish(
            PublishRequest {
                path: file,
                strategy: Some("full_replica".into()),
                k: Some(1),
                n: Some(1),
                ..Default::default()
            },
            &|_| {},
        )
        .await
        .expect("node 0 publishes");
    let one = net.node_id(1);
    assert_eq!(published.custodians, vec![one.clone()]);
    let content = format!("[data-content='{}']", published.content_id);
    net.join(2).await;
    net.until(120, "nodes 0 and 2 both watch node 1", || async {
        [0, 2]
            .iter()
            .all(|&i| {
                net.node(i)
                    .liveness
                    .watched()
                    .iter()
                    .any(|(n, _)| *n == one)
            })
            .then_some(())
    })
    .await;
    c.goto(&format!("{base}/dashboard")).await.unwrap();
    until(
        120,
        "the dashboard shows 3 nodes alive, the content healthy and a beat line",
        || async {
            c.refresh().await.ok()?;
            (now_text(&c, "[data-testid=region-alive]").await? == "3"
                && count(&c, &format!("{content}[data-risk='healthy']")).await == 1
                && count(&c, "[data-testid=plot-latency] [data-series=beat] polyline").await >= 1)
                .then_some(())
        },
    )
    .await;
    assert_eq!(text(&c, "[data-testid=region-failed]").await, "0");
    assert_eq!(
        text(&c, &format!("{content} [data-testid=holders]")).await,
        "1 alive"
    );
    assert_eq!(text(&c, "[data-testid=at-risk-count]").await, "0");
    let out = text(&c, "[data-testid=moved-out]").await;
    assert!(
        out.ends_with(" KB"),
        "the pushed replica (50 KB and its header) is counted out: {out}"
    );
    assert!(count(&c, "[data-testid=plot-bytes] [data-series=out] polyline").await >= 1);
    assert_eq!(count(&c, "[data-testid=rebuilds-none]").await, 1);
    assert_eq!(count(&c, "[data-testid=queued-none]").await, 1);

    // Looking writes nothing.
    let before = quiet_chains(&net).await;
    for _ in 0..3 {
        c.refresh().await.unwrap();
        assert_eq!(text(&c, "[data-testid=region-alive]").await, "3");
    }
    assert_eq!(
        quiet_chains(&net).await,
        before,
        "a dashboard view added records to the identity's or the reader's chain"
    );

    // Node 1 dies: both its monitors suspect it, it is judged failed, and
    // node 0's content has no holder left. Node 0's detector re-homes the
    // shard, but no node takes custody (node 0 owns it, node 2 opted out).
    net.kill(1).await;
    // First the network's verdict (with every node's liveness printed if
    // it does not come), then the page that shows it.
    let cfg = &net.node(0).agent.config().custody;
    let policy = DetectionInput {
        failure_window_secs: Some(cfg.failure_window_secs),
        grace_secs: Some(cfg.grace_secs),
    };
    net.await_declared(0, &one, policy, 180).await;
    until(
        60,
        "node 0's dashboard shows node 1 failed and the content at risk",
        || async {
            c.refresh().await.ok()?;
            (count(&c, &format!("[data-node='{one}'][data-state='failed']")).await == 1
                && count(&c, &format!("{content}[data-risk='at risk']")).await == 1)
                .then_some(())
        },
    )
    .await;
    assert_eq!(text(&c, "[data-testid=region-alive]").await, "2");
    assert_eq!(text(&c, "[data-testid=region-failed]").await, "1");
    assert_eq!(text(&c, "[data-testid=at-risk-count]").await, "1");
    assert_eq!(
        text(&c, &format!("{content} [data-testid=holders]")).await,
        "0 alive, 1 failed"
    );
    until(
        60,
        "the dashboard lists the repair node 0 queued",
        || async {
            c.refresh().await.ok()?;
            (count(&c, "[data-testid=queued-outcome]").await > 0).then_some(())
        },
    )
    .await;
    assert!(
        text(&c, "[data-testid=queued-outcome]")
            .await
            .starts_with("not placed: no eligible custodian"),
        "{}",
        text(&c, "[data-testid=queued-outcome]").await
    );
    c.execute("document.getElementById('region-h').scrollIntoView();")
        .await
        .unwrap();
    screenshot(&c, &scratch, "network.png").await;
    c.close().await.unwrap();
}
