// TypeScript SDK client (@modelcontextprotocol/sdk) against the protected server.
//
//   node ts-sdk.mjs MODE MCP_URL
//
// MODE:
//   dcr                 authorization code + PKCE, dynamic client registration
//   cimd                authorization code + PKCE, client_id = a Client ID
//                       Metadata Document URL (RIG_CIMD_URL)
//   client-credentials  client credentials grant (RIG_CC_CLIENT_ID,
//                       RIG_CC_CLIENT_SECRET, registered beforehand)
//   step-up             dcr, then add_note: expects HTTP 403 insufficient_scope,
//                       re-authorization with the union of scopes, success
//   step-up-computed-late
//                       dcr, then read_note from the private folder (scope
//                       computed from the arguments before dispatch: 403
//                       naming notes:private) and export_notes (the handler
//                       asks for notes:export mid-call: late step-up); each
//                       must re-authorize with the challenged scopes and then
//                       return a tool result
//   exchange            dcr, then downstream_whoami twice (the server
//                       exchanges this client's token for a downstream
//                       token, RFC 8693) and seen_headers; each result is
//                       reported as is (isError and text), with the SHA-256
//                       of every access token this client held
//   exchange-consent    dcr, then downstream_whoami twice against a server
//                       whose downstream needs the user's consent: the
//                       first call meets HTTP 403 insufficient_scope naming
//                       the consent scope (the exchange was refused with
//                       consent_required), the SDK starts the
//                       re-authorization, this client finishes it and calls
//                       again, as in step-up; each call is reported with its
//                       challenges and authorizations, then seen_headers and
//                       the SHA-256 of every access token held
//
// The client knows nothing but MCP_URL: the SDK discovers the protected
// resource metadata and the authorization server from the 401 challenge.
// The "browser" is RIG_BROWSER (the rig's scripted user agent), launched with
// the authorization URL like a real client launches the system browser; the
// code comes back to this process's own loopback listener.
//
// Prints one line `RIG-RESULT {json}` on success; exits non-zero otherwise.

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import http from 'node:http';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { ClientCredentialsProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const [mode, mcpUrl] = process.argv.slice(2);
if (!mode || !mcpUrl) {
  console.error('usage: ts-sdk.mjs dcr|cimd|client-credentials|step-up|step-up-computed-late|exchange|exchange-consent MCP_URL');
  process.exit(2);
}

/** Every response the MCP endpoint gave: status and challenge, for the rig's checks. */
const exchanges = [];
const recordingFetch = async (url, init) => {
  const res = await fetch(url, init);
  if (String(url).startsWith(mcpUrl)) {
    exchanges.push({ status: res.status, wwwAuthenticate: res.headers.get('www-authenticate') ?? undefined });
  }
  return res;
};

/**
 * A loopback listener for the authorization redirect. Redirects are queued in
 * arrival order, so one that arrives before anyone waits is not lost.
 */
async function redirectListener() {
  const arrived = [];
  const waiting = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('You can close this window.');
    if (url.pathname !== '/callback') return;
    const next = waiting.shift();
    if (next) next(url); else arrived.push(url);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/callback`,
    next: () => {
      if (arrived.length > 0) return Promise.resolve(arrived.shift());
      return new Promise((resolve, reject) => {
        waiting.push(resolve);
        setTimeout(() => reject(new Error('no authorization redirect within 30s')), 30000).unref();
      });
    },
    close: () => server.close(),
  };
}

/** Launches the rig's browser with the authorization URL (like xdg-open). */
function openBrowser(url) {
  const browser = process.env.RIG_BROWSER;
  if (!browser) throw new Error('RIG_BROWSER is not set');
  const child = spawn(browser, [url.toString()], { stdio: ['ignore', 'ignore', 'inherit'] });
  child.on('exit', (code) => { if (code) console.error(`browser exited with ${code}`); });
}

/** An in-memory OAuthClientProvider for an interactive (authorization code) client. */
class InteractiveProvider {
  constructor(redirectUrl, clientMetadataUrl) {
    this._redirectUrl = redirectUrl;
    this.clientMetadataUrl = clientMetadataUrl;
    this.authorizationRequests = [];
    // SHA-256 of every access token saved (never the token).
    this.heldTokenSha256 = [];
  }

  get redirectUrl() { return this._redirectUrl; }

  get clientMetadata() {
    return {
      client_name: `rig ts-sdk ${mode}`,
      redirect_uris: [this._redirectUrl],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }

  clientInformation() { return this._client; }
  saveClientInformation(info) { this._client = info; }
  tokens() { return this._tokens; }
  saveTokens(tokens) {
    this._tokens = tokens;
    if (tokens?.access_token) {
      this.heldTokenSha256.push(createHash('sha256').update(tokens.access_token).digest('hex'));
    }
  }
  saveCodeVerifier(v) { this._verifier = v; }
  codeVerifier() { return this._verifier; }

  redirectToAuthorization(url) {
    this.authorizationRequests.push({
      scope: url.searchParams.get('scope'),
      resource: url.searchParams.get('resource'),
      clientId: url.searchParams.get('client_id'),
    });
    openBrowser(url);
  }
}

function toolText(result) {
  if (result.isError) throw new Error(`tool error: ${JSON.stringify(result.content)}`);
  return result.content.filter((c) => c.type === 'text').map((c) => c.text).join('');
}

async function connect(provider) {
  const client = new Client({ name: `rig-ts-sdk-${mode}`, version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider, fetch: recordingFetch });
  await client.connect(transport);
  return { client, transport };
}

/** Connects, running the interactive authorization when the server asks for it. */
async function connectInteractive(provider, listener) {
  const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider, fetch: recordingFetch });
  const client = new Client({ name: `rig-ts-sdk-${mode}`, version: '1.0.0' });
  try {
    await client.connect(transport);
    return { client, transport };
  } catch (err) {
    if (!(err instanceof UnauthorizedError)) throw err;
  }
  const callback = await listener.next();
  const code = callback.searchParams.get('code');
  if (!code) throw new Error(`authorization failed: ${callback.search}`);
  await transport.finishAuth(code);
  // A transport starts once; connect again with the tokens now in the provider.
  return connect(provider);
}

/**
 * Calls a tool on the session the first token opened. Without the scope, the
 * SDK meets the 403 insufficient_scope, starts a new authorization with the
 * scope the challenge names and throws UnauthorizedError; the code comes back
 * to the listener, and the call is made again with the new token. Returns the
 * result, and the challenges and authorizations this call caused.
 */
async function callWithStepUp(session, provider, listener, name, args) {
  const exchangesBefore = exchanges.length;
  const authorizationsBefore = provider.authorizationRequests.length;
  let result;
  try {
    result = await session.client.callTool({ name, arguments: args });
  } catch (err) {
    if (!(err instanceof UnauthorizedError) || provider.authorizationRequests.length === authorizationsBefore) {
      throw new Error(`${name} did not lead to re-authorization: ${err.message}`);
    }
    const callback = await listener.next();
    const code = callback.searchParams.get('code');
    if (!code) throw new Error(`step-up authorization for ${name} failed: ${callback.search}`);
    await session.transport.finishAuth(code);
    result = await session.client.callTool({ name, arguments: args });
  }
  return {
    tool: name,
    arguments: args,
    challenges: exchanges.slice(exchangesBefore).filter((e) => e.status === 403).map((e) => e.wwwAuthenticate),
    authorizations: provider.authorizationRequests.slice(authorizationsBefore),
    result,
  };
}

async function main() {
  const out = { mode, exchanges };
  let listener;
  let session;
  if (mode === 'client-credentials') {
    const provider = new ClientCredentialsProvider({
      clientId: process.env.RIG_CC_CLIENT_ID,
      clientSecret: process.env.RIG_CC_CLIENT_SECRET,
      clientName: 'rig ts-sdk client-credentials',
    });
    session = await connect(provider);
  } else {
    listener = await redirectListener();
    const cimdUrl = mode === 'cimd' ? process.env.RIG_CIMD_URL : undefined;
    if (mode === 'cimd' && !cimdUrl) throw new Error('RIG_CIMD_URL is not set');
    const provider = new InteractiveProvider(listener.url, cimdUrl);
    session = await connectInteractive(provider, listener);
    out.authorizationRequests = provider.authorizationRequests;
    out.clientId = provider.clientInformation()?.client_id;

    if (mode === 'step-up') {
      const added = await callWithStepUp(session, provider, listener, 'add_note', { text: 'from the rig' });
      out.addNote = toolText(added.result);
      out.authorizationRequests = provider.authorizationRequests;
    }
    if (mode === 'step-up-computed-late') {
      // The scope read_note needs is computed from its arguments (the private
      // folder adds notes:private); export_notes learns mid-call that it
      // needs notes:export. Both are a real 403 the SDK answers.
      out.steps = [];
      for (const [name, args] of [['read_note', { id: 1, folder: 'private' }], ['export_notes', {}]]) {
        const step = await callWithStepUp(session, provider, listener, name, args);
        out.steps.push({ ...step, result: JSON.parse(toolText(step.result)) });
      }
      out.authorizationRequests = provider.authorizationRequests;
    }
    if (mode === 'exchange-consent') {
      // The TypeScript SDK answers the 403 by starting the authorization for
      // the challenged scopes and throwing UnauthorizedError; it does not
      // retry the call itself, so callWithStepUp finishes the authorization
      // and calls again (as for add_note in step-up).
      const text = (r) => r.content.filter((c) => c.type === 'text').map((c) => c.text).join('');
      out.downstream = [];
      for (let i = 0; i < 2; i += 1) {
        const step = await callWithStepUp(session, provider, listener, 'downstream_whoami', {});
        out.downstream.push({
          isError: step.result.isError === true,
          text: text(step.result),
          challenges: step.challenges,
          authorizations: step.authorizations,
        });
      }
      out.seenHeaders = JSON.parse(toolText(await session.client.callTool({ name: 'seen_headers', arguments: {} })));
      out.heldTokenSha256 = provider.heldTokenSha256;
      out.authorizationRequests = provider.authorizationRequests;
    }
    if (mode === 'exchange') {
      // Reported as is: the rig decides whether an error was expected.
      const text = (r) => r.content.filter((c) => c.type === 'text').map((c) => c.text).join('');
      out.downstream = [];
      for (let i = 0; i < 2; i += 1) {
        const r = await session.client.callTool({ name: 'downstream_whoami', arguments: {} });
        out.downstream.push({ isError: r.isError === true, text: text(r) });
      }
      out.seenHeaders = JSON.parse(toolText(await session.client.callTool({ name: 'seen_headers', arguments: {} })));
      out.heldTokenSha256 = provider.heldTokenSha256;
    }
  }

  const tools = await session.client.listTools();
  out.tools = tools.tools.map((t) => t.name);
  out.whoami = JSON.parse(toolText(await session.client.callTool({ name: 'whoami', arguments: {} })));
  if (mode.startsWith('step-up')) {
    out.notes = JSON.parse(toolText(await session.client.callTool({ name: 'list_notes', arguments: {} })));
  }
  await session.client.close();
  listener?.close();
  console.log(`RIG-RESULT ${JSON.stringify(out)}`);
}

main().then(() => process.exit(0), (err) => {
  console.error(`ts-sdk ${mode}: ${err?.stack || err}`);
  console.error(`exchanges: ${JSON.stringify(exchanges)}`);
  process.exit(1);
});
