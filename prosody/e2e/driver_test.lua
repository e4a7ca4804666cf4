-- Round trips through mod_storage_jidstore without a server: every store mapped to a
-- jidstore class gives back exactly what Prosody wrote (values and archive queries), and
-- lands in its class. Runs in Debian's lua5.4 with Prosody's own util libraries and a
-- stand-in for Prosody's `module` object.
--   lua5.4 prosody/e2e/driver_test.lua MODULE_DIR STORE_DIR
-- MODULE_DIR holds mod_storage_jidstore.lua and jidstore_prosody.so. Prints
-- "driver test: PASS" last; any failed check raises.

package.path = "/usr/lib/prosody/?.lua;" .. package.path
package.cpath = "/usr/lib/prosody/?.so;" .. package.cpath

local st = require "util.stanza"
local xml = require "util.xml"
local module_dir, store_dir = assert(arg[1], "MODULE_DIR"), assert(arg[2], "STORE_DIR")

local checks = 0
local function check(cond, what, detail)
	if not cond then error("FAILED: " .. what .. (detail and (" " .. tostring(detail)) or ""), 2) end
	checks = checks + 1
	print("ok - " .. what)
end

local function deep_equal(a, b)
	if a == b then return true end
	if type(a) ~= "table" or type(b) ~= "table" then return false end
	for k, v in pairs(a) do
		if not deep_equal(v, b[k]) then return false end
	end
	for k in pairs(b) do
		if a[k] == nil then return false end
	end
	return true
end

-- A room for muc_log's real-JID lookup.
local occupants = { ["tea@conference.localhost/Al"] = { bare_jid = "alice@localhost" } }
local prosody_env = {
	paths = { data = store_dir },
	process_type = "prosody",
	hosts = {
		["conference.localhost"] = { modules = { muc = { get_room_from_jid = function (jid)
			if jid ~= "tea@conference.localhost" then return nil end
			return { get_occupant_by_nick = function (_, nick) return occupants[nick] end }
		end } } },
	},
}
local options = { jidstore_path = store_dir .. "/jidstore", jidstore_lib_dir = module_dir }

-- Loads the driver as Prosody would for `host`; returns its storage driver.
local function load_driver(host)
	local provided
	local module = {
		host = host,
		get_option_string = function (_, name, default) return options[name] or default end,
		get_directory = function () return module_dir end,
		log = function (_, level, fmt, ...)
			if level == "error" then print("log error: " .. fmt:format(...)) end
		end,
		hook_global = function () end,
		provides = function (_, kind, driver)
			assert(kind == "storage")
			provided = driver
		end,
	}
	local env = setmetatable({ module = module, prosody = prosody_env }, { __index = _G })
	assert(loadfile(module_dir .. "/mod_storage_jidstore.lua", "t", env))()
	return provided
end

local users = load_driver("localhost")
local rooms = load_driver("conference.localhost")
local lib = require "jidstore_prosody"

local hex = string.rep("ab", 20)
local accounts = users:open("accounts")
assert(accounts:set("alice", { stored_key = hex, server_key = hex, salt = "salt", iteration_count = 4096 }))
check(accounts:get("alice").stored_key == hex, "accounts: alice's SCRAM account")
local handle = lib.handles[options.jidstore_path]
local function generic(user, store) return handle:kv_get(user, "localhost", store) end

local function roundtrip(store, user, value, what)
	local s = users:open(store)
	assert(s:set(user, value))
	local got = s:get(user)
	check(deep_equal(got, value), store .. ": " .. what .. " reads back exactly")
end

-- Roster: items, groups (one with a comma), a pending request, its metadata.
local presence = st.preserialize(st.presence({ from = "carol@localhost/x", type = "subscribe" })
	:tag("status"):text("let me in"):up())
local roster = {
	[false] = { version = 3, pending = { ["carol@localhost"] = presence } },
	["bob@localhost"] = { subscription = "both", name = "Bob", groups = { Friends = true, ["A, B"] = true } },
	["dave@localhost"] = { subscription = "none", ask = "subscribe", groups = {} },
}
roundtrip("roster", "alice", roster, "items, groups, a pending request and the version")
check(generic("alice", "roster") == nil and generic("alice", "roster#meta") ~= nil,
	"roster: in the roster class, the pending request's stanza in roster#meta")
local held = handle:roster_get("alice", "localhost")
local by_jid = {}
for _, item in ipairs(held.items) do by_jid[item.jid] = item end
check(held.version == 3 and by_jid["bob@localhost"].subscription == "both"
	and table.concat(by_jid["bob@localhost"].groups, "|") == "A, B|Friends"
	and by_jid["dave@localhost"].ask == "out" and by_jid["carol@localhost"].ask == "in"
	and by_jid["carol@localhost"].askmessage == "let me in",
	"roster: the class holds the items, the pending request (ask in) and the version")
roster[false].pending = {}
roster["erin@localhost"] = { subscription = "from", groups = { Work = true } }
roster["dave@localhost"] = nil
roundtrip("roster", "alice", roster, "after a request is answered and a contact removed")
check(generic("alice", "roster#meta") == nil and #handle:roster_get("alice", "localhost").items == 2,
	"roster: no metadata left, the removed contact gone from the class")
