"""Python SDK client (`mcp` on PyPI, HTTP through httpx2) against the protected server.

    python python_sdk.py MODE MCP_URL

MODE:
    dcr       authorization code + PKCE with dynamic client registration
    cimd      authorization code + PKCE, client_id = a Client ID Metadata
              Document URL ($RIG_CIMD_URL)
    step-up   dcr, then add_note: expects HTTP 403 insufficient_scope, a second
              authorization with the union of scopes, and success
    step-up-computed-late
              dcr, then read_note from the private folder (scope computed
              from the arguments before dispatch: 403 naming notes:private)
              and export_notes (the handler asks for notes:export mid-call:
              late step-up); each must re-authorize with the challenged
              scopes and then return a tool result
    exchange  dcr, then downstream_whoami twice (the server exchanges this
              client's token for a downstream token, RFC 8693) and
              seen_headers; each result is reported as is (isError and
              text), with the SHA-256 of every access token this client held
    exchange-consent
              dcr, then downstream_whoami twice against a server whose
              downstream needs the user's consent: the first call meets HTTP
              403 insufficient_scope naming the consent scope, the SDK
              authorizes again and retries inside the request; each call is
              reported with its challenges and authorizations

The client knows nothing but MCP_URL; the SDK's OAuthClientProvider discovers
the rest from the 401 challenge. The "browser" is $RIG_BROWSER, launched with
the authorization URL; the redirect comes back to this process's own loopback
listener, as it would for a desktop client.

Prints one line `RIG-RESULT {json}` on success; exits non-zero otherwise.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from urllib.parse import parse_qs, urlparse

import httpx2
from mcp import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken


class MemoryStorage:
    """TokenStorage kept in memory for the one run."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None
        # SHA-256 of every access token stored (never the token).
        self.held_sha256: list[str] = []

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens
        self.held_sha256.append(hashlib.sha256(tokens.access_token.encode()).hexdigest())

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


