#!/usr/bin/env node
// Token refresh through the real `graphql-ws` client:
//
//   node tests/js/ws-refresh.mjs <ws-url> <http-url> <admin-key> <subscriber-id> <sender-token> <chat-id>
//
// The client's `connectionParams` is a function that mints a token for the subscriber
// (the first one valid for 2 s, later ones for an hour), as an app refreshing its token
// would. The subscriber follows chatEvents(chatId); when the first token expires the server
// closes the socket with 4403, the client reconnects on its own with a fresh token and
// re-subscribes, and a message sent afterwards arrives.
// Exit 0 on success, 1 on any failure (with the reason), 2 on usage errors.

import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [wsUrl, httpUrl, adminKey, subscriberId, senderToken, chatId] = process.argv.slice(2);
if (!chatId) {
  console.error('usage: node ws-refresh.mjs <ws-url> <http-url> <admin-key> <subscriber-id> <sender-token> <chat-id>');
  process.exit(2);
}
const deadline = setTimeout(() => fail('timed out after 30 s'), 30_000);

function fail(reason) {
  console.error(`ws-refresh: FAIL: ${reason}`);
  process.exit(1);
}

async function graphql(headers, query, variables) {
  const response = await fetch(httpUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors) fail(`request failed: ${JSON.stringify(body.errors)}`);
  return body.data;
}

let tokensIssued = 0;
async function freshToken() {
  const ttl = tokensIssued === 0 ? 2 : 3600;
  tokensIssued += 1;
  const data = await graphql(
    { 'x-admin-key': adminKey },
    'mutation($u: ID!, $t: Int) { issueToken(userId: $u, ttlSeconds: $t) }',
    { u: subscriberId, t: ttl },
  );
  return data.issueToken;
}

const send = (content) => graphql(
  { authorization: `Bearer ${senderToken}` },
  'mutation($c: ID!, $t: String!) { sendMessage(input: {chatId: $c, content: $t}) { id } }',
  { c: chatId, t: content },
);

const closes = [];
let connections = 0;
const client = createClient({
  url: wsUrl,
  webSocketImpl: WebSocket,
  retryAttempts: 5,
  retryWait: () => new Promise((resolve) => setTimeout(resolve, 100)),
  connectionParams: async () => ({ authorization: `Bearer ${await freshToken()}` }),
  on: {
    connected: () => { connections += 1; },
    closed: (event) => closes.push({ code: event.code, reason: event.reason }),
  },
});

const received = [];
let waiting = null;
client.subscribe(
  {
    query: 'subscription($c: ID!) { chatEvents(chatId: $c) { __typename ... on MessageAdded { message { content } } } }',
    variables: { c: chatId },
  },
  {
    next(result) {
      if (result.errors) fail(`errors: ${JSON.stringify(result.errors)}`);
      const content = result.data?.chatEvents?.message?.content;
      if (content !== undefined) received.push(content);
      if (waiting) waiting();
    },
    error(err) { fail(`subscription error (the client gave up): ${JSON.stringify(err)}`); },
    complete() {},
  },
);
const arrival = (ms) => new Promise((resolve) => {
  const timer = setTimeout(() => { waiting = null; resolve(false); }, ms);
  waiting = () => { clearTimeout(timer); waiting = null; resolve(true); };
});

// Sends numbered probes until one arrives: the subscription is live (again).
async function untilLive(prefix) {
  for (let attempt = 0; attempt < 100; attempt++) {
    const marker = `${prefix}-${attempt}`;
    await send(marker);
    // The probe may arrive before the send's own HTTP response does: look before waiting.
    if (received.includes(marker)) return;
    while (await arrival(200)) {
      if (received.includes(marker)) return;
    }
  }
  fail(`the subscription never went live (${prefix}); closes: ${JSON.stringify(closes)}`);
}

await untilLive('before');
// The first token lapses within 2 s: wait for the server to close the socket for it.
while (closes.length === 0) await arrival(200);
const [first] = closes;
if (first.code !== 4403 || first.reason !== 'token expired') {
  fail(`expired token closed with ${first.code} "${first.reason}", expected 4403 "token expired"`);
}
received.length = 0;
await untilLive('after');
if (connections < 2 || tokensIssued < 2) {
  fail(`expected a reconnection with a fresh token: ${connections} connections, ${tokensIssued} tokens`);
}
console.log(`ws-refresh: ok: closed ${first.code} "${first.reason}", reconnected with token ${tokensIssued}`);
clearTimeout(deadline);
await Promise.race([client.dispose(), new Promise((r) => setTimeout(r, 500))]);
process.exit(0);
