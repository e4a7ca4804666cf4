-- mod_storage_jidstore: Prosody's storage in jidstore (https://github.com/ ... /jidstore).
--
-- Install: copy this file and jidstore_prosody.so (built from prosody/ in the jidstore
-- repository) into one directory on Prosody's plugin_paths, then set
--     storage = "jidstore"
-- Options (global or per host):
--     jidstore_path = "/var/lib/prosody/jidstore"  -- the store (default: data_path/jidstore)
--     jidstore_lib_dir = "..."  -- where jidstore_prosody.so is (default: this module's dir)
--
-- Accounts (mod_auth_internal_hashed's SCRAM-SHA-1 verifiers) become jidstore accounts. Every
-- other store goes to jidstore's generic per-owner class: key-value stores as Prosody's own
-- serialisation of the value (util.serialization, as mod_storage_internal writes it), archive
-- stores as one item per stanza (id, time, with, the stanza's XML). purge() is jidstore's
-- atomic erasure. The store opens on first use (after Prosody has forked) and serves
-- jidstore's admin socket, so `jidstore retrieve_personal_data` / `unregister` work on the
-- live data while Prosody runs.

local st = require "util.stanza";
local xml = require "util.xml";
local serialization = require "util.serialization";
local datetime = require "util.datetime";
local now = require "util.time".now;

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
	if store == "accounts" and (typ or "keyval") == "keyval" then typ = "accounts"; end
	local mt = self[typ or "keyval"];
	if not mt then
		return nil, "unsupported-store";
	end
	return setmetatable({ store = store, type = typ }, mt);
end

function driver:purge(user) -- luacheck: ignore 212/self
	local removed, tables, kept = call("purge", user, host);
	if not removed then return nil, tables; end
	module:log("info", "jidstore erasure committed: %d rows removed (%s)%s", removed, tables,
		kept ~= "" and ("; kept: " .. kept) or "");
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
