-- tests/cluster/packets_crc.lua FILE...: for each file of 128-byte packets,
-- prints "<packets> <bad> <trailing bytes>": bad = packets failing the packet
-- check (magic, version 1, CRC-32C of bytes 0..123), with treasure.packet's
-- own CRC (check.py has no CRC-32C of its own in the Python stdlib).
local ffi = require("ffi")
local packet = require("treasure.packet")
for _, path in ipairs(arg) do
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  local n = math.floor(#s / 128)
  local p = ffi.cast("const uint8_t *", s)
  local bad = 0
  for i = 0, n - 1 do
    if not packet.view(p + i * 128):check() then bad = bad + 1 end
  end
  io.stdout:write(n, " ", bad, " ", #s - n * 128, "\n")
end
