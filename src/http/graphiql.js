// chatql's GraphiQL page: mounts the vendored GraphiQL with a fetcher of its own.
//
// Why not GraphiQL.createFetcher: its graphql-ws client retries a socket the server refused
// (4403) without telling anyone, so a subscription without a valid token spins silently. This
// fetcher speaks graphql-transport-ws itself, one socket per subscription, sends the headers
// pane's `Authorization` in `connection_init` (the key the server reads) and shows the
// server's close code and reason in the result pane.
(() => {
  'use strict';

  const root = document.getElementById('graphiql');
  if (!window.React || !window.ReactDOM || !window.GraphiQL) {
    root.className = 'chatql-failed';
    root.textContent =
      'GraphiQL did not load: its scripts were blocked or did not match their integrity ' +
      'digests. Reload the page; if it persists, see the server log.';
    return;
  }

  const endpoint = new URL(root.dataset.endpoint || '/graphql', window.location.href);
  const socketUrl = new URL(endpoint);
  socketUrl.protocol = endpoint.protocol === 'https:' ? 'wss:' : 'ws:';

  const PLACEHOLDER = 'Bearer <token>';
  const DEFAULT_QUERY = `# Welcome to chatql.
#
# Every request carries the headers of the Headers pane below: replace <token> in
#   {"Authorization": "Bearer <token>"}
# with a token from
#   chatql token --user <name> --create
# or, from an application backend (header X-Admin-Key), the admin mutation
#   mutation { issueToken(userId: "<user id>", ttlSeconds: 3600) }
# Subscriptions send the same Authorization in graphql-ws connection_init; if the
# server refuses the socket, its close code and reason show on the right.

query WhoAmI {
  me {
    id
    username
  }
}
`;

  // The headers pane's headers, without the untouched placeholder: sent as is it would make
  // every request UNAUTHENTICATED, the schema's introspection included.
  function headersOf(options) {
    const given = (options && options.headers) || {};
    const headers = {};
    for (const [name, value] of Object.entries(given)) {
      if (name.toLowerCase() === 'authorization' && String(value).includes('<token>')) continue;
      headers[name] = String(value);
    }
    return headers;
  }

  function authorizationOf(headers) {
    const name = Object.keys(headers).find((n) => n.toLowerCase() === 'authorization');
    return name === undefined ? undefined : headers[name];
  }

  function isSubscription(params, options) {
    const document = options && options.documentAST;
    if (document && Array.isArray(document.definitions)) {
      const operations = document.definitions.filter((d) => d.kind === 'OperationDefinition');
      const chosen = params.operationName
        ? operations.find((o) => o.name && o.name.value === params.operationName)
        : operations[0];
      return Boolean(chosen) && chosen.operation === 'subscription';
    }
    // No parsed document (e.g. the schema's introspection): only a leading keyword tells.
    return /^\s*subscription\b/.test(String(params.query || '').replace(/#[^\n]*/g, ''));
  }

  async function overHttp(params, headers) {
    let response;
    try {
      response = await fetch(endpoint, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          Accept: 'application/graphql-response+json, application/json;q=0.9',
          ...headers,
        },
        body: JSON.stringify(params),
      });
    } catch (e) {
      return { errors: [{ message: `The request failed: ${e.message}` }] };
    }
    const text = await response.text();
    try {
      return JSON.parse(text);
    } catch (e) {
      return { errors: [{ message: `HTTP ${response.status}: ${text}` }] };
    }
  }

  // An observable (what GraphiQL accepts for streams) over one graphql-transport-ws socket.
  function overSocket(params, headers) {
    return {
      subscribe(observer) {
        const socket = new WebSocket(socketUrl, 'graphql-transport-ws');
        let done = false;
        const finish = (last) => {
          if (done) return;
          done = true;
          if (last) observer.next(last);
          observer.complete();
        };
        const send = (message) => socket.send(JSON.stringify(message));
        socket.onopen = () => {
          const authorization = authorizationOf(headers);
          send({
            type: 'connection_init',
            payload: authorization === undefined ? {} : { authorization },
          });
        };
        socket.onmessage = (event) => {
          let message;
          try {
            message = JSON.parse(event.data);
          } catch (e) {
            return;
          }
          switch (message.type) {
            case 'connection_ack':
              send({ id: '1', type: 'subscribe', payload: params });
              break;
            case 'ping':
              send({ type: 'pong' });
              break;
            case 'next':
              if (!done) observer.next(message.payload);
              break;
            case 'error':
              finish({ errors: message.payload });
              socket.close(1000);
              break;
            case 'complete':
              finish();
              socket.close(1000);
              break;
            default:
              break;
          }
        };
        socket.onclose = (event) => {
          const reason = event.reason || '(no reason given)';
          finish({
            errors: [
              {
                message: `The server closed the socket: ${event.code} ${reason}`,
                extensions: { closeCode: event.code, closeReason: event.reason },
              },
            ],
          });
        };
        return {
          unsubscribe() {
            if (done) return;
            done = true;
            if (socket.readyState === WebSocket.OPEN) send({ id: '1', type: 'complete' });
            socket.close(1000);
          },
        };
      },
    };
  }

  function fetcher(params, options) {
    const headers = headersOf(options);
    return isSubscription(params, options) ? overSocket(params, headers) : overHttp(params, headers);
  }

  // `/graphql?query=…` opened in a browser lands here with its query in the editor (not run).
  const search = new URLSearchParams(window.location.search);
  const props = {
    fetcher,
    defaultQuery: DEFAULT_QUERY,
    defaultHeaders: JSON.stringify({ Authorization: PLACEHOLDER }, null, 2),
    defaultEditorToolsVisibility: 'headers',
    // Tokens are not written to localStorage (GraphiQL's default, stated for the reader).
    shouldPersistHeaders: false,
  };
  if (search.get('query')) props.query = search.get('query');
  if (search.get('variables')) props.variables = search.get('variables');
  window.ReactDOM.createRoot(root).render(window.React.createElement(window.GraphiQL, props));
})();
