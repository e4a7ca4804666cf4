-- Driver-level cost on an N-message archive, without Prosody: appends and MAM pages through
-- the mapped 1-1 archive class versus the generic archive (what `archive` used before it
-- was mapped). Runs in Debian's lua5.4 with the driver library and Prosody's util.time:
--   cp target/release/libjidstore_prosody.so DIR/jidstore_prosody.so
--   lua5.4 prosody/e2e/driver_bench.lua DIR STORE_DIR [N (100000)]
package.cpath = arg[1] .. "/?.so;/usr/lib/prosody/?.so;" .. package.cpath
local lib = require "jidstore_prosody"
local dir, n = arg[2], tonumber(arg[3] or "100000")
local h = assert(lib.open(dir, false))
local hex = string.rep("ab", 20)
h:account_set("u", "localhost", "salt", 4096, hex, hex)
local clock = require "util.time".now -- wall clock (Prosody's util.time)
local base = 1.7e9
local function stanza_of(i)
	local out = i % 2 == 0
	return out, ("<message xmlns='jabber:client' type='chat' from='%s' to='%s' id='m%d'><body>message number %d</body></message>")
		:format(out and "u@localhost/r" or "v@localhost/r", out and "v@localhost/r" or "u@localhost/r", i, i)
end
local t0 = clock()
for i = 1, n do
	local out, stanza = stanza_of(i)
	h:mam_append("u", "localhost", nil, base + i / 10, out and "u@localhost/r" or "v@localhost/r",
		out and "v@localhost" or "u@localhost", out, stanza)
end
local t1 = clock()
for i = 1, n do
	local _, stanza = stanza_of(i)
	h:append("u", "localhost", "generic_archive", nil, base + i / 10, "v@localhost", stanza)
end
local t2 = clock()
print(("append: class %.1f us/msg, generic %.1f us/msg"):format((t1 - t0) / n * 1e6, (t2 - t1) / n * 1e6))
h:flush()
local function time(what, f)
	local best = math.huge
	for _ = 1, 5 do
		local s = clock(); f(); best = math.min(best, clock() - s)
	end
	print(("%-58s %8.2f ms"):format(what, best * 1000))
end
local q = function () return { limit = 51, reverse = true, with = "v@localhost" } end
time("class:   last page (limit 51, reverse, with)", function () assert(#h:mam_find("u", "localhost", q()) == 51) end)
time("generic: last page (limit 51, reverse, with)", function () assert(#h:find("u", "localhost", "generic_archive", q()) == 51) end)
time("class:   last page with total", function () local q2 = q(); q2.total = true; local items, total = h:mam_find("u", "localhost", q2); assert(total == n) end)
time("class:   page by time (start/end 1 h in the middle, limit 51)", function ()
	assert(#h:mam_find("u", "localhost", { start = base + n / 20, ["end"] = base + n / 20 + 3600, limit = 51 }) == 51) end)
time("generic: page by time (start/end 1 h in the middle, limit 51)", function ()
	assert(#h:find("u", "localhost", "generic_archive", { start = base + n / 20, ["end"] = base + n / 20 + 3600, limit = 51 }) == 51) end)
h:close()
