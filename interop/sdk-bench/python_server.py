"""The Python MCP SDK's authenticated server, for the side-by-side load comparison.

    interop/.venv/bin/python interop/sdk-bench/python_server.py

Started by `cargo run --release --example loadbench -- --sdks`; see README.md
in this directory. Configured only by environment variables, all required:

    SDK_BENCH_ISSUER     issuer identifier the tokens must carry in `iss`
                         (for example http://127.0.0.1:PORT)
    SDK_BENCH_JWKS_URI   the issuer's key set URL; plain http is accepted,
                         which is only meant for this loopback benchmark
    SDK_BENCH_RESOURCE   this server's resource URL (http://127.0.0.1:PORT/mcp),
                         the audience every token must name in `aud`
    SDK_BENCH_PORT       port to listen on, on 127.0.0.1 only

and one optional:

    SDK_BENCH_STDIN_WATCHDOG  `1`: exit as soon as standard input closes
                              (loadbench sets it and holds the pipe, so the
                              server never outlives the benchmark)

What runs: the SDK's `MCPServer` (mcp 2.3, pinned in interop/requirements.txt)
behind the SDK's own bearer middleware (`AuthSettings` with a `TokenVerifier`),
stateless streamable HTTP with JSON responses (no SSE), one uvicorn worker on
one event loop (one core), access log and per-request logging off. One tool,
`whoami`, answers with the caller's subject, client id, scopes and issuer as
JSON text, like the Rust notes server's.

Token checks, as strict as mcp-oauth2's defaults for what this benchmark
sends: JWS signature with a key from the JWKS (PyJWKClient: key set cached
for 5 minutes, parsed keys cached by `kid`), algorithm from an allowlist
(RS256, ES256; never from the token alone), `typ` = `at+jwt` (RFC 9068),
`iss` equal to SDK_BENCH_ISSUER, `aud` naming SDK_BENCH_RESOURCE, `exp`, `iat`
and a non-empty `sub` required, `exp`/`nbf`/`iat` checked with 60 s of leeway
(`iat` not in the future), a lifetime (`exp` - `iat`) of at most 24 hours, no
`cnf` (a sender-constrained token is not a bearer token). The SDK's
middleware then checks `exp` again and, with `validate_token_resource`, that
the resource the verifier reports is SDK_BENCH_RESOURCE.
"""

from __future__ import annotations

import json
import os
import sys
import threading

import anyio.to_thread
import jwt
import uvicorn
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer

ALGORITHMS = ["RS256", "ES256"]
ACCESS_TOKEN_TYPES = ("at+jwt", "application/at+jwt")
LEEWAY_SECONDS = 60
MAX_LIFETIME_SECONDS = 24 * 3600


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        sys.exit(f"python_server.py: {name} is not set (see the top of this file)")
    return value


class JwtVerifier:
    """The SDK's `TokenVerifier` protocol over a JWT and a remote key set."""

    def __init__(self, jwks_uri: str, issuer: str, resource: str) -> None:
        self.issuer = issuer
        self.resource = resource
        self.jwks = jwt.PyJWKClient(jwks_uri, cache_keys=True, cache_jwk_set=True, lifespan=300, timeout=5)

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            header = jwt.get_unverified_header(token)
            if str(header.get("typ", "")).lower() not in ACCESS_TOKEN_TYPES:
                return None
            if header.get("alg") not in ALGORITHMS:
                return None
            if self.jwks.jwk_set_cache is not None and self.jwks.jwk_set_cache.get() is None:
                # Fetch off the event loop (PyJWKClient uses blocking urllib);
                # later lookups are served from its caches.
                await anyio.to_thread.run_sync(self.jwks.get_jwk_set, True)
            key = self.jwks.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=ALGORITHMS,
                issuer=self.issuer,
                audience=self.resource,
                leeway=LEEWAY_SECONDS,
                options={"require": ["iss", "aud", "exp", "iat", "sub"]},
            )
        except (jwt.PyJWTError, ValueError):
            return None
        if not isinstance(claims["sub"], str) or not claims["sub"] or "cnf" in claims:
            return None
        if claims["exp"] - claims["iat"] > MAX_LIFETIME_SECONDS:
            return None
        scope = claims.get("scope")
        return AccessToken(
            token=token,
            client_id=str(claims.get("client_id") or claims.get("azp") or ""),
            scopes=scope.split() if isinstance(scope, str) else [],
            expires_at=int(claims["exp"]),
            # `aud` was checked to name this server, so this is the resource.
            resource=self.resource,
            subject=str(claims["sub"]),
            claims={"iss": claims["iss"]},
        )


def build_app(issuer: str, jwks_uri: str, resource: str):
    server = MCPServer(
        name="sdk-bench-python",
        token_verifier=JwtVerifier(jwks_uri, issuer, resource),
        auth=AuthSettings(
            issuer_url=issuer,
            resource_server_url=resource,
            validate_token_resource=True,
        ),
        log_level="WARNING",
    )

    # Plain text content (no structured output), as the Rust tool answers.
    @server.tool(
        description="Who is calling: subject, client_id and scopes of the access token, as JSON",
        structured_output=False,
    )
    def whoami() -> str:
        token = get_access_token()
        if token is None:
            # Unreachable behind the bearer middleware: fail, never answer anonymously.
            raise ValueError("no authenticated caller")
        return json.dumps(
            {
                "subject": token.subject,
                "client_id": token.client_id,
                "scopes": token.scopes,
                "issuer": (token.claims or {}).get("iss"),
            }
        )

    return server.streamable_http_app(json_response=True, stateless_http=True, host="127.0.0.1")


def exit_when_stdin_closes() -> None:
    def watch() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        finally:
            os._exit(0)

    threading.Thread(target=watch, name="stdin-watchdog", daemon=True).start()


def main() -> None:
    if os.environ.get("SDK_BENCH_STDIN_WATCHDOG") == "1":
        exit_when_stdin_closes()
    issuer = env("SDK_BENCH_ISSUER")
    jwks_uri = env("SDK_BENCH_JWKS_URI")
    resource = env("SDK_BENCH_RESOURCE")
    port = int(env("SDK_BENCH_PORT"))
    app = build_app(issuer, jwks_uri, resource)
    uvicorn.run(app, host="127.0.0.1", port=port, workers=1, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
