// The TypeScript MCP SDK's authenticated server, for the side-by-side load
// comparison.
//
//   interop/node_modules/node/bin/node interop/sdk-bench/ts_server.mjs
//
// Started by `cargo run --release --example loadbench -- --sdks`; see
// README.md in this directory. Configured only by environment variables, all
// required:
//
//   SDK_BENCH_ISSUER     issuer identifier the tokens must carry in `iss`
//                        (for example http://127.0.0.1:PORT)
//   SDK_BENCH_JWKS_URI   the issuer's key set URL; plain http is accepted,
//                        which is only meant for this loopback benchmark
//   SDK_BENCH_RESOURCE   this server's resource URL (http://127.0.0.1:PORT/mcp),
//                        the audience every token must name in `aud`
//   SDK_BENCH_PORT       port to listen on, on 127.0.0.1 only
//
// and one optional:
//
//   SDK_BENCH_STDIN_WATCHDOG  `1`: exit as soon as standard input closes
//                             (loadbench sets it and holds the pipe, so the
//                             server never outlives the benchmark)
//
// What runs: @modelcontextprotocol/sdk 1.32.2 (pinned in interop/package.json)
// on Node 22, the SDK's Express app (`createMcpExpressApp`: JSON body parser,
// Host header check) and its `requireBearerAuth` middleware with a verifier on
// `jose` (a dependency of the SDK), then a stateless
// `StreamableHTTPServerTransport` with JSON responses (no SSE). Stateless
// transports cannot be reused, so each request gets a fresh `McpServer` and
// transport, as the SDK's stateless example does. One tool, `whoami`, answers
// with the caller's subject, client id, scopes and issuer as JSON text, like
// the Rust notes server's.
//
// Token checks, as strict as mcp-oauth2's defaults for what this benchmark
// sends: JWS signature with a key from the JWKS (`createRemoteJWKSet`: key
// set cached, imported keys cached), algorithm from an allowlist (RS256,
// ES256), `typ` = `at+jwt` (RFC 9068), `iss` equal to SDK_BENCH_ISSUER, `aud`
// naming SDK_BENCH_RESOURCE, `exp`, `iat` and a non-empty `sub` required,
// `exp`/`nbf`/`iat` checked with 60 s of leeway (`iat` not in the future), a
// lifetime (`exp` - `iat`) of at most 24 hours, no `cnf` (a
// sender-constrained token is not a bearer token). The SDK's middleware then
// checks `exp` again and, with `expectedResource`, that the resource the
// verifier reports is SDK_BENCH_RESOURCE.

import { createRemoteJWKSet, jwtVerify } from 'jose';

import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { createMcpExpressApp } from '@modelcontextprotocol/sdk/server/express.js';
import { requireBearerAuth } from '@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js';
import { InvalidTokenError } from '@modelcontextprotocol/sdk/server/auth/errors.js';

const ALGORITHMS = ['RS256', 'ES256'];
const LEEWAY_SECONDS = 60;
const MAX_LIFETIME_SECONDS = 24 * 3600;

function env(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`ts_server.mjs: ${name} is not set (see the top of this file)`);
    process.exit(2);
  }
  return value;
}

if (process.env.SDK_BENCH_STDIN_WATCHDOG === '1') {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}

const issuer = env('SDK_BENCH_ISSUER');
const jwksUri = env('SDK_BENCH_JWKS_URI');
const resource = env('SDK_BENCH_RESOURCE');
const port = Number(env('SDK_BENCH_PORT'));

const keySet = createRemoteJWKSet(new URL(jwksUri), { timeoutDuration: 5000 });

/** The SDK's `OAuthTokenVerifier` over a JWT and a remote key set. */
const verifier = {
  async verifyAccessToken(token) {
    let payload;
    try {
      ({ payload } = await jwtVerify(token, keySet, {
        issuer,
        audience: resource,
        algorithms: ALGORITHMS,
        typ: 'at+jwt',
        requiredClaims: ['iss', 'aud', 'exp', 'iat', 'sub'],
        clockTolerance: LEEWAY_SECONDS,
        // Also makes jose refuse an `iat` in the future.
        maxTokenAge: MAX_LIFETIME_SECONDS,
      }));
    } catch {
      throw new InvalidTokenError('Invalid token');
    }
    if (typeof payload.sub !== 'string' || !payload.sub || 'cnf' in payload) {
      throw new InvalidTokenError('Invalid token');
    }
    if (payload.exp - payload.iat > MAX_LIFETIME_SECONDS) {
      throw new InvalidTokenError('Invalid token');
    }
    return {
      token,
      clientId: String(payload.client_id ?? payload.azp ?? ''),
      scopes: typeof payload.scope === 'string' ? payload.scope.split(' ').filter(Boolean) : [],
      expiresAt: payload.exp,
      // `aud` was checked to name this server, so this is the resource.
      resource: new URL(resource),
      extra: { subject: payload.sub, issuer: payload.iss },
    };
  },
};

function buildServer() {
  const server = new McpServer({ name: 'sdk-bench-typescript', version: '0.0.0' });
  server.registerTool(
    'whoami',
    { description: 'Who is calling: subject, client_id and scopes of the access token, as JSON' },
    async (extra) => {
      const auth = extra.authInfo;
      if (!auth) {
        // Unreachable behind requireBearerAuth: fail, never answer anonymously.
        return { content: [{ type: 'text', text: 'no authenticated caller' }], isError: true };
      }
      const text = JSON.stringify({
        subject: auth.extra.subject,
        client_id: auth.clientId,
        scopes: auth.scopes,
        issuer: auth.extra.issuer,
      });
      return { content: [{ type: 'text', text }] };
    },
  );
  return server;
}

const app = createMcpExpressApp({ host: '127.0.0.1' });
app.post('/mcp', requireBearerAuth({ verifier, expectedResource: new URL(resource) }), async (req, res) => {
  const server = buildServer();
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
  res.on('close', () => {
    transport.close();
    server.close();
  });
  try {
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
  } catch (error) {
    console.error('ts_server.mjs: request failed:', error);
    if (!res.headersSent) {
      res.status(500).json({ jsonrpc: '2.0', error: { code: -32603, message: 'Internal server error' }, id: null });
    }
  }
});

app.listen(port, '127.0.0.1', (error) => {
  if (error) {
    console.error(`ts_server.mjs: cannot listen on 127.0.0.1:${port}:`, error);
    process.exit(1);
  }
});
