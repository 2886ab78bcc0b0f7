#!/usr/bin/env python3
"""burstd's benchmark suite: runs every benchmark on this machine and writes BENCHMARKS.md.

Needs root (it creates real cgroup v1 groups under /sys/fs/cgroup/{cpu,cpuacct}, removed at
the end even on failure). Usage: sudo python3 bench/run.py [--runs 3] [--fleet-seconds 60]
[--sizes 1000,10000] [--out BENCHMARKS.md]. The measured figures are also kept in
bench/results.json; `--render-only` writes BENCHMARKS.md again from them (no root needed).
Timing goals live here, never in tests.
"""
import argparse, json, os, platform, re, signal, socket, statistics, subprocess, sys, tempfile, time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CPU, CPUACCT = Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup/cpuacct")
BIN = ROOT / "target/release/burstd"
TICK = os.sysconf("SC_CLK_TCK")


def log(*a):
    print("[bench]", *a, file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, cwd=ROOT, **kw)


def mmm(xs):
    xs = sorted(xs)
    return xs[0], statistics.median(xs), xs[-1]


def fmt3(xs, f="{:.3g}"):
    lo, med, hi = mmm(xs)
    return f"{f.format(lo)} / **{f.format(med)}** / {f.format(hi)}"


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "0")
    rustc = run(["rustc", "--version"]).stdout.strip()
    load = open("/proc/loadavg").read().split()[:3]
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": round(int(mem) / 2**20, 1),
            "kernel": platform.release(), "rustc": rustc, "load_at_start": " ".join(load),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


# --- 1. sampling floor ratio ----------------------------------------------------------------
def bench_sampling(runs):
    out = run(["cargo", "bench", "--bench", "sampling", "--", "--groups", "100", "--rounds", "300",
               "--runs", str(max(runs, 5))]).stdout
    rows = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    return rows


# --- 5. engine ------------------------------------------------------------------------------
def bench_engine(runs):
    res = {}
    for i in range(runs):
        log(f"engine run {i + 1}/{runs}")
        run(["cargo", "bench", "--bench", "simulate", "--", "--noplot"])
        for est in (ROOT / "target/criterion").glob("*/*/new/estimates.json"):
            name = f"{est.parts[-4]}/{est.parts[-3]}"
            res.setdefault(name, []).append(json.load(open(est))["median"]["point_estimate"])
    return res


# --- real cgroups -----------------------------------------------------------------------------
class Fleet:
    def __init__(self, parent, n):
        self.parent, self.n, self.rels = parent, n, []
        for root in (CPU, CPUACCT):
            (root / parent).mkdir(exist_ok=True)
        for i in range(n):
            rel = f"{parent}/w{i:05d}"
            for root in (CPU, CPUACCT):
                (root / rel).mkdir(exist_ok=True)
            self.rels.append(rel)
        self.procs = []

    def burn_each(self):
        for rel in self.rels:
            p = subprocess.Popen(["sh", "-c", "while :; do :; done"])
            for root in (CPU, CPUACCT):
                (root / rel / "cgroup.procs").write_text(str(p.pid))
            self.procs.append(p)

    def close(self):
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()
        for rel in self.rels + [self.parent]:
            for root in (CPU, CPUACCT):
                for _ in range(50):
                    try:
                        (root / rel).rmdir()
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        time.sleep(0.02)


def start_daemon(tmp, body, log=None):
    cfg = Path(tmp) / "burstd.toml"
    cfg.write_text(body)
    # Nice -10, as systemd/burstd.service runs it: the agent must not queue behind the busy
    # loops it polices (with 100 of them on 2 cores a nice-0 task waits ~1 s for the CPU).
    p = subprocess.Popen(["nice", "-n", "-10", str(BIN), "daemon", "--config", str(cfg)],
                         stderr=log or subprocess.DEVNULL, env={**os.environ, "BURSTD_LOG": "info" if log else "warn"})
    return p


def metrics(port):
    t0 = time.perf_counter()
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read()
    return time.perf_counter() - t0, body


def wait_workloads(state_dir, n, limit=180):
    """Wait until the daemon's state file lists `n` running workloads. Read from the file, not
    `/metrics`: a scrape at 10,000 workloads builds a 16 MB body, which would be the idle
    daemon's peak RSS."""
    end = time.time() + limit
    path = Path(state_dir) / "state.json"
    while time.time() < end:
        try:
            workloads = json.loads(path.read_text())["workloads"]
            if sum(1 for w in workloads.values() if w.get("cgroup_id")) >= n:
                return True
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.5)
    return False


