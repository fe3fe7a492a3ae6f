#!/usr/bin/env node
// Apollo Client 4 against the real server, as a frontend would use it:
//
//   node tests/js/apollo.mjs <http-url> <alice-token> <bob-token> <chat-id>
//
// Alice and Bob are members of the chat; it holds no messages yet.
// 1. Normalized cache: the README's walkthrough operations keep Apollo's InMemoryCache
//    fresh without refetching — markRead updates the cached chat list's unreadCount,
//    editMessage/retractMessage update the cached page of messages.
// 2. Automatic persisted queries (PersistedQueryLink): an unknown hash is answered
//    PersistedQueryNotFound, the link resends with the query, and afterwards the hash
//    alone runs the query — over POST and over GET (useGETForHashedQueries).
// 3. Batching (BatchHttpLink): concurrent operations leave as one HTTP request holding
//    an array, and each gets its own result.
// Exit 0 with "apollo: ok" on success, 1 on any failure (with the reason), 2 on usage errors.

import { createHash } from 'node:crypto';
import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { BatchHttpLink } from '@apollo/client/link/batch-http';
import { PersistedQueryLink } from '@apollo/client/link/persisted-queries';

const [httpUrl, aliceToken, bobToken, chatId] = process.argv.slice(2);
if (!chatId) {
  console.error('usage: node apollo.mjs <http-url> <alice-token> <bob-token> <chat-id>');
  process.exit(2);
}
const deadline = setTimeout(() => fail('timed out after 30 s'), 30_000);

function fail(reason) {
  console.error(`apollo: FAIL: ${reason}`);
  process.exit(1);
}

function check(condition, what) {
  if (!condition) fail(what);
}

/** A `fetch` that records each request's method and body (parsed) before sending it. */
function recordingFetch(log) {
  return async (url, init = {}) => {
    const method = (init.method ?? 'GET').toUpperCase();
    const target = new URL(url, httpUrl);
    let body = null;
    if (method === 'POST') body = JSON.parse(init.body);
    else {
      body = Object.fromEntries(target.searchParams.entries());
      if (body.extensions) body.extensions = JSON.parse(body.extensions);
    }
    const response = await fetch(target, init);
    log.push({ method, body, status: response.status });
    return response;
  };
}

function client(link) {
  return new ApolloClient({ link, cache: new InMemoryCache() });
}

function http(token, log, options = {}) {
  return new HttpLink({
    uri: httpUrl,
    headers: { authorization: `Bearer ${token}` },
    fetch: recordingFetch(log),
    ...options,
  });
}

const sha256 = (text) => createHash('sha256').update(text).digest('hex');

// The README's walkthrough operations, as written there.
const SAY = gql`
  mutation Say($chat: ID!, $text: String!) {
    sendMessage(input: { chatId: $chat, content: $text }) {
      id createdAt status chat { id lastActivityAt lastMessage { id } }
    }
  }
`;
const RECENT = gql`
  query Recent($chat: ID!) {
    messages(chatId: $chat, last: 20) {
      edges { cursor node { id content sender { id username } editedAt retracted status } }
      pageInfo { hasPreviousPage startCursor }
    }
  }
`;
const MY_CHATS = gql`
  query MyChats { chats { nodes { id name unreadCount lastMessage { id content } } } }
`;
const READ = gql`
  mutation Read($chat: ID!) {
    markRead(chatId: $chat) { id unreadCount lastReadMessageId chat { id unreadCount } }
  }
`;
const FIX = gql`
  mutation Fix($id: ID!) { editMessage(id: $id, content: "Pizza at 12:30?") { id content editedAt } }
`;
const UNSAY = gql`
  mutation Unsay($id: ID!) { retractMessage(id: $id) { id retracted content } }
`;
const WHO_AM_I = gql`query WhoAmI { me { id username } }`;
const FIND_PEOPLE = gql`query FindPeople { users(search: "o") { nodes { id username } } }`;

