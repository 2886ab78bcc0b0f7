#!/usr/bin/env python3
"""The servers under abuse (issue 13 items 1-2): burstd managing N real cgroup v1 workloads
while 500 clients send `GET /metrics` three times each and never read, and 10 clients declare
a 1,000,000-byte API body and send one byte every 2 ms. Reports the daemon's RSS (VmRSS) and
`/healthz` latency before and during the abuse, and what became of the abusive connections.

Needs root (real cgroups, removed at the end even on failure). Usage:
  sudo python3 bench/abuse.py [--bin target/release/burstd] [--workloads 1000] [--seconds 30]
Run it once per binary (e.g. main's and this branch's) and compare; prints one JSON line.
Timing figures live here and in BENCHMARKS.md, never in tests.
"""
import argparse, json, os, selectors, signal, socket, statistics, sys, tempfile, threading, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as suite  # noqa: E402  (Fleet, start_daemon, wait_workloads)

PORT = 19751


def vm_rss_mb(pid):
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS"):
            return int(l.split()[1]) / 1024
    return 0.0


def healthz(timeout=10.0):
    """(seconds, status) of one GET /healthz on a new connection; status 0: no answer."""
    t0 = time.perf_counter()
    try:
        s = socket.create_connection(("127.0.0.1", PORT), timeout=timeout)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            c = s.recv(4096)
            if not c:
                break
            data += c
        s.close()
        status = int(data[9:12]) if data[:5] == b"HTTP/" else 0
    except OSError:
        status = 0
    return time.perf_counter() - t0, status


def open_non_readers(n):
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", PORT))
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 3)
        socks.append(s)
    return socks


def open_tricklers(path, n):
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX)
        s.connect(path)
        s.sendall(b"POST /DescribeCreditBalances HTTP/1.1\r\nHost: b\r\nContent-Length: 1000000\r\n\r\n")
        s.setblocking(False)
        socks.append(s)
    return socks


def drain(socks, limit_s=5.0):
    """Reads every socket to EOF (or until `limit_s`): (closed by the server, first status line of each)."""
    sel = selectors.DefaultSelector()
    heads = {}
    open_ = set()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        open_.add(s)
        heads[s] = b""
    end = time.time() + limit_s
    closed = 0
    while open_ and time.time() < end:
        for key, _ in sel.select(timeout=0.1):
            s = key.fileobj
            try:
                c = s.recv(1 << 20)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                c = b""
            if len(heads[s]) < 64:
                heads[s] += c[:64]
            if not c:
                closed += 1
                sel.unregister(s)
                open_.discard(s)
    statuses = {}
    for s in socks:
        line = heads[s].split(b"\r\n", 1)[0].decode(errors="replace")[:12] or "(nothing)"
        statuses[line] = statuses.get(line, 0) + 1
    for s in socks:
        s.close()
    return closed, statuses


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=str(suite.BIN))
    ap.add_argument("--workloads", type=int, default=1000)
    ap.add_argument("--non-readers", type=int, default=500)
    ap.add_argument("--tricklers", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--label", default="")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/abuse.py: needs root (it creates real cgroups)")
    suite.BIN = Path(a.bin)
    out = {"label": a.label, "bin": a.bin, "workloads": a.workloads}
    fleet = suite.Fleet("burstd-bench-abuse", a.workloads)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            sock = f"{tmp}/api.sock"
            d = suite.start_daemon(tmp, f"""[agent]
state_dir = "{tmp}"
[metrics]
listen = "127.0.0.1:{PORT}"
[api]
socket = "{sock}"
[[workload]]
name = "fleet"
match = "burstd-bench-abuse/*"
profile = "t3.micro"
mode = "standard"
initial_credits = 288
""")
            try:
                if not suite.wait_workloads(tmp, a.workloads):
                    raise RuntimeError(f"daemon never reported {a.workloads} workloads")
                time.sleep(2)
                # One scrape for the body size, then the calm figures.
                _, body = suite.metrics(PORT)
                out["scrape_bytes"] = len(body)
                calm = [healthz() for _ in range(20)]
                out["calm_rss_mb"] = vm_rss_mb(d.pid)
                out["calm_healthz_ms_median"] = statistics.median(t for t, _ in calm) * 1000
                suite.log(f"calm: {out['calm_rss_mb']:.1f} MB, healthz {out['calm_healthz_ms_median']:.2f} ms")
                non_readers = open_non_readers(a.non_readers)
                tricklers = open_tricklers(sock, a.tricklers)
                trickle_open = set(tricklers)
                sent = 0
                rss, hz = [], []
                t_end = time.time() + a.seconds

                def probe():
                    # Once a second, on its own thread: a slow answer must not slow the trickle.
                    while time.time() < t_end:
                        t0 = time.time()
                        rss.append(vm_rss_mb(d.pid))
                        hz.append(healthz())
                        time.sleep(max(0.0, 1.0 - (time.time() - t0)))

                prober = threading.Thread(target=probe)
                prober.start()
                while time.time() < t_end:
                    for s in list(trickle_open):
                        try:
                            sent += s.send(b" ")
                        except BlockingIOError:
                            pass
                        except OSError:
                            trickle_open.discard(s)
                    time.sleep(0.002)
                prober.join()
                rss.append(vm_rss_mb(d.pid))
                out["abuse_seconds"] = a.seconds
                out["abuse_rss_mb_peak"] = max(rss)
                out["abuse_rss_mb_end"] = rss[-1]
                lat = [t * 1000 for t, _ in hz]
                out["abuse_healthz_ms_median"] = statistics.median(lat)
                out["abuse_healthz_ms_max"] = max(lat)
                out["abuse_healthz_status"] = {str(k): sum(1 for _, s in hz if s == k) for k in sorted({s for _, s in hz})}
                out["trickle_bytes_sent"] = sent
                out["tricklers_closed_by_server_during"] = a.tricklers - len(trickle_open)
                closed, statuses = drain(non_readers)
                out["non_readers_closed_by_server"] = closed
                out["non_readers_first_line"] = statuses
                closed, statuses = drain(tricklers, 1.0)
                out["tricklers_answers"] = statuses
                out["after_rss_mb"] = vm_rss_mb(d.pid)
                out["after_healthz_ms"] = healthz()[0] * 1000
            finally:
                d.send_signal(signal.SIGTERM)
                d.wait(timeout=60)
    finally:
        fleet.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
