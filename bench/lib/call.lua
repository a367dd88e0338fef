-- wrk script: tools/call against one or more existing sessions, every response checked.
--
-- env BENCH_SIDS    comma-separated session ids; requests cycle through them (wrk does not say
--                   which connection a request goes out on, so with 100 ids every connection
--                   sends to every session in turn)
-- env BENCH_TOOL    echo (default) | long_task (with a progress token: mcpd answers with SSE)
-- env BENCH_EXPECT  text every 2xx body must contain (default "Echo: hello")
-- env BENCH_PATH    default /mcp
-- env BENCH_TOKEN   a bearer token sent on every request (a node with `[auth] enabled`)
-- env BENCH_ERA     legacy (default: calls inside the sessions of BENCH_SIDS) | modern (protocol
--                   2026-07-28: no session, the `_meta` envelope and the Mcp-Method/Mcp-Name
--                   headers on every call, as the official 2.x clients send them)
--
-- A pool of requests with distinct JSON-RPC ids is built once per thread (ids never repeat while
-- in flight, which per-session servers need), so the generator spends no time formatting.
-- done() prints one line "BENCHJSON {...}" with counts and latency percentiles (microseconds).

local benchjson = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "benchjson.lua")

local sids = {}
for s in string.gmatch(os.getenv("BENCH_SIDS") or "", "[^,]+") do sids[#sids + 1] = s end
local tool = os.getenv("BENCH_TOOL") or "echo"
local expect = os.getenv("BENCH_EXPECT") or "Echo: hello"
local path = os.getenv("BENCH_PATH") or "/mcp"
local token = os.getenv("BENCH_TOKEN")
local modern = os.getenv("BENCH_ERA") == "modern"
-- What a 2.x client puts in every modern request's params.
local envelope = '"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",'
  .. '"io.modelcontextprotocol/clientCapabilities":{},'
  .. '"io.modelcontextprotocol/clientInfo":{"name":"bench","version":"1"}'

local threads = {}
local thread_no = 0

function setup(thread)
  thread_no = thread_no + 1
  thread:set("tno", thread_no)
  table.insert(threads, thread)
end

local pool = {}
local n = 0
local idx = 0
ok, bad_status, bad_body = 0, 0, 0
first_bad = ""

function init(args)
  if #sids == 0 then sids = { "none" } end
  local size = #sids * math.max(1, math.ceil(1000 / #sids))
  local base = (tno or 1) * 10000000
  for i = 1, size do
    local sid = sids[((i - 1) % #sids) + 1]
    local id = base + i
    local body
    if modern then
      body = '{"jsonrpc":"2.0","id":' .. id .. ',"method":"tools/call","params":{"name":"echo",'
        .. '"arguments":{"message":"hello"},' .. envelope .. '}}}'
    elseif tool == "long_task" then
      body = '{"jsonrpc":"2.0","id":' .. id .. ',"method":"tools/call","params":{"name":"long_task",'
        .. '"arguments":{"steps":1,"interval_ms":0},"_meta":{"progressToken":' .. id .. '}}}'
    else
      body = '{"jsonrpc":"2.0","id":' .. id .. ',"method":"tools/call","params":{"name":"echo",'
        .. '"arguments":{"message":"hello"}}}'
    end
    local headers = {
      ["Host"] = wrk.host .. ":" .. wrk.port,
      ["Content-Type"] = "application/json",
      ["Accept"] = "application/json, text/event-stream",
      ["Mcp-Session-Id"] = sid,
      ["MCP-Protocol-Version"] = "2025-06-18",
    }
    if token and token ~= "" then
      headers["Authorization"] = "Bearer " .. token
    end
    if modern then
      headers["Mcp-Session-Id"] = nil
      headers["MCP-Protocol-Version"] = "2026-07-28"
      headers["Mcp-Method"] = "tools/call"
      headers["Mcp-Name"] = "echo"
    end
    pool[i] = wrk.format("POST", path, headers, body)
  end
  n = size
end

function request()
  idx = idx + 1
  if idx > n then idx = 1 end
  return pool[idx]
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    bad_status = bad_status + 1
    if first_bad == "" then first_bad = "status " .. status .. ": " .. string.sub(body or "", 1, 160) end
  elseif body == nil or not string.find(body, expect, 1, true) then
    bad_body = bad_body + 1
    if first_bad == "" then first_bad = "body: " .. string.sub(body or "", 1, 160) end
  else
    ok = ok + 1
  end
end

function done(summary, latency, requests)
  benchjson.write(summary, latency, threads, { "ok", "bad_status", "bad_body" })
end
