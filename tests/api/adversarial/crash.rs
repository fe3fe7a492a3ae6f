//! Acknowledged sends under `kill -9`: a real `chatql serve` process is killed with
//! SIGKILL while several senders stream messages into one chat, restarted on the same
//! database, and every send that was not acknowledged is retried with its `clientId`.
//! Nothing acknowledged may be lost, nothing may be stored twice.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;

use crate::common::*;

/// Concurrent senders, one user each.
const SENDERS: usize = 6;
/// Sends each sender has in flight at once.
const IN_FLIGHT: usize = 4;
/// Sends each sender plans per cycle.
const SENDS_PER_SENDER: usize = 25;
/// The process is killed once this many sends of a cycle were acknowledged (well before
/// all `SENDERS * SENDS_PER_SENDER` were).
const KILL_AFTER: usize = 40;
/// Kill/restart cycles.
const CYCLES: usize = 3;
/// Bound on any wait of this test.
const BOUND: Duration = Duration::from_secs(60);

const SEND: &str = "mutation($c: ID!, $t: String!, $k: String!) {
  sendMessage(input: {chatId: $c, content: $t, clientId: $k}) { id content clientId }
}";

const PAGE: &str = "query($c: ID!, $after: String) {
  messages(chatId: $c, first: 100, after: $after) {
    nodes { id content clientId sender { id } }
    pageInfo { hasNextPage endCursor }
  }
}";

/// One planned send: its idempotency key and its text.
#[derive(Clone, Debug)]
struct Planned {
    client_id: String,
    content: String,
}

/// A stored message, as the API lists it.
#[derive(Debug)]
struct Stored {
    id: String,
    content: String,
    sender: String,
}

/// Sends `planned`; the message id if the
/// server acknowledged the send (a 200 carrying the message), `None` otherwise.
async fn try_send(client: &Client, chat: &str, planned: &Planned) -> Option<String> {
    let response = client
        .send(
            SEND,
            json!({"c": chat, "t": planned.content, "k": planned.client_id}),
        )
        .await
        .ok()?;
    let message = &response.body["data"]["sendMessage"];
    let acknowledged = response.status == 200
        && response.errors().is_empty()
        && message["content"] == planned.content.as_str()
        && message["clientId"] == planned.client_id.as_str();
    acknowledged
        .then(|| message["id"].as_str().map(str::to_owned))
        .flatten()
}

/// Sends `plan`, `IN_FLIGHT` at a time, telling `acks` of each acknowledgement; after the
/// first send that is not acknowledged (the server is gone) starts no more. Returns the
/// acknowledged sends' ids by `clientId`.
async fn send_until_refused(
    client: Client,
    chat: String,
    plan: Vec<Planned>,
    acks: mpsc::UnboundedSender<()>,
) -> Vec<(String, String)> {
    use futures_util::StreamExt;
    let (client, chat) = (&client, &chat);
    let mut outcomes = futures_util::stream::iter(plan)
        .map(|planned| async move {
            let id = try_send(client, chat, &planned).await;
            (planned.client_id, id)
        })
        .buffer_unordered(IN_FLIGHT);
    let mut acknowledged = Vec::new();
    while let Some((client_id, id)) = outcomes.next().await {
        match id {
            Some(id) => {
                acknowledged.push((client_id, id));
                let _ = acks.send(());
            }
            None => break,
        }
    }
    // Sends still in flight have no answer the test waits for: they count as not
    // acknowledged, like every send that never started.
    acknowledged
}

