-- mod_bench_fill: pre-fills one user's MAM archive for bench.py, outside the timers.
--
--   prosodyctl --config CFG mod_bench_fill HOST USER PASSWORD PEER_PASSWORD N SEED END
--
-- Creates USER and the first peer ("bob") with the given passwords through Prosody's
-- usermanager, then appends N chat messages to USER's `archive` store through Prosody's
-- storagemanager, i.e. through whichever `storage` driver CFG names (internal, sql or
-- jidstore), with the arguments mod_mam passes on a live message: key nil, the stanza as
-- mod_mam stores it, the message's time, `with` = the peer's bare JID. So what Prosody's
-- mod_mam later reads is exactly what that driver wrote, and every storage gets the same
-- archive: the messages follow from SEED alone (a fixed generator, no math.random).
--
-- Why this way and not prosody-migrator: the migrator copies between storages but needs the
-- source archive written first and cannot set jidstore's options (plugin_paths,
-- jidstore_path) from its own config format, and it would still append one by one. Here each
-- storage is written by its own driver from the same config file Prosody then runs with.
--
-- The archive: 20 peers (bob and peer01..peer19, bob about 1 message in 20), both
-- directions, bodies of 1 to 40 words from a small vocabulary (5 to 250 bytes), timestamps
-- in whole seconds (as mod_mam's os.time) spread evenly over the 200 days before END (Unix
-- seconds; N = 100000: one message every ~3 minutes), so a day-long time range holds ~500.
--
-- Through mod_storage_sql every append is its own SQLite transaction with an fsync (~190/s
-- here, ~9 minutes for 100k); bench.py therefore lets this fill write the SQLite file on
-- tmpfs and copies it into place afterwards: the same rows, written by the same driver.

local st = require "util.stanza";
local startup = require "util.startup";
local sm = require "core.storagemanager";
local um = require "core.usermanager";
local now = require "util.time".now;

local words = {
	"hello", "are", "you", "coming", "tonight", "the", "meeting", "moved", "to", "tuesday",
	"thanks", "for", "sending", "notes", "I", "will", "call", "later", "can", "we", "talk",
	"about", "budget", "draft", "looks", "good", "see", "attached", "link", "lunch", "at",
	"noon", "train", "is", "late", "again", "sorry", "ok", "sure", "what", "time", "works",
	"better", "tomorrow", "morning", "review", "please", "done", "fixed", "bug", "in",
	"release", "shipping", "Friday", "weekend", "plans", "coffee", "?", "!", "deal",
}

-- A 31-bit linear congruential generator: the same sequence on every storage.
local function generator(seed)
	local state = seed % 2147483647;
	if state <= 0 then state = state + 2147483646; end
	return function (n)
		state = (state * 48271) % 2147483647;
		return state % n;
	end
end

function module.command(arg)
	local host, user, password, peer_password = arg[1], arg[2], arg[3], arg[4];
	local n, seed, last = tonumber(arg[5]), tonumber(arg[6]), tonumber(arg[7]);
	if not (host and user and password and peer_password and n and seed and last) then
		print("usage: prosodyctl mod_bench_fill HOST USER PASSWORD PEER_PASSWORD N SEED END");
		return 1;
	end
	if not prosody.hosts[host] then
		prosody.hosts[host] = startup.make_host(host);
	end
	sm.initialize_host(host);
	um.initialize_host(host);
	assert(um.create_user(user, password, host));
	assert(um.create_user("bob", peer_password, host));
	local archive = assert(sm.open(host, "archive", "archive"));
	local rand = generator(seed);
	local me = user .. "@" .. host;
	local span = 200 * 86400;
	local first = last - span;
	local started = now();
	for i = 1, n do
		local peer = rand(20) == 0 and "bob" or ("peer%02d"):format(1 + rand(19));
		local with = peer .. "@" .. host;
		local outgoing = rand(2) == 0;
		local body = {};
		for w = 1, 1 + rand(40) do body[w] = words[1 + rand(#words)]; end
		local stanza = st.message({
			xmlns = "jabber:client",
			type = "chat",
			from = outgoing and (me .. "/laptop") or (with .. "/phone"),
			to = outgoing and with or me,
			id = ("fill-%d-%d"):format(seed, i),
		}):text_tag("body", table.concat(body, " "));
		local when = math.floor(first + span * (i - 1) / n); -- whole seconds, as mod_mam (os.time)
		assert(archive:append(user, nil, stanza, when, with));
		if i % 10000 == 0 then
			print(("%d of %d appended (%.0f/s)"):format(i, n, i / (now() - started)));
		end
	end
	print(("filled %s's archive with %d messages in %.1f s"):format(me, n, now() - started));
	return 0;
end
