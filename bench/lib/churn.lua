-- wrk script: session churn. Run with as many threads as connections (-tN -cN): each thread
-- then owns one connection and walks it through whole session lifecycles, one request at a time:
--   initialize -> notifications/initialized -> tools/call echo -> DELETE
-- Every response is checked (status, session id, the echo body); a failed step abandons the
-- session and starts a new one. done() prints "BENCHJSON {...}"; `sessions` counts completed
-- lifecycles (a 2xx DELETE after a good call).
--
-- env BENCH_PATH default /mcp

local benchjson = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "benchjson.lua")

local path = os.getenv("BENCH_PATH") or "/mcp"
local threads = {}
function setup(thread) table.insert(threads, thread) end

local step = 0
local sid = nil
sessions, bad_status, bad_body, no_sid = 0, 0, 0, 0
first_bad = ""

local INIT = '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
  .. '"capabilities":{},"clientInfo":{"name":"mcpd-bench-churn","version":"1"}}}'
local INITIALIZED = '{"jsonrpc":"2.0","method":"notifications/initialized"}'
local CALL = '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello"}}}'

-- The requests are formatted once per thread: the initialize request whole, the other three as
-- the text before and after the session id. A lifecycle then costs the generator three string
-- joins instead of four wrk.format calls, so that the generator's core is not what limits churn.
local init_req = nil
local tmpl = {}
local current = {}

local MARK = "@@SID@@"

function init(args)
  local host = wrk.host .. ":" .. wrk.port
  init_req = wrk.format("POST", path, { ["Host"] = host, ["Accept"] = "application/json, text/event-stream",
    ["Content-Type"] = "application/json" }, INIT)
  local function with_sid(method, body)
    local h = {
      ["Host"] = host,
      ["Accept"] = "application/json, text/event-stream",
      ["Mcp-Session-Id"] = MARK,
      ["MCP-Protocol-Version"] = "2025-06-18",
    }
    if body then h["Content-Type"] = "application/json" end
    local r = wrk.format(method, path, h, body)
    local a, b = string.find(r, MARK, 1, true)
    return { string.sub(r, 1, a - 1), string.sub(r, b + 1) }
  end
  tmpl = { with_sid("POST", INITIALIZED), with_sid("POST", CALL), with_sid("DELETE", nil) }
end

function request()
  if step == 0 or sid == nil then
    step = 0
    return init_req
  end
  return current[step]
end

local function fail(kind, status, body)
  if kind == "status" then bad_status = bad_status + 1
  elseif kind == "sid" then no_sid = no_sid + 1
  else bad_body = bad_body + 1 end
  if first_bad == "" then
    first_bad = "step " .. step .. " " .. kind .. " " .. status .. ": " .. string.sub(body or "", 1, 160)
  end
  step = 0
  sid = nil
end

function response(status, headers, body)
  if status < 200 or status > 299 then return fail("status", status, body) end
  if step == 0 then
    local s = headers["mcp-session-id"] or headers["Mcp-Session-Id"]
    if s == nil then
      for k, v in pairs(headers) do
        if string.lower(k) == "mcp-session-id" then s = v end
      end
    end
    if s == nil then return fail("sid", status, body) end
    sid = s
    for i = 1, 3 do current[i] = tmpl[i][1] .. s .. tmpl[i][2] end
    step = 1
  elseif step == 1 then
    step = 2
  elseif step == 2 then
    if body == nil or not string.find(body, "Echo: hello", 1, true) then return fail("body", status, body) end
    step = 3
  else
    sessions = sessions + 1
    step = 0
    sid = nil
  end
end

function done(summary, latency, requests)
  benchjson.write(summary, latency, threads, { "sessions", "bad_status", "bad_body", "no_sid" })
end
