#!/usr/bin/env python3
"""Re-key cost versus number of groups after a daemon partition (docs/benchmarks.md, paper fig. 7).

Usage: python3 impl/cli/tests/rekey_groups_bench.py PATH/TO/sgc
Per round, mode (none, integrated-vs) and N (1, 10, 100, 500): a fresh local cluster of 3
daemons in /tmp/bench3; one `sgc user --json` on d0 and one on d2 join groups g0..g(N-1); then
d2 is cut off (admin partition on every daemon). At the client on d0 it measures the time from
the first to the last of the N network memberships that follow (the per-group part of the
re-key: the ring change and the servers' key are paid once, before the first one).
"""
import json, subprocess, sys, time, shutil, os, threading, queue
SGC = sys.argv[1]
os.makedirs("/tmp/bench3", exist_ok=True)

def user(sock):
    p = subprocess.Popen([SGC, "user", "--json", "--daemon", sock], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
    q = queue.Queue()
    def pump():
        for line in p.stdout:
            q.put((time.monotonic(), line))
    threading.Thread(target=pump, daemon=True).start()
    return p, q

def memberships(q, n, size, deadline):
    """Receipt times of memberships with `size` members, until n distinct groups."""
    seen = {}
    while len(seen) < n and time.monotonic() < deadline:
        try:
            t, line = q.get(timeout=0.2)
        except queue.Empty:
            continue
        v = json.loads(line)
        if v.get("event") == "membership" and len(v.get("members", [])) == size:
            seen.setdefault(v["group"], t)
    return seen

for rnd in (1, 2):
    for mode in ("none", "integrated-vs"):
        for n in (1, 10, 100, 500):
            d = f"/tmp/bench3/r-{mode}"
            shutil.rmtree(d, ignore_errors=True)
            info = json.loads(subprocess.run([SGC, "cluster", "up", "--daemons", "3", "--security", mode,
                                              "--dir", d, "--json"], check=True, capture_output=True, text=True).stdout)
            time.sleep(1.5)
            a, qa = user(f"unix:{d}/d0/data/client.sock")
            b, qb = user(f"unix:{d}/d2/data/client.sock")
            for i in range(n):
                a.stdin.write(f"join g{i}\n")
            a.stdin.flush()
            memberships(qa, n, 1, time.monotonic() + 30)
            for i in range(n):
                b.stdin.write(f"join g{i}\n")
            b.stdin.flush()
            got = memberships(qa, n, 2, time.monotonic() + 60)
            ok = len(got) == n
            admins = [x["admin"] for x in info["daemons"]]
            for i, ad in enumerate(admins):
                who = "d0,d1" if i == 2 else "d2"
                subprocess.run([SGC, "admin", "--daemon", ad, "partition", "--from", who], capture_output=True, check=True)
            t0 = time.monotonic()
            got = memberships(qa, n, 1, time.monotonic() + 60)
            if ok and len(got) == n:
                ts = sorted(got.values())
                print(rnd, mode, n, f"first {1000*(ts[0]-t0):.0f} ms after the cut, spread {1000*(ts[-1]-ts[0]):.2f} ms", flush=True)
            else:
                print(rnd, mode, n, "incomplete", len(got), flush=True)
            for p in (a, b):
                p.kill()
            subprocess.run([SGC, "cluster", "down", "--dir", d], capture_output=True)
