#!/usr/bin/env python3
"""Scrape latency and the polling-path cost of the exposure work.

Runs as the COMMAND of ../shared/bench/bench-collector.sh (inside its
namespace A, next to N live connections), through scripts/bench/metrics.sh:

    metrics.py BIN OUTDIR RESULTS [SCRAPES] [SPACING_MS] [WARMUP_S]

Starts the agent, waits WARMUP_S for its cache to fill, then GETs /metrics
SCRAPES times, SPACING_MS apart (a new connection each time, as Prometheus
does when keep-alive is off), timing each from connect to the last byte.
Meanwhile it reads the agent's polling-thread CPU (the main thread) from
/proc and the time that thread spent on exposure inventories from the
agent's own counter, tcpinfo_exposure_inventory_seconds_total. Writes
key=value lines to RESULTS and exits (stopping the agent).
"""

import os
import signal
import socket
import subprocess
import sys
import time

ADDR = ("127.0.0.1", 9990)
TICK = os.sysconf("SC_CLK_TCK")


def get(path):
    t0 = time.perf_counter()
    with socket.create_connection(ADDR, timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    elapsed = time.perf_counter() - t0
    data = b"".join(chunks)
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode(), elapsed


def metric(body, name):
    for line in body.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def thread_cpu(pid):
    """CPU seconds (user+sys) of each thread of pid, by thread name."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) / TICK
        key = "poll" if int(tid) == pid else name
        out[key] = out.get(key, 0.0) + cpu
    return out


def short_slices():
    import ctypes
    import platform

    nr = {"x86_64": 314, "aarch64": 274}.get(platform.machine())
    if nr is None:
        return
    # struct sched_attr (VER0, 48 bytes): size, policy, flags, nice,
    # priority, runtime (the EEVDF slice for SCHED_OTHER), deadline, period.
    attr = (ctypes.c_uint32 * 12)(48, 0, 0, 0, 0, 0, 100_000, 0, 0, 0, 0, 0)
    ctypes.CDLL(None, use_errno=True).syscall(nr, 0, attr, 0)


def pct(sorted_values, p):
    i = min(len(sorted_values) - 1, int(round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[i]


def main():
    binary, outdir, results = sys.argv[1:4]
    scrapes = int(sys.argv[4]) if len(sys.argv) > 4 else 500
    spacing = (int(sys.argv[5]) if len(sys.argv) > 5 else 50) / 1000
    warmup = float(sys.argv[6]) if len(sys.argv) > 6 else 5
    agent = subprocess.Popen(
        [binary, f"-output={outdir}", "-prometheusx.listen-address=127.0.0.1:9990", "-stats-interval=10s"]
    )
    signal.signal(signal.SIGTERM, lambda *_: (agent.terminate(), sys.exit(143)))
    # The agent's HTTP thread asks for 100 us scheduler slices; so does this
    # client (only it: the agent is already running), so that its own wake-up
    # delays on a busy machine do not pollute the agent's figure.
    short_slices()
    try:
        deadline = time.time() + 30
        while True:
            try:
                if get("/-/ready")[0] == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise SystemExit("agent not ready")
            time.sleep(0.05)
        time.sleep(warmup)
        _, body0, _ = get("/metrics")
        cpu0 = thread_cpu(agent.pid)
        latencies = []
        for _ in range(scrapes):
            status, body, elapsed = get("/metrics")
            assert status == 200
            latencies.append(elapsed * 1000)
            time.sleep(spacing)
        _, body1, _ = get("/metrics")
        cpu1 = thread_cpu(agent.pid)
        lat = sorted(latencies)
        inv = metric(body1, "tcpinfo_exposure_inventory_seconds_total") - metric(
            body0, "tcpinfo_exposure_inventory_seconds_total"
        )
        poll = cpu1.get("poll", 0) - cpu0.get("poll", 0)
        window = metric(body1, "tcpinfo_polls_total") - metric(body0, "tcpinfo_polls_total")
        res = {
            "scrapes": len(lat),
            "scrape_p50_ms": f"{pct(lat, 50):.3f}",
            "scrape_p90_ms": f"{pct(lat, 90):.3f}",
            "scrape_p99_ms": f"{pct(lat, 99):.3f}",
            "scrape_max_ms": f"{lat[-1]:.3f}",
            "scrape_bytes": len(body1.encode()),
            "series": sum(1 for l in body1.splitlines() if l and not l.startswith("#")),
            "cached_sockets": int(metric(body1, "tcpinfo_cached_sockets")),
            "polls_in_window": int(window),
            "poll_thread_cpu_s": f"{poll:.2f}",
            "exposure_inventory_s": f"{inv:.4f}",
            "exposure_share_of_poll_cpu_pct": f"{100 * inv / poll:.2f}" if poll > 0 else "nan",
            "exposure_thread_cpu_s": f"{cpu1.get('exposure', 0) - cpu0.get('exposure', 0):.2f}",
            "http_thread_cpu_s": f"{cpu1.get('metrics-http', 0) - cpu0.get('metrics-http', 0):.2f}",
        }
        with open(results, "w") as f:
            for k, v in res.items():
                f.write(f"{k}={v}\n")
    finally:
        agent.terminate()
        agent.wait()


if __name__ == "__main__":
    main()
