// RFC 8693 token exchange for the rig's provider (rig/provider.mjs), written
// for the rig: oidc-provider has no token exchange grant of its own, only
// `provider.registerGrantType()` for custom grants. Client authentication
// and the grant_types check of the client are the provider's (its token
// endpoint runs them before this handler); the rest is here:
//
// 1. Only the MCP server's confidential client (RIG_EXCHANGE_CLIENT_ID) may
//    exchange: any other authenticated client gets `unauthorized_client`.
// 2. `subject_token` is required and `subject_token_type` must be
//    `urn:ietf:params:oauth:token-type:access_token` (else `invalid_request`);
//    `actor_token` is not supported and `requested_token_type`, when sent,
//    must be an access token (RFC 8693 section 2.1).
// 3. The subject token must be an access token this provider issued to an MCP
//    server this client serves: a JWT with `typ: at+jwt`, ES256, signed by one
//    of the provider's own keys, `iss` = the issuer, not expired, and `aud`
//    exactly one of RIG_EXCHANGE_SUBJECT_AUDIENCES (else `invalid_grant`).
// 4. `audience` and `resource` (any number of each, RFC 8693 section 2.1,
//    RFC 8707) must together name exactly one downstream API, one of
//    RIG_EXCHANGE_AUDIENCES or RIG_EXCHANGE_CONSENT_AUDIENCES, compared
//    exactly (else `invalid_target`; a request naming none is
//    `invalid_request`).
// 5. `scope` is optional (default: the first of RIG_EXCHANGE_SCOPES); every
//    scope must be one of RIG_EXCHANGE_SCOPES (else `invalid_scope`).
// 6. Consent: for a downstream API of RIG_EXCHANGE_CONSENT_AUDIENCES, the
//    subject token's `scope` must hold RIG_EXCHANGE_CONSENT_SCOPE (default
//    `downstream:consent`, the scope standing for the user's consent to that
//    API), compared exactly as one of its space-separated scopes; else HTTP
//    400 `consent_required`, an error only the user can fix (Entra ID
//    answers `invalid_grant` with `suberror: consent_required` instead;
//    the crate reads both as needing the user).
// 7. The answer (RFC 8693 section 2.2.1): a JWT access token minted by the
//    provider's own AccessToken model, so in the format of the rig's other
//    tokens (`typ: at+jwt`, ES256), with `sub` = the subject token's `sub`,
//    `aud` = the downstream, `client_id` = the exchanging client, `act: {sub:
//    <exchanging client>}` (RFC 8693 section 4.1; a subject token's own `act`
//    is nested inside, the delegation chain), `expires_in` 300 s;
//    `issued_token_type` access token, `token_type` Bearer.
//
// Every exchange attempt, issued or refused (client authentication failures
// included), is recorded for GET /_rig/exchanges: never a token value, only
// claims, error codes and the SHA-256 of the issued token.

import { createHash } from 'node:crypto';

import { createLocalJWKSet, jwtVerify } from 'jose';
import { errors } from 'oidc-provider';

export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const EXCHANGED_TTL = 300;

const list = (value) => (value || '').split(',').map((s) => s.trim()).filter(Boolean);
const many = (value) => (value === undefined ? [] : [].concat(value));
export const sha256 = (text) => createHash('sha256').update(text).digest('hex');

/**
 * The exchange settings from the provider's environment, or undefined when
 * RIG_EXCHANGE_CLIENT_ID is not set (no exchange client, no grant).
 */
export function exchangeSettings(env) {
  if (!env.RIG_EXCHANGE_CLIENT_ID) return undefined;
  if (!env.RIG_EXCHANGE_CLIENT_SECRET) throw new Error('RIG_EXCHANGE_CLIENT_SECRET is required');
  const scopes = (env.RIG_EXCHANGE_SCOPES || 'downstream:read').split(' ').filter(Boolean);
  return {
    clientId: env.RIG_EXCHANGE_CLIENT_ID,
    clientSecret: env.RIG_EXCHANGE_CLIENT_SECRET,
    subjectAudiences: new Set(list(env.RIG_EXCHANGE_SUBJECT_AUDIENCES)),
    audiences: new Set([...list(env.RIG_EXCHANGE_AUDIENCES), ...list(env.RIG_EXCHANGE_CONSENT_AUDIENCES)]),
    consentAudiences: new Set(list(env.RIG_EXCHANGE_CONSENT_AUDIENCES)),
    consentScope: (env.RIG_EXCHANGE_CONSENT_SCOPE || 'downstream:consent').trim(),
    scopes,
  };
}

/** The static client the MCP server exchanges tokens as (client_secret_basic). */
export function exchangeClient(settings) {
  return {
    client_id: settings.clientId,
    client_secret: settings.clientSecret,
    client_name: 'the reference MCP server (token exchange)',
    grant_types: [TOKEN_EXCHANGE],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
  };
}

/**
 * The grant, its claims and its record. Make it before the Provider (whose
 * `extraTokenClaims` calls `claims`), register it after.
 */
