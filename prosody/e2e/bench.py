#!/usr/bin/env python3
"""Issue 16's benchmark: messages per second through a real Prosody with mod_mam archiving, and
the latency of MAM pages through Prosody on a pre-filled archive, with storage = jidstore,
internal and sql (SQLite; needs Debian's lua-dbi-sqlite3), same machine, same run.

Usage: bench.py --jidstore BIN --module-dir DIR [--archive N] [--messages M] [--batches B]
                [--pages P] [--storages jidstore,internal,sql]
Not part of CI (minutes per storage); see prosody/e2e/BENCH.md.

Per storage, in a fresh Prosody directory:
1. Fill (untimed): `prosodyctl mod_bench_fill` (mod_bench_fill.lua) creates alice and bob and
   appends N messages (default 100000) to alice's `archive` store through that storage's own
   driver, with the arguments mod_mam passes, from the same config file Prosody then runs
   with; the same generated messages (20 peers, varied bodies, 200 days of timestamps ending
   at one END shared by all storages) for every storage.
2. Pages (on exactly N messages): P samples each, median, of five MAM queries by alice with
   <max>50</max>: the newest page (<before/>), the newest page `with` bob (~N/20 of the
   archive), a day-long time range in the middle (start/end), and RSM <after>X</after> and
   <before>X</before> with X the last id of that time-range page. Each must return 50
   items, and the time-range page's bodies must be the same for every storage.
3. Throughput: after an untimed warm-up batch of 50, B batches of M messages alice -> bob,
   both online (both archives written); each batch is timed from its first send to its last
   message received; the median rate.

Prosody's Nagle algorithm is turned off (network_settings = { nagle = false }) unless
--nagle: with it on, a page of 50 waits on loopback's delayed ACK and takes ~60 ms with any
storage (a page of 1: ~1 ms), which hides the storage's cost. mam_include_total is false,
Prosody's default with archive_expires_after = "never" (which the bench sets so the 200-day
archive is kept); storage_archive_item_limit is raised to 1e6 (mod_storage_internal refuses
appends past 10000 items by default).
"""

import argparse
import asyncio
import os
import pwd
import shutil
import statistics
import subprocess
import tempfile
import time

from e2e import TIMEOUT, Server, client

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 16
DAY = 86400
PAGE = 50
SPAN_DAYS = 200  # mod_bench_fill.lua spreads the archive over 200 days (N >= 20000 for a
# day-long range to hold a full page)


