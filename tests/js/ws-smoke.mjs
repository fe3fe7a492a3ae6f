#!/usr/bin/env node
// GraphQL-over-WebSocket smoke test with the real graphql-ws client
// (subprotocol `graphql-transport-ws`).
//
//   node tests/js/ws-smoke.mjs ws://127.0.0.1:PORT/graphql/ws <token>
//
// Connects with `connectionParams: { authorization: 'Bearer <token>' }`, runs
// the query `{ __typename }` over the socket (the protocol allows queries, not
// only subscriptions), prints every result, and exits 0 only if exactly
// {"data":{"__typename":"Query"}} arrived and the operation completed.
// Exit 1 on any other outcome (error, close, timeout), 2 on usage errors.

import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [wsUrl, token] = process.argv.slice(2);
if (!wsUrl || token === undefined || process.argv.length > 4) {
  console.error('usage: node ws-smoke.mjs <ws-url> <token>');
  process.exit(2);
}

const OVERALL_TIMEOUT_MS = 10_000;
const EXPECTED = JSON.stringify({ data: { __typename: 'Query' } });

// Errors handed to the sink can be an Error, a close event or an array of
// GraphQL errors: render each readably.
function describeError(err) {
  if (Array.isArray(err)) return `GraphQL errors: ${JSON.stringify(err)}`;
  if (err && typeof err === 'object' && 'code' in err && 'reason' in err) {
    return `socket closed: code ${err.code}, reason ${JSON.stringify(String(err.reason))}`;
  }
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  if (err && typeof err === 'object' && err.type === 'error') {
    // ws' ErrorEvent (e.g. ECONNREFUSED, or an HTTP status instead of 101)
    return `socket error: ${err.message ?? err.error?.message ?? 'unknown'}`;
  }
  try {
    return JSON.stringify(err);
  } catch {
    return String(err);
  }
}

const client = createClient({
  url: wsUrl,
  webSocketImpl: WebSocket,
  connectionParams: { authorization: `Bearer ${token}` },
  // A smoke test reports the first failure instead of retrying.
  retryAttempts: 0,
  shouldRetry: () => false,
  lazy: true,
});

let finished = false;
async function finish(code, message) {
  if (finished) return;
  finished = true;
  (code === 0 ? console.log : console.error)(`ws-smoke: ${message}`);
  // dispose() waits for the socket to close, which never happens on a hung
  // connection: give it a moment, then exit regardless.
  try {
    await Promise.race([client.dispose(), new Promise((resolve) => setTimeout(resolve, 500))]);
  } catch {
    // ignore: we are exiting anyway
  }
  process.exit(code);
}

const timer = setTimeout(
  () => finish(1, `FAIL: no complete result within ${OVERALL_TIMEOUT_MS / 1000} s`),
  OVERALL_TIMEOUT_MS,
);

const results = [];
client.subscribe(
  { query: '{ __typename }' },
  {
    next(result) {
      const text = JSON.stringify(result);
      console.log(`result: ${text}`);
      results.push(text);
    },
    error(err) {
      clearTimeout(timer);
      finish(1, `FAIL: ${describeError(err)}`);
    },
    complete() {
      clearTimeout(timer);
      if (results.length === 1 && results[0] === EXPECTED) {
        finish(0, `ok (${EXPECTED})`);
      } else {
        finish(1, `FAIL: expected exactly one result ${EXPECTED}, got ${results.length}: ${results.join(' ')}`);
      }
    },
  },
);