export function tokenExchange(settings, publicJwks) {
  const log = [];
  const acts = new WeakMap();
  const keys = createLocalJWKSet(publicJwks);
  const refusal = (code, description) => new errors.CustomOIDCProviderError(code, description);

  async function handler(provider, ctx) {
    const { client, params } = ctx.oidc;
    const entry = { client_id: client.clientId };
    try {
      // 1. Who may exchange.
      if (client.clientId !== settings.clientId) {
        throw new errors.UnauthorizedClient(`client ${client.clientId} may not use the token exchange grant`);
      }
      // 2. What is exchanged.
      if (!params.subject_token) throw new errors.InvalidRequest('missing required parameter subject_token');
      if (params.subject_token_type !== ACCESS_TOKEN_TYPE) {
        throw new errors.InvalidRequest(`subject_token_type must be ${ACCESS_TOKEN_TYPE}`);
      }
      if (params.actor_token !== undefined || params.actor_token_type !== undefined) {
        throw new errors.InvalidRequest('actor_token is not supported');
      }
      if (params.requested_token_type !== undefined && params.requested_token_type !== ACCESS_TOKEN_TYPE) {
        throw new errors.InvalidRequest(`requested_token_type must be ${ACCESS_TOKEN_TYPE}`);
      }
      // 3. The subject token: this provider's access token for the MCP server.
      let subject;
      try {
        ({ payload: subject } = await jwtVerify(params.subject_token, keys, {
          issuer: provider.issuer,
          typ: 'at+jwt',
          algorithms: ['ES256'],
          requiredClaims: ['sub', 'exp', 'jti', 'client_id'],
        }));
      } catch (err) {
        throw refusal('invalid_grant', `subject_token is not a valid access token of this provider (${err.code || err.message})`);
      }
      entry.sub = subject.sub;
      entry.subject_jti = subject.jti;
      entry.subject_scope = typeof subject.scope === 'string' ? subject.scope : null;
      const subjectAud = many(subject.aud);
      if (subjectAud.length !== 1 || !settings.subjectAudiences.has(subjectAud[0])) {
        throw refusal('invalid_grant', `subject_token was issued for ${JSON.stringify(subject.aud)}, not for an MCP server of client ${client.clientId}`);
      }
      // 4. The downstream.
      const targets = new Set([...many(params.audience), ...many(params.resource)]);
      if (targets.size === 0) throw new errors.InvalidRequest('audience or resource naming the downstream API is required');
      if (targets.size > 1) throw new errors.InvalidTarget('audience and resource must name one downstream API');
      const [target] = targets;
      entry.aud = target;
      if (!settings.audiences.has(target)) {
        throw new errors.InvalidTarget(`${target} is not a downstream API this provider exchanges tokens for`);
      }
      // 5. The scopes.
      const requested = [...new Set((params.scope || settings.scopes[0]).split(' ').filter(Boolean))];
      const unknown = requested.filter((s) => !settings.scopes.includes(s));
      if (unknown.length > 0) {
        throw new errors.InvalidScope(`scope ${unknown.join(' ')} is not available for ${target}`, unknown.join(' '));
      }
      // 6. The user's consent, for the APIs that need it.
      if (settings.consentAudiences.has(target)) {
        const held = typeof subject.scope === 'string' ? subject.scope.split(' ') : [];
        if (!held.includes(settings.consentScope)) {
          throw refusal('consent_required', `the user has not consented to ${target}: the subject token's scope lacks ${settings.consentScope}`);
        }
      }
      // 7. The token.
      const token = new provider.AccessToken({
        accountId: subject.sub,
        client,
        gty: TOKEN_EXCHANGE,
        scope: requested.join(' '),
        expiresIn: EXCHANGED_TTL,
        resourceServer: {
          audience: target,
          scope: settings.scopes.join(' '),
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
          identifier: () => target,
        },
      });
      acts.set(token, { sub: client.clientId, ...(subject.act ? { act: subject.act } : {}) });
      const value = await token.save();
      log.push({
        ...entry, outcome: 'issued', jti: token.jti, scope: token.scope, token_sha256: sha256(value),
      });
      ctx.body = {
        access_token: value,
        issued_token_type: ACCESS_TOKEN_TYPE,
        token_type: 'Bearer',
        expires_in: token.expiration,
        scope: token.scope,
      };
    } catch (err) {
      log.push({ ...entry, outcome: 'refused', error: err.error || 'server_error', error_description: err.error_description });
      err.rigLogged = true;
      throw err;
    }
  }

  return {
    log,
    /** `extraTokenClaims` of the provider: `act` for exchanged tokens. */
    claims(token) {
      return acts.has(token) ? { act: acts.get(token) } : undefined;
    },
    register(provider) {
      provider.registerGrantType(
        TOKEN_EXCHANGE,
        (ctx) => handler(provider, ctx),
        ['subject_token', 'subject_token_type', 'actor_token', 'actor_token_type', 'requested_token_type', 'audience', 'resource', 'scope'],
        ['audience', 'resource'],
      );
      // Refusals before the handler: client authentication, a client without
      // the grant, repeated parameters.
      provider.on('grant.error', (ctx, err) => {
        if (err.rigLogged || ctx.oidc?.params?.grant_type !== TOKEN_EXCHANGE) return;
        log.push({
          client_id: ctx.oidc.client?.clientId ?? null,
          outcome: 'refused',
          error: err.error,
          error_description: err.error_description,
        });
      });
    },
  };
}