roster[false].version = true
roundtrip("roster", "alice", roster, "with versioning off (kept verbatim)")
check(generic("alice", "roster") ~= nil, "roster: a value the class cannot hold is kept verbatim")
roster[false].version = 7
roundtrip("roster", "alice", roster, "back to a numbered version")
check(generic("alice", "roster") == nil, "roster: the verbatim copy is dropped again")

-- vCard (mod_vcard), private XML (mod_private's map through the keyval shim), blocklist.
-- Values as Prosody's stream parser makes them (every element names its namespace).
local function parsed(text) return st.preserialize(xml.parse(text)) end
local vcard = parsed("<vCard xmlns='vcard-temp'><FN>Alice &lt;Liddell&gt; &amp; co</FN>"
	.. "<N><GIVEN>Alice</GIVEN></N></vCard>")
roundtrip("vcard", "alice", vcard, "a vCard")
check(handle:vcard_get("alice", "localhost"):find("Alice &lt;Liddell&gt;", 1, true)
	and generic("alice", "vcard") == nil, "vcard: in the vCard class, no verbatim copy")
-- Built by hand, children without their namespace: XML cannot say that, so it is kept
-- verbatim too (Prosody's get_child tells the two apart).
local handmade = st.preserialize(st.stanza("vCard", { xmlns = "vcard-temp" }):tag("FN"):text("A"))
roundtrip("vcard", "alice", handmade, "a hand-built vCard")
check(generic("alice", "vcard") ~= nil and handle:vcard_get("alice", "localhost"):find("<FN", 1, true),
	"vcard: the hand-built one in the class and kept verbatim")
local bookmarks = parsed("<storage xmlns='storage:bookmarks'>"
	.. "<conference jid='tea@conference.localhost' name='Tea'/></storage>")
local notes = parsed("<query xmlns='jabber:iq:notes'>x</query>")
roundtrip("private", "alice", { ["storage:storage:bookmarks"] = bookmarks,
	["query:jabber:iq:notes"] = notes }, "two namespaces")
check(#handle:private_list("alice", "localhost") == 2 and generic("alice", "private") == nil,
	"private: both in the private XML class")
roundtrip("private", "alice", { ["storage:storage:bookmarks"] = bookmarks }, "one namespace removed")
check(#handle:private_list("alice", "localhost") == 1, "private: the removed namespace is gone")
assert(users:open("private"):set("alice", {}))
check(users:open("private"):get("alice") == nil and #handle:private_list("alice", "localhost") == 0,
	"private: an empty value clears it")
roundtrip("blocklist", "alice", { [false] = { created = 1700000000 }, ["spam@example.net"] = 1700000001,
	["troll@example.net/x"] = true }, "two JIDs, their times and the metadata")
check(#handle:blocklist_get("alice", "localhost") == 2, "blocklist: in the blocklist class")
roundtrip("account_details", "alice", { registered = 1700000000 }, "an unmapped store (generic)")

-- The 1-1 archive.
local archive = users:open("archive", "archive")
local function msg(from, to, body)
	return st.message({ from = from, to = to, type = "chat", id = body }):tag("body"):text(body):up()
end
local t0 = 1700000000
local ids = {}
ids[1] = assert(archive:append("alice", nil, msg("alice@localhost/a", "bob@localhost", "one"), t0, "bob@localhost"))
ids[2] = assert(archive:append("alice", nil, msg("bob@localhost/b", "alice@localhost/a", "two"), t0 + 1, "bob@localhost"))
ids[3] = assert(archive:append("alice", nil, msg("carol@localhost/c", "alice@localhost", "three"), t0 + 2, "carol@localhost"))
ids[4] = assert(archive:append("alice", nil, msg("alice@localhost/a", "bob@localhost/b", "four"), t0 + 3, "bob@localhost"))
local function find(a, user, q)
	local iter, total = a:find(user, q)
	if not iter then return nil, total end
	local out = {}
	for id, stanza, when, with in iter do
		out[#out + 1] = { id = id, body = stanza:get_child_text("body"), when = when, with = with }
	end
	return out, total
end
local function bodies(items)
	local b = {}
	for i, item in ipairs(items) do b[i] = item.body end
	return table.concat(b, ",")
end
local all = find(archive, "alice", nil)
check(bodies(all) == "one,two,three,four" and all[2].with == "bob@localhost"
	and all[3].with == "carol@localhost" and all[1].when == t0 and all[1].id == ids[1],
	"archive: every message, in order, with its time, with and id", bodies(all))
local page, total = find(archive, "alice", { with = "bob@localhost", limit = 2, reverse = true, total = true })
check(bodies(page) == "four,two" and total == 3, "archive: with, limit, reverse, total", bodies(page))
page = find(archive, "alice", { after = ids[1], before = ids[4] })
check(bodies(page) == "two,three", "archive: after and before")
page = find(archive, "alice", { start = t0 + 1, ["end"] = t0 + 2 })
check(bodies(page) == "two,three", "archive: start and end (inclusive)")
page = find(archive, "alice", { ids = { ids[3], "no-such-id", ids[1] } })
check(bodies(page) == "one,three", "archive: ids (an unknown one ignored)")
local none, err = archive:find("alice", { after = "no-such-id" })
check(none == nil and err == "item-not-found", "archive: an unknown after id is item-not-found")
local stanza, when, with = archive:get("alice", ids[2])
check(stanza:get_child_text("body") == "two" and when == t0 + 1 and with == "bob@localhost",
	"archive: get by id")
check(archive:delete("alice", { ["end"] = t0 }) == 1 and bodies(find(archive, "alice")) == "two,three,four",
	"archive: delete with end (expiry)")
check(archive:delete("alice", { truncate = 1 }) == 2 and bodies(find(archive, "alice")) == "four",
	"archive: delete with truncate keeps the newest")
-- A user with no jidstore account (Prosody authenticating elsewhere): the generic archive.
assert(archive:append("zed", nil, msg("zed@localhost/z", "bob@localhost", "zed-one"), t0, "bob@localhost"))
page = find(archive, "zed", { with = "bob@localhost" })
check(bodies(page) == "zed-one", "archive: a user without a jidstore account reads the generic archive")

-- muc_log: group-chat messages in the room archive, the rest generic.
local log = rooms:open("muc_log", "archive")
local function groupchat(nick, body)
	return st.message({ from = "tea@conference.localhost/" .. nick, type = "groupchat", id = body })
		:tag("body"):text(body):up()
end
assert(log:append("tea", nil, groupchat("Al", "hello"), t0, "message<groupchat"))
assert(log:append("tea", nil, groupchat("Stranger", "hi"), t0 + 1, "message<groupchat"))
assert(log:append("tea", nil, st.presence({ from = "tea@conference.localhost/Al" }), t0 + 2, "presence"))
local history = find(log, "tea", { with = "message<groupchat", reverse = true, limit = 20 })
check(bodies(history) == "hi,hello" and history[1].with == "message<groupchat",
	"muc_log: the room's history, newest first, with the stanza type as with")
local presences = find(log, "tea", { with = "presence" })
check(#presences == 1 and presences[1].with == "presence", "muc_log: a presence kept generic")
local tea = handle:muc_find("tea", "conference.localhost", nil)
check(#tea == 2, "muc_log: group-chat messages in the room archive")
check(log:delete("tea", { ["end"] = t0 }) == 1 and bodies(find(log, "tea", { with = "message<groupchat" })) == "hi",
	"muc_log: delete with end")
log:delete("tea")
check(#find(log, "tea", nil) == 0 and #find(log, "tea", { with = "presence" }) == 0,
	"muc_log: deleting the room's archive empties both")

-- offline (mod_offline: with "", whole-store reads and deletes).
local offline = users:open("offline", "archive")
assert(offline:append("alice", nil, msg("bob@localhost/b", "alice@localhost", "off-1"), t0, ""))
assert(offline:append("alice", nil, msg("carol@localhost/c", "alice@localhost", "off-2"), t0 + 1, ""))
local held_off = find(offline, "alice")
check(bodies(held_off) == "off-1,off-2" and held_off[1].with == "" and held_off[2].when == t0 + 1,
	"offline: both messages, in order, with their times")
check(offline:delete("alice") == 2 and #find(offline, "alice") == 0, "offline: delivered and deleted")

-- PEP items: a node made on the first item, a publisher-less item, truncation.
local pep = users:open("pep_urn:xmpp:test", "archive")
local function payload(text) return st.stanza("x", { xmlns = "urn:xmpp:test" }):text(text) end
assert(pep:append("alice", "i1", payload("first"), t0, nil))
assert(pep:append("alice", "i2", payload("second"), t0 + 1, "alice@localhost"))
local p, pwhen, publisher = pep:get("alice", "i1")
check(p:get_text() == "first" and pwhen == t0 and publisher == nil,
	"pep: an item published without a publisher reads back without one")
local newest = find(pep, "alice", { limit = 1, reverse = true })
check(#newest == 1 and newest[1].id == "i2" and newest[1].with == "alice@localhost",
	"pep: the newest item with its publisher")
check(#handle:pep_items("alice", "localhost", "urn:xmpp:test") == 2, "pep: both items in the pubsub class")
assert(pep:delete("alice", { truncate = 1 }))
local left = find(pep, "alice")
check(#left == 1 and left[1].id == "i2", "pep: truncate keeps the newest item")
pep:delete("alice")
check(#find(pep, "alice") == 0 and #handle:pep_items("alice", "localhost", "urn:xmpp:test") == 0,
	"pep: clearing the node removes its items")

-- The purge: one erasure, nothing left in any class.
assert(users:purge("alice"))
check(users:open("roster"):get("alice") == nil and handle:roster_get("alice", "localhost") == nil
	and #find(archive, "alice") == 0 and users:open("blocklist"):get("alice") == nil,
	"purge: alice's roster, archive and blocklist are gone")
handle:close()
print(("driver test: PASS (%d checks)"):format(checks))
