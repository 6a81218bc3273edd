//! Tokens at the edge of what the admin API accepts, against a running node: the bearer
//! scheme in any case (RFC 7235), `org_id` values that are not a non-empty string (no
//! CanManagePeers), and `jwt_max_lifetime` (`exp` - `iat` too long, no `iat`, `iat` ahead).

use jsonwebtoken::Algorithm;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sorcha_peer::config::Secret;

use crate::admin_auth::{KEY, call, error_of, mint, mint_with, now, start_node};
use crate::common::TestCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheme_is_case_insensitive_org_id_is_a_string_and_lifetimes_are_bounded() {
    let mut net = TestCluster::new();
    let mut a = start_node(&mut net, |c| c.jwt_key = Some(Secret::new(KEY))).await;
    let ban = |token: String, scheme: &'static str| {
        reqwest::Client::new()
            .post(format!("{}/api/bans", a.admin_url))
            .header("Authorization", format!("{scheme} {token}"))
            .json(&json!({"target": "10.22.0.1"}))
            .send()
    };
    let unban = || {
        call(
            &a,
            Method::DELETE,
            "/api/bans/10.22.0.1",
            Some(&a.token),
            None,
        )
    };
    // RFC 7235: the scheme in any case.
    for scheme in ["bearer", "BEARER", "bEaReR"] {
        let response = ban(a.token.clone(), scheme).await.expect("send");
        assert_eq!(response.status(), StatusCode::CREATED, "{scheme}");
        assert!(unban().await.0.is_success());
    }

    // org_id that is not a non-empty string grants no CanManagePeers; the token is valid.
    let exp = now() + 3600;
    for org_id in [
        json!(false),
        json!(0),
        json!(""),
        json!("  "),
        json!({}),
        json!([]),
    ] {
        let token = mint(KEY, json!({"org_id": org_id, "exp": exp}));
        let response = ban(token.clone(), "Bearer").await.expect("send");
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "org_id {org_id}");
        let (status, _) = call(&a, Method::GET, "/api/peers", Some(&token), None).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "org_id {org_id}: still a valid token"
        );
    }
    assert!(a.client.bans().await.expect("bans").is_empty());

    // jwt_max_lifetime (24 h by default): exp - iat above it, no iat, or an iat ahead.
    let day = 24 * 3600;
    for (claims, reason) in [
        (
            json!({"org_id": "o", "iat": now(), "exp": now() + day + 60}),
            "jwt_max_lifetime",
        ),
        (
            json!({"org_id": "o", "iat": now(), "exp": 253_402_300_799i64}),
            "jwt_max_lifetime",
        ),
        (json!({"org_id": "o", "exp": exp}), "no `iat` claim"),
        (
            json!({"org_id": "o", "iat": now() + 10 * day, "exp": now() + 10 * day + 60}),
            "issued in the future",
        ),
    ] {
        let token = if claims.get("iat").is_some() {
            mint(KEY, claims.clone())
        } else {
            mint_with(Algorithm::HS256, KEY, claims.clone())
        };
        let response = ban(token, "Bearer").await.expect("send");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{claims}");
        let body: Value = response.json().await.expect("json");
        assert!(error_of(&body).contains(reason), "{claims}: {body}");
    }
    assert!(a.client.bans().await.expect("bans").is_empty());
    // A day exactly, issued a day ago less a minute: accepted.
    let token = mint(
        KEY,
        json!({"org_id": "o", "iat": now() - day + 60, "exp": now() + 60}),
    );
    let response = ban(token, "Bearer").await.expect("send");
    assert_eq!(response.status(), StatusCode::CREATED);
    a.stop().await;
}

/// The platform's four token tiers (`jwt_audiences`): peer management for service tokens and
/// platform tokens with an organisation; consumer and enrol-session tokens only read, even
/// with an `org_id`; an audience not listed is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// A story read top to bottom: its steps share state and order, so it stays whole.
#[allow(clippy::too_many_lines)]
async fn the_platform_token_tiers_are_told_apart() {
    let mut net = TestCluster::new();
    let tiers = ["consumer", "platform", "service", "enrol-session"];
    let mut a = start_node(&mut net, |c| {
        c.jwt_key = Some(Secret::new(KEY));
        c.jwt_audiences = tiers.iter().map(|t| format!("inst:{t}")).collect();
    })
    .await;
    let token = |aud: &str, claims: Value| {
        let mut claims = claims;
        claims["aud"] = json!(aud);
        claims["iat"] = json!(now() - 10);
        claims["exp"] = json!(now() + 600);
        mint(KEY, claims)
    };
    let ban = |token: String| {
        let a = &a;
        async move {
            call(
                a,
                Method::POST,
                "/api/bans",
                Some(&token),
                Some(json!({"target": "10.23.0.1"})),
            )
            .await
        }
    };
    let unban = || {
        call(
            &a,
            Method::DELETE,
            "/api/bans/10.23.0.1",
            Some(&a.token),
            None,
        )
    };
    for (aud, claims, expected) in [
        (
            "inst:platform",
            json!({"org_id": "org-1"}),
            StatusCode::CREATED,
        ),
        (
            "inst:service",
            json!({"token_type": "service"}),
            StatusCode::CREATED,
        ),
        ("inst:platform", json!({}), StatusCode::FORBIDDEN),
        (
            "inst:consumer",
            json!({"org_id": "org-1"}),
            StatusCode::FORBIDDEN,
        ),
        (
            "inst:enrol-session",
            json!({"org_id": "org-1"}),
            StatusCode::FORBIDDEN,
        ),
        (
            "other:platform",
            json!({"org_id": "org-1"}),
            StatusCode::UNAUTHORIZED,
        ),
    ] {
        let (status, body) = ban(token(aud, claims.clone())).await;
        assert_eq!(status, expected, "{aud} {claims}: {body}");
        if status.is_success() {
            assert!(unban().await.0.is_success());
        }
    }
    // A consumer token reads, and changes nothing else either (a register is a change).
    let consumer = token("inst:consumer", json!({"org_id": "org-1"}));
    let (status, _) = call(&a, Method::GET, "/api/peers", Some(&consumer), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call(
        &a,
        Method::POST,
        "/api/registers",
        Some(&consumer),
        Some(json!({"registerId": "ledger"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(error_of(&body).contains("only reads"), "{body}");
    assert!(a.client.registers().await.expect("registers").is_empty());
    assert!(a.client.bans().await.expect("bans").is_empty());
    a.stop().await;
}
