//! The dashboard's changes in a real headless Chromium: without a token every control that
//! changes something is disabled and says why; a ban is confirmed in the page before it is
//! made; each action says that it succeeded; connect, disconnect and create-register work from
//! the page; a failing subscription is drawn as failing; on a phone, no action is hidden; the
//! doctor's list is shown.

use std::time::Duration;

use serde_json::json;

use crate::common::webdriver::Browser;
use crate::common::{PATIENCE, TestCluster, wait_until};
use crate::dashboard::{COUNT, TEXT};

/// Whether every element matching `arguments[0]` is disabled (and there is at least one).
const ALL_DISABLED: &str = "const e = [...document.querySelectorAll(arguments[0])]; return e.length > 0 && e.every(x => x.disabled === arguments[1]);";
/// Whether the notice shows every string of `arguments[0]`, as a success.
const DONE: &str = "const n = document.querySelector('#notice'); return !n.hidden && n.classList.contains('ok') && arguments[0].every(t => n.textContent.includes(t));";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// A story read top to bottom: its steps share state and order, so it stays whole.
#[allow(clippy::too_many_lines)]
async fn dashboard_changes_need_a_token_are_confirmed_and_say_they_succeeded() {
    let test = "dashboard_changes_need_a_token_are_confirmed_and_say_they_succeeded";
    let mut net = TestCluster::new();
    let mut a = net.start(|c| c.name = "alpha".into()).await;
    let seed = a.seed();
    let mut b = net.start(|c| c.seeds = vec![seed.clone()]).await;
    let mut c = net.start(|_| {}).await;
    a.wait_for_state(&b.peer_id, "connected", PATIENCE).await;

    let Some(browser) = Browser::start(test).await else {
        return;
    };
    browser.set_size(1280, 800).await;
    browser.goto(&format!("{}/", a.admin_url)).await;
    let row_ban = format!("button[data-ban='{}']", b.peer_id);
    browser
        .wait_for("b's row", COUNT, json!([row_ban.as_str(), 1]))
        .await;

    // The doctor's list, as `sorcha-peer doctor` gives it.
    browser
        .wait_for(
            "the doctor's readiness item",
            TEXT,
            json!(["#doctor-list li[data-item='readiness']", ["ok", "ready"]]),
        )
        .await;

    // No token: reads work (loopback), every change is disabled and the page says why.
    for controls in [
        "[data-write]",
        row_ban.as_str(),
        "#ban-submit",
        "#connect-submit",
        "#create-submit",
    ] {
        browser
            .wait_for(controls, ALL_DISABLED, json!([controls, true]))
            .await;
    }
    browser
        .wait_for(
            "the hint",
            "return !document.querySelector('#write-hint').hidden;",
            json!([]),
        )
        .await;
    browser.type_into("#token", &a.token).await;
    browser.click("#token-save").await;
    browser
        .wait_for(
            "changes enabled",
            ALL_DISABLED,
            json!(["[data-write]", false]),
        )
        .await;

    // A ban waits for its confirmation, which names the peer and the duration.
    browser.click(&row_ban).await;
    browser.type_into("#ban-reason", "confirm me").await;
    browser.type_into("#ban-duration", "1h").await;
    browser.click("#ban-submit").await;
    browser
        .wait_for(
            "the confirmation",
            TEXT,
            json!(["#ban-confirm", [&b.peer_id[..12], "for 1h"]]),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        a.client.bans().await.expect("bans").is_empty(),
        "banned before the confirmation"
    );
    browser.click("#ban-confirm-no").await;
    browser.click("#ban-submit").await;
    browser.click("#ban-confirm-yes").await;
    browser
        .wait_for("the ban said", DONE, json!([["Banned", "for 1h"]]))
        .await;
    browser
        .wait_for(
            "the confirmation gone",
            "return getComputedStyle(document.querySelector('#ban-confirm')).display === 'none';",
            json!([]),
        )
        .await;
    wait_until("the ban made", PATIENCE, || async {
        a.client.bans().await.is_ok_and(|bans| bans.len() == 1)
    })
    .await;
    browser
        .click(&format!(
            "#ban-table tr[data-ban-target='{}'] button",
            b.peer_id
        ))
        .await;
    browser
        .wait_for("the unban said", DONE, json!([["Unbanned"]]))
        .await;

    // Connect to a node nobody told it about, then disconnect it.
    browser.type_into("#connect-address", &c.seed()).await;
    browser.click("#connect-submit").await;
    browser
        .wait_for(
            "the connection said",
            DONE,
            json!([["Connected to", &c.peer_id[..12]]]),
        )
        .await;
    a.wait_for_state(&c.peer_id, "connected", PATIENCE).await;
    let disconnect = format!("button[data-disconnect='{}']", c.peer_id);
    browser
        .wait_for(
            "c's disconnect button",
            COUNT,
            json!([disconnect.as_str(), 1]),
        )
        .await;
    browser.click(&disconnect).await;
    browser
        .wait_for(
            "the disconnection said",
            DONE,
            json!([["Disconnected", "not banned"]]),
        )
        .await;

    // Create a register.
    browser.type_into("#create-id", "dash-created").await;
    browser.click("#create-submit").await;
    browser
        .wait_for(
            "the creation said",
            DONE,
            json!([["Created register dash-created"]]),
        )
        .await;
    let held = a.client.registers().await.expect("registers");
    assert!(
        held.iter().any(|r| r.register_id == "dash-created"),
        "{held:?}"
    );

    // A subscription in error is drawn failing, not as a full blue bar.
    let drawn = browser
        .eval(
            "renderRegisters(\
               [{registerId:'r', role:'replica', syncState:'error', latestDocketVersion:3, transactionCount:9, pendingTransactions:0, syncProgressPercent:100}],\
               [{registerId:'r', syncState:'error', syncProgressPercent:100, lastSyncedDocketVersion:3, targetDocketVersion:3, lastSyncAt:null, consecutiveFailures:4, errorMessage:'no peer serves it'}],\
               []);\
             const bar = document.querySelector(\"[data-register='r'] .bar\");\
             return bar.classList.contains('failing') && document.querySelector(\"[data-register='r']\").textContent.includes('failing');",
            json!([]),
        )
        .await;
    assert_eq!(drawn, true, "a failing subscription is drawn failing");

    // On a phone, the Unban and Subscribe buttons stay within the screen.
    a.client
        .ban_with(&b.peer_id, Some("phone"), Some("1h"), false)
        .await
        .expect("ban");
    browser.set_size(390, 844).await;
    browser
        .wait_for(
            "the ban's Unban button on screen",
            "const b = document.querySelector('#ban-table tbody tr[data-ban-target] button'); return !!b && b.getBoundingClientRect().right <= window.innerWidth;",
            json!([]),
        )
        .await;
    let fits = browser
        .eval(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1;",
            json!([]),
        )
        .await;
    assert_eq!(fits, true, "the page fits a phone's width");

    drop(browser);
    c.stop().await;
    b.stop().await;
    a.stop().await;
}