def api_post(sock_path, action, payload):
    body = json.dumps(payload).encode()
    req = (f"POST /{action} HTTP/1.1\r\nHost: burstd\r\nContent-Type: application/json\r\n"
           f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body
    t0 = time.perf_counter()
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock_path)
    s.sendall(req)
    chunks = []
    while True:
        c = s.recv(1 << 20)
        if not c:
            break
        chunks.append(c)
    s.close()
    return time.perf_counter() - t0, b"".join(chunks)


def proc_cpu_s(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK


def proc_hwm_mb(pid):
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmHWM"):
            return int(l.split()[1]) / 1024
    return 0.0


# --- 2 + 4. idle fleet, scrape, describe ---------------------------------------------------------
def bench_idle(n, runs, seconds, extra="", initial=288):
    out = {"cpu_pct": [], "rss_mb": [], "rss_scrape_mb": [], "scrape_ms": [], "scrape_bytes": 0, "describe_ms": [],
           "fds": 0}
    fleet = Fleet("burstd-bench-fleet", n)
    try:
        for r in range(runs):
            with tempfile.TemporaryDirectory() as tmp:
                port = 19749
                sock = f"{tmp}/api.sock"
                d = start_daemon(tmp, f"""[agent]
state_dir = "{tmp}"
{extra}
[metrics]
listen = "127.0.0.1:{port}"
[api]
socket = "{sock}"
[[workload]]
name = "fleet"
match = "burstd-bench-fleet/*"
profile = "t3.micro"
mode = "standard"
initial_credits = {initial}
""")
                try:
                    if not wait_workloads(tmp, n):
                        raise RuntimeError(f"daemon never reported {n} workloads")
                    time.sleep(2)
                    c0, t0 = proc_cpu_s(d.pid), time.time()
                    log(f"idle fleet {n}: run {r + 1}/{runs}, measuring {seconds} s")
                    time.sleep(seconds)
                    c1, t1 = proc_cpu_s(d.pid), time.time()
                    out["cpu_pct"].append(100 * (c1 - c0) / (t1 - t0))
                    out["fds"] = len(os.listdir(f"/proc/{d.pid}/fd"))
                    # The idle fleet's peak (start-up, rescans, saves), before any scrape builds a body.
                    out["rss_mb"].append(proc_hwm_mb(d.pid))
                    for _ in range(5):
                        dt, body = metrics(port)
                        out["scrape_ms"].append(dt * 1000)
                        out["scrape_bytes"] = len(body)
                    if n <= 1000:
                        for _ in range(5):
                            dt, resp = api_post(sock, "DescribeInstanceCreditSpecifications", {"MaxResults": 1000})
                            assert b"200 OK" in resp.split(b"\r\n", 1)[0], resp[:200]
                            out["describe_ms"].append(dt * 1000)
                    out["rss_scrape_mb"].append(proc_hwm_mb(d.pid))
                finally:
                    d.send_signal(signal.SIGTERM)
                    d.wait(timeout=60)
    finally:
        fleet.close()
    return out


# --- 3. draining fleet -----------------------------------------------------------------------------
LANDING = re.compile(r"held at baseline.*?workload=(\S+).*?overshoot_cpu_ms=([\d.e+-]+) late_ms=([\d.e+-]+)")


def bench_drain(runs, n=100):
    out = {"overshoot_ms": [], "late_ms": [], "held": []}
    k = 60.0
    for r in range(runs):
        fleet = Fleet("burstd-bench-drain", n)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                fleet.burn_each()
                time.sleep(1)
                log(f"draining fleet: run {r + 1}/{runs}")
                logf = open(f"{tmp}/daemon.log", "w")
                d = start_daemon(tmp, f"""[agent]
state_dir = "{tmp}"
time_scale = {k}
[metrics]
listen = ""
[api]
socket = ""
[profiles.drain]
vcpus = 1
credits_per_hour = 0.06
[[workload]]
name = "d"
match = "burstd-bench-drain/*"
profile = "drain"
mode = "standard"
initial_credits = 0.05
""", logf)
                try:
                    for _ in range(120):
                        time.sleep(1)
                        log_text = open(f"{tmp}/daemon.log").read()
                        if len(LANDING.findall(log_text)) >= n:
                            break
                finally:
                    d.send_signal(signal.SIGTERM)
                    d.wait(timeout=60)
                    logf.close()
                landings = LANDING.findall(open(f"{tmp}/daemon.log").read())
                first = {}
                for name, over, late in landings:
                    first.setdefault(name, (float(over), float(late)))
                for over, late in first.values():
                    out["overshoot_ms"].append(over)
                    out["late_ms"].append(late)
                out["held"].append(len(first))
        finally:
            fleet.close()
    return out


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--fleet-seconds", type=int, default=60)
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    ap.add_argument("--raw", default=str(ROOT / "bench" / "results.json"),
                    help="where the measured figures are kept (re-rendered with --render-only)")
    ap.add_argument("--render-only", action="store_true",
                    help="write BENCHMARKS.md again from --raw, measuring nothing")
    a = ap.parse_args()
    if a.render_only:
        raw = json.loads(Path(a.raw).read_text())
        fleets = {(int(k.split("|", 1)[0]), k.split("|", 1)[1]): v for k, v in raw["fleets"].items()}
        for k in ("runs", "fleet_seconds", "sizes"):
            setattr(a, k, raw["args"][k])
        write(a, raw["machine"], raw["sampling"], raw["engine"], fleets, raw["drain"])
        return
    if os.geteuid() != 0:
        sys.exit("bench/run.py: needs root (it creates real cgroups)")
    log("building release binary")
    run(["cargo", "build", "--release"])
    m = machine()
    log("sampling"); samp = bench_sampling(a.runs)
    log("engine"); eng = bench_engine(a.runs)
    sizes = [int(x) for x in a.sizes.split(",")]
    fleets = {}
    for n in sizes:
        log(f"idle fleet {n}"); fleets[(n, "")] = bench_idle(n, a.runs, a.fleet_seconds)
    # Buckets filling from 0 (a fresh T3 as launched): what a real fleet costs most of the time.
    for n in sizes:
        log(f"idle fleet {n}, filling from 0")
        fleets[(n, "filling from 0")] = bench_idle(n, a.runs, a.fleet_seconds, initial=0)
    # The same fleet with every bucket looked at once a second (the bound of docs/semantics.md).
    n0 = sizes[0]
    log(f"idle fleet {n0}, full_interval_ms = 1000")
    fleets[(n0, "full_interval_ms = 1000")] = bench_idle(n0, a.runs, a.fleet_seconds, "full_interval_ms = 1000")
    log("draining fleet"); drain = bench_drain(a.runs)
    Path(a.raw).write_text(json.dumps({
        "args": {"runs": a.runs, "fleet_seconds": a.fleet_seconds, "sizes": a.sizes},
        "machine": m, "sampling": samp, "engine": eng, "drain": drain,
        "fleets": {f"{n}|{extra}": v for (n, extra), v in fleets.items()},
    }, indent=1) + "\n")
    write(a, m, samp, eng, fleets, drain)


FINDINGS = {
    "idle": (
        "**What was found and fixed.** `perf record` of the idle daemon: the kernel's read path for the counters "
        "was most of it (v1 `cpu.stat` formatting on every look: routine looks now read only `cpuacct.usage`), "
        "then the rescan's glob, which stat'ed every match in the cpuacct hierarchy (~17%; it now intersects two "
        "directory listings), then drift checks (while burstd's own value is no limit, v1 now reads only "
        "`cfs_quota_us`). At 10,000 cgroups a cold `pread` of `cpuacct.usage` costs ~3 µs, so a look at every "
        "workload every second is ≥ 3% of a core before burstd does anything: a full bucket that is not spending "
        "is now looked at every `full_interval_ms` (5 s; the accuracy bound this costs is in docs/semantics.md; "
        "the `full_interval_ms = 1000` row is the old rate). **10,000 on this machine:** the sandbox's hard limit "
        "of 20,000 open files (root may not raise it) does not fit every file of 10,000 handles. The first "
        "descriptor budget gave its room to the first 2,000 handles' rarely read files, so 8,000 handles opened "
        "their quota file for every drift check (open + read + close, 5–10× a `pread`): `perf` put 30% of the "
        "daemon's CPU in `open` (2.5% of a core). The budget now keeps files in tiers, planned by the agent "
        "before a rescan opens cgroups: every usage counter, then a quota file for as many handles as fit "
        "(9,744 here), then the rest (docs/decisions.md). After that, `pread` of the counters is a third of the "
        "daemon's CPU, the rescan's directory listings ~10% and the state save every 5 s ~15%. **Memory:** "
        "heaptrack showed a 512-byte read buffer and five stored paths per handle (now one buffer per thread, "
        "and the cgroup's directory stored once), the workload table growing by doubling (now sized once per "
        "rescan; a `Workload` went from 944 to 528 bytes by sharing its profile), and the state save cloning "
        "every workload and building the whole 5 MB JSON in memory every 5 s (it now streams from borrowed data "
        "into the file). A restart also parsed the whole state file into a `serde_json::Value` (31 MB at 10,000) "
        "just to read its version. Peak RSS at 10,000: 47.8 MB idle before these changes (53.9 MB as the "
        "previous table read it, after five scrapes), 58.2 MB after a restart; now the table's figure, and "
        "20.0 MB after a restart (measured by hand the same way)."
    ),
    "drain": (
        "**What was found and fixed.** Every hold was saved to the state file at once, with an fsync: 100 holds "
        "landing together meant up to 100 fsyncs on the loop, each delaying the other workloads' caps (latency "
        "p99 14 ms, overshoot p99 7 ms). A hold follows from the balance, which a restart recomputes from the "
        "counters, so holds and releases no longer force a save: latency p99 2–4.5 ms, overshoot p99 3.4–3.8 ms "
        "over the runs since (this table). The "
        "overshoot exceeds the latency × 1 core because the kernel charges a running task's CPU to "
        "`cpuacct.usage` at scheduler ticks, so a look can see up to a tick of CPU used before the previous look. "
        "(The previous version of this table divided the whole run's overdraft, after the hold included, by the "
        "average rate; it read 835 ms.)"
    ),
    "scrape": (
        "**What was found and fixed.** Building a `prometheus-client` registry of 16 labelled families per "
        "scrape, then copying the body twice, was most of the 23 ms at 1,000: the per-workload series are now "
        "written straight into one buffer (docs/decisions.md), and a scrape reads the throttling counters only "
        "while a limit is in force (they cannot move otherwise): 23 → 5 ms at 1,000. The first scrape after start "
        "took 160 ms at 10,000: it read every workload's `cpu.stat`, by open + read + close where the descriptor "
        "budget keeps only counters and quota files; the counters read when a cgroup is opened now count as "
        "fresh while no limit is in force. The body (15.8 MB at 10,000: 16 families × 10,000 series) is built "
        "in memory, so a scrape raises peak RSS by about its size."
    ),
}


def summary(samp, eng, fleets, drain):
    """(figure, measured, goal, met, margin) for each goal of issue 7: medians over the runs (a
    drain's percentiles pool every hold of every run); the margin is how many times the figure
    could grow (or, for a floor, shrink) before the goal is missed."""
    med = statistics.median
    rows = []

    def below(name, x, limit, unit, fmt="{:.2f}", inclusive=False):
        rows.append((name, f"{fmt.format(x)}{unit}", f"{'≤' if inclusive else '<'} {limit:g}{unit}",
                     x <= limit if inclusive else x < limit, limit / x if x else float("inf")))

    below("sampling: burstd ÷ `pread` floor", med(r["ratio_floor"] for r in samp), 1.5, "×", inclusive=True)
    below("sampling: burstd ÷ naive", med(r["ratio_naive"] for r in samp), 1.0, "×")
    for n, goal in ((1000, 0.5), (10000, 2.0)):
        if (n, "") in fleets:
            below(f"idle {n:,}: CPU, % of one core", med(fleets[(n, "")]["cpu_pct"]), goal, "%")
    if (10000, "") in fleets:
        below("idle 10,000: peak RSS", med(fleets[(10000, "")]["rss_mb"]), 50, " MB", "{:.1f}")
    below("drain: overshoot p99, CPU-ms", pct(drain["overshoot_ms"], 99), 10, " ms")
    below("drain: latency p99", pct(drain["late_ms"], 99), 20, " ms")
    if (10000, "") in fleets:
        scrapes = fleets[(10000, "")]["scrape_ms"]
        below("scrape at 10,000 (median)", med(scrapes), 100, " ms", "{:.1f}")
        below("scrape at 10,000 (slowest of all)", max(scrapes), 100, " ms", "{:.1f}")
    for name, xs in sorted(eng.items()):
        if name.startswith("simulate"):
            thr = min(2_592_000 / (x / 1e9) / 1e6 for x in xs)
            rows.append((f"engine: {name.split('/')[-1]} (slowest run)", f"{thr:.1f} M segments/s", "> 5 M segments/s",
                         thr > 5, thr / 5))
    return rows


def write(a, m, samp, eng, fleets, drain):
    L = []
    w = L.append
    w("# burstd benchmarks\n")
    w(f"Written by `sudo python3 bench/run.py --runs {a.runs} --fleet-seconds {a.fleet_seconds} --sizes {a.sizes}` "
      f"on {m['date']}. Figures are min / **median** / max over the runs. Goals are from issue 7.\n")
    w(f"Machine: {m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB, Linux {m['kernel']} (cgroup v1 hybrid), "
      f"{m['rustc']}; open-file limit {os.sysconf('SC_OPEN_MAX')}; load average at start {m['load_at_start']} "
      "(a shared machine: ratios measured in one run are the robust figures).\n")
    w("## Goals\n")
    w("| figure | measured | goal | met | margin |\n|---|---|---|---|---|")
    for name, x, goal, met, margin in summary(samp, eng, fleets, drain):
        w(f"| {name} | {x} | {goal} | {'yes' if met else '**no**'} | {margin:.1f}× |")
    w("\nMedians over the runs, except the drain's percentiles (all holds of all runs pooled) and the slowest "
      "scrape and engine run. Margin: how many times the figure could grow (for a throughput: shrink) before "
      "the goal is missed.\n")
    w("## 1. Sampling cost per workload (real cgroups, 100 groups, thread CPU time)\n")
    w("| path | ns per sample | goal |\n|---|---|---|")
    w(f"| floor: one `pread` of `cpuacct.usage` + `cpu.stat` on kept fds, no parsing | {fmt3([r['floor_ns'] for r in samp], '{:.0f}')} | |")
    w(f"| burstd: `Cgroup::sample()` (pread + parse) | {fmt3([r['burstd_ns'] for r in samp], '{:.0f}')} | |")
    w(f"| naive: open + read + close each file | {fmt3([r['naive_ns'] for r in samp], '{:.0f}')} | |")
    w(f"| burstd ÷ floor (same run) | {fmt3([r['ratio_floor'] for r in samp], '{:.2f}')} | ≤ 1.5 |")
    w(f"| burstd ÷ naive (same run) | {fmt3([r['ratio_naive'] for r in samp], '{:.2f}')} | < 1 |\n")
    w("Reproduce: `sudo cargo bench --bench sampling -- --groups 100 --rounds 300 --runs 5`.\n")
    w("## 2. Idle fleet: `burstd daemon` managing N real cgroups (idle)\n")
    w("| N | config | CPU, % of one core | goal | peak RSS (VmHWM), MB | goal | open files |\n"
      "|---|---|---|---|---|---|---|")
    goals = {1000: "< 0.5", 10000: "< 2"}
    for (n, extra), f in fleets.items():
        g = goals.get(n, "") if not extra else ""
        w(f"| {n:,} | {extra or 'defaults'} | {fmt3(f['cpu_pct'], '{:.2f}')} | {g} | {fmt3(f['rss_mb'], '{:.1f}')} | "
          f"{'< 50' if n == 10000 and not extra else ''} | {f['fds']:,} |")
    w(f"\nEach run: {a.fleet_seconds} s after all N workloads are up; CPU from /proc/PID/stat (utime+stime); "
      "the daemon runs at nice −10 as the unit runs it. Defaults: full buckets (288 credits), looked at every "
      "`full_interval_ms` (5 s) while not spending; \"filling from 0\": fresh t3.micro buckets, looked at at "
      "their horizon, at least every `drift_check_s` (5 s) (issue 22). "
      "Peak RSS is VmHWM at the end of the idle period (start-up, rescans and state saves included), before "
      "any scrape; §4 gives it after the scrapes. Open files: all of the daemon's descriptors.\n")
    if FINDINGS["idle"]:
        w(FINDINGS["idle"] + "\n")
    w("## 3. Draining fleet: 100 busy workloads reach zero at once\n")
    d = drain
    w("| figure (per hold) | p50 | p99 | max | goal |\n|---|---|---|---|---|")
    w(f"| overshoot: CPU used past zero (net of earnings) before the cap, ms | {pct(d['overshoot_ms'], 50):.3f} | {pct(d['overshoot_ms'], 99):.3f} | {max(d['overshoot_ms']):.3f} | < 10 |")
    w(f"| latency: balance at zero → quota written, ms | {pct(d['late_ms'], 50):.3f} | {pct(d['late_ms'], 99):.3f} | {max(d['late_ms']):.3f} | p99 < 20 |")
    w(f"\nHolds per run: {d['held']} (of 100). 100 busy loops share 2 cores; profile: 1 vCPU earning 0.06 "
      "credits/h, 0.05 credits each, time_scale 60. Both figures are what the daemon logs and exports for every "
      "hold (`burstd_hold_overshoot_cpu_seconds`, `burstd_hold_late_seconds`), in real time and real CPU: the "
      "overshoot is the model's overdraft in the step that held it; the latency is the part of that step after "
      "the balance reached zero, at the step's average rate (when inside the step it crossed zero is not "
      "observable). Pooled over all runs.\n")
    if FINDINGS["drain"]:
        w(FINDINGS["drain"] + "\n")
    w("## 4. Scrape and API\n")
    w("| N | `/metrics` latency, ms | body | peak RSS after the scrapes, MB | describe API (MaxResults 1000), ms | "
      "goal |\n|---|---|---|---|---|---|")
    for (n, extra), f in fleets.items():
        if extra:
            continue
        desc = fmt3(f["describe_ms"], "{:.1f}") if f["describe_ms"] else "–"
        w(f"| {n:,} | {fmt3(f['scrape_ms'], '{:.1f}')} | {f['scrape_bytes'] / 1e6:.2f} MB | "
          f"{fmt3(f['rss_scrape_mb'], '{:.1f}')} | {desc} | "
          f"{'< 100 ms' if n == 10000 else ''} |")
    w("\nScrape = one HTTP GET from Python on loopback (the agent samples every workload at scrape time, then "
      "renders); describe = one request over the Unix socket. 5 requests per run.\n")
    if FINDINGS["scrape"]:
        w(FINDINGS["scrape"] + "\n")
    w("## 5. Engine\n")
    w("| benchmark | median time per iteration | throughput | goal |\n|---|---|---|---|")
    for name, xs in sorted(eng.items()):
        if name.startswith("simulate"):
            thr = [2_592_000 / (x / 1e9) / 1e6 for x in xs]
            w(f"| {name} (2,592,000 one-second segments) | {fmt3([x / 1e6 for x in xs], '{:.0f}')} ms | {fmt3(thr, '{:.1f}')} M segments/s | > 5 M/s |")
        elif name.startswith("model"):
            w(f"| {name} (1000 steps) | {fmt3([x / 1e3 for x in xs], '{:.1f}')} µs | {fmt3([x / 1e3 for x in xs], '{:.1f}')} ns per step | |")
    w("\nReproduce: `cargo bench --bench simulate`.\n")
    w("## Memory per workload\n")
    ns = sorted(n for n, extra in fleets if not extra)
    if len(ns) >= 2:
        lo, hi = ns[0], ns[-1]
        per = (statistics.median(fleets[(hi, '')]["rss_mb"]) - statistics.median(fleets[(lo, '')]["rss_mb"])) / (hi - lo) * 1024
        w(f"(RSS at {hi:,} − RSS at {lo:,}) / {hi - lo:,} ≈ **{per:.1f} KiB per workload** (median runs): the "
          "`Workload` struct, its bucket, its cgroup handle, and its share of the state save and the rescan. A look "
          "at a workload allocates nothing (reads use one buffer per thread, and a file opened per read gets its "
          "path built in a reused one): `tests/no_alloc_per_look.rs` counts allocations over a minute of looks "
          "with a counting allocator and requires zero.\n")
    # Figures measured by hand (the abuse runs need a second client program): kept verbatim.
    abuse = Path(__file__).with_name("abuse.md")
    if abuse.exists():
        w(abuse.read_text())
    Path(a.out).write_text("\n".join(L) + "\n")
    log(f"wrote {a.out}")


if __name__ == "__main__":
    main()