// --- 1. Normalized cache ------------------------------------------------------------
{
  const aliceLog = [];
  const alice = client(http(aliceToken, aliceLog));
  const bobLog = [];
  const bob = client(http(bobToken, bobLog));

  const sent = [];
  for (const text of ['Pizza at 12?', 'Or sushi?']) {
    const { data } = await alice.mutate({ mutation: SAY, variables: { chat: chatId, text } });
    sent.push(data.sendMessage.id);
  }

  const before = await bob.query({ query: MY_CHATS });
  const listed = before.data.chats.nodes.find((c) => c.id === chatId);
  check(listed?.unreadCount === 2, `bob's chat list: unreadCount ${listed?.unreadCount}, expected 2`);

  const read = await bob.mutate({ mutation: READ, variables: { chat: chatId } });
  check(read.data.markRead.unreadCount === 0, 'markRead did not answer unreadCount 0');
  const requestsBefore = bobLog.length;
  const cached = bob.readQuery({ query: MY_CHATS });
  const fresh = cached.chats.nodes.find((c) => c.id === chatId);
  check(fresh.unreadCount === 0, `cached chat list still says unreadCount ${fresh.unreadCount} after markRead`);
  check(bobLog.length === requestsBefore, 'reading the cache went to the network');
  const memberKey = bob.cache.identify(read.data.markRead);
  check(memberKey && memberKey.startsWith('Member:'), `the membership is not normalized (${memberKey})`);

  await alice.query({ query: RECENT, variables: { chat: chatId } });
  await alice.mutate({ mutation: FIX, variables: { id: sent[0] } });
  let page = alice.readQuery({ query: RECENT, variables: { chat: chatId } });
  const edited = page.messages.edges.find((e) => e.node.id === sent[0]).node;
  check(edited.content === 'Pizza at 12:30?' && edited.editedAt, 'cached page did not take the edit');
  await alice.mutate({ mutation: UNSAY, variables: { id: sent[1] } });
  page = alice.readQuery({ query: RECENT, variables: { chat: chatId } });
  const retracted = page.messages.edges.find((e) => e.node.id === sent[1]).node;
  check(retracted.retracted === true && retracted.content === '', 'cached page did not take the retraction');
  console.log('normalized cache: ok');
}

// --- 2. Automatic persisted queries ---------------------------------------------------
{
  const log = [];
  const link = new PersistedQueryLink({ sha256 }).concat(http(aliceToken, log));
  const alice = client(link);
  const first = await alice.query({ query: WHO_AM_I, fetchPolicy: 'network-only' });
  check(first.data.me.username === 'alice', `WhoAmI answered ${JSON.stringify(first.data)}`);
  check(log.length === 2, `first APQ run took ${log.length} requests, expected 2`);
  check(!log[0].body.query && log[0].body.extensions?.persistedQuery, 'first request was not hash-only');
  check(log[1].body.query && log[1].body.extensions?.persistedQuery, 'retry did not carry the query and its hash');
  const second = await alice.query({ query: WHO_AM_I, fetchPolicy: 'network-only' });
  check(second.data.me.username === 'alice', 'hash-only run answered wrongly');
  check(log.length === 3 && !log[2].body.query, 'second run was not one hash-only request');
  check(log[2].status === 200, `hash-only run answered ${log[2].status}`);

  const getLog = [];
  const getLink = new PersistedQueryLink({ sha256, useGETForHashedQueries: true })
    .concat(http(aliceToken, getLog));
  const viaGet = client(getLink);
  const people = await viaGet.query({ query: FIND_PEOPLE, fetchPolicy: 'network-only' });
  check(people.data.users.nodes.some((u) => u.username === 'bob'), 'FindPeople over GET missed bob');
  check(getLog[0].method === 'GET' && !getLog[0].body.query, 'first GET was not hash-only');
  const again = await viaGet.query({ query: FIND_PEOPLE, fetchPolicy: 'network-only' });
  check(again.data.users.nodes.length === people.data.users.nodes.length, 'second GET answered differently');
  const last = getLog[getLog.length - 1];
  check(last.method === 'GET' && !last.body.query && last.status === 200, 'known hash over GET did not run alone');
  console.log(`persisted queries: ok (POST ${log.length} requests, GET ${getLog.length})`);
}

// --- 3. Batching --------------------------------------------------------------------
{
  const log = [];
  const link = new BatchHttpLink({
    uri: httpUrl,
    headers: { authorization: `Bearer ${aliceToken}` },
    fetch: recordingFetch(log),
    batchMax: 10,
    batchInterval: 20,
  });
  const alice = client(link);
  const [me, chats, recent, said] = await Promise.all([
    alice.query({ query: WHO_AM_I }),
    alice.query({ query: MY_CHATS }),
    alice.query({ query: RECENT, variables: { chat: chatId } }),
    alice.mutate({ mutation: SAY, variables: { chat: chatId, text: 'batched' } }),
  ]);
  check(me.data.me.username === 'alice', 'batched WhoAmI answered wrongly');
  check(chats.data.chats.nodes.some((c) => c.id === chatId), 'batched MyChats missed the chat');
  check(recent.data.messages.edges.length === 2, `batched Recent saw ${recent.data.messages.edges.length} messages`);
  check(said.data.sendMessage.id, 'batched sendMessage gave no id');
  check(log.length === 1, `batch left as ${log.length} requests, expected 1`);
  check(Array.isArray(log[0].body) && log[0].body.length === 4, 'the request body was not an array of 4');
  console.log('batching: ok');
}

clearTimeout(deadline);
console.log('apollo: ok');
