-- wrk script: POST the MLflow-shaped /v1/traces body with a new random trace id per request, so every
-- request is a new trace (nothing is deduplicated away). RATE_DELAY_MS > 0 paces each connection.
local body_path = os.getenv("PAYLOAD") .. ".bin"
local offsets_path = os.getenv("PAYLOAD") .. ".json"
local delay_ms = tonumber(os.getenv("RATE_DELAY_MS") or "0")

local f = assert(io.open(body_path, "rb")); local template = f:read("*a"); f:close()
f = assert(io.open(offsets_path, "r")); local meta = f:read("*a"); f:close()
local function list(name)
  local out = {}
  local inner = meta:match('"' .. name .. '": %[([^%]]*)%]')
  for n in inner:gmatch("%d+") do out[#out + 1] = tonumber(n) end
  return out
end
local binary_offsets, hex_offsets = list("binary_offsets"), list("hex_offsets")

-- Split the template into fixed pieces around the id slots (16 raw bytes or 32 hex chars each).
local slots = {}
for _, o in ipairs(binary_offsets) do slots[#slots + 1] = {o, 16, "bin"} end
for _, o in ipairs(hex_offsets) do slots[#slots + 1] = {o, 32, "hex"} end
table.sort(slots, function(a, b) return a[1] < b[1] end)
local pieces, position = {}, 0
for _, slot in ipairs(slots) do
  pieces[#pieces + 1] = template:sub(position + 1, slot[1])
  position = slot[1] + slot[2]
end
local tail = template:sub(position + 1)

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)"), 16) % 100000)
end

function request()
  local raw, hex = {}, {}
  for i = 1, 16 do
    local b = math.random(0, 255)
    raw[i] = string.char(b)
    hex[i] = string.format("%02x", b)
  end
  raw, hex = table.concat(raw), table.concat(hex)
  local parts = {}
  for i, slot in ipairs(slots) do
    parts[#parts + 1] = pieces[i]
    parts[#parts + 1] = slot[3] == "bin" and raw or hex
  end
  parts[#parts + 1] = tail
  return wrk.format("POST", "/v1/traces", {["Content-Type"] = "application/x-protobuf", ["x-mlflow-experiment-id"] = "0"},
                    table.concat(parts))
end

if delay_ms > 0 then
  function delay() return delay_ms end
end

function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d duration_us=%d errors_status=%d errors_connect=%d errors_timeout=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
