--- The eventfd behind treasure.legacy's `r:fd()` (issue 15, docs/API.md
-- "fd"), through LuaJIT's FFI: the same kernel object treasure.native uses
-- (src/ffi/eventfd.rs), so an event loop watches either backend the same way.
--
-- Readable whenever `poll` would return >= 1 packet: legacy resolves inside
-- `dig`/`dig_batch`, so the resolver signals when its pending count goes
-- 0 -> > 0 (`raise`, once, not per packet) and resets when a poll empties
-- the queue (`lower`). `raise`/`lower` keep the state in two fields of the
-- resolver's state table: `efd` (the descriptor) and `efd_up` (signalled).
-- Linux only (eventfd(2)); elsewhere `open` returns nil and a reason.
local ffi = require("ffi")
local C = ffi.C

-- Own names (asm labels) so a host that declares read/write/close itself
-- (an example server, another library) does not clash with these.
if not pcall(ffi.typeof, "struct treasure_efd_v1") then
  ffi.cdef([[
struct treasure_efd_v1 { uint64_t n; };
int treasure_efd_eventfd(unsigned int initval, int flags) asm("eventfd");
intptr_t treasure_efd_write(int fd, const void *buf, size_t n) asm("write");
intptr_t treasure_efd_read(int fd, void *buf, size_t n) asm("read");
int treasure_efd_close(int fd) asm("close");
int treasure_efd_getpid(void) asm("getpid");
]])
end
if not pcall(ffi.typeof, "struct treasure_efd_strerror_v1") then
  ffi.cdef([[
struct treasure_efd_strerror_v1 { int unused; };
const char *treasure_efd_strerror(int errnum) asm("strerror");
]])
end

-- O_NONBLOCK and O_CLOEXEC as Linux defines them on x86, x86-64 and arm64.
local EFD_NONBLOCK, EFD_CLOEXEC = 0x800, 0x80000
local one = ffi.new("struct treasure_efd_v1", 1)
local sink = ffi.new("struct treasure_efd_v1")

local M = {}

local owner_t = ffi.typeof("struct { int fd; }")
local function close_owned(o)
  if o.fd >= 0 then C.treasure_efd_close(o.fd); o.fd = -1 end
end

--- A new non-blocking, close-on-exec eventfd and its owner (a cdata whose
-- finalizer closes it: the resolver's state keeps it, so a collected
-- resolver's eventfd is closed by the GC), or nil, the C library's text
-- for the error and its errno (nil where there is no eventfd at all).
function M.open()
  if ffi.os ~= "Linux" then return nil, "eventfd needs Linux" end
  local fd = C.treasure_efd_eventfd(0, EFD_NONBLOCK + EFD_CLOEXEC)
  if fd < 0 then
    local errno = ffi.errno()
    return nil, ffi.string(C.treasure_efd_strerror(errno)), errno
  end
  local owner = ffi.gc(owner_t(fd), close_owned)
  return fd, owner
end

function M.pid()
  return C.treasure_efd_getpid()
end

--- Pending went 0 -> > 0: make st.efd readable (once until lowered).
function M.raise(st)
  if not st.efd_up then
    st.efd_up = true
    C.treasure_efd_write(st.efd, one, 8)
  end
end

--- A poll emptied the queue: make st.efd unreadable.
function M.lower(st)
  if st.efd_up then
    st.efd_up = false
    C.treasure_efd_read(st.efd, sink, 8)
  end
end

--- Closes the eventfd its owner holds (close()); the owner's finalizer
-- then has nothing left to do.
function M.close(owner)
  close_owned(owner)
end

return M
