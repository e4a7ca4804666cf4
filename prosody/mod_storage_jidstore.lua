-- mod_storage_jidstore: Prosody's storage in jidstore (https://github.com/ ... /jidstore).
--
-- Install: copy this file and jidstore_prosody.so (built from prosody/ in the jidstore
-- repository) into one directory on Prosody's plugin_paths, then set
--     storage = "jidstore"
-- Options (global or per host):
--     jidstore_path = "/var/lib/prosody/jidstore"  -- the store (default: data_path/jidstore)
--     jidstore_lib_dir = "..."  -- where jidstore_prosody.so is (default: this module's dir)
--
-- Accounts (mod_auth_internal_hashed's SCRAM-SHA-1 verifiers) become jidstore accounts; the
-- roster, vCard, private XML, blocklist, offline, archive (MAM), muc_log and pep_<node>
-- stores go to jidstore's dedicated classes (see "Stores kept in jidstore's dedicated
-- classes" below). Every other store goes to jidstore's generic per-owner class: key-value
-- stores as Prosody's own serialisation of the value (util.serialization, as
-- mod_storage_internal writes it), archive stores as one item per stanza (id, time, with,
-- the stanza's XML). purge() is jidstore's atomic erasure. The store opens on first use
-- (after Prosody has forked) and serves jidstore's admin socket, so `jidstore
-- retrieve_personal_data` / `unregister` work on the live data while Prosody runs.

local st = require "util.stanza";
local xml = require "util.xml";
local serialization = require "util.serialization";
local datetime = require "util.datetime";
local now = require "util.time".now;
local jid_bare = require "util.jid".bare;
local jid_split = require "util.jid".split;

local host = module.host;

local lib_dir = module:get_option_string("jidstore_lib_dir", module:get_directory());
if not package.cpath:find(lib_dir .. "/?.so", 1, true) then
	package.cpath = lib_dir .. "/?.so;" .. package.cpath;
end
local lib = require "jidstore_prosody";

local store_path = module:get_option_string("jidstore_path",
	(prosody.paths.data or ".") .. "/jidstore");
local serialize = serialization.new({ preset = "oneline" });
local deserialize = serialization.deserialize;

-- One handle per path for the whole process: every host's instance of this module shares it
-- (sled allows one opener of a directory). Kept in the library's table, which `require`
-- returns to every host.
lib.handles = lib.handles or {};

local function handle()
	local h = lib.handles[store_path];
	if h then return h; end
	local serve_admin = prosody.process_type == "prosody";
	local ok, opened, err = pcall(lib.open, store_path, serve_admin);
	if not ok then return nil, opened; end
	if not opened then
		if err == "locked" then
			return nil, "jidstore: the store is in use by another process (a running Prosody?): "
				.. "delete users through it (prosodyctl shell user:delete) or stop it first";
		end
		return nil, err;
	end
	lib.handles[store_path] = opened;
	module:log("info", "jidstore store opened (%s)", serve_admin and "admin socket served" or "no admin socket");
	return opened;
end

-- Calls handle:method(...), returning nil and the error text instead of raising.
local function call(method, ...)
	local h, err = handle();
	if not h then
		module:log("error", "%s", err);
		return nil, err;
	end
	local ret = table.pack(pcall(h[method], h, ...));
	if not ret[1] then
		module:log("error", "jidstore %s failed: %s", method, tostring(ret[2]));
		return nil, tostring(ret[2]);
	end
	return table.unpack(ret, 2, ret.n);
end

local driver = {};

function driver:open(store, typ)
	typ = typ or "keyval";
	if store == "accounts" and typ == "keyval" then typ = "accounts"; end
	if typ == "keyval" and self.kv_classes[store] then typ = "mapped_keyval"; end
	if typ == "archive" and self.mapped_archive[store] then typ = self.mapped_archive[store]; end
	if typ == "archive" and store:sub(1, 4) == "pep_" then typ = "pep_archive"; end
	local mt = self[typ];
	if not mt then
		return nil, "unsupported-store";
	end
	return setmetatable({ store = store, type = typ }, mt);
end

function driver:purge(user) -- luacheck: ignore 212/self
	local removed, tables, kept, audit_err = call("purge", user, host);
	if not removed then return nil, tables; end
	module:log("info", "jidstore erasure committed: %d rows removed (%s)%s", removed, tables,
		kept ~= "" and ("; kept: " .. kept) or "");
	if audit_err then
		module:log("warn", "jidstore: the audit log entry of this erasure was not written: %s", audit_err);
	end
	return true;
end

local keyval = {};
driver.keyval = { __index = keyval };

function keyval:get(user)
	local text, err = call("kv_get", user, host, self.store);
	if text == nil then return nil, err; end
	local value, derr = deserialize(text);
	if value == nil and derr then
		module:log("error", "jidstore: unreadable value in store %s: %s", self.store, derr);
		return nil, "jidstore: unreadable value";
	end
	return value;
end

function keyval:set(user, data)
	local text = nil;
	if data ~= nil then
		local ok, ser = pcall(serialize, data);
		if not ok then return nil, "jidstore: value not serialisable: " .. tostring(ser); end
		text = ser;
	end
	return call("kv_set", user, host, self.store, text);
end

function keyval:users()
	local names = call("users", host, self.store, false) or {};
	local i = 0;
	return function ()
		i = i + 1;
		return names[i];
	end;
end

-- The accounts store: mod_auth_internal_hashed's SCRAM-SHA-1 verifiers become jidstore
-- accounts (exported without secrets, and `jidstore register` accounts can log in); any other
-- shape (e.g. mod_auth_internal_plain) is kept like any other key-value store.
local accounts = setmetatable({}, { __index = keyval });
driver.accounts = { __index = accounts };

local scram_fields = { stored_key = true, server_key = true, salt = true, iteration_count = true };

local function is_scram(data)
	if type(data) ~= "table" then return false; end
	for k in pairs(data) do
		if not scram_fields[k] then return false; end
	end
	return type(data.stored_key) == "string" and type(data.server_key) == "string"
		and type(data.salt) == "string" and math.type(data.iteration_count) == "integer"
		and data.iteration_count > 0 and data.iteration_count < 2^32;
end

function accounts:get(user)
	if user ~= nil then
		local account, err = call("account_get", user, host);
		if account then return account; end
		if err then return nil, err; end
	end
	return keyval.get(self, user);
end

function accounts:set(user, data)
	if user ~= nil then
		if data == nil then
			local ok, err = call("account_remove", user, host);
			if ok == nil then return nil, err; end
		elseif is_scram(data) then
			local ok, err = call("account_set", user, host, data.salt, data.iteration_count,
				data.stored_key, data.server_key);
			if ok == nil then return nil, err; end
			-- Stored as a jidstore account: drop a generic copy, if any.
			if ok then return keyval.set(self, user, nil); end
		end
	end
	return keyval.set(self, user, data);
end

function accounts:users()
	local names, seen = {}, {};
	for _, list in ipairs({ call("account_users", host) or {}, call("users", host, self.store, false) or {} }) do
		for _, name in ipairs(list) do
			if not seen[name] then
				seen[name] = true;
				names[#names + 1] = name;
			end
		end
	end
	local i = 0;
	return function ()
		i = i + 1;
		return names[i];
	end;
end

local archive = {};
driver.archive = { __index = archive };

archive.caps = {
	total = true;
	truncate = true;
	full_id_range = true;
	ids = true;
};

function archive:append(username, key, value, when, with)
	if not st.is_stanza(value) then
		return nil, "unsupported-datatype";
	end
	return call("append", username, host, self.store, key, when or now(), with, tostring(value));
end

local function parse(item)
	local stanza, err = xml.parse(item.value);
	if not stanza then
		module:log("error", "jidstore: unreadable archived stanza: %s", tostring(err));
		stanza = st.stanza("message");
	end
	return stanza;
end

function archive:find(username, query)
	local items, total = call("find", username, host, self.store, query);
	if not items then return nil, total; end
	local i = 0;
	return function ()
		i = i + 1;
		local item = items[i];
		if not item then return; end
		return item.id, parse(item), item.when, item.with;
	end, total;
end

function archive:get(username, wanted_key)
	local items, err = call("find", username, host, self.store, { key = wanted_key });
	if not items then return nil, err; end
	local item = items[1];
	if not item then return nil, "item-not-found"; end
	return parse(item), item.when, item.with;
end

function archive:set(username, key, new_value, new_when, new_with)
	local items, err = call("find", username, host, self.store, { key = key });
	if not items then return nil, err; end
	local old = items[1];
	if not old then return nil, "item-not-found"; end
	local ok, aerr = call("append", username, host, self.store, key, new_when or old.when,
		new_with or old.with, tostring(new_value));
	if not ok then return nil, aerr; end
	return true;
end

function archive:dates(username)
	local items, err = call("find", username, host, self.store, nil);
	if not items then return nil, err; end
	local dates, seen = {}, {};
	for _, item in ipairs(items) do
		local date = datetime.date(item.when);
		if not seen[date] then
			seen[date] = true;
			dates[#dates + 1] = date;
		end
	end
	return dates;
end

function archive:summary(username, query)
	local iter, err = self:find(username, query);
	if not iter then return iter, err; end
	local counts, earliest, latest, body = {}, {}, {}, {};
	for _, stanza, when, with in iter do
		counts[with] = (counts[with] or 0) + 1;
		if earliest[with] == nil then
			earliest[with] = when;
		end
		latest[with] = when;
		body[with] = stanza:get_child_text("body") or body[with];
	end
	return { counts = counts; earliest = earliest; latest = latest; body = body };
end

function archive:users()
	local names = call("users", host, self.store, true) or {};
	local i = 0;
	return function ()
		i = i + 1;
		return names[i];
	end;
end

function archive:delete(username, query)
	return call("delete", username, host, self.store, query);
end

-- Stores kept in jidstore's dedicated classes (so an export has roster.csv, vcard.csv,
-- private.csv, blocklist.csv, offline.csv, mam_pm.csv and mam_muc.csv rows, not generic
-- ones). A key-value store is converted to the class's form and back; when the way back does
-- not give exactly what Prosody wrote (a field the class does not hold), the value is also
-- kept verbatim in the generic class under the store's own name, and reads return that copy.
-- Metadata a class has no column for (the roster's pending requests, the blocklist's
-- creation time) is kept in the generic class under "<store>#meta".

local function deep_equal(a, b)
	if a == b then return true; end
	if type(a) ~= "table" or type(b) ~= "table" then return false; end
	for k, v in pairs(a) do
		if not deep_equal(v, b[k]) then return false; end
	end
	for k in pairs(b) do
		if a[k] == nil then return false; end
	end
	return true;
end

local function sorted_keys(t)
	local keys = {};
	for k, v in pairs(t or {}) do
		if v == true and type(k) == "string" then keys[#keys + 1] = k; end
	end
	table.sort(keys);
	return keys;
end

local function set_of(list)
	local t = {};
	for _, v in ipairs(list or {}) do t[v] = true; end
	return t;
end

-- The status text of a pending subscription request (a preserialized presence), if any.
local function status_of(pending)
	if type(pending) ~= "table" then return nil; end
	for _, child in ipairs(pending) do
		if type(child) == "table" and child.name == "status" and type(child[1]) == "string" then
			return child[1];
		end
	end
	return nil;
end

-- Each mapped key-value store: to (value -> class form, metadata), from (class form,
-- metadata -> value), get (user -> class form or nil), put (user, class form -> true, or
-- false when the class cannot take it).
local mapped_keyval = {};
driver.kv_classes = mapped_keyval;

mapped_keyval.roster = {
	to = function (roster)
		local meta = roster[false] or {};
		local pending = meta.pending or {};
		local items = {};
		for jid, item in pairs(roster) do
			if jid ~= false then
				local p = pending[jid] ~= nil;
				local ask = item.ask == "subscribe" and (p and "both" or "out") or (p and "in" or "none");
				items[#items + 1] = { jid = jid, name = item.name, subscription = item.subscription,
					ask = ask, groups = sorted_keys(item.groups), askmessage = status_of(pending[jid]) };
			end
		end
		for jid, request in pairs(pending) do
			if roster[jid] == nil then
				items[#items + 1] = { jid = jid, subscription = "none", ask = "in", groups = {},
					askmessage = status_of(request) };
			end
		end
		local extra = {};
		for k, v in pairs(meta) do
			if k ~= "version" then extra[k] = v; end
		end
		if next(extra) == nil or (next(extra, next(extra)) == nil and extra.pending and next(extra.pending) == nil) then
			extra = nil;
		end
		local version = meta.version;
		if math.type(version) ~= "integer" then version = nil; end
		return { items = items, version = version }, extra;
	end;
	from = function (repr, extra)
		local meta = {};
		for k, v in pairs(extra or {}) do meta[k] = v; end
		meta.pending = meta.pending or {};
		meta.version = repr and repr.version;
		local roster = { [false] = meta };
		for _, item in ipairs(repr and repr.items or {}) do
			local pending_only = meta.pending[item.jid] ~= nil and item.subscription == "none"
				and item.ask == "in" and item.name == nil and #item.groups == 0;
			if not pending_only then
				roster[item.jid] = { name = item.name, subscription = item.subscription,
					ask = (item.ask == "out" or item.ask == "both") and "subscribe" or nil,
					groups = set_of(item.groups) };
			end
		end
		return roster;
	end;
	get = function (user) return call("roster_get", user, host); end;
	put = function (user, repr)
		return call("roster_set", user, host, repr and repr.items or {}, repr and repr.version);
	end;
};

mapped_keyval.vcard = {
	to = function (data) return tostring(st.deserialize(data)); end;
	from = function (text) return text and st.preserialize(xml.parse(text)); end;
	get = function (user) return call("vcard_get", user, host); end;
	put = function (user, text) return call("vcard_set", user, host, text); end;
};

-- mod_private's map store (through Prosody's map-over-keyval shim): "name:namespace" keys.
mapped_keyval.private = {
	to = function (data)
		local list = {};
		for key, value in pairs(data) do
			local el = st.deserialize(value);
			local ns = el.attr.xmlns;
			assert(type(ns) == "string" and key == el.name .. ":" .. ns, "key is not name:namespace");
			list[#list + 1] = { ns, tostring(el) };
		end
		return list;
	end;
	from = function (list)
		if not list or #list == 0 then return nil; end
		local data = {};
		for _, pair in ipairs(list) do
			local el = xml.parse(pair[2]);
			data[el.name .. ":" .. pair[1]] = st.preserialize(el);
		end
		return data;
	end;
	get = function (user) return call("private_list", user, host); end;
	put = function (user, list) return call("private_set", user, host, list or {}); end;
};

-- mod_blocklist: { [jid] = time blocked, [false] = { created, modified } }. The class holds
-- the JIDs; the times go to the metadata.
mapped_keyval.blocklist = {
	to = function (data)
		local jids, times = {}, {};
		for k, v in pairs(data) do
			if k ~= false then
				jids[#jids + 1] = k;
				if v ~= true then times[k] = v; end
			end
		end
		table.sort(jids);
		return jids, { [false] = data[false], times = times };
	end;
	from = function (jids, extra)
		extra = extra or {};
		if (not jids or #jids == 0) and extra[false] == nil then return nil; end
		local data = { [false] = extra[false] };
		for _, j in ipairs(jids or {}) do
			data[j] = extra.times and extra.times[j] or true;
		end
		return data;
	end;
	get = function (user) return call("blocklist_get", user, host); end;
	put = function (user, jids) return call("blocklist_set", user, host, jids or {}); end;
};

local mapped_kv = setmetatable({}, { __index = keyval });
driver.mapped_keyval = { __index = mapped_kv };

local function meta_store(store) return store .. "#meta"; end

function mapped_kv:get(user)
	local m = mapped_keyval[self.store];
	if user == nil then return keyval.get(self, user); end
	-- A verbatim copy (the class could not hold the value exactly) wins.
	local copy, err = keyval.get(self, user);
	if copy ~= nil or err then return copy, err; end
	local repr, gerr = m.get(user);
	if gerr then return nil, gerr; end
	local extra, merr = keyval.get({ store = meta_store(self.store) }, user);
	if merr then return nil, merr; end
	if repr == nil and extra == nil then return nil; end
	local ok, value = pcall(m.from, repr, extra);
	if not ok then
		module:log("error", "jidstore: unreadable %s record: %s", self.store, tostring(value));
		return nil, "jidstore: unreadable record";
	end
	return value;
end

function mapped_kv:users() -- luacheck: ignore 212/self
	return accounts.users({ store = "accounts" });
end

function mapped_kv:set(user, data)
	local m = mapped_keyval[self.store];
	if user == nil then return keyval.set(self, user, data); end
	-- An empty table is no value (mod_storage_internal removes the file too).
	if type(data) == "table" and next(data) == nil then data = nil; end
	local meta = { store = meta_store(self.store) };
	if data == nil then
		local ok, err = m.put(user, nil);
		if ok == nil then return nil, err; end
		ok, err = keyval.set(meta, user, nil);
		if ok == nil then return nil, err; end
		return keyval.set(self, user, nil);
	end
	local converted, repr, extra = pcall(m.to, data);
	local exact = false;
	if converted then
		local rebuilt_ok, rebuilt = pcall(m.from, repr, extra);
		exact = rebuilt_ok and deep_equal(rebuilt, data);
	end
	-- The verbatim copy first: reads return it until the class and its metadata hold the
	-- new value, so a crash between these writes never reads back a mix of two values.
	local ok, err = keyval.set(self, user, data);
	if ok == nil then return nil, err; end
	local fits = false;
	if converted then
		ok, err = m.put(user, repr);
		if ok == nil then return nil, err; end
		fits = ok;
	end
	if not (exact and fits) then
		-- Not exactly representable: the class holds what it can (for the export), the
		-- value itself stays verbatim.
		return keyval.set(meta, user, nil);
	end
	ok, err = keyval.set(meta, user, extra);
	if ok == nil then return nil, err; end
	return keyval.set(self, user, nil);
end

-- Archive stores in dedicated classes: `archive` (mod_mam) in the 1-1 archive, `muc_log`
-- (mod_muc_mam) in the group-chat archive, `offline` (mod_offline) in offline messages.
-- Anything the class cannot hold goes to the generic archive of the same name (see README).
driver.mapped_archive = { archive = "mam_archive", muc_log = "muc_archive", offline = "offline_archive" };

local function iterate(items, total, with_of)
	local i = 0;
	return function ()
		i = i + 1;
		local item = items[i];
		if not item then return; end
		local stanza = parse(item);
		return item.id, stanza, item.when, with_of and with_of(stanza) or item.with;
	end, total;
end

local function add_counts(a, b)
	if type(a) == "number" and type(b) == "number" then return a + b; end
	return a or b;
end

local mam = setmetatable({}, { __index = archive });
driver.mam_archive = { __index = mam };
mam.caps = archive.caps;

function mam:append(username, key, value, when, with)
	if username == nil or not st.is_stanza(value) or type(with) ~= "string" then
		return archive.append(self, username, key, value, when, with);
	end
	local owner = username .. "@" .. host;
	local from, to = value.attr.from, value.attr.to;
	local outgoing = from ~= nil and jid_bare(from) == owner;
	local from_col, to_col;
	-- The columns are chosen so that the other party (to when outgoing, from when
	-- incoming) is exactly Prosody's `with`: the stanza itself is stored as it is.
	if outgoing then
		from_col = from;
		to_col = (to and jid_bare(to) == with) and to or with;
	else
		from_col = (from and jid_bare(from) == with) and from or with;
		to_col = to or owner;
	end
	local id, err = call("mam_append", username, host, key, when or now(), from_col, to_col,
		outgoing, tostring(value));
	if id == false then
		-- A full JID jidstore does not take: the bare JIDs carry the same `with`.
		id, err = call("mam_append", username, host, key, when or now(),
			outgoing and owner or with, outgoing and with or owner, outgoing, tostring(value));
	end
	if id == nil then return nil, err; end
	-- No jidstore account (Prosody authenticates elsewhere): the generic archive, which
	-- find reads for such users.
	if id == false then return archive.append(self, username, key, value, when, with); end
	return id;
end

function mam:find(username, query)
	if username == nil then return archive.find(self, username, query); end
	local items, total = call("mam_find", username, host, query);
	if items == false then return archive.find(self, username, query); end
	if not items then return nil, total; end
	return iterate(items, total);
end

function mam:get(username, key)
	if username == nil then return archive.get(self, username, key); end
	local items, err = call("mam_find", username, host, { key = key });
	if items == nil then return nil, err; end
	local item = items and items[1];
	if not item then return archive.get(self, username, key); end
	return parse(item), item.when, item.with;
end

function mam:set(username, key, new_value, new_when, new_with)
	local old, old_when, old_with = self:get(username, key);
	if not old then return nil, old_when; end
	local ok, err = self:delete(username, { key = key });
	if not ok then return nil, err; end
	ok, err = self:append(username, key, new_value, new_when or old_when, new_with or old_with);
	if not ok then return nil, err; end
	return true;
end

function mam:dates(username)
	local iter, err = self:find(username, nil);
	if not iter then return nil, err; end
	local dates, seen = {}, {};
	for _, _, when in iter do
		local date = datetime.date(when);
		if not seen[date] then
			seen[date] = true;
			dates[#dates + 1] = date;
		end
	end
	return dates;
end

function mam:users()
	return accounts.users({ store = "accounts" });
end

function mam:delete(username, query)
	if username == nil or username == true then return archive.delete(self, username, query); end
	local n, err = call("mam_delete", username, host, query);
	if n == nil then return nil, err; end
	local g, gerr = archive.delete(self, username, query);
	if g == nil then return nil, gerr; end
	return add_counts(n, g);
end

-- muc_log: group-chat messages (`with` = "message<groupchat", which mod_muc_mam derives from
-- the stanza) in the group-chat archive, with the sender's real JID from the room's
-- occupant (or the <x><item jid/> mod_muc_mam adds in non-anonymous rooms); anything else
-- (presences if logged, other types) in the generic archive of the same name.
local GROUPCHAT = "message<groupchat";
local muc = setmetatable({}, { __index = mam });
driver.muc_archive = { __index = muc };

local function real_jid(room_jid, stanza)
	local mod_muc = prosody.hosts[host] and prosody.hosts[host].modules.muc;
	local room = mod_muc and mod_muc.get_room_from_jid and mod_muc.get_room_from_jid(room_jid);
	local occupant = room and stanza.attr.from and room:get_occupant_by_nick(stanza.attr.from);
	if occupant and occupant.bare_jid then return occupant.bare_jid; end
	local x = stanza:get_child("x", "http://jabber.org/protocol/muc#user");
	local item = x and x:get_child("item");
	if item and item.attr.jid then return jid_bare(item.attr.jid); end
	return nil;
end

function muc:append(username, key, value, when, with)
	if username == nil or key ~= nil or not st.is_stanza(value) or with ~= GROUPCHAT
		or value.name ~= "message" or value.attr.type ~= "groupchat" then
		return archive.append(self, username, key, value, when, with);
	end
	local room_jid = username .. "@" .. host;
	local _, _, nick = jid_split(value.attr.from or "");
	local ok, sender = pcall(real_jid, room_jid, value);
	if not ok then sender = nil; end
	if not nick then
		return archive.append(self, username, key, value, when, with);
	end
	local id, err = call("muc_append", username, host, when or now(), sender or room_jid, nick,
		tostring(value));
	if id == nil then return nil, err; end
	if id == false then return archive.append(self, username, key, value, when, with); end
	return id;
end

local function groupchat_with(stanza)
	return stanza.name .. (stanza.attr.type and ("<" .. stanza.attr.type) or "");
end

function muc:find(username, query)
	if username == nil or (query and query.with and query.with ~= GROUPCHAT) then
		return archive.find(self, username, query);
	end
	local items, total = call("muc_find", username, host, query);
	if not items then return nil, total; end
	return iterate(items, total, groupchat_with);
end

function muc:get(username, key)
	if username == nil then return archive.get(self, username, key); end
	local items, err = call("muc_find", username, host, { key = key });
	if not items then return nil, err; end
	local item = items[1];
	if not item then return archive.get(self, username, key); end
	local stanza = parse(item);
	return stanza, item.when, groupchat_with(stanza);
end

function muc:users()
	return archive.users(self);
end

function muc:delete(username, query)
	if username == nil or username == true then return archive.delete(self, username, query); end
	local n, err = call("muc_delete", username, host, query);
	if n == nil then return nil, err; end
	local g, gerr = archive.delete(self, username, query);
	if g == nil then return nil, gerr; end
	return add_counts(n, g);
end

-- The query of an archive `find` over a small list held in memory (oldest first), as
-- mod_storage_internal answers it: returns the items and the total, or nil and
-- "item-not-found" for an unknown before/after id.
local function select_items(items, query)
	query = query or {};
	local ids = query.ids and set_of(query.ids);
	local out = {};
	for _, item in ipairs(items) do
		if (query.key == nil or query.key == item.id) and (ids == nil or ids[item.id])
			and (query.with == nil or query.with == item.with)
			and (query.start == nil or item.when >= query.start)
			and (query["end"] == nil or item.when <= query["end"]) then
			out[#out + 1] = item;
		end
	end
	local total = #out;
	if query.reverse then
		for i = 1, math.floor(#out / 2) do out[i], out[#out - i + 1] = out[#out - i + 1], out[i]; end
	end
	local function position(id)
		for i, item in ipairs(out) do
			if item.id == id then return i; end
		end
	end
	local from, to = query.after, query.before;
	if query.reverse then from, to = query.before, query.after; end
	local first, last = 1, #out;
	if from ~= nil then
		local p = position(from);
		if not p then return nil, "item-not-found"; end
		first = p + 1;
	end
	if to ~= nil then
		local p = position(to);
		if not p then return nil, "item-not-found"; end
		last = p - 1;
	end
	if query.limit then last = math.min(last, first + query.limit - 1); end
	local page = {};
	for i = first, last do page[#page + 1] = out[i]; end
	return page, total;
end

-- Which of `items` (oldest first) a `delete` query removes.
local function select_deleted(items, query)
	query = query or {};
	local matching = select_items(items, { key = query.key, with = query.with,
		start = query.start, ["end"] = query["end"] });
	local keep = tonumber(query.truncate);
	if keep then
		local n = math.max(#matching - keep, 0);
		if query.reverse then
			for _ = 1, #matching - n do table.remove(matching, 1); end
		else
			for i = #matching, n + 1, -1 do matching[i] = nil; end
		end
	end
	return matching;
end

-- offline: mod_offline appends with `with` = "" and reads and deletes a user's whole store.
local offline = setmetatable({}, { __index = archive });
driver.offline_archive = { __index = offline };
offline.caps = { total = true };

function offline:append(username, key, value, when, with)
	if username == nil or key ~= nil or with ~= "" or not st.is_stanza(value) or not value.attr.from then
		return archive.append(self, username, key, value, when, with);
	end
	local ok, err = call("offline_store", username, host, value.attr.from,
		value.attr.to or (username .. "@" .. host), when or now(), tostring(value));
	if ok == nil then return nil, err; end
	if ok == false then return archive.append(self, username, key, value, when, with); end
	return true;
end

-- Every message (the class's, then any kept in the generic archive), filtered in Lua:
-- offline stores are small and read whole on login.
function offline:find(username, query)
	if username == nil then return archive.find(self, username, query); end
	local items, err = call("offline_list", username, host);
	if not items then return nil, err; end
	for _, item in ipairs(items) do item.with = ""; end
	local more, gerr = call("find", username, host, self.store, nil);
	if not more then return nil, gerr; end
	for _, item in ipairs(more) do items[#items + 1] = item; end
	local page, total = select_items(items, query);
	if not page then return nil, total; end
	return iterate(page, total);
end

function offline:get(username, key)
	local iter, err = self:find(username, { key = key });
	if not iter then return nil, err; end
	local _, stanza, when, with = iter();
	if not stanza then return nil, "item-not-found"; end
	return stanza, when, with;
end

-- A whole-store delete (mod_offline after delivery) clears the class; a delete with
-- filters applies to the generic archive only.
function offline:delete(username, query)
	if username == nil or username == true then return archive.delete(self, username, query); end
	local n = 0;
	if query == nil or next(query) == nil then
		local err;
		n, err = call("offline_clear", username, host);
		if n == nil then return nil, err; end
	end
	local g, gerr = archive.delete(self, username, query);
	if g == nil then return nil, gerr; end
	return add_counts(n, g);
end

function offline:users()
	return accounts.users({ store = "accounts" });
end

-- pep_<node>: a user's PEP items in jidstore's pubsub class (the node is made on its first
-- item, on the user's JID, with the access model of Prosody's node config). An item the
-- class cannot hold (no id, a publisher that is not a bare JID) stays in the generic
-- archive of the same name; reads merge both (a node holds few items). Node configs,
-- subscribers and affiliations (the `pep` store) stay generic.
local pep = setmetatable({}, { __index = archive });
driver.pep_archive = { __index = pep };
pep.caps = { total = true; truncate = true; ids = true };

local function pep_node(store) return store:sub(5); end

local function access_model(user, node)
	local nodes = keyval.get({ store = "pep" }, user);
	local n = type(nodes) == "table" and nodes[node];
	return type(n) == "table" and type(n.config) == "table" and n.config.access_model or nil;
end

-- Items published with no publisher (mod_vcard_legacy's) are stored with the owner as
-- publisher; their ids are listed in the generic "<store>#meta" so reads give nil back.
local function anonymous(self, username)
	local meta = keyval.get({ store = meta_store(self.store) }, username);
	return type(meta) == "table" and meta or {};
end

local function set_anonymous(self, username, key, yes)
	local meta = anonymous(self, username);
	if (meta[key] ~= nil) == (yes == true) then return true; end
	meta[key] = yes or nil;
	return keyval.set({ store = meta_store(self.store) }, username, next(meta) and meta or nil);
end

function pep:append(username, key, value, when, with)
	if username == nil or type(key) ~= "string" or not st.is_stanza(value)
		or (with ~= nil and type(with) ~= "string") then
		return archive.append(self, username, key, value, when, with);
	end
	local node = pep_node(self.store);
	local ok, err = call("pep_publish", username, host, node, key, with or (username .. "@" .. host),
		tostring(value), when or now(), access_model(username, node));
	if ok then
		ok, err = set_anonymous(self, username, key, with == nil);
		if ok == nil then return nil, err; end
	end
	if ok == nil then return nil, err; end
	if ok == false then
		ok, err = call("pep_retract", username, host, node, key);
		if ok ~= nil then ok, err = set_anonymous(self, username, key, false); end
		if ok == nil then return nil, err; end
		return archive.append(self, username, key, value, when, with);
	end
	-- An older copy of this item in the generic archive would shadow nothing but linger.
	ok, err = archive.delete(self, username, { key = key });
	if ok == nil then return nil, err; end
	return key;
end

-- Both sources, oldest first; items of the class are marked.
function pep:all(username)
	local items, err = call("pep_items", username, host, pep_node(self.store));
	if not items then return nil, err; end
	local nobody = anonymous(self, username);
	for _, item in ipairs(items) do
		item.class = true;
		if nobody[item.id] then item.with = nil; end
	end
	local more, gerr = call("find", username, host, self.store, nil);
	if not more then return nil, gerr; end
	for _, item in ipairs(more) do items[#items + 1] = item; end
	if #more > 0 then
		-- Stable by time: equal times keep class items first.
		for i, item in ipairs(items) do item.n = i; end
		table.sort(items, function (a, b)
			if a.when ~= b.when then return a.when < b.when; end
			return a.n < b.n;
		end);
	end
	return items;
end

function pep:find(username, query)
	if username == nil then return archive.find(self, username, query); end
	local items, err = self:all(username);
	if not items then return nil, err; end
	local page, total = select_items(items, query);
	if not page then return nil, total; end
	return iterate(page, total);
end

function pep:get(username, key)
	local iter, err = self:find(username, { key = key });
	if not iter then return nil, err; end
	local _, stanza, when, with = iter();
	if not stanza then return nil, "item-not-found"; end
	return stanza, when, with;
end

function pep:set(username, key, new_value, new_when, new_with)
	local old, old_when, old_with = self:get(username, key);
	if not old then return nil, old_when; end
	return self:append(username, key, new_value, new_when or old_when, new_with or old_with) and true;
end

function pep:dates(username) return mam.dates(self, username); end

function pep:users()
	return accounts.users({ store = "accounts" });
end

function pep:delete(username, query)
	if username == nil or username == true then return archive.delete(self, username, query); end
	local node = pep_node(self.store);
	if query == nil or next(query) == nil then
		local n, err = call("pep_clear", username, host, node);
		if n == nil then return nil, err; end
		local ok, merr = keyval.set({ store = meta_store(self.store) }, username, nil);
		if ok == nil then return nil, merr; end
		local g, gerr = archive.delete(self, username, query);
		if g == nil then return nil, gerr; end
		return add_counts(n, g);
	end
	local items, err = self:all(username);
	if not items then return nil, err; end
	local n = 0;
	for _, item in ipairs(select_deleted(items, query)) do
		local ok, derr;
		if item.class then
			ok, derr = call("pep_retract", username, host, node, item.id);
			if ok ~= nil then ok, derr = set_anonymous(self, username, item.id, false); end
		else
			ok, derr = archive.delete(self, username, { key = item.id });
		end
		if ok == nil then return nil, derr; end
		n = n + 1;
	end
	return n;
end

-- Prosody does not unload modules on SIGTERM: flush when the server stops.
module:hook_global("server-stopping", function ()
	local h = lib.handles[store_path];
	if h then pcall(h.flush, h); end
end);
module:hook_global("server-cleanup", function ()
	local h = lib.handles[store_path];
	if h then pcall(h.close, h); end
end);

module:provides("storage", driver);
