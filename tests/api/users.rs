//! Users and identity: admin-key management, tokens, `me`, lookups.

use serde_json::json;

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn admin_creates_a_user_who_can_query_me() -> TestResult {
    let server = TestServer::start().await?;
    let alice = server.user("alice").await?;
    let data = server
        .client(&alice)
        .ok("{ me { id username displayName isBot } }", json!({}))
        .await?;
    assert_eq!(str_at(&data, "/me/id")?, alice.id);
    assert_eq!(str_at(&data, "/me/username")?, "alice");
    Ok(())
}