class RedirectListener:
    """A loopback HTTP listener that receives the authorization redirect."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, list[str]]] = asyncio.Queue()
        self.server: asyncio.base_events.Server | None = None
        self.url = ""

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/callback"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = (await asyncio.wait_for(reader.readline(), 10)).decode("latin-1")
            while (await asyncio.wait_for(reader.readline(), 10)) not in (b"\r\n", b"\n", b""):
                pass
            target = request_line.split(" ")[1] if " " in request_line else "/"
            body = b"You can close this window."
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: "
                + str(len(body)).encode()
                + b"\r\nconnection: close\r\n\r\n"
                + body
            )
            await writer.drain()
            parsed = urlparse(target)
            if parsed.path == "/callback":
                await self.queue.put(parse_qs(parsed.query))
        finally:
            writer.close()

    async def next(self, timeout: float = 30) -> dict[str, list[str]]:
        return await asyncio.wait_for(self.queue.get(), timeout)


async def main(mode: str, mcp_url: str) -> dict:
    browser = os.environ["RIG_BROWSER"]
    listener = RedirectListener()
    await listener.start()
    authorization_requests: list[dict] = []
    exchanges: list[dict] = []

    async def redirect_handler(authorization_url: str) -> None:
        q = parse_qs(urlparse(authorization_url).query)
        authorization_requests.append(
            {
                "scope": q.get("scope", [None])[0],
                "resource": q.get("resource", [None])[0],
                "clientId": q.get("client_id", [None])[0],
            }
        )
        proc = await asyncio.create_subprocess_exec(
            browser, authorization_url, stdout=asyncio.subprocess.DEVNULL
        )
        # Like a real browser, it runs on while we wait for the redirect.
        asyncio.get_running_loop().create_task(proc.wait())

    async def callback_handler() -> AuthorizationCodeResult:
        params = await listener.next()
        if "code" not in params:
            raise RuntimeError(f"authorization failed: {params}")
        return AuthorizationCodeResult(
            code=params["code"][0],
            state=params.get("state", [None])[0],
            iss=params.get("iss", [None])[0],
        )

    storage = MemoryStorage()
    auth = OAuthClientProvider(
        server_url=mcp_url,
        client_metadata=OAuthClientMetadata(
            client_name=f"rig python-sdk {mode}",
            redirect_uris=[listener.url],
            grant_types=["authorization_code"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
        client_metadata_url=os.environ["RIG_CIMD_URL"] if mode == "cimd" else None,
    )

    async def record(response: httpx2.Response) -> None:
        if str(response.request.url).startswith(mcp_url):
            exchanges.append(
                {
                    "status": response.status_code,
                    "wwwAuthenticate": response.headers.get("www-authenticate"),
                }
            )

    out: dict = {"mode": mode, "exchanges": exchanges}
    async with httpx2.AsyncClient(auth=auth, timeout=30, event_hooks={"response": [record]}) as http:
        async with Client(streamable_http_client(mcp_url, http_client=http)) as client:
            tools = await client.list_tools()
            out["tools"] = [t.name for t in tools.tools]
            out["whoami"] = json.loads(text_of(await client.call_tool("whoami", {})))
            if mode == "step-up-computed-late":
                # The SDK answers each 403 inside the HTTP request: it
                # authorizes again and retries before call_tool returns.
                out["steps"] = []
                for name, args in (("read_note", {"id": 1, "folder": "private"}), ("export_notes", {})):
                    exchanges_before = len(exchanges)
                    authorizations_before = len(authorization_requests)
                    result = json.loads(text_of(await client.call_tool(name, args)))
                    out["steps"].append(
                        {
                            "tool": name,
                            "arguments": args,
                            "challenges": [
                                e["wwwAuthenticate"] for e in exchanges[exchanges_before:] if e["status"] == 403
                            ],
                            "authorizations": authorization_requests[authorizations_before:],
                            "result": result,
                        }
                    )
                out["notes"] = json.loads(text_of(await client.call_tool("list_notes", {})))
                out["whoamiAfter"] = json.loads(text_of(await client.call_tool("whoami", {})))
            if mode in ("exchange", "exchange-consent"):
                # Reported as is: the rig decides whether an error was expected.
                out["downstream"] = []
                for _ in range(2):
                    exchanges_before = len(exchanges)
                    authorizations_before = len(authorization_requests)
                    result = await client.call_tool("downstream_whoami", {})
                    is_error = bool(getattr(result, "is_error", False) or getattr(result, "isError", False))
                    text = "".join(c.text for c in result.content if getattr(c, "type", None) == "text")
                    call = {"isError": is_error, "text": text}
                    if mode == "exchange-consent":
                        call["challenges"] = [
                            e["wwwAuthenticate"] for e in exchanges[exchanges_before:] if e["status"] == 403
                        ]
                        call["authorizations"] = authorization_requests[authorizations_before:]
                    out["downstream"].append(call)
                out["seenHeaders"] = json.loads(text_of(await client.call_tool("seen_headers", {})))
                out["heldTokenSha256"] = storage.held_sha256
            if mode == "step-up":
                out["addNote"] = text_of(await client.call_tool("add_note", {"text": "from the rig"}))
                out["notes"] = json.loads(text_of(await client.call_tool("list_notes", {})))
                out["whoamiAfter"] = json.loads(text_of(await client.call_tool("whoami", {})))
    out["authorizationRequests"] = authorization_requests
    out["clientId"] = storage.client_info.client_id if storage.client_info else None
    out["protocolVersion"] = auth.context.protocol_version
    return out


def leaf_errors(err: BaseException) -> list[BaseException]:
    """The innermost exceptions of (nested) exception groups."""
    if isinstance(err, BaseExceptionGroup):
        return [leaf for sub in err.exceptions for leaf in leaf_errors(sub)]
    return [err]


def text_of(result) -> str:
    if getattr(result, "is_error", False) or getattr(result, "isError", False):
        raise RuntimeError(f"tool error: {result.content}")
    return "".join(c.text for c in result.content if getattr(c, "type", None) == "text")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in (
        "dcr",
        "cimd",
        "step-up",
        "step-up-computed-late",
        "exchange",
        "exchange-consent",
    ):
        print("usage: python_sdk.py dcr|cimd|step-up|step-up-computed-late|exchange|exchange-consent MCP_URL", file=sys.stderr)
        sys.exit(2)
    try:
        result = asyncio.run(main(sys.argv[1], sys.argv[2]))
    except BaseException as err:  # noqa: BLE001 - report anything, including exception groups
        import traceback

        for leaf in leaf_errors(err):
            traceback.print_exception(leaf, file=sys.stderr)
        reasons = "; ".join(repr(e) for e in leaf_errors(err))
        print(f"python-sdk {sys.argv[1]}: {reasons}", file=sys.stderr)
        sys.exit(1)
    print("RIG-RESULT " + json.dumps(result), flush=True)
