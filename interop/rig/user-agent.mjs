#!/usr/bin/env node
// The rig's "browser": what a client opens instead of a real one.
//
//   user-agent.mjs AUTHORIZATION_URL
//
// Follows redirects from the authorization URL through the provider's
// auto-approving interaction with a cookie jar, like a person clicking
// "allow" would, then GETs the final redirect to the client's loopback
// redirect_uri so the client's own listener receives `code` (or `error`).
// Prints that final URL on stdout. Exits non-zero if the chain ends anywhere
// else (an error page, too many hops, a timeout).
//
// Also usable as $BROWSER for xdg-open, and as a module (`authorize`).

import { pathToFileURL } from 'node:url';

const MAX_HOPS = 20;

/** Minimal cookie jar: name=value per origin; enough for oidc-provider's cookies. */
class Jar {
  #byOrigin = new Map();

  store(url, response) {
    const origin = new URL(url).origin;
    const jar = this.#byOrigin.get(origin) ?? new Map();
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq < 1) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attrs.some((a) => /^\s*max-age\s*=\s*0\s*$/i.test(a))
        || attrs.some((a) => /^\s*expires\s*=/i.test(a) && Date.parse(a.split('=').slice(1).join('=')) < Date.now());
      if (expired || value === '') jar.delete(name); else jar.set(name, value);
    }
    this.#byOrigin.set(origin, jar);
  }

  header(url) {
    const jar = this.#byOrigin.get(new URL(url).origin);
    if (!jar || jar.size === 0) return undefined;
    return [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

function isLoopbackClient(url, startOrigin) {
  const u = new URL(url);
  return u.origin !== startOrigin && ['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname);
}

/**
 * Walks the authorization URL to the client's redirect. Returns the final URL
 * (the one carrying `code` or `error`), after delivering it to the client's
 * listener unless `deliver` is false.
 */
export async function authorize(authorizationUrl, { deliver = true, timeoutMs = 20000 } = {}) {
  const jar = new Jar();
  const startOrigin = new URL(authorizationUrl).origin;
  let url = authorizationUrl;
  const signal = AbortSignal.timeout(timeoutMs);
  for (let hop = 0; hop < MAX_HOPS; hop += 1) {
    if (isLoopbackClient(url, startOrigin) || !/^https?:/.test(url)) {
      if (deliver && /^https?:/.test(url)) {
        const res = await fetch(url, { redirect: 'manual', signal });
        await res.arrayBuffer().catch(() => undefined);
      }
      return url;
    }
    const headers = {};
    const cookie = jar.header(url);
    if (cookie) headers.cookie = cookie;
    const res = await fetch(url, { redirect: 'manual', headers, signal });
    jar.store(url, res);
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      await res.arrayBuffer().catch(() => undefined);
      url = new URL(location, url).href;
      continue;
    }
    const body = (await res.text().catch(() => '')).slice(0, 400);
    throw new Error(`authorization stopped at ${url} with HTTP ${res.status}: ${body}`);
  }
  throw new Error(`more than ${MAX_HOPS} redirects from ${authorizationUrl}`);
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const target = process.argv[2];
  if (!target) {
    console.error('usage: user-agent.mjs AUTHORIZATION_URL');
    process.exit(2);
  }
  try {
    console.log(await authorize(target));
  } catch (err) {
    console.error(`user-agent: ${err.message}`);
    process.exit(1);
  }
}
