#!/usr/bin/env node
// GraphQL-over-HTTP conformance: runs every server audit shipped by
// graphql-http against a running GraphQL endpoint.
//
//   node tests/js/http-audits.mjs http://127.0.0.1:PORT/graphql
//
// Prints one line per audit (status, id, name, reason) and a summary per
// requirement level (MUST / SHOULD / MAY). Exit code: 0 when every audit is
// `ok`, 1 when any audit is not (`notice` = failed MAY, `warn` = failed
// SHOULD, `error` = failed MUST; we aim at all of them), 2 on usage errors.
//
// Note: Node's fetch (undici) adds `accept: */*` when no Accept header is
// given, and `content-type: text/plain;charset=UTF-8` for a string body without
// a Content-Type; the audits that "omit" those headers really send these.

import { serverAudits } from 'graphql-http';

const url = process.argv[2];
if (!url || process.argv.length > 3) {
  console.error('usage: node http-audits.mjs <graphql-endpoint-url>');
  process.exit(2);
}
try {
  new URL(url);
} catch {
  console.error(`http-audits: not a URL: ${url}`);
  process.exit(2);
}

// A hung server must not hang the audit run: bound every request.
const REQUEST_TIMEOUT_MS = 10_000;
const fetchFn = (input, init = {}) =>
  fetch(input, { ...init, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });

// Short description of a failing response, so a failure is debuggable from the
// log alone. `response` is still unread (or a clone) in graphql-http's results.
async function describe(response) {
  if (!response) return '';
  let body = '';
  try {
    body = await response.text();
  } catch (err) {
    body = `<unreadable body: ${err?.message ?? err}>`;
  }
  body = body.replace(/\s+/g, ' ');
  if (body.length > 300) body = body.slice(0, 300) + '…';
  const ct = response.headers?.get('content-type') ?? '<none>';
  return ` [HTTP ${response.status}, content-type: ${ct}, body: ${body || '<empty>'}]`;
}

const audits = serverAudits({ url, fetchFn });
const levels = ['MUST', 'SHOULD', 'MAY'];
const counts = Object.fromEntries(levels.map((l) => [l, { ok: 0, notice: 0, warn: 0, error: 0 }]));
let notOk = 0;

async function runAudit(audit) {
  try {
    const result = await audit.fn();
    // Read a failing response now, before the request's timeout signal fires.
    if (result.status !== 'ok') result.detail = await describe(result.response);
    return result;
  } catch (err) {
    // graphql-http throws (instead of returning a failed result) only on
    // "fatal" problems: connection refused, timeout, etc. Count it as an error.
    return {
      id: audit.id,
      name: audit.name,
      status: 'error',
      reason: `fatal: ${err?.cause?.message ?? err?.message ?? String(err)}`,
    };
  }
}

// A few audits at a time: a hung server costs ~61/CONCURRENCY request
// timeouts instead of 61, without a burst of 61 connections at once. Results
// are printed in the library's order regardless.
const CONCURRENCY = 8;
const results = new Array(audits.length);
let next = 0;
await Promise.all(
  Array.from({ length: CONCURRENCY }, async () => {
    while (next < audits.length) {
      const i = next++;
      results[i] = await runAudit(audits[i]);
    }
  }),
);

for (const result of results) {
  const level = levels.find((l) => result.name.startsWith(l + ' ')) ?? 'MAY';
  counts[level][result.status] = (counts[level][result.status] ?? 0) + 1;
  if (result.status === 'ok') {
    console.log(`ok     ${result.id}  ${result.name}`);
  } else {
    notOk++;
    console.log(`${result.status.padEnd(6)} ${result.id}  ${result.name} -- ${result.reason}${result.detail ?? ''}`);
  }
}

console.log('');
console.log(`graphql-http ${audits.length} audits against ${url}`);
for (const l of levels) {
  const c = counts[l];
  const total = c.ok + c.notice + c.warn + c.error;
  console.log(`  ${l.padEnd(6)} ${total} audits: ${c.ok} ok, ${c.notice} notice, ${c.warn} warn, ${c.error} error`);
}
if (notOk === 0) {
  console.log('http-audits: all audits ok');
  process.exit(0);
} else {
  console.log(`http-audits: ${notOk} of ${audits.length} audits not ok`);
  process.exit(1);
}
