#!/usr/bin/env python3
"""Partition and merge key-establishment latency versus group size (docs/benchmarks.md, paper
fig. 5 (c), (d)).

Usage: python3 impl/cli/tests/partition_size_bench.py PATH/TO/sgc [ROUNDS]
Per round, mode (none, integrated-vs) and K (3, 10, 50, 100): a fresh local cluster of 3
daemons in /tmp/bench5; K members of group pm (`sgc user` on the daemons' Unix sockets, round
robin over d0, d1, d2; member 0 on d0 prints JSON); then d2 is cut off (admin `partition` on
every daemon) and later healed. At member 0 it measures the time from the cut to the group's
first membership without d2's members (partition), and from the heal to the first membership
with all K again (merge): failure detection and ring formation, then with security the servers'
TGDH and one group key per group, then the notifications.
"""
import json, os, queue, shutil, subprocess, sys, threading, time

SGC = sys.argv[1]
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 2
os.makedirs("/tmp/bench5", exist_ok=True)

def watch(p):
    q = queue.Queue()
    def pump():
        for line in p.stdout:
            q.put((time.monotonic(), line))
    threading.Thread(target=pump, daemon=True).start()
    return q

def membership_of(q, size, deadline):
    """Receipt time of the first membership of group pm with `size` members."""
    while time.monotonic() < deadline:
        try:
            t, line = q.get(timeout=0.2)
        except queue.Empty:
            continue
        try:
            v = json.loads(line)
        except ValueError:
            continue
        if v.get("event") == "membership" and v.get("group") == "pm" and len(v.get("members", [])) == size:
            return t
    return None

for rnd in range(1, ROUNDS + 1):
    for mode in ("none", "integrated-vs"):
        for k in (3, 10, 50, 100):
            d = f"/tmp/bench5/{mode}"
            shutil.rmtree(d, ignore_errors=True)
            info = json.loads(subprocess.run([SGC, "cluster", "up", "--daemons", "3", "--security", mode,
                                              "--dir", d, "--json"], check=True, capture_output=True,
                                             text=True).stdout)
            time.sleep(1.5)
            socks = [f"unix:{d}/d{i}/data/client.sock" for i in range(3)]
            users, q0 = [], None
            for j in range(k):
                args = [SGC, "user", "--daemon", socks[j % 3], "--name", f"u{j}"]
                if j == 0:
                    args.append("--json")
                p = subprocess.Popen(args, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE if j == 0 else subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, text=True, bufsize=1)
                if j == 0:
                    q0 = watch(p)
                p.stdin.write("join pm\n")
                p.stdin.flush()
                users.append(p)
            ok = membership_of(q0, k, time.monotonic() + 60) is not None
            on_d2 = len(range(2, k, 3))
            admins = [x["admin"] for x in info["daemons"]]
            def cut(sub):
                for i, ad in enumerate(admins):
                    if sub == "partition":
                        who = ["--from", "d0,d1" if i == 2 else "d2"]
                    else:
                        who = []
                    subprocess.run([SGC, "admin", "--daemon", ad, sub] + who, capture_output=True, check=True)
            t0 = time.monotonic()
            cut("partition")
            tp = membership_of(q0, k - on_d2, time.monotonic() + 30) if on_d2 else None
            time.sleep(1.0)
            t1 = time.monotonic()
            cut("heal")
            tm = membership_of(q0, k, time.monotonic() + 30) if on_d2 else None
            fmt = lambda t, s: f"{1000 * (t - s):.0f} ms" if t else "-"
            print(json.dumps({"round": rnd, "mode": mode, "members": k, "ready": ok,
                              "partition": fmt(tp, t0), "merge": fmt(tm, t1)}), flush=True)
            for p in users:
                p.kill()
            subprocess.run([SGC, "cluster", "down", "--dir", d], capture_output=True)
