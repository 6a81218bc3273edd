//! The embedded dashboard: served with its security headers, and driven in a real headless
//! Chromium against a three-node cluster (lists the peers, a token entered once, a ban made in
//! the page shows in `peers bans` and in the page's event log, unban), with screenshots at
//! desktop and phone widths kept under target/test-artifacts/.

use std::path::PathBuf;

use serde_json::json;

use crate::common::webdriver::Browser;
use crate::common::{PATIENCE, TestCluster, cli, wait_until};

fn artifacts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_is_served_with_a_strict_content_security_policy() {
    let mut node = TestCluster::new().start(|_| {}).await;
    let http = reqwest::Client::new();
    let page = http
        .get(format!("{}/", node.admin_url))
        .send()
        .await
        .expect("GET /");
    assert_eq!(page.status(), 200);
    let header = |name: &str| {
        page.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert!(header("content-type").starts_with("text/html"));
    let csp = header("content-security-policy");
    assert!(
        csp.contains("default-src 'self'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(header("x-content-type-options"), "nosniff");
    let html = page.text().await.expect("page");
    // No inline script: every <script> names its file.
    for tag in html.split("<script").skip(1) {
        assert!(
            tag.trim_start().starts_with("src=\"/dashboard/"),
            "inline script: {tag}"
        );
    }
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no CDN"
    );
    for (path, kind) in [
        ("/dashboard/app.js", "text/javascript"),
        ("/dashboard/style.css", "text/css"),
    ] {
        let asset = http
            .get(format!("{}{path}", node.admin_url))
            .send()
            .await
            .expect("asset");
        assert_eq!(asset.status(), 200, "{path}");
        let ct = asset.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .to_string();
        assert!(ct.starts_with(kind), "{path}: {ct}");
        assert!(!asset.text().await.expect("body").is_empty());
    }
    node.stop().await;
}

/// The count of elements matching a CSS selector, as a page script.
pub(crate) const COUNT: &str =
    "return document.querySelectorAll(arguments[0]).length === arguments[1];";
/// Whether some element matching `arguments[0]` has text containing every string in `arguments[1]`.
pub(crate) const TEXT: &str = "return [...document.querySelectorAll(arguments[0])].some(e => arguments[1].every(t => e.textContent.includes(t)));";

/// The dashboard's "Transactions / s" comes from the node (`status`), computed over a fixed
/// window of samples, not from the gap between two of the page's polls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transaction_rate_is_computed_on_the_node_over_a_window() {
    let mut node = TestCluster::new().start(|_| {}).await;
    node.client
        .create_register("rate-orders", true)
        .await
        .expect("create register");
    let status = node.client.status().await.expect("status");
    assert_eq!(status.rate_window_seconds, 10);
    let payloads: Vec<String> = (0..40).map(|i| format!("rate {i}")).collect();
    node.client
        .submit_batch("rate-orders", payloads)
        .await
        .expect("submit");
    wait_until("a rate above 0 over the window", PATIENCE, || async {
        let status = node.client.status().await.expect("status");
        status.transactions_per_second.is_some_and(|r| r > 0.0)
    })
    .await;
    let script = reqwest::get(format!("{}/dashboard/app.js", node.admin_url))
        .await
        .expect("GET app.js")
        .text()
        .await
        .expect("app.js");
    assert!(
        script.contains("status.transactionsPerSecond") && !script.contains("lastTotals"),
        "the page shows the node's rate"
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// A story read top to bottom: its steps share state and order, so it stays whole.
#[allow(clippy::too_many_lines)]
async fn dashboard_lists_peers_and_bans_and_unbans_in_a_real_browser() {
    let test = "dashboard_lists_peers_and_bans_and_unbans_in_a_real_browser";
    let mut net = TestCluster::new();
    let mut a = net.start(|c| c.name = "alpha".into()).await;
    let seed = a.seed();
    let mut b = net.start(|c| c.seeds = vec![seed.clone()]).await;
    let mut c = net.start(|c| c.seeds = vec![seed.clone()]).await;
    a.wait_for_state(&b.peer_id, "connected", PATIENCE).await;
    a.wait_for_state(&c.peer_id, "connected", PATIENCE).await;
    a.client
        .create_register("dash-orders", true)
        .await
        .expect("create register");

    let Some(browser) = Browser::start(test).await else {
        return;
    };
    browser.set_size(1280, 800).await;
    browser.goto(&format!("{}/", a.admin_url)).await;
    browser
        .wait_for(
            "the two peers listed",
            COUNT,
            json!(["#peer-table tbody tr[data-peer]", 2]),
        )
        .await;
    for id in [&b.peer_id, &c.peer_id] {
        browser
            .wait_for(
                "each peer connected",
                TEXT,
                json!([format!("tr[data-peer='{id}']"), ["connected"]]),
            )
            .await;
    }
    browser
        .wait_for(
            "the node's identity",
            TEXT,
            json!(["#node-facts", [a.peer_id.as_str()]]),
        )
        .await;

    // The token, entered once.
    browser.type_into("#token", &a.token).await;
    browser.click("#token-save").await;
    let stored = browser
        .eval(
            "return sessionStorage.getItem('sorcha-peer-token');",
            json!([]),
        )
        .await;
    assert_eq!(stored, a.token.as_str(), "kept in session storage");
    let cookies = browser.eval("return document.cookie;", json!([])).await;
    assert_eq!(cookies, "", "no cookies");

    // Ban b from its row, with a reason and a duration.
    browser
        .click(&format!("button[data-ban='{}']", b.peer_id))
        .await;
    browser
        .type_into("#ban-reason", "banned from the dashboard")
        .await;
    browser.type_into("#ban-duration", "2h").await;
    browser.click("#ban-submit").await;
    browser.click("#ban-confirm-yes").await;
    wait_until("the ban in `peers bans`", PATIENCE, || async {
        let (code, stdout, _) = cli(&a, &["peers", "bans", "-o", "json"]).await;
        code == 0 && stdout.contains(&b.peer_id) && stdout.contains("banned from the dashboard")
    })
    .await;
    browser
        .wait_for(
            "the ban in the event log",
            TEXT,
            json!([
                "#event-log li[data-type='peerBanned']",
                [b.peer_id.as_str(), "banned from the dashboard"]
            ]),
        )
        .await;
    browser
        .wait_for(
            "the ban in the bans table",
            COUNT,
            json!([format!("#ban-table tr[data-ban-target='{}']", b.peer_id), 1]),
        )
        .await;
    browser
        .wait_for(
            "b shown banned",
            TEXT,
            json!([format!("tr[data-peer='{}']", b.peer_id), ["banned"]]),
        )
        .await;
    // Let a chart or two gather points before the picture.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    browser
        .screenshot(&artifacts().join("dashboard-desktop.png"))
        .await;
    // And the whole page, for whoever reviews the artifacts.
    let height = browser
        .eval("return document.documentElement.scrollHeight;", json!([]))
        .await
        .as_u64()
        .unwrap_or(800);
    browser
        .set_size(1280, height.clamp(800, 4000) as u32 + 100)
        .await;
    browser
        .screenshot(&artifacts().join("dashboard-desktop-full.png"))
        .await;
    browser.set_size(1280, 800).await;

    // Unban from the bans table.
    browser
        .click(&format!(
            "#ban-table tr[data-ban-target='{}'] button",
            b.peer_id
        ))
        .await;
    wait_until("the ban lifted", PATIENCE, || async {
        a.client.bans().await.is_ok_and(|bans| bans.is_empty())
    })
    .await;
    browser
        .wait_for(
            "the unban in the event log",
            TEXT,
            json!([
                "#event-log li[data-type='peerUnbanned']",
                [b.peer_id.as_str()]
            ]),
        )
        .await;

    browser.set_size(390, 844).await;
    browser
        .eval("window.scrollTo(0, 0); return true;", json!([]))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let overflow = browser
        .eval(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1;",
            json!([]),
        )
        .await;
    assert_eq!(overflow, true, "the page fits a phone's width");
    browser
        .screenshot(&artifacts().join("dashboard-phone.png"))
        .await;

    drop(browser);
    c.stop().await;
    b.stop().await;
    a.stop().await;
}
