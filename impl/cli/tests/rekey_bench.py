#!/usr/bin/env python3
"""Servers' rekey cost on a local 3-daemon cluster (docs/benchmarks.md, "Servers' rekey").

Usage: python3 impl/cli/tests/rekey_bench.py PATH/TO/sgc [ROUNDS]
Starts `sgc cluster up --daemons 3 --security three-step` in /tmp/keysbench/cluster, then per
round cuts d2 off (admin partition) and heals, and reads status.keys.last_agreement_ms.
"""
import json, subprocess, sys, time, statistics, os
SGC = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 10
d = "/tmp/keysbench/cluster"
os.makedirs("/tmp/keysbench", exist_ok=True)
subprocess.run(["rm", "-rf", d])
out = subprocess.run([SGC, "cluster", "up", "--daemons", "3", "--security", "three-step", "--json", "--dir", d], capture_output=True, text=True)
if out.returncode != 0:
    print(out.stderr); sys.exit(1)
info = json.loads(out.stdout)
adm = {x["name"]: x["admin"] for x in info["daemons"]}
def status(n):
    r = subprocess.run([SGC, "admin", "--daemon", adm[n], "status", "--json"], capture_output=True, text=True)
    return json.loads(r.stdout)
def admin(n, *args):
    subprocess.run([SGC, "admin", "--daemon", adm[n], *args], capture_output=True, text=True)
def wait_keys(names, prev):
    t0 = time.time()
    while time.time() - t0 < 30:
        st = [status(n) for n in names]
        ks = [s.get("keys") or {} for s in st]
        ids = {k.get("key_id") for k in ks}
        if all(s["ring"]["members"] == names for s in st) and len(ids) == 1 and None not in ids \
           and all(not k["holding"] for k in ks) and all(k["agreements"] > prev.get(n, 0) for n, k in zip(names, ks)):
            return {n: k for n, k in zip(names, ks)}
        time.sleep(0.05)
    raise SystemExit("timeout %r" % ([s.get("keys") for s in st],))
ks = wait_keys(["d0", "d1", "d2"], {})
agreements = {n: k["agreements"] for n, k in ks.items()}
split, merge = [], []
for i in range(N):
    admin("d2", "partition", "--from", "d0,d1")
    admin("d0", "partition", "--from", "d2"); admin("d1", "partition", "--from", "d2")
    ks = wait_keys(["d0", "d1"], agreements)
    split.append(max(k["last_agreement_ms"] for k in ks.values()))
    agreements.update({n: k["agreements"] for n, k in ks.items()})
    for n in ["d0", "d1", "d2"]:
        admin(n, "heal")
    ks = wait_keys(["d0", "d1", "d2"], agreements)
    merge.append(max(k["last_agreement_ms"] for k in ks.values()))
    agreements.update({n: k["agreements"] for n, k in ks.items()})
    print("round", i, "split(2 daemons) %.2f ms" % split[-1], "merge(3 daemons) %.2f ms" % merge[-1], "exps", ks["d0"]["exps"], flush=True)
def summ(v):
    v = sorted(v)
    return "median %.2f ms, min %.2f, max %.2f (n=%d)" % (statistics.median(v), v[0], v[-1], len(v))
print("leave of d2 (2 daemons rekey):", summ(split))
print("merge back to 3 daemons:", summ(merge))
print(json.dumps(status("d0")["keys"]))
subprocess.run([SGC, "cluster", "down", "--dir", d], capture_output=True)
