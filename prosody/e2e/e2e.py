#!/usr/bin/env python3
"""End-to-end test: a real Prosody with mod_storage_jidstore, real slixmpp clients, and the
jidstore CLI acting on the live data through the admin socket.

Usage: e2e.py --jidstore BIN --module-dir DIR
  DIR holds mod_storage_jidstore.lua and jidstore_prosody.so.
Runs as root (Prosody is started as the `prosody` user) or as an unprivileged user. Prints
"prosody e2e: PASS" last on success; any failed check raises and exits non-zero.
"""

import argparse
import asyncio
import csv
import io
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

DOMAIN = "localhost"
TIMEOUT = 20  # seconds any single wait may take before the test fails
NONCE = secrets.token_hex(4)

CONFIG = """
pidfile = "{dir}/prosody.pid"
data_path = "{dir}/data"
plugin_paths = {{ "{plugins}" }}
storage = "{storage}"
sql = {{ driver = "SQLite3", database = "{dir}/prosody.sqlite" }}
jidstore_path = "{dir}/jidstore"
admin_socket = "{dir}/prosody.sock"
log = {{ debug = "{dir}/prosody.log" }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {port} }}
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
allow_registration = true
authentication = "internal_hashed"
daemonize = false
modules_enabled = {{ "roster", "saslauth", "disco", "private", "vcard_legacy", "register",
    "mam", "offline", "ping", "posix", "blocklist" }}
modules_disabled = {{ "s2s" }}
archive_expires_after = "never"
mam_include_total = {total}  -- jidstore counts only when asked (Prosody asks only with this)
{extra}
VirtualHost "{domain}"
Component "conference.{domain}" "muc"
    modules_enabled = {{ "muc_mam" }}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A Prosody in a throwaway directory, run as the prosody user when we are root."""

    def __init__(self, module_dir, jidstore, storage="jidstore", extra_config="", plugins=(),
                 include_total=True):
        """extra_config: more global options; plugins: more module files copied into the
        plugin directory; include_total: mam_include_total."""
        self.dir = tempfile.mkdtemp(prefix="jidstore-prosody-")
        os.chmod(self.dir, 0o755)
        self.plugins = os.path.join(self.dir, "plugins")
        os.mkdir(self.plugins)
        for name in ("mod_storage_jidstore.lua", "jidstore_prosody.so"):
            shutil.copy(os.path.join(module_dir, name), self.plugins)
        for path in plugins:
            shutil.copy(path, self.plugins)
        # A copy the prosody user can run (the checkout may be in a private directory).
        self.jidstore = shutil.copy(jidstore, os.path.join(self.dir, "jidstore-cli"))
        self.port = free_port()
        self.config = os.path.join(self.dir, "prosody.cfg.lua")
        with open(self.config, "w") as f:
            f.write(CONFIG.format(dir=self.dir, plugins=self.plugins, port=self.port,
                                  domain=DOMAIN, storage=storage, extra=extra_config,
                                  total="true" if include_total else "false"))
        self.as_user = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("prosody")
            for root, dirs, files in os.walk(self.dir):
                for p in [root] + [os.path.join(root, n) for n in dirs + files]:
                    os.chown(p, pw.pw_uid, pw.pw_gid)
            self.as_user = ["runuser", "-u", "prosody", "--"]
        self.proc = None
        self.store = os.path.join(self.dir, "jidstore")

    def start(self):
        self.proc = subprocess.Popen(self.as_user + ["prosody", "--config", self.config, "-F"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"prosody exited with {self.proc.returncode}; log:\n"
                                     + self.log_tail())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("prosody did not listen in time")
                time.sleep(0.1)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=TIMEOUT)
        self.proc = None

    def kill9(self):
        """SIGKILL to the Prosody process itself (not runuser)."""
        with open(os.path.join(self.dir, "prosody.pid")) as f:
            os.kill(int(f.read().strip()), signal.SIGKILL)
        self.proc.wait(timeout=TIMEOUT)
        self.proc = None

    def prosodyctl(self, *args):
        return subprocess.run(self.as_user + ["prosodyctl", "--config", self.config, *args],
                              capture_output=True, text=True, timeout=60)

    def log_tail(self, n=60):
        try:
            with open(os.path.join(self.dir, "prosody.log")) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"


