//! Lag (`service::lag`) reports each way it can fail by its cause, as the admin API's status:
//! a malformed address, a node that cannot be reached, a register the other node does not
//! advertise; and measures a node that can be asked.

use sorcha_peer::client::ClientError;

use crate::common::{TestCluster, cli};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_failures_are_reported_by_cause() {
    let mut net = TestCluster::new();
    let a = net.start(|_| {}).await;
    let (code, _, err) = cli(&a, &["registers", "create", "orders", "--public"]).await;
    assert_eq!(code, 0, "{err}");

    match a.client.lag("no port here", None).await {
        Err(ClientError::BadRequest(message)) => assert!(!message.is_empty()),
        other => panic!("a malformed address is the operator's mistake: {other:?}"),
    }

    // Nothing listens on port 1.
    match a.client.lag(&format!("{}:1", net.ip()), None).await {
        Err(ClientError::RemoteUnreachable(message)) => {
            assert!(
                message.contains("cannot connect to ") && message.contains(":1"),
                "{message}"
            )
        }
        other => panic!("an unreachable node is a gateway failure: {other:?}"),
    }

    match a.client.lag(&a.seed(), Some("nope")).await {
        Err(ClientError::NotFound(message)) => assert!(
            message.contains("does not advertise register 'nope'"),
            "{message}"
        ),
        other => panic!("a register the other node lacks is not found: {other:?}"),
    }

    // Against itself: held, nothing behind, no fork.
    let rows = a.client.lag(&a.seed(), Some("orders")).await.expect("lag");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row.register_id, "orders");
    assert!(row.held_locally);
    assert_eq!((row.dockets_behind, row.transactions_behind), (0, 0));
    assert!(!row.diverged);
}
