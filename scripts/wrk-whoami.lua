-- wrk script of scripts/wrk-bench.sh: POSTs one MCP `tools/call whoami` per
-- request and checks every answer (status 200 and a successful tool result,
-- JSON or SSE framed), so a server that fails fast cannot look faster.
--
-- Environment: WRK_TOKEN (bearer token, required), WRK_PROTOCOL
-- (2026-07-28 stateless, default; or 2025-11-25 with WRK_SESSION, the
-- Mcp-Session-Id of an initialized session).
-- done() prints one line:
--   RESULT requests=<n> seconds=<s> rps=<r> p50_us=<n> p99_us=<n> errors=<n> bad=<n>
-- where errors are socket errors and timeouts and bad are answers that were
-- not a successful tool result (any status other than 200 included).

local token = os.getenv("WRK_TOKEN") or ""
local protocol = os.getenv("WRK_PROTOCOL") or "2026-07-28"
local session = os.getenv("WRK_SESSION")
-- WRK_FORWARDED_FOR: the client address a trusted proxy says these calls
-- come from (scripts/wrk-bench.sh --throttle).
local xff = os.getenv("WRK_FORWARDED_FOR")
if xff and xff ~= "" then wrk.headers["X-Forwarded-For"] = xff end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = protocol
wrk.headers["Authorization"] = "Bearer " .. token
if protocol == "2026-07-28" then
  wrk.headers["Mcp-Method"] = "tools/call"
  wrk.headers["Mcp-Name"] = "whoami"
  wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{},'
    .. '"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",'
    .. '"io.modelcontextprotocol/clientCapabilities":{}}}}'
else
  if session then
    wrk.headers["Mcp-Session-Id"] = session
  end
  wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}'
  -- All connections share one session, where a JSON-RPC id may not be
  -- reused while its request is in flight (the server answers 400
  -- `request_id_in_use`, as rmcp would route two answers by one id): each
  -- request gets its own id (wrk runs with one thread, so one counter),
  -- counted from WRK_ID_BASE (scripts/wrk-bench.sh gives each run its own:
  -- a request a run abandoned keeps its id reserved).
  next_id = tonumber(os.getenv("WRK_ID_BASE") or "0") or 0
  function request()
    next_id = next_id + 1
    return wrk.format(nil, nil, nil,
      '{"jsonrpc":"2.0","id":' .. next_id
        .. ',"method":"tools/call","params":{"name":"whoami","arguments":{}}}')
  end
end

-- WRK_PACE_MS (scripts/wrk-bench.sh --pace): a pause of that many
-- milliseconds before each request, so the connection makes about one call
-- per pause plus the call's time, as an interactive client does, instead of
-- keeping the server busy with calls back to back. wrk starts a request's
-- latency when it writes it, so the pause is not in the figures.
local pace_ms = tonumber(os.getenv("WRK_PACE_MS") or "0") or 0
if pace_ms > 0 then
  function delay() return pace_ms end
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  bad = 0
  first_bad = nil
end

function response(status, headers, body)
  local ok = status == 200
    and string.find(body, '"result"', 1, true) ~= nil
    and string.find(body, '\\"subject\\":\\"bench\\"', 1, true) ~= nil
    and string.find(body, '"isError":true', 1, true) == nil
  if not ok then
    bad = bad + 1
    if first_bad == nil then
      first_bad = tostring(status) .. " " .. string.sub(body, 1, 300)
    end
  end
end

function done(summary, latency, requests)
  local total_bad = 0
  local sample = nil
  for _, thread in ipairs(threads) do
    total_bad = total_bad + thread:get("bad")
    sample = sample or thread:get("first_bad")
  end
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.timeout
  local seconds = summary.duration / 1e6
  io.write(string.format(
    "RESULT requests=%d seconds=%.3f rps=%.1f p50_us=%d p99_us=%d errors=%d bad=%d\n",
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50), latency:percentile(99), errors, total_bad))
  if sample then
    io.write("FIRST_BAD " .. sample .. "\n")
  end
end