/// Every message of `chat` with a `clientId`, by `clientId`; fails on a `clientId` stored
/// twice.
async fn stored_by_client_id(client: &Client, chat: &str) -> TestResult<HashMap<String, Stored>> {
    let mut stored = HashMap::new();
    let mut after: Option<String> = None;
    loop {
        let data = client.ok(PAGE, json!({"c": chat, "after": after})).await?;
        let page = &data["messages"];
        for node in page["nodes"].as_array().ok_or("no nodes")? {
            let Some(client_id) = node["clientId"].as_str() else {
                continue;
            };
            let message = Stored {
                id: str_at(node, "/id")?,
                content: str_at(node, "/content")?,
                sender: str_at(node, "/sender/id")?,
            };
            if let Some(first) = stored.insert(client_id.to_owned(), message) {
                return Err(
                    format!("clientId {client_id} is stored twice (first as {first:?})").into(),
                );
            }
        }
        if page["pageInfo"]["hasNextPage"] != true {
            return Ok(stored);
        }
        after = Some(str_at(page, "/pageInfo/endCursor")?);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_sends_survive_kill_9_exactly_once() -> TestResult {
    let db = TestDb::new().await?;
    let mut server = ServerProcess::start(&db.url, db.dir.path()).await?;
    let owner = server.user("owner").await?;
    let mut senders = Vec::new();
    for i in 0..SENDERS {
        senders.push(server.user(&format!("sender{i}")).await?);
    }
    let ids: Vec<&str> = senders.iter().map(|s| s.id.as_str()).collect();
    let data = server
        .client(&owner)
        .ok(
            "mutation($m: [ID!]) { createChat(input: {kind: GROUP, name: \"crash\", memberIds: $m}) { id } }",
            json!({"m": ids}),
        )
        .await?;
    let chat = str_at(&data, "/createChat/id")?;

    // Every send planned so far, by clientId, with its sender; and the message id of each
    // acknowledged one.
    let mut planned: BTreeMap<String, (usize, Planned)> = BTreeMap::new();
    let mut acknowledged: BTreeMap<String, String> = BTreeMap::new();

    for cycle in 0..CYCLES {
        let plans: Vec<Vec<Planned>> = (0..SENDERS)
            .map(|s| {
                (0..SENDS_PER_SENDER)
                    .map(|n| Planned {
                        client_id: format!("c{cycle}-s{s}-{n}"),
                        content: format!("cycle {cycle}, sender {s}, message {n}"),
                    })
                    .collect()
            })
            .collect();
        for (s, plan) in plans.iter().enumerate() {
            for p in plan {
                planned.insert(p.client_id.clone(), (s, p.clone()));
            }
        }

        // Stream, and kill the process mid-stream once KILL_AFTER sends were acknowledged.
        let (acks, mut acked) = mpsc::unbounded_channel();
        let tasks: Vec<_> = plans
            .iter()
            .enumerate()
            .map(|(s, plan)| {
                tokio::spawn(send_until_refused(
                    server.client(&senders[s]),
                    chat.clone(),
                    plan.clone(),
                    acks.clone(),
                ))
            })
            .collect();
        drop(acks);
        for _ in 0..KILL_AFTER {
            tokio::time::timeout(BOUND, acked.recv())
                .await?
                .ok_or("the senders stopped before the kill")?;
        }
        server.kill9()?;
        let mut this_cycle = 0;
        for task in tasks {
            for (client_id, id) in tokio::time::timeout(BOUND, task).await?? {
                acknowledged.insert(client_id, id);
                this_cycle += 1;
            }
        }
        assert!(
            this_cycle >= KILL_AFTER,
            "cycle {cycle}: {this_cycle} acknowledged"
        );
        let unacknowledged: Vec<(usize, Planned)> = plans
            .iter()
            .enumerate()
            .flat_map(|(s, plan)| plan.iter().map(move |p| (s, p.clone())))
            .filter(|(_, p)| !acknowledged.contains_key(&p.client_id))
            .collect();
        assert!(
            !unacknowledged.is_empty(),
            "cycle {cycle}: the kill came after every send was acknowledged"
        );

        // Restart on the same database and retry what was not acknowledged, each sender's
        // retries in order, the senders concurrently.
        server = ServerProcess::start(&db.url, db.dir.path()).await?;
        // Before any retry: everything acknowledged is there, under its id, once.
        let survived = stored_by_client_id(&server.client(&owner), &chat).await?;
        for (client_id, id) in &acknowledged {
            let message = survived
                .get(client_id)
                .ok_or_else(|| format!("cycle {cycle}: acknowledged {client_id} was lost"))?;
            assert_eq!(&message.id, id, "{client_id} is stored under another id");
        }
        let mut retries: Vec<Vec<Planned>> = vec![Vec::new(); SENDERS];
        for (s, p) in unacknowledged {
            retries[s].push(p);
        }
        let tasks: Vec<_> = retries
            .into_iter()
            .enumerate()
            .map(|(s, plan)| {
                let client = server.client(&senders[s]);
                let chat = chat.clone();
                tokio::spawn(async move {
                    let mut done = Vec::new();
                    for p in plan {
                        let id = try_send(&client, &chat, &p)
                            .await
                            .ok_or_else(|| format!("the retry of {} failed", p.client_id))?;
                        done.push((p.client_id, id));
                    }
                    Ok::<_, String>(done)
                })
            })
            .collect();
        for task in tasks {
            for (client_id, id) in tokio::time::timeout(BOUND, task).await??? {
                acknowledged.insert(client_id, id);
            }
        }
        // A repeated clientId of a send acknowledged before the kill is still answered with
        // its original message.
        if let Some((client_id, id)) = acknowledged
            .iter()
            .find(|(k, _)| k.starts_with(&format!("c{cycle}-")))
        {
            let (s, p) = &planned[client_id];
            let again = try_send(&server.client(&senders[*s]), &chat, p).await;
            assert_eq!(again.as_ref(), Some(id), "resending {client_id}");
        }

        // Every planned send is stored exactly once, each acknowledged one as acknowledged.
        let stored = stored_by_client_id(&server.client(&owner), &chat).await?;
        assert_eq!(
            stored.len(),
            planned.len(),
            "cycle {cycle}: stored sends vs planned sends"
        );
        for (client_id, (s, p)) in &planned {
            let message = stored
                .get(client_id)
                .ok_or_else(|| format!("cycle {cycle}: {client_id} was lost"))?;
            assert_eq!(message.content, p.content, "{client_id}");
            assert_eq!(message.sender, senders[*s].id, "{client_id}");
            let id = acknowledged
                .get(client_id)
                .ok_or_else(|| format!("{client_id} was never acknowledged"))?;
            assert_eq!(&message.id, id, "{client_id} is stored under another id");
        }
    }
    Ok(())
}
