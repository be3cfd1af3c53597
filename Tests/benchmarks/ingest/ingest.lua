-- wrk script: the calls a 3.17 client makes per trace, for a new random trace each time: POST /v1/traces
-- (5 spans, protobuf) and POST /api/3.0/mlflow/traces (StartTraceV3, the trace info), alternating. Nothing
-- is deduplicated away. SPANS_ONLY=1 sends only the span uploads, EMPTY_UPLOADS=1 span uploads without spans.
-- RATE_DELAY_MS > 0 paces each connection.
local payload = os.getenv("PAYLOAD")
local delay_ms = tonumber(os.getenv("RATE_DELAY_MS") or "0")
local spans_only = os.getenv("SPANS_ONLY") == "1"

local function read(path)
  local f = assert(io.open(path, "rb")); local data = f:read("*a"); f:close(); return data
end
local template, info_template, meta = read(payload .. ".bin"), read(payload .. ".info.json"), read(payload .. ".json")
local function list(name)
  local out = {}
  for n in meta:match('"' .. name .. '": %[([^%]]*)%]'):gmatch("%d+") do out[#out + 1] = tonumber(n) end
  return out
end

-- A template cut into fixed pieces around its id slots (16 raw bytes or 32 hex characters each).
local function cut(text, slots)
  table.sort(slots, function(a, b) return a[1] < b[1] end)
  local pieces, position = {}, 0
  for _, slot in ipairs(slots) do
    pieces[#pieces + 1] = text:sub(position + 1, slot[1])
    position = slot[1] + slot[2]
  end
  return {pieces = pieces, slots = slots, tail = text:sub(position + 1)}
end
local span_slots = {}
for _, o in ipairs(list("binary_offsets")) do span_slots[#span_slots + 1] = {o, 16, "bin"} end
for _, o in ipairs(list("hex_offsets")) do span_slots[#span_slots + 1] = {o, 32, "hex"} end
local info_slots = {}
for _, o in ipairs(list("info_offsets")) do info_slots[#info_slots + 1] = {o, 32, "hex"} end
local spans_body, info_body = cut(template, span_slots), cut(info_template, info_slots)

local function fill(t, raw, hex)
  local parts = {}
  for i, slot in ipairs(t.slots) do
    parts[#parts + 1] = t.pieces[i]
    parts[#parts + 1] = slot[3] == "bin" and raw or hex
  end
  parts[#parts + 1] = t.tail
  return table.concat(parts)
end

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)"), 16) % 100000)
end

local pending_hex = nil
-- EMPTY_UPLOADS=1: every request is a span upload without spans (an empty request body), the cheapest call the
-- proxy intercepts: what it costs is the floor of an intercepted call (HTTP in and out, routing, the answer).
local empty_uploads = os.getenv("EMPTY_UPLOADS") == "1"

function request()
  if empty_uploads then
    return wrk.format("POST", "/v1/traces", {["Content-Type"] = "application/x-protobuf", ["x-mlflow-experiment-id"] = "0"}, "")
  end
  if pending_hex and not spans_only then
    local hex = pending_hex
    pending_hex = nil
    return wrk.format("POST", "/api/3.0/mlflow/traces", {["Content-Type"] = "application/json"}, fill(info_body, nil, hex))
  end
  local raw, hex = {}, {}
  for i = 1, 16 do
    local b = math.random(0, 255)
    raw[i] = string.char(b)
    hex[i] = string.format("%02x", b)
  end
  raw, hex = table.concat(raw), table.concat(hex)
  pending_hex = hex
  return wrk.format("POST", "/v1/traces", {["Content-Type"] = "application/x-protobuf", ["x-mlflow-experiment-id"] = "0"},
                    fill(spans_body, raw, hex))
end

if delay_ms > 0 then
  function delay() return delay_ms end
end

function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d duration_us=%d errors_status=%d errors_connect=%d errors_timeout=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
