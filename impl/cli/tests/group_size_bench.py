#!/usr/bin/env python3
"""Join/leave latency versus group size (docs/benchmarks.md, "versus group size", paper fig. 5).

Usage: python3 impl/cli/tests/group_size_bench.py PATH/TO/sgc
Per round, mode (none, integrated-vs) and K (0, 10, 50, 100): a fresh local cluster of 3 daemons
in /tmp/bench3, K background members (`sgc user` on the daemons' Unix sockets, round robin) joined
to group jl, then `sgc flood --join-latency 200 --group jl` on d0; prints the join and leave p50.
"""
import json, subprocess, time, shutil, os, sys
SGC = sys.argv[1]
os.makedirs("/tmp/bench3", exist_ok=True)
res = {}
for rnd in (1, 2):
  for mode in ("none", "integrated-vs"):
    for k in (0, 10, 50, 100):
        d = f"/tmp/bench3/g-{mode}"
        shutil.rmtree(d, ignore_errors=True)
        subprocess.run([SGC, "cluster", "up", "--daemons", "3", "--security", mode, "--dir", d, "--json"], check=True, capture_output=True)
        time.sleep(1.5)
        socks = [f"unix:{d}/d{i}/data/client.sock" for i in range(3)]
        users = []
        for j in range(k):
            p = subprocess.Popen([SGC, "user", "--daemon", socks[j % 3], "--name", f"u{j}"],
                                 stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
            p.stdin.write("join jl\n"); p.stdin.flush()
            users.append(p)
        time.sleep(1.0 + k * 0.02)
        out = subprocess.run([SGC, "flood", "--daemon", socks[0], "--join-latency", "200", "--group", "jl", "--json"],
                             capture_output=True, text=True, timeout=120)
        try:
            v = json.loads(out.stdout.strip().splitlines()[-1])
            r = (v["join_us"]["p50"], v["leave_us"]["p50"])
        except Exception as e:
            r = ("ERR", out.stdout[-200:] + out.stderr[-200:])
        print(rnd, mode, k, r, flush=True)
        res.setdefault((mode, k), []).append(r)
        for p in users:
            try:
                p.stdin.close()
            except Exception:
                pass
            p.kill()
        subprocess.run([SGC, "cluster", "down", "--dir", d], capture_output=True)