class Client(slixmpp.ClientXMPP):
    """A client on loopback without TLS (SCRAM allowed unencrypted)."""

    def __init__(self, user, password, register=False):
        super().__init__(f"{user}@{DOMAIN}/e2e", password,
                         plugin_config={"feature_mechanisms": {"unencrypted_scram": True,
                                                               "unencrypted_plain": True}})
        self.enable_starttls = False
        self.enable_direct_tls = False
        self.enable_plaintext = True
        self.received = []  # message bodies received, in order
        self.mam = {}  # queryid -> list of (archive id, body, from)
        self.got_message = asyncio.Event()
        self.add_event_handler("message", self.on_message)
        # slixmpp's "message" event is for messages with a body only.
        self.register_handler(Callback("MAM result", MatchXPath(
            "{jabber:client}message/{urn:xmpp:mam:2}result"), self.on_message))
        if register:
            self.register_plugin("xep_0077")
            self["xep_0077"].force_registration = True
            self.add_event_handler("register", self.on_register)

    async def on_register(self, _form):
        iq = self.Iq()
        iq["type"] = "set"
        iq["register"]["username"] = self.boundjid.user
        iq["register"]["password"] = self.password
        await iq.send(timeout=TIMEOUT)

    def on_message(self, msg):
        result = msg.xml.find("{urn:xmpp:mam:2}result")
        if result is not None:
            fwd = result.find("{urn:xmpp:forward:0}forwarded")
            inner = fwd.find("{jabber:client}message")
            body = inner.findtext("{jabber:client}body")
            self.mam.setdefault(result.get("queryid"), []).append(
                (result.get("id"), body, inner.get("from")))
            return
        if msg.xml.findtext("{jabber:client}body"):
            self.received.append(msg["body"])
            self.got_message.set()

    async def login(self):
        """Connects and waits for the session; returns False on a failed authentication."""
        started = asyncio.ensure_future(self.wait_until("session_start", TIMEOUT))
        failed = asyncio.ensure_future(self.wait_until("failed_all_auth", TIMEOUT))
        self.connect("127.0.0.1", self.server_port)
        done, pending = await asyncio.wait([started, failed], timeout=TIMEOUT,
                                           return_when=asyncio.FIRST_COMPLETED)
        for p in pending:
            p.cancel()
        if started in done:
            self.send_presence()
            await self.get_roster(timeout=TIMEOUT)
            return True
        if failed in done:
            self.disconnect()
            return False
        raise AssertionError("neither session nor auth failure in time")

    async def iq_set(self, payload, to=None):
        iq = self.Iq()
        iq["type"] = "set"
        if to:
            iq["to"] = to
        iq.append(ET.fromstring(payload))
        return await iq.send(timeout=TIMEOUT)

    async def iq_get(self, payload, to=None):
        iq = self.Iq()
        iq["type"] = "get"
        if to:
            iq["to"] = to
        iq.append(ET.fromstring(payload))
        return await iq.send(timeout=TIMEOUT)

    async def wait_body(self, body):
        deadline = time.monotonic() + TIMEOUT
        while body not in self.received:
            self.got_message.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"message {body!r} not received; got {self.received}")
            try:
                await asyncio.wait_for(self.got_message.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def mam_query(self, with_=None, start=None, end=None, max_=None, after=None,
                        before=None, to=None):
        """One MAM query; returns (items, fin element)."""
        qid = secrets.token_hex(4)
        fields = "<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>"
        if with_:
            fields += f"<field var='with'><value>{with_}</value></field>"
        if start:
            fields += f"<field var='start'><value>{start}</value></field>"
        if end:
            fields += f"<field var='end'><value>{end}</value></field>"
        rsm = ""
        if max_ is not None:
            rsm += f"<max>{max_}</max>"
        if after is not None:
            rsm += f"<after>{after}</after>"
        if before is not None:
            rsm += f"<before>{before}</before>" if before else "<before/>"
        if rsm:
            rsm = f"<set xmlns='http://jabber.org/protocol/rsm'>{rsm}</set>"
        resp = await self.iq_set(f"<query xmlns='urn:xmpp:mam:2' queryid='{qid}'>"
                                 f"<x xmlns='jabber:x:data' type='submit'>{fields}</x>{rsm}</query>",
                                 to=to)
        fin = resp.xml.find("{urn:xmpp:mam:2}fin")
        return self.mam.pop(qid, []), fin


async def join(c, room_jid, nick):
    """Joins a room; an answer (any) to an iq sent after the presence means the join was
    handled (one stream, in order)."""
    pres = c.Presence()
    pres["to"] = f"{room_jid}/{nick}"
    pres.append(ET.fromstring("<x xmlns='http://jabber.org/protocol/muc'/>"))
    pres.send()
    try:
        await c.iq_get("<query xmlns='http://jabber.org/protocol/disco#info'/>", to=room_jid)
    except slixmpp.exceptions.IqError:
        pass


def client(server, user, password, register=False):
    c = Client(user, password, register)
    c.server_port = server.port
    return c


def export(jidstore, server, user, as_owner=False):
    """retrieve_personal_data through the admin socket (Prosody running), or with as_owner
    as the store's owner (Prosody stopped: the store refuses any other user); returns the
    CSVs."""
    out = os.path.join(server.dir, f"export-{user}-{secrets.token_hex(3)}.zip")
    argv = [jidstore, "--data-dir", server.store, "retrieve_personal_data", user, DOMAIN, out]
    if as_owner:
        argv = server.as_user + [server.jidstore] + argv[1:]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if r.returncode == 1 and "no personal data held" in r.stderr:
        return {}
    assert r.returncode == 0, f"retrieve_personal_data {user}: {r.returncode} {r.stderr}"
    tables = {}
    with zipfile.ZipFile(out) as z:
        for name in z.namelist():
            if name.endswith(".csv"):
                text = z.read(name).decode()
                tables[name[:-4]] = list(csv.DictReader(io.StringIO(text)))
    os.remove(out)
    return tables


def kv(tables, store):
    rows = [r["value"] for r in tables.get("generic_kv", []) if r["store"] == store]
    return rows[0] if rows else None


def bodies(tables, store):
    out = []
    for r in tables.get("generic_archive", []):
        if r["store"] == store:
            # Stored as Prosody serialises the stanza: a top-level stanza has no xmlns.
            msg = ET.fromstring(r["value"])
            out.append(msg.findtext("body") or msg.findtext("{jabber:client}body"))
    return out


def body_of(xml_text):
    msg = ET.fromstring(xml_text)
    return msg.findtext("body") or msg.findtext("{jabber:client}body")


def pm_rows(tables):
    """(direction, bare from, bare to, body) of the 1-1 archive rows (mam_pm.csv)."""
    return [(r["direction"], r["from"].split("/")[0], r["to"].split("/")[0], body_of(r["message"]))
            for r in tables.get("mam_pm", [])]


def expected_pm(owner, other, sent, offline):
    """What owner's 1-1 archive should hold: a2b/b2a alternate, then alice's offline message."""
    rows = []
    for body in sent + [offline]:
        src = "alice" if body.startswith(("a2b", "offline")) else "bob"
        dst = "bob" if src == "alice" else "alice"
        rows.append(("outgoing" if src == owner else "incoming",
                     f"{src}@{DOMAIN}", f"{dst}@{DOMAIN}", body))
    return rows


def check(cond, what, detail=""):
    if not cond:
        raise AssertionError(f"{what} {detail}")
    print(f"ok - {what}", flush=True)


async def clients_phase(server):
    alice = client(server, "alice", "alice-pw", register=True)
    bob = client(server, "bob", "bob-pw", register=True)
    check(await alice.login(), "alice registered in band and logged in")
    check(await bob.login(), "bob registered in band and logged in")

    await alice.iq_set("<query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Bob'>"
                       "<group>Friends</group></item></query>")
    roster = await alice.iq_get("<query xmlns='jabber:iq:roster'/>")
    items = roster.xml.findall(".//{jabber:iq:roster}item")
    check([(i.get("jid"), i.findtext("{jabber:iq:roster}group")) for i in items]
          == [("bob@localhost", "Friends")], "alice's roster holds bob in Friends")

    await bob.iq_set("<query xmlns='jabber:iq:roster'><item jid='dave@localhost' name='Dave'>"
                     "<group>Team</group><group>Chess, Go</group></item></query>")

    fn = f"Alice Liddell {NONCE}"
    await alice.iq_set(f"<vCard xmlns='vcard-temp'><FN>{fn}</FN></vCard>")
    vc = await bob.iq_get("<vCard xmlns='vcard-temp'/>", to="alice@localhost")
    check(vc.xml.findtext(".//{vcard-temp}FN") == fn, "bob reads alice's vCard")

    nick = f"Ally-{NONCE}"
    await alice.iq_set("<pubsub xmlns='http://jabber.org/protocol/pubsub'>"
                       "<publish node='http://jabber.org/protocol/nick'><item id='current'>"
                       f"<nick xmlns='http://jabber.org/protocol/nick'>{nick}</nick></item>"
                       "</publish></pubsub>")
    got = await alice.iq_get("<pubsub xmlns='http://jabber.org/protocol/pubsub'>"
                             "<items node='http://jabber.org/protocol/nick'/></pubsub>",
                             to=f"alice@{DOMAIN}")
    check(got.xml.findtext(".//{http://jabber.org/protocol/nick}nick") == nick,
          "alice publishes her nick with PEP and reads it back")

    room = f"wonderland-{NONCE}"
    await alice.iq_set("<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'>"
                       f"<conference jid='tea@conference.localhost' name='{room}'/></storage>"
                       "</query>")
    priv = await alice.iq_get("<query xmlns='jabber:iq:private'>"
                              "<storage xmlns='storage:bookmarks'/></query>")
    conf = priv.xml.find(".//{storage:bookmarks}conference")
    check(conf is not None and conf.get("name") == room, "alice reads her private bookmarks")

    await alice.iq_set("<block xmlns='urn:xmpp:blocking'><item jid='spammer@example.net'/></block>")
    blocked = await alice.iq_get("<blocklist xmlns='urn:xmpp:blocking'/>")
    check([i.get("jid") for i in blocked.xml.findall(".//{urn:xmpp:blocking}item")]
          == ["spammer@example.net"], "alice's blocklist holds the spammer")

    sent = []
    for i in range(1, 4):
        for src, dst, tag in ((alice, bob, "a2b"), (bob, alice, "b2a")):
            body = f"{tag}-{i}-{NONCE}"
            src.send_message(mto=dst.boundjid.bare, mbody=body, mtype="chat")
            await dst.wait_body(body)
            sent.append(body)
    check(True, "six messages exchanged both ways")

    # MAM: everything with bob, paged by two with RSM.
    items, fin = await alice.mam_query(with_="bob@localhost")
    check([b for _, b, _ in items] == sent, "MAM with=bob returns the six messages in order")
    first_id = items[0][0]
    paged, after = [], None
    while True:
        page, fin = await alice.mam_query(with_="bob@localhost", max_=2, after=after)
        paged += [b for _, b, _ in page]
        if fin.get("complete") == "true" or not page:
            break
        after = fin.find(".//{http://jabber.org/protocol/rsm}last").text
    check(paged == sent, "MAM RSM pages of 2 (after) return the six messages in order")
    page, fin = await alice.mam_query(max_=2, before="")
    check([b for _, b, _ in page] == sent[-2:], "MAM <before/> returns the last page")
    count = fin.findtext(".//{http://jabber.org/protocol/rsm}count")
    check(count == "6", f"MAM total count is 6 (got {count})")
    page, fin = await alice.mam_query(max_=2, before=first_id)
    check(page == [], "MAM before the first id is empty")
    past = "2000-01-01T00:00:00Z"
    page, _ = await alice.mam_query(start=past)
    check(len(page) == 6, "MAM start in the past returns all")
    page, _ = await alice.mam_query(end=past)
    check(page == [], "MAM end in the past returns none")
    try:
        await alice.mam_query(max_=2, after="no-such-id")
        check(False, "MAM after an unknown id fails")
    except slixmpp.exceptions.IqError as e:
        check(e.condition == "item-not-found", "MAM after an unknown id gives item-not-found")

    # A persistent room with MAM: its archive is the room's, kept when a participant is erased.
    room_jid = f"tea-{NONCE}@conference.{DOMAIN}"
    await join(alice, room_jid, "Alice")
    await alice.iq_set(
        f"<query xmlns='http://jabber.org/protocol/muc#owner'>"
        "<x xmlns='jabber:x:data' type='submit'>"
        "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>"
        "<field var='muc#roomconfig_persistentroom'><value>1</value></field></x></query>",
        to=room_jid)
    await join(bob, room_jid, "Bob")
    muc = [f"muc-alice-{NONCE}", f"muc-bob-{NONCE}"]
    alice.send_message(mto=room_jid, mbody=muc[0], mtype="groupchat")
    await bob.wait_body(muc[0])
    bob.send_message(mto=room_jid, mbody=muc[1], mtype="groupchat")
    await alice.wait_body(muc[1])
    items, _ = await bob.mam_query(to=room_jid)
    check([b for _, b, _ in items] == muc, "room MAM returns both group-chat messages")

    # Offline delivery.
    bob.disconnect()
    await bob.wait_until("disconnected", TIMEOUT)
    offline = f"offline-{NONCE}"
    alice.send_message(mto="bob@localhost", mbody=offline, mtype="chat")
    # A round trip to the server: the message before it has been handled.
    await alice.iq_get("<ping xmlns='urn:xmpp:ping'/>", to=DOMAIN)
    held = export(server.jidstore, server, "bob")
    rows = [(r["from"].split("/")[0], body_of(r["packet"])) for r in held.get("offline", [])]
    check(rows == [(f"alice@{DOMAIN}", offline)],
          "export: offline.csv holds the message for bob while he is offline", str(rows))
    bob2 = client(server, "bob", "bob-pw")
    check(await bob2.login(), "bob logs in again")
    await bob2.wait_body(offline)
    check(True, "bob receives the offline message on login")
    alice.disconnect()
    bob2.disconnect()
    await asyncio.gather(alice.wait_until("disconnected", TIMEOUT),
                         bob2.wait_until("disconnected", TIMEOUT))
    return sent, fn, room, offline, room_jid, muc, nick


async def login_once(server, user, password):
    c = client(server, user, password)
    ok = await c.login()
    if ok:
        c.disconnect()
        await c.wait_until("disconnected", TIMEOUT)
    return ok


async def traffic_then_kill(server, jidstore):
    """bob -> carol: a batch made durable (a CLI register through the admin socket flushes
    the store), then a burst during which Prosody is killed with SIGKILL."""
    bob = client(server, "bob", "bob-pw")
    carol = client(server, "carol", "carol-pw")
    check(await bob.login() and await carol.login(), "bob and carol log in for the kill -9 run")
    durable = [f"durable-{i}-{NONCE}" for i in range(20)]
    for body in durable:
        bob.send_message(mto=f"carol@{DOMAIN}", mbody=body, mtype="chat")
    await carol.wait_body(durable[-1])
    r = subprocess.run([jidstore, "--data-dir", server.store, "register", "--user", "flushpoint",
                        DOMAIN, "flush-pw"], capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "a flush point through the admin socket", r.stderr)
    burst = [f"inflight-{i}-{NONCE}" for i in range(300)]
    for body in burst:
        bob.send_message(mto=f"carol@{DOMAIN}", mbody=body, mtype="chat")
    await carol.wait_body(burst[9])
    server.kill9()
    return durable, burst


async def after_deletion(server, sent, offline, room_jid, muc):
    alice = client(server, "alice", "alice-pw")
    check(not await alice.login(), "alice cannot log in after deluser")
    bob = client(server, "bob", "bob-pw")
    check(await bob.login(), "bob logs in after the restart")
    items, _ = await bob.mam_query(with_="alice@localhost")
    check([b for _, b, _ in items] == sent + [offline],
          "bob's archive with alice is unchanged after the restart and alice's deletion")
    roster = await bob.iq_get("<query xmlns='jabber:iq:roster'/>")
    items = [(i.get("jid"), i.get("name"), sorted(g.text for g in i.findall("{jabber:iq:roster}group")))
             for i in roster.xml.findall(".//{jabber:iq:roster}item")]
    check(items == [("dave@localhost", "Dave", ["Chess, Go", "Team"])],
          "bob's roster, read back from jidstore's roster class after the restart", str(items))
    await join(bob, room_jid, "Bob")
    items, _ = await bob.mam_query(to=room_jid)
    check([b for _, b, _ in items] == muc,
          "the persistent room and its archive (alice's message too) survive restart and deletion")
    bob.disconnect()
    await bob.wait_until("disconnected", TIMEOUT)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jidstore", required=True)
    ap.add_argument("--module-dir", required=True)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    server = Server(os.path.abspath(args.module_dir), os.path.abspath(args.jidstore))
    jidstore = server.jidstore
    ok = False
    try:
        server.start()
        sent, fn, room, offline, room_jid, muc, nick = asyncio.run(clients_phase(server))

        # The CLI on the live data, through the admin socket.
        a = export(jidstore, server, "alice")
        check([(r["jid"], r["mechanisms"]) for r in a.get("accounts", [])]
              == [("alice@localhost", "SCRAM-SHA-1")] and kv(a, "accounts") is None,
              "export: alice's account is a jidstore account (SCRAM-SHA-1)", str(a.get("accounts")))
        check(not any("stored_key" in v or "server_key" in v for t in a.values() for r in t
                      for v in r.values()), "export: no SCRAM keys in the export")
        # The stores Prosody wrote are in jidstore's dedicated classes, not generic rows.
        roster = [(r["jid"], r["name"], r["subscription"], r["ask"], r["groups_json"])
                  for r in a.get("roster", [])]
        check(roster == [("bob@localhost", "Bob", "none", "none", '["Friends"]')],
              "export: roster.csv holds bob, named Bob, in Friends", str(roster))
        check(kv(a, "roster") is None and kv(a, "roster#meta") is None,
              "export: no generic copy of the roster (the class holds it exactly)")
        # mod_vcard_legacy keeps the vCard as a PEP item (node urn:xmpp:vcard4).
        items = {r["node_id"]: r for r in a.get("pubsub_items", [])}
        vcard = items.get("urn:xmpp:vcard4", {})
        check(fn in vcard.get("payload", "") and vcard.get("publisher_jid") == f"alice@{DOMAIN}"
              and vcard.get("service_jid") == f"alice@{DOMAIN}",
              "export: pubsub_items.csv holds alice's vCard (a PEP item she published)")
        nick_item = items.get("http://jabber.org/protocol/nick", {})
        check(nick_item.get("item_id") == "current" and nick in nick_item.get("payload", ""),
              "export: pubsub_items.csv holds alice's PEP nick", str(items.keys()))
        nodes = sorted((r["node_id"], r["type"]) for r in a.get("pubsub_nodes", []))
        check(nodes == [("http://jabber.org/protocol/nick", "pep"), ("urn:xmpp:vcard4", "pep")],
              "export: pubsub_nodes.csv holds her two PEP nodes", str(nodes))
        check(not any(r["store"].startswith("pep_") for r in a.get("generic_archive", [])),
              "export: no generic rows for PEP items")
        private = [(r["ns"], ET.fromstring(r["xml"])) for r in a.get("private", [])]
        check(len(private) == 1 and private[0][0] == "storage:bookmarks"
              and private[0][1].find("{storage:bookmarks}conference").get("name") == room
              and kv(a, "private") is None,
              "export: private.csv holds alice's bookmarks (storage:bookmarks)", str(private))
        check([r["jid"] for r in a.get("blocklist", [])] == ["spammer@example.net"]
              and kv(a, "blocklist") is None,
              "export: blocklist.csv holds the spammer (no generic copy)")
        check(pm_rows(a) == expected_pm("alice", "bob", sent, offline),
              "export: mam_pm.csv holds alice's six messages and the offline one, with "
              "direction, from and to", str(pm_rows(a)))
        check(bodies(a, "archive") == [], "export: no generic archive rows for MAM")
        muc_rows = [(r["room"], r["nick"], body_of(r["message"])) for r in a.get("mam_muc", [])]
        check(muc_rows == [(room_jid, "Alice", muc[0])],
              "export: mam_muc.csv holds alice's group-chat message (found by her real JID)",
              str(muc_rows))
        b = export(jidstore, server, "bob")
        roster = [(r["jid"], r["name"], r["groups_json"]) for r in b.get("roster", [])]
        check(roster == [("dave@localhost", "Dave", '["Chess, Go","Team"]')],
              "export: bob's roster.csv (a group name with a comma)", str(roster))
        check(pm_rows(b) == expected_pm("bob", "alice", sent, offline),
              "export: bob's mam_pm.csv (directions mirrored)", str(pm_rows(b)))
        muc_rows = [(r["room"], r["nick"], body_of(r["message"])) for r in b.get("mam_muc", [])]
        check(muc_rows == [(room_jid, "Bob", muc[1])],
              "export: bob's mam_muc.csv holds his group-chat message", str(muc_rows))
        check(b.get("offline", []) == [] and bodies(b, "offline") == [],
              "export: bob's offline store is empty after delivery")
        # An account made by the jidstore CLI (through the admin socket) logs in to Prosody.
        r = subprocess.run([jidstore, "--data-dir", server.store, "register", "--user", "carol",
                            DOMAIN, "carol-pw"], capture_output=True, text=True, timeout=60)
        check(r.returncode == 0, "jidstore register carol while Prosody runs", r.stderr)
        check(asyncio.run(login_once(server, "carol", "carol-pw")),
              "carol (registered by the jidstore CLI) logs in to Prosody")
        check(not asyncio.run(login_once(server, "carol", "wrong-pw")),
              "carol with a wrong password is refused")

        # prosodyctl deluser while Prosody runs: refused with one line (the running server
        # holds the store), nothing lost.
        r = server.prosodyctl("deluser", f"alice@{DOMAIN}")
        check(r.returncode != 0 and "the store is in use by another process" in r.stdout + r.stderr,
              "prosodyctl deluser while Prosody runs is refused", f"{r.stdout} {r.stderr}")
        check(asyncio.run(login_once(server, "alice", "alice-pw")), "alice still logs in")

        # Deletion through Prosody: prosodyctl deluser with the server stopped, then restart.
        server.stop()
        r = server.prosodyctl("--verbose", "deluser", f"alice@{DOMAIN}")
        check(r.returncode == 0, "prosodyctl deluser alice", f"{r.returncode} {r.stdout} {r.stderr}")
        receipts = [line for line in (r.stdout + r.stderr).splitlines()
                    if "jidstore erasure committed" in line]
        check(len(receipts) == 1 and "alice" not in receipts[0],
              "deluser ends in one jidstore erasure, logged without the JID", str(receipts))
        r = subprocess.run(server.as_user + [jidstore, "--data-dir", server.store, "--json", "audit",
                                             "--jid", f"alice@{DOMAIN}"],
                           capture_output=True, text=True, timeout=60)
        entries = json.loads(r.stdout)["entries"] if r.returncode == 0 else []
        erasures = [e for e in entries if e["action"] == "erase"]
        check(len(erasures) == 1 and erasures[0]["outcome"] == "ok"
              and erasures[0]["counts"]["removed"] > 0 and "alice" not in r.stdout,
              "the audit log holds deluser's erasure under the subject's keyed hash",
              f"{r.returncode} {r.stdout} {r.stderr}")
        server.start()
        asyncio.run(after_deletion(server, sent, offline, room_jid, muc))
        a = export(jidstore, server, "alice")
        left = {name: len(t) for name, t in a.items() if t}
        muc_rows = [(r["room"], r["nick"], body_of(r["message"])) for r in a.get("mam_muc", [])]
        check(left == {"mam_muc": 1} and muc_rows == [(room_jid, "Alice", muc[0])],
              "export: only alice's kept group-chat message is left", str(left))
        b = export(jidstore, server, "bob")
        check(pm_rows(b) == expected_pm("bob", "alice", sent, offline),
              "export: bob's archive unchanged")

        # kill -9 during traffic: what was flushed is there, the rest a prefix, verify clean.
        durable, burst = asyncio.run(traffic_then_kill(server, jidstore))
        r = subprocess.run(server.as_user + [jidstore, "--data-dir", server.store, "verify"],
                           capture_output=True, text=True, timeout=300)
        check(r.returncode == 0, "verify is clean after kill -9", f"{r.stdout} {r.stderr}")
        if server.as_user:
            # Prosody is down, so nothing forwards: a root CLI would open the prosody user's
            # store itself, and is refused before writing anything into it.
            r = subprocess.run([jidstore, "--data-dir", server.store, "stats"],
                               capture_output=True, text=True, timeout=60)
            check(r.returncode == 1 and "belongs to prosody" in r.stderr
                  and r.stderr.count("\n") == 1,
                  "root's CLI refuses the prosody user's store while Prosody is down",
                  f"{r.returncode} {r.stderr}")
        c = export(jidstore, server, "carol", as_owner=True)
        got = [body for _, _, _, body in pm_rows(c) if NONCE in body]
        check(got[:len(durable)] == durable, "every flushed message survived kill -9")
        rest = got[len(durable):]
        check(rest == burst[:len(rest)],
              f"the burst's survivors are a prefix of it ({len(rest)} of {len(burst)})")
        server.start()
        check(asyncio.run(login_once(server, "carol", "carol-pw")),
              "Prosody serves again after kill -9")

        # Offline checks: verify, compact, and no byte of alice's own text left.
        server.stop()
        for cmd in (["verify"], ["compact"], ["verify"]):
            r = subprocess.run(server.as_user + [jidstore, "--data-dir", server.store] + cmd,
                               capture_output=True, text=True, timeout=300)
            check(r.returncode == 0, f"jidstore {' '.join(cmd)}", f"{r.stdout} {r.stderr}")
        left = []
        for root, _, files in os.walk(server.store):
            for name in files:
                path = os.path.join(root, name)
                if os.path.isfile(path) and not os.path.islink(path):
                    with open(path, "rb") as f:
                        data = f.read()
                    left += [s for s in (fn, room, nick) if s.encode() in data]
        check(left == [], "after compact no byte of alice's vCard, PEP nick or bookmarks is left", str(left))
        ok = True
    finally:
        server.stop()
        if not ok:
            print("--- prosody log (tail) ---\n" + server.log_tail(), file=sys.stderr)
        if ok and not args.keep:
            shutil.rmtree(server.dir, ignore_errors=True)
        else:
            print(f"work directory kept: {server.dir}", file=sys.stderr)
    print("prosody e2e: PASS", flush=True)


if __name__ == "__main__":
    main()
