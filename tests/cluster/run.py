#!/usr/bin/env python3
"""make test-cluster (and make bench-cluster): the cluster mode end to end,
several processes over NATS JetStream, with faults.

    python3 tests/cluster/run.py [--ticks T] [--latency] [--keep DIR] [--no-faults]

(from the repo root after `make build`). Steps:
  1. Debian's nats-server with JetStream (-js, file store in a temporary
     directory) on a free 127.0.0.1 port; stopped by its pid when the run
     ends, whatever happens (the temporary directories are removed too);
  2. the single-server reference (tests/cluster/node.lua reference): one
     plain resolver, the whole world, every dig in the global order;
  3. --shards shard processes (node.lua shard --shard i), each at a fixed
     tick rate from one common start time (no lock step: cross-shard records
     arrive whenever the transport delivers them);
  4. faults (unless --no-faults): shard 1 is killed with SIGKILL mid-run
     (after it wrote a snapshot) and restarted with --restore; the broker is
     killed (SIGKILL: JetStream must keep what it acknowledged) and restarted on the same port and store later on;
     then the last shard is killed and restored the same way;
     shard 0 publishes every 7th record twice under the same Nats-Msg-Id
     (duplicate_every, JetStream drops it) and shard 2 every 11th under a new
     one (duplicate_raw_every: only the resolver's dedupe drops it);
  5. each shard drains until it applied exactly the entries the reference
     says are addressed to it, then exits; check.py compares every client's
     packets with the reference's and prints the last line: one JSON object
     (shards, packets, lost, duplicated, resent, identical, cross_shard_p50_ms,
     cross_shard_p99_ms, fault counts, duration_s).
--emulate: steps 2 and 5 only, with node.lua emulate instead of shards (plain
resolvers per shard, packets routed and renumbered offline): checks the world
script (ghosts by determinism) without the broker or any cluster code.
--latency: the measuring run (no faults): 12,000 players, steady 20 Hz with
--digs-per-tick digs, and one tick of --burst-digs digs (12,000) mid-run, all
preferring players by a border; prints the same JSON with burst_* figures.
Exit status: 0 only if identical with lost == 0 and duplicated == 0 (and no
shard failed).
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
NATS = shutil.which("nats-server") or "/usr/sbin/nats-server"

procs = {}            # name -> Popen (everything this run started)


def log(msg):
    print(f"test-cluster: {msg}", flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nats-server did not listen on {port}")


def stop(name, sig=signal.SIGTERM, timeout=10):
    p = procs.pop(name, None)
    if p is None or p.poll() is not None:
        return None if p is None else p.returncode
    p.send_signal(sig)
    try:
        return p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        return p.wait()


def start_nats(port, store, logf):
    p = subprocess.Popen([NATS, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", store],
                         stdout=logf, stderr=subprocess.STDOUT)
    procs["nats"] = p
    wait_port(port)
    return p


def main():
    try:
        return run()
    except (SystemExit, RuntimeError, OSError, subprocess.SubprocessError) as e:
        if isinstance(e, SystemExit) and not isinstance(e.code, str):
            return e.code
        log(f"FAILED: {e}")
        print(json.dumps({"identical": False, "error": str(e)}))
        return 1


def run():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shards", type=int, default=3)
    ap.add_argument("--ticks", type=int, default=600)
    ap.add_argument("--hz", type=int, default=20)
    ap.add_argument("--latency", action="store_true")
    ap.add_argument("--no-faults", action="store_true")
    ap.add_argument("--fake-link", action="store_true",
                    help="real cluster-mode resolvers (TREASURE_BACKEND decides) over the fake file link, no broker")
    ap.add_argument("--fake", action="store_true",
                    help="develop the driver: tests/cluster/fake_cluster.lua instead of cluster mode and NATS (no broker fault)")
    ap.add_argument("--emulate", action="store_true",
                    help="no broker, no cluster code: node.lua emulate (plain resolvers per shard) against the reference")
    ap.add_argument("--keep", help="keep the run's outputs in this directory")
    ap.add_argument("--timeout", type=float, default=150, help="the whole run, seconds")
    ap.add_argument("--world", default="", help="extra node.lua world options, e.g. '--players 900'")
    a = ap.parse_args()
    t_begin = time.time()
    load0 = round(os.getloadavg()[0], 2)      # a shared machine: say how busy it was

    world = ["--shards", str(a.shards)]
    node_opts = ["--hz", str(a.hz), "--ticks", str(a.ticks)]
    burst_tick = None
    stripe = 128
    if a.latency:
        a.no_faults = True
        stripe = 1024
        burst_tick = a.ticks // 2
        world += ["--players", "12000", "--stripe", str(stripe), "--depth", "8192", "--sites", "40000",
                  "--border-share", "0.5", "--aoi", "32", "--reach", "8", "--charges", "20", "--party-spread", "0.5",
                  "--border-dig-share", "0.95", "--digs-per-tick", "20",
                  "--burst-tick", str(burst_tick), "--burst-digs", "12000"]
        node_opts += ["--pump-us", "200", "--snapshot-every", str(10 ** 9)]
    else:
        world += ["--stripe", str(stripe)]
        node_opts += ["--pump-us", "1000", "--snapshot-every", "40"]
    world += a.world.split()

    tmp = tempfile.mkdtemp(prefix="treasure-cluster-")
    out = a.keep or os.path.join(tmp, "out")
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):
        if f.startswith(("shard", "owner", "poll", "pump", "snap", "reference", "hosts", "expect")):
            os.remove(os.path.join(out, f))
    store = os.path.join(tmp, "js")
    env = dict(os.environ)
    env["LUA_PATH"] = f"{REPO}/lua/?.lua;{REPO}/lua/?/init.lua;;"
    env["LUA_CPATH"] = f"{REPO}/build/?.so;;"
    node = ["luajit", os.path.join(HERE, "node.lua")]
    faults = {"kills": 0, "restores": 0, "broker_restarts": 0}
    failed = []

    def on_signal(sig, _frame):
        raise SystemExit(f"test-cluster: signal {sig}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    deadline = t_begin + a.timeout
    try:
        if a.emulate:
            for role in ("reference", "emulate"):
                r = subprocess.run(node + [role, "--out", out] + world + node_opts, env=env, timeout=120)
                if r.returncode != 0:
                    raise SystemExit(f"test-cluster: node.lua {role} failed")
            extra = {"mode": "emulate", "duration_s": round(time.time() - t_begin, 1)}
            return subprocess.run([sys.executable, os.path.join(HERE, "check.py"), "--dir", out, "--shards",
                                   str(a.shards), "--stripe", str(stripe), "--extra", json.dumps(extra)]).returncode
        if a.fake or a.fake_link:
            os.makedirs(store)
            url = f"file://{store}"
            node_opts += ["--fake", "1"] if a.fake else ["--fake-link", "1"]
        else:
            port = free_port()
            url = f"nats://127.0.0.1:{port}"
            nats_log = open(os.path.join(tmp, "nats.log"), "ab")
            start_nats(port, store, nats_log)
            log(f"nats-server {NATS} -js on {url} (pid {procs['nats'].pid})")

        t0 = time.time()
        ref = subprocess.run(node + ["reference", "--out", out] + world + node_opts, env=env,
                             capture_output=True, text=True, timeout=120)
        sys.stdout.write(ref.stdout)
        if ref.returncode != 0:
            sys.stderr.write(ref.stderr)
            raise SystemExit("test-cluster: the reference failed")
        log(f"reference done in {time.time() - t0:.1f} s")

        start_at = time.time() + 2.0
        end_at = start_at + a.ticks / a.hz

        def shard_cmd(i, restore=False):
            c = node + ["shard", "--shard", str(i), "--out", out, "--url", url, "--start-at", f"{start_at:.6f}"]
            c += world + node_opts
            if not a.no_faults and i == 0:
                c += ["--duplicate-every", "7"]
            if not a.no_faults and i == min(2, a.shards - 1):
                c += ["--duplicate-raw-every", "11"]
            if restore:
                c.append("--restore")
            return c

        def launch(i, restore=False):
            f = open(os.path.join(out, f"shard{i}.stderr"), "ab")
            procs[f"shard{i}"] = subprocess.Popen(shard_cmd(i, restore), env=env, stdout=subprocess.PIPE,
                                                  stderr=f, text=True)

        for i in range(a.shards):
            launch(i)
        log(f"{a.shards} shards, {a.ticks} ticks at {a.hz} Hz from t+2 s")

        # the fault schedule, in wall time from the start
        plan = []
        if not a.no_faults:
            plan = [(start_at + 0.35 * (end_at - start_at), "kill", 1 % a.shards)]
            if not (a.fake or a.fake_link):
                plan.append((start_at + 0.65 * (end_at - start_at), "broker", None))
            # a second kill after the broker restart: that restore replays
            # from a log position written before it
            plan.append((start_at + 0.8 * (end_at - start_at), "kill", (a.shards - 1) % a.shards))
        def sleep_until(when, why):
            # a shard that exits before its time fails the run at once
            while time.time() < when:
                for i in range(a.shards):
                    p = procs.get(f"shard{i}")
                    if p is not None and p.poll() is not None and p.returncode != 0:
                        with open(os.path.join(out, f"shard{i}.stderr"), "rb") as f:
                            sys.stderr.write(f.read().decode(errors="replace")[-3000:])
                        raise SystemExit(f"test-cluster: shard {i} failed (exit {p.returncode}) {why}")
                if time.time() > deadline:
                    raise SystemExit(f"test-cluster: run timeout {why}")
                time.sleep(0.05)

        fault_ticks = []
        killed = set()
        for when, what, victim in plan:
            sleep_until(when, f"before the {what} fault")
            k = int((time.time() - start_at) * a.hz)
            # a kill: from the victim's last snapshot (it re-runs those ticks)
            back = int(node_opts[node_opts.index("--snapshot-every") + 1]) if what == "kill" else 0
            fault_ticks.append(f"{k - 2 - back}-{k + 5 * a.hz}")
            if what == "kill":
                snap = os.path.join(out, f"snap{victim}.lua")
                while not os.path.exists(snap):
                    sleep_until(time.time() + 0.05, "waiting for a snapshot to kill after")
                p = procs[f"shard{victim}"]
                if p.poll() is not None:
                    raise SystemExit(f"test-cluster: shard {victim} exited ({p.returncode}) before the kill")
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
                procs.pop(f"shard{victim}")
                faults["kills"] += 1
                killed.add(victim)
                log(f"killed shard {victim} (pid {p.pid}) with SIGKILL")
                time.sleep(1.0)
                launch(victim, restore=True)
                faults["restores"] += 1
                log(f"restarted shard {victim} with --restore")
            elif what == "broker":
                rc = stop("nats", signal.SIGKILL)
                log(f"stopped nats-server (exit {rc}); restarting on the same port and store")
                time.sleep(0.5)
                start_nats(port, store, nats_log)
                faults["broker_restarts"] += 1
                log(f"nats-server back (pid {procs['nats'].pid})")

        for i in range(a.shards):
            p = procs[f"shard{i}"]
            try:
                o, _ = p.communicate(timeout=max(1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                failed.append(f"shard {i}: run timeout")
                stop(f"shard{i}", signal.SIGKILL)
                continue
            procs.pop(f"shard{i}")
            sys.stdout.write(o)
            if p.returncode != 0:
                failed.append(f"shard {i}: exit {p.returncode}")
                with open(os.path.join(out, f"shard{i}.stderr"), "rb") as f:
                    sys.stderr.write(f.read().decode(errors="replace")[-3000:])
        stop("nats")

        extra = dict(faults)
        extra["duplicate_publish_hooks"] = {} if a.no_faults else {"duplicate_every": 7, "duplicate_raw_every": 11}
        extra["shard_failures"] = failed
        extra["duration_s"] = round(time.time() - t_begin, 1)
        extra["loadavg_1m"] = [load0, round(os.getloadavg()[0], 2)]
        extra["mode"] = ("fake-" if a.fake else "fake-link-" if a.fake_link else "") + ("latency" if a.latency else "faults")
        cmd = [sys.executable, os.path.join(HERE, "check.py"), "--dir", out, "--shards", str(a.shards),
               "--stripe", str(stripe), "--extra", json.dumps(extra)]
        if burst_tick is not None:
            cmd += ["--burst-tick", str(burst_tick)]
        if fault_ticks:
            cmd += ["--fault-ticks", ",".join(fault_ticks)]
        if faults["kills"]:
            cmd += ["--require-faults", str(len(killed))]
        if failed:
            log("FAILED: " + "; ".join(failed))
        rc = subprocess.run(cmd).returncode    # its JSON line is the last line
        return 1 if failed else rc
    finally:
        for name in list(procs):
            stop(name, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
