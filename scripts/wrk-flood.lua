-- wrk script of scripts/wrk-bench.sh --flood: failed authentications at a
-- bounded rate. Each connection POSTs the whoami call with a token whose
-- signature is wrong (WRK_TOKEN with its last characters changed) and waits
-- on average WRK_DELAY_MS (default 2) between requests, so C connections send
-- at most about C * 1000 / WRK_DELAY_MS requests per second. done() prints
--   FLOOD requests=<n> rps=<r> rejected=<n 401 answers (404 for notfound, 200 for metadata)> throttled=<n 429 answers> other=<n>
local token = os.getenv("WRK_TOKEN") or ""
local delay_ms = tonumber(os.getenv("WRK_DELAY_MS") or "2")
-- Flip the signature's last 4 characters: same length, same header and
-- claims, a signature that does not verify.
-- WRK_FLOOD_KIND=malformed sends a token that is not a JWT at all (refused
-- before any signature check), to tell the cost of the signature check from
-- the cost of answering.
-- WRK_FLOOD_KIND=notfound is the control: the same rate of requests for a
-- path the server does not serve (404 from the router, no authentication
-- work at all), so what the flood costs the accepted calls because it is
-- HTTP traffic can be told from what the refusals themselves cost.
-- WRK_FLOOD_KIND=metadata is a second control: GETs of the protected
-- resource metadata (a 200 of about 520 bytes, head and JSON body, where
-- a refusal's answer is about 750 and a 404's 130; answered by the layer
-- before any authentication work), so what the refusal's answer and a
-- trip into the layer cost can be told from what the authentication work
-- costs.
local bad = string.sub(token, 1, #token - 4) .. (string.sub(token, -4) == "AAAA" and "BBBB" or "AAAA")
local kind = os.getenv("WRK_FLOOD_KIND") or "signature"
if kind == "malformed" then bad = "not-a-jwt" end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2026-07-28"
wrk.headers["Mcp-Method"] = "tools/call"
wrk.headers["Mcp-Name"] = "whoami"
wrk.headers["Authorization"] = "Bearer " .. bad
-- WRK_FORWARDED_FOR: the client address a trusted proxy (the server
-- trusts 127.0.0.1 in --throttle runs) says this flood comes from.
local xff = os.getenv("WRK_FORWARDED_FOR")
if xff and xff ~= "" then wrk.headers["X-Forwarded-For"] = xff end
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{},'
  .. '"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",'
  .. '"io.modelcontextprotocol/clientCapabilities":{}}}}'
if kind == "notfound" then wrk.path = "/flood-control-not-found" end
if kind == "metadata" then
  wrk.method = "GET"
  wrk.body = nil
  wrk.headers["Authorization"] = nil
  wrk.headers["Content-Type"] = nil
  wrk.headers["Mcp-Method"] = nil
  wrk.headers["Mcp-Name"] = nil
  wrk.headers["MCP-Protocol-Version"] = nil
  wrk.headers["Accept"] = "application/json"
  wrk.path = "/.well-known/oauth-protected-resource/mcp"
end

local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) rejected = 0 throttled = 0 other = 0 math.randomseed(os.time() + (wrk.thread and 0 or 0)) end
-- A random pause of 0 to 2 * WRK_DELAY_MS (mean WRK_DELAY_MS): fixed pauses
-- keep the connections in step, so the flood arrives in bursts of one
-- request per connection; random pauses spread it over time.
function delay() return math.random(0, 2 * delay_ms) end
function response(status, headers, body)
  if status == 401 or (kind == "notfound" and status == 404) or (kind == "metadata" and status == 200) then rejected = rejected + 1
  elseif status == 429 then throttled = throttled + 1
  else other = other + 1 end
end
function done(summary, latency, requests)
  local r, th, o = 0, 0, 0
  for _, t in ipairs(threads) do
    r = r + t:get("rejected") th = th + t:get("throttled") o = o + t:get("other")
  end
  io.write(string.format("FLOOD requests=%d rps=%.1f rejected=%d throttled=%d other=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6), r, th, o))
end
