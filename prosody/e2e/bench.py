#!/usr/bin/env python3
"""Messages per second through Prosody with mod_mam archiving, and the latency of a MAM page,
with storage = jidstore, internal and sql (SQLite; needs Debian's lua-dbi-sqlite3), same
machine, same run.

Usage: bench.py --jidstore BIN --module-dir DIR [--messages N] [--pages P]
One client sends N messages to another (both online, both archives written); the clock runs
from the first send to the last message received. Then P queries for the last page of 50
(MAM <before/>) on the sender's archive of N messages; the median is printed.
"""

import argparse
import asyncio
import statistics
import time

from e2e import TIMEOUT, Server, client


async def run(server, n, pages):
    alice = client(server, "alice", "alice-pw", register=True)
    bob = client(server, "bob", "bob-pw", register=True)
    assert await alice.login() and await bob.login()
    done = asyncio.Event()
    count = 0

    def received(_msg):
        nonlocal count
        count += 1
        if count == n:
            done.set()

    bob.add_event_handler("message", received)
    started = time.monotonic()
    for i in range(n):
        alice.send_message(mto="bob@localhost", mbody=f"bench message {i}", mtype="chat")
        if i % 100 == 99:
            await asyncio.sleep(0)  # let the client's writer run
    try:
        await asyncio.wait_for(done.wait(), TIMEOUT + n / 10)
    except asyncio.TimeoutError:
        raise AssertionError(f"{count} of {n} messages received in time") from None
    elapsed = time.monotonic() - started
    latencies = []
    for _ in range(pages):
        t = time.monotonic()
        items, _ = await alice.mam_query(max_=50, before="")
        latencies.append(time.monotonic() - t)
        assert len(items) == 50, len(items)
    alice.disconnect()
    bob.disconnect()
    return n / elapsed, statistics.median(latencies)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jidstore", required=True)
    ap.add_argument("--module-dir", required=True)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--pages", type=int, default=20)
    ap.add_argument("--storages", default="jidstore,internal,sql")
    args = ap.parse_args()
    results = {}
    for storage in args.storages.split(","):
        server = Server(args.module_dir, args.jidstore, storage)
        try:
            server.start()
            results[storage] = asyncio.run(run(server, args.messages, args.pages))
        finally:
            server.stop()
        rate, page = results[storage]
        print(f"{storage:9} {rate:8.0f} msg/s   MAM last page of 50: {page * 1000:7.1f} ms",
              flush=True)
    if "jidstore" in results:
        j_rate, j_page = results["jidstore"]
        for storage, (rate, page) in results.items():
            if storage != "jidstore":
                print(f"jidstore / {storage}: throughput {j_rate / rate:.2f}x, "
                      f"page latency {j_page / page:.2f}x")


if __name__ == "__main__":
    main()
