//! Every `-o json` output validates against the schema `sorcha-peer schema NAME` prints for
//! it, and a schema refuses an output that lacks a field it requires (so the check can fail).

use serde_json::Value;

use crate::common::{PATIENCE, TestCluster, TestNode, cli, wait_until};

async fn schema(name: &str) -> jsonschema::Validator {
    let (code, text, err) = cli_plain(&["schema", name]).await;
    assert_eq!(code, 0, "schema {name}: {err}");
    let schema: Value = serde_json::from_str(&text).expect("schema JSON");
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("schema {name}: {e}"))
}

async fn cli_plain(args: &[&str]) -> (i32, String, String) {
    let mut cmd = crate::common::bin();
    cmd.args(args);
    crate::common::run_cmd(cmd).await
}

fn check(validator: &jsonschema::Validator, name: &str, instance: &Value) {
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{name}: {errors:?}\n{instance:#}");
}

/// Runs `args -o json` at `node` and checks its output against schema `name`.
async fn validates(node: &TestNode, name: &str, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let (code, text, err) = cli(node, &all).await;
    assert!(code == 0 || code == 1, "{args:?}: {err}");
    let validator = schema(name).await;
    let mut last = Value::Null;
    // JSON Lines (events) or one document.
    let documents: Vec<Value> = if name == "event" {
        text.lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    } else {
        vec![serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}\n{text}"))]
    };
    assert!(!documents.is_empty(), "{args:?} printed nothing");
    for document in documents {
        check(&validator, name, &document);
        last = document;
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_json_output_validates_against_its_schema() {
    let mut net = TestCluster::new();
    let mut a = net.start(|c| c.name = "alpha".into()).await;
    let seed = a.seed();
    let mut b = net.start(|c| c.seeds = vec![seed.clone()]).await;
    a.wait_for_state(&b.peer_id, "connected", PATIENCE).await;
    a.client
        .create_register("schema-orders", true)
        .await
        .expect("register");
    wait_until("b subscribed", PATIENCE, || async {
        b.client
            .subscribe("schema-orders", "full-replica")
            .await
            .is_ok()
    })
    .await;
    let submitted = a
        .client
        .submit("schema-orders", b"{\"order\":1}".to_vec())
        .await
        .expect("submit");
    a.wait_sealed("schema-orders", &submitted.transaction_id, PATIENCE)
        .await;
    a.client
        .ban_with("10.9.9.0/24", Some("schema test"), Some("1h"), false)
        .await
        .expect("ban");

    let status = validates(&a, "status", &["status"]).await;
    validates(&a, "doctor", &["doctor"]).await;
    validates(&a, "peers-list", &["peers", "list"]).await;
    validates(&a, "peers-get", &["peers", "get", &b.peer_id]).await;
    validates(&a, "peers-bans", &["peers", "bans"]).await;
    validates(&a, "registers-list", &["registers", "list"]).await;
    validates(
        &b,
        "registers-subscriptions",
        &["registers", "subscriptions"],
    )
    .await;
    validates(&b, "registers-available", &["registers", "available"]).await;
    let tx = &submitted.transaction_id;
    validates(&a, "tx-get", &["tx", "get", "schema-orders", tx]).await;
    validates(&b, "lag", &["lag", "--against", &seed]).await;
    validates(&a, "event", &["events", "--limit", "50"]).await;

    // The schema can fail: a status without its peer ID is refused.
    let mut broken = status;
    broken.as_object_mut().expect("object").remove("peerId");
    let validator = schema("status").await;
    assert!(
        !validator.is_valid(&broken),
        "the status schema accepts a status without peerId"
    );
    b.stop().await;
    a.stop().await;
}