def fill(server, storage, n, end):
    """Runs mod_bench_fill in the server's directory (Prosody stopped)."""
    shm = None
    db = os.path.join(server.dir, "prosody.sqlite")
    if storage == "sql":
        # One fsync per append through mod_storage_sql on disk: let the fill write the file
        # on tmpfs, then copy it into place (same bytes, same driver).
        shm = tempfile.mkdtemp(prefix="jidstore-bench-", dir="/dev/shm")
        if server.as_user:
            pw = pwd.getpwnam("prosody")
            os.chown(shm, pw.pw_uid, pw.pw_gid)
        os.symlink(os.path.join(shm, "prosody.sqlite"), db)
    started = time.monotonic()
    r = server.prosodyctl("mod_bench_fill", "localhost", "alice", "alice-pw", "bob-pw",
                          str(n), str(SEED), str(end))
    took = time.monotonic() - started
    if r.returncode != 0 or "filled" not in r.stdout:
        raise AssertionError(f"fill failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    if shm:
        os.remove(db)
        shutil.copy(os.path.join(shm, "prosody.sqlite"), db)
        if server.as_user:
            pw = pwd.getpwnam("prosody")
            os.chown(db, pw.pw_uid, pw.pw_gid)
        shutil.rmtree(shm)
    os.sync()
    return took


async def pages(alice, n_samples, end):
    """{name: median seconds} of the five page queries, and the time-range page's bodies."""
    middle = end - SPAN_DAYS * DAY // 2
    start_s, end_s = iso(middle), iso(middle + DAY)
    range_page, _ = await alice.mam_query(start=start_s, end=end_s, max_=PAGE)
    assert len(range_page) == PAGE, f"time-range page: {len(range_page)} items"
    pivot = range_page[-1][0]
    queries = {
        "newest page": dict(before=""),
        "newest page with bob": dict(with_="bob@localhost", before=""),
        "time range (1 day)": dict(start=start_s, end=end_s),
        "RSM after id": dict(after=pivot),
        "RSM before id": dict(before=pivot),
    }
    out = {}
    for name, q in queries.items():
        samples = []
        for _ in range(n_samples):
            t = time.monotonic()
            items, _ = await alice.mam_query(max_=PAGE, **q)
            samples.append(time.monotonic() - t)
            assert len(items) == PAGE, f"{name}: {len(items)} items"
        out[name] = statistics.median(samples)
    return out, [body for _, body, _ in range_page]


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


async def throughput(alice, bob, m, batches):
    """Median rate of `batches` timed batches of m messages, after one untimed warm-up batch
    of 50 (mod_storage_internal reads the whole list once to count it on the first append)."""
    rates = []
    for b in range(-1, batches):
        size = 50 if b < 0 else m
        done = asyncio.Event()
        count = 0

        def received(_msg):
            nonlocal count
            count += 1
            if count == size:
                done.set()

        bob.add_event_handler("message", received)
        started = time.monotonic()
        for i in range(size):
            alice.send_message(mto="bob@localhost", mbody=f"bench batch {b} message {i}",
                               mtype="chat")
            if i % 100 == 99:
                await asyncio.sleep(0)  # let the client's writer run
        try:
            await asyncio.wait_for(done.wait(), TIMEOUT + size / 10)
        except asyncio.TimeoutError:
            raise AssertionError(f"{count} of {size} messages received in time") from None
        if b >= 0:
            rates.append(size / (time.monotonic() - started))
        bob.del_event_handler("message", received)
    return statistics.median(rates), rates


async def run(server, args, end):
    alice = client(server, "alice", "alice-pw")
    bob = client(server, "bob", "bob-pw")
    assert await alice.login() and await bob.login(), "login of the filled users failed"
    page_times, bodies = await pages(alice, args.pages, end)
    rate, rates = await throughput(alice, bob, args.messages, args.batches)
    alice.disconnect()
    bob.disconnect()
    return page_times, bodies, rate, rates


def uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jidstore", required=True)
    ap.add_argument("--module-dir", required=True)
    ap.add_argument("--archive", type=int, default=100000)
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--batches", type=int, default=3)
    ap.add_argument("--pages", type=int, default=7)
    ap.add_argument("--storages", default="jidstore,internal,sql")
    ap.add_argument("--nagle", action="store_true",
                    help="keep Prosody's default (Nagle on): pages of 50 then take ~60 ms on "
                    "loopback whatever the storage (delayed ACK)")
    args = ap.parse_args()
    print(f"uptime before: {uptime()}", flush=True)
    end = int(time.time()) - 3600
    fill_mod = os.path.join(HERE, "mod_bench_fill.lua")
    results = {}
    reference = None
    for storage in args.storages.split(","):
        server = Server(os.path.abspath(args.module_dir), os.path.abspath(args.jidstore), storage,
                        extra_config="storage_archive_item_limit = 1000000\n"
                        + ("" if args.nagle else "network_settings = { nagle = false }"),
                        plugins=[fill_mod], include_total=False)
        try:
            took = fill(server, storage, args.archive, end)
            print(f"{storage}: filled {args.archive} messages in {took:.0f} s (untimed)",
                  flush=True)
            server.start()
            page_times, bodies, rate, rates = asyncio.run(run(server, args, end))
        finally:
            server.stop()
        if reference is None:
            reference = bodies
        assert bodies == reference, f"{storage}: time-range page differs from the first storage"
        results[storage] = (page_times, rate)
        print(f"{storage}: {rate:.0f} msg/s (batches: "
              + ", ".join(f"{r:.0f}" for r in rates) + "); pages: "
              + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in page_times.items()), flush=True)
        shutil.rmtree(server.dir, ignore_errors=True)
    print(f"uptime after: {uptime()}")
    storages = list(results)
    print()
    print(f"Nagle {'on' if args.nagle else 'off'}; archive {args.archive} messages; pages: median of {args.pages}, {PAGE} items; "
          f"throughput: median of {args.batches} x {args.messages} messages")
    print("| | " + " | ".join(storages) + " |"
          + "".join(f" jidstore/{s} |" for s in storages if s != "jidstore" and "jidstore" in results))
    print("|---" * (1 + len(storages) + (len(storages) - 1 if "jidstore" in results else 0)) + "|")
    others = [s for s in storages if s != "jidstore"] if "jidstore" in results else []
    rate_row = "| messages/s through Prosody | " + " | ".join(
        f"{results[s][1]:.0f}" for s in storages) + " |"
    rate_row += "".join(f" {results['jidstore'][1] / results[s][1]:.3g}x |" for s in others)
    print(rate_row)
    for name in results[storages[0]][0]:
        row = f"| {name} (ms) | " + " | ".join(
            f"{results[s][0][name] * 1000:.1f}" for s in storages) + " |"
        row += "".join(f" {results['jidstore'][0][name] / results[s][0][name]:.3g}x |"
                       for s in others)
        print(row)


if __name__ == "__main__":
    main()
