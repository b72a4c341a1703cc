#!/usr/bin/env python3
"""Throughput per security variant, payload size and number of senders (docs/benchmarks.md,
paper figs. 8 and 9).

Usage: python3 impl/cli/tests/variants_bench.py PATH/TO/sgc [ROUNDS]
Per round and variant a fresh local cluster of 3 daemons in /tmp/bench4; clients on the
daemons' Unix sockets, one receiver per daemon, agreed service, in one `sgc flood` process:
- none, three-step: `sgc flood` (plaintext clients; three-step seals every daemon packet);
- integrated-vs: `sgc flood --compare-e2e` (its encrypted run: every payload sealed with
  AES-256-GCM under the group key, opened by every receiver; and its plaintext run);
- optimized-evs: `sgc flood --e2e-only` (the encrypted run alone: the daemons report plaintext
  as undecryptable; they also check each message's key id before delivery).
Prints one JSON line per run: variant, size, senders, msgs/s (or the error), and for the
end-to-end variants the plaintext run of the same invocation.
"""
import json, os, shutil, subprocess, sys

SGC = sys.argv[1]
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 2
os.makedirs("/tmp/bench4", exist_ok=True)
COUNT = {100: 20000, 1000: 20000, 10000: 3000}

def flood(d, mode, size, senders, tag):
    socks = ",".join(f"unix:{d}/d{i}/data/client.sock" for i in range(3))
    args = [SGC, "flood", "--daemon", socks, "--senders", str(senders), "--size", str(size),
            "--count", str(COUNT[size] // senders), "--group", tag, "--json"]
    e2e = mode == "integrated-vs"
    if e2e:
        args.append("--compare-e2e")
    elif mode == "optimized-evs":
        args.append("--e2e-only")
    out = subprocess.run(args, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        return None, out.stderr.strip().splitlines()[-1:] or ["failed"]
    v = json.loads(out.stdout.strip().splitlines()[-1])
    if e2e:
        # the encrypted run, and the same invocation's plaintext run (senders are members too)
        return (v["integrated_vs"].get("messages_per_s"), v["plain"].get("messages_per_s")), None
    return (v.get("messages_per_s"), None), None

for rnd in range(1, ROUNDS + 1):
    for mode in ("none", "three-step", "integrated-vs", "optimized-evs"):
        d = f"/tmp/bench4/{mode}"
        shutil.rmtree(d, ignore_errors=True)
        subprocess.run([SGC, "cluster", "up", "--daemons", "3", "--security", mode, "--dir", d,
                        "--json"], check=True, capture_output=True, text=True)
        for size in (100, 1000, 10000):
            for senders in (1, 3):
                rates, err = flood(d, mode, size, senders, f"r{rnd}-{size}-{senders}")
                rate, plain = rates if rates else (None, None)
                print(json.dumps({"round": rnd, "variant": mode, "size": size, "senders": senders,
                                  "msgs_per_s": rate, "same_run_plain_msgs_per_s": plain,
                                  "error": err}), flush=True)
        subprocess.run([SGC, "cluster", "down", "--dir", d], capture_output=True)
