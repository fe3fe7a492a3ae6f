#!/usr/bin/env node
// A chat subscription through the real `graphql-ws` client (graphql-transport-ws):
//
//   node tests/js/ws-chat.mjs <ws-url> <http-url> <subscriber-token> <sender-token> <chat-id>
//
// 1. A forged token: the client must see the socket closed with 4403.
// 2. The subscriber follows chatEvents(chatId); once a probe message arrives (the
//    subscription is live), five messages are sent over HTTP and must arrive in order.
// Exit 0 on success, 1 on any failure (with the reason), 2 on usage errors.

import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [wsUrl, httpUrl, subscriberToken, senderToken, chatId] = process.argv.slice(2);
if (!chatId) {
  console.error('usage: node ws-chat.mjs <ws-url> <http-url> <subscriber-token> <sender-token> <chat-id>');
  process.exit(2);
}
const deadline = setTimeout(() => fail('timed out after 20 s'), 20_000);

function fail(reason) {
  console.error(`ws-chat: FAIL: ${reason}`);
  process.exit(1);
}

async function send(content) {
  const response = await fetch(httpUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${senderToken}` },
    body: JSON.stringify({
      query: 'mutation($c: ID!, $t: String!) { sendMessage(input: {chatId: $c, content: $t}) { id } }',
      variables: { c: chatId, t: content },
    }),
  });
  const body = await response.json();
  if (body.errors) fail(`send failed: ${JSON.stringify(body.errors)}`);
}

// 1. Forged credentials close the socket with 4403 Forbidden.
const closeCode = await new Promise((resolve) => {
  const client = createClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    connectionParams: { authorization: 'Bearer forged' },
    on: { closed: (event) => resolve(event.code) },
  });
  client.subscribe({ query: '{ __typename }' }, { next() {}, error() {}, complete() {} });
});
if (closeCode !== 4403) fail(`forged token closed with ${closeCode}, expected 4403`);
console.log('forged token: closed with 4403');

// 2. A live chat feed.
const client = createClient({
  url: wsUrl,
  webSocketImpl: WebSocket,
  retryAttempts: 0,
  connectionParams: { authorization: `Bearer ${subscriberToken}` },
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
    error(err) { fail(`subscription error: ${JSON.stringify(err)}`); },
    complete() {},
  },
);
const arrival = (ms) => new Promise((resolve) => {
  const timer = setTimeout(() => { waiting = null; resolve(false); }, ms);
  waiting = () => { clearTimeout(timer); waiting = null; resolve(true); };
});

let live = false;
for (let attempt = 0; attempt < 50 && !live; attempt++) {
  const marker = `probe-${attempt}`;
  await send(marker);
  // The probe may arrive before the send's own HTTP response does: look before waiting.
  live = received.includes(marker);
  while (!live && await arrival(200)) live = received.includes(marker);
}
if (!live) fail('the subscription never went live');
received.length = 0;
const expected = ['one', 'two', 'three', 'four', 'five'];
for (const text of expected) await send(text);
while (received.length < expected.length) {
  if (!(await arrival(5_000))) fail(`only got ${JSON.stringify(received)}`);
}
if (JSON.stringify(received) !== JSON.stringify(expected)) {
  fail(`got ${JSON.stringify(received)}, expected ${JSON.stringify(expected)}`);
}
console.log(`ws-chat: ok: ${received.join(', ')}`);
clearTimeout(deadline);
await Promise.race([client.dispose(), new Promise((r) => setTimeout(r, 500))]);
process.exit(0);
