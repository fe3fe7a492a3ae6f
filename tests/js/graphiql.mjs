// GraphiQL in a real (headless) Chromium with the internet cut off: every request that does
// not go to loopback is aborted and recorded. Checks that the page renders from the server's
// own assets, that a query runs with a token typed into the headers pane, and that a
// subscription without a token shows the server's close code and reason.
//
//   node graphiql.mjs <http://127.0.0.1:port> <token> <username> [chromium path]
//
// Prints one JSON line with what it saw; exits non-zero (with the reason) on any failure.
import { chromium } from 'playwright-core';

const [base, token, username, executablePath = '/usr/bin/chromium'] = process.argv.slice(2);
if (!base || !token || !username) {
  console.error('usage: node graphiql.mjs <base url> <token> <username> [chromium path]');
  process.exit(2);
}

const TIMEOUT = 30_000;
const loopback = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);
const isLoopback = (url) => {
  const { protocol, hostname } = new URL(url);
  if (protocol === 'data:' || protocol === 'blob:' || protocol === 'about:') return true;
  return loopback.has(hostname);
};

// The page's Content-Security-Policy refuses off-origin loads before they reach the route
// below; a refusal is a console error, and the check requires there be none.
const offLoopback = [];
const requests = [];
const consoleErrors = [];
const seen = {};

const browser = await chromium.launch({
  executablePath,
  headless: true,
  // Root (CI containers) cannot use Chromium's sandbox.
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
});
try {
  const context = await browser.newContext();
  context.setDefaultTimeout(TIMEOUT);
  await context.route('**/*', (route) => {
    const url = route.request().url();
    requests.push(url);
    if (isLoopback(url)) return route.continue();
    offLoopback.push(url);
    return route.abort('internetdisconnected');
  });
  await context.routeWebSocket(/.*/, (ws) => {
    requests.push(ws.url());
    if (isLoopback(ws.url())) return ws.connectToServer();
    offLoopback.push(ws.url());
    return ws.close();
  });
  const page = await context.newPage();
  page.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push(message.text());
  });
  page.on('pageerror', (error) => consoleErrors.push(String(error)));

  await page.goto(`${base}/`);
  await page.locator('.graphiql-container').waitFor();
  await page.locator('.graphiql-query-editor .CodeMirror').waitFor();
  seen.banner = await page.locator('#chatql-banner').innerText();

  // The editors are CodeMirror 5 instances: read them through their API (only visible lines
  // are in the DOM).
  const editorText = (selector) =>
    page.evaluate((s) => {
      const editors = [...document.querySelectorAll(s)].map((e) => e.CodeMirror.getValue());
      return editors.join('\n');
    }, selector);
  const headersEditor = page
    .locator('.graphiql-editor-tool .CodeMirror')
    .filter({ hasText: 'Authorization' });
  await headersEditor.waitFor();
  seen.prefilledHeaders = await editorText('.graphiql-editor-tool .CodeMirror');

  // Replaces an editor's text as a user would: click, select all, type (inserted as text so
  // the editor's bracket closing and hints stay out of the way).
  const replace = async (locator, text) => {
    await locator.click();
    await page.keyboard.press('ControlOrMeta+A');
    await page.keyboard.insertText(text);
  };
  const queryEditor = page.locator('.graphiql-query-editor .CodeMirror');
  // GraphiQL reads the operation's name from the editor after a short debounce; the tab's
  // title showing it is the sign it did (clicking earlier would send the previous name).
  const run = async (operationName) => {
    await page.locator('.graphiql-tab-active', { hasText: operationName }).waitFor();
    await page.locator('.graphiql-execute-button').click();
  };
  const waitForResult = async (needle) => {
    seen.lastResult = () => editorText(".result-window .CodeMirror");
    await page.waitForFunction(
      (n) => {
        const result = document.querySelector('.result-window .CodeMirror');
        return Boolean(result) && result.CodeMirror.getValue().includes(n);
      },
      needle,
      { timeout: TIMEOUT },
    );
    return editorText('.result-window .CodeMirror');
  };

  // A query, with the token typed into the headers pane.
  await replace(headersEditor, JSON.stringify({ Authorization: `Bearer ${token}` }));
  seen.typedHeaders = await editorText('.graphiql-editor-tool .CodeMirror');
  await replace(queryEditor, 'query Me { me { username } }');
  await run('Me');
  seen.query = await editorText('.graphiql-query-editor .CodeMirror');
  seen.queryResult = await waitForResult(`"username": "${username}"`);

  // A subscription without a token: the socket is refused and the reason shows.
  await replace(headersEditor, '{}');
  await replace(queryEditor, 'subscription Inbox { myEvents { __typename } }');
  await run('Inbox');
  seen.subscriptionResult = await waitForResult('4403');

  seen.requests = requests;
  seen.offLoopback = offLoopback;
  seen.consoleErrors = consoleErrors;
  console.log(JSON.stringify(seen));
  if (offLoopback.length > 0) {
    console.error(`requests left loopback: ${offLoopback.join(', ')}`);
    process.exitCode = 1;
  }
} catch (error) {
  if (seen.lastResult) seen.lastResult = await seen.lastResult().catch(String);
  console.log(JSON.stringify({ ...seen, requests, offLoopback, consoleErrors }));
  console.error(`graphiql check failed: ${error.stack || error}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
