#!/usr/bin/env python3
"""bench.py - orchestrates the RPZ baseline benchmark (called by run-baseline.sh).

Copied from ../shared/bench/bench.py (the four-resolver baseline); this copy adds
`sharedefend filter serve` as the server "filter" (port 5305, binary $SHAREDEFEND_BIN)
and, in `table`, the filter's ratio to the best of the four per server CPU-second.

Subcommands
    bench.py run   --data-root D --work W --results R.jsonl --plan "unbound:100k,1M bind:100k" ...
        For every (server, size) in the plan: render the config templates from
        configs/, start the server pinned to CPU 1 (1 worker thread), time from
        process start until the probe name (last entry of the zone) answers NXDOMAIN,
        read RSS from /proc, run correctness checks, then dnsperf (pinned to CPU 0)
        over the blocked and mixed query files, each REPEATS times, and stop the
        server by its PID.  One JSON object per measurement is appended to R.jsonl.
        The loopback upstream (knotd on 127.0.0.2:53) is started first and stopped last.
    bench.py table R.jsonl [--md]
        Prints the results table (plain or markdown).

Safety: refuses to run unless the only network interface is `lo` (run-baseline.sh
puts everything in a private network namespace with `unshare -n`), or
BENCH_ALLOW_HOSTNET=1 is set.  All targets are 127.0.0.x.  Every loop is bounded.
"""
import argparse
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import dnsq  # noqa: E402

CONFDIR = os.path.join(HERE, "configs")
UPSTREAM_IP = "127.0.0.2"
SERVER_CPU = "1"
CLIENT_CPU = "0"

SERVERS = {
    "unbound": dict(port=5301, pkg="unbound",
                    templates=[("unbound-file.conf", "unbound.conf")],
                    cmd=["unbound", "-d", "-p", "-c", "{DIR}/unbound.conf"]),
    "bind": dict(port=5302, pkg="bind9",
                 templates=[("named-file.conf", "named.conf")],
                 cmd=["named", "-f", "-4", "-n", "{THREADS}", "-c", "{DIR}/named.conf"]),
    "pdns": dict(port=5303, pkg="pdns-recursor",
                 templates=[("recursor-file.conf", "recursor.conf"), ("recursor-file.lua", "recursor.lua")],
                 cmd=["pdns_recursor", "--config-dir={DIR}"]),
    "kresd": dict(port=5304, pkg="knot-resolver",
                  templates=[("kresd-file.lua", "kresd.lua")],
                  cmd=["kresd", "-n", "-c", "{DIR}/kresd.lua", "{DIR}"]),
    # ours: `sharedefend filter serve` on the same RPZ file, forwarding what it does not
    # block to the same upstream; one UDP socket + reader thread per THREADS; FILTER_IO
    # (threads|batch|tokio) picks its UDP loop, the binary's default otherwise.
    "filter": dict(port=5305, pkg=None, templates=[],
                   cmd=["{BIN}", "filter", "serve", "--listen", "127.0.0.1:5305",
                        "--upstream", UPSTREAM_IP + ":53", "--zone-file", "{RPZ}",
                        "--udp-sockets", "{THREADS}"]
                   + (["--io", os.environ["FILTER_IO"]] if os.environ.get("FILTER_IO") else [])),
}
# The four reference resolvers (the "best of the four" of issue #5).
REFERENCE = ("unbound", "bind", "pdns", "kresd")
SHAREDEFEND_BIN = os.environ.get("SHAREDEFEND_BIN") or os.path.join(
    os.environ.get("CARGO_TARGET_DIR") or os.path.join(HERE, "..", "target"), "release", "sharedefend")


def log(*a):
    print("[%s]" % time.strftime("%H:%M:%S"), *a, flush=True)


def safety_check():
    if os.environ.get("BENCH_ALLOW_HOSTNET") == "1":
        return
    # /proc/net/dev is per network namespace (/sys/class/net is not, after unshare -n)
    with open("/proc/self/net/dev") as f:
        ifs = sorted(l.split(":")[0].strip() for l in f.readlines()[2:])
    if ifs != ["lo"]:
        sys.exit("bench.py: network interfaces %s present; run inside `unshare -n` "
                 "(run-baseline.sh does this) or set BENCH_ALLOW_HOSTNET=1" % ifs)


def render(template, dst, subst):
    with open(os.path.join(CONFDIR, template)) as f:
        s = f.read()
    for k, v in subst.items():
        s = s.replace("@%s@" % k, str(v))
    code = "\n".join(l for l in s.splitlines() if not l.strip().startswith(("#", "//", "--", ";")))
    if re.search(r"@[A-Z_]+@", code):
        raise RuntimeError("unfilled placeholder in %s" % template)
    with open(dst, "w") as f:
        f.write(s)


def rss_kb(pid):
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line.split(":")[0]] = int(line.split()[1])
    except OSError:
        pass
    return out.get("VmRSS"), out.get("VmHWM")


def cpu_ticks(pid, sys_only=False):
    try:
        with open("/proc/%d/stat" % pid) as f:
            parts = f.read().rsplit(")", 1)[1].split()
        if sys_only:
            return int(parts[12])  # stime: the kernel's share (UDP receive and send)
        return int(parts[11]) + int(parts[12])  # utime + stime (whole process)
    except OSError:
        return None


RUNNING = []  # Popen objects of the servers this script started


PIN = os.environ.get("PIN", "1") != "0"  # PIN=0: no taskset pinning (server and dnsperf float)


def start(cmd, logpath, cpu):
    lf = open(logpath, "ab")
    p = subprocess.Popen((["taskset", "-c", cpu] if PIN else []) + cmd, stdout=lf, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    lf.close()
    RUNNING.append(p)
    return p


def _on_signal(signum, frame):
    log("signal %d: stopping the servers this script started" % signum)
    for p in list(RUNNING):
        try:
            stop(p, grace=20)
        except Exception:
            pass
    sys.exit(128 + signum)


def stop(p, grace=120):
    """End exactly the process we started, by PID: SIGTERM, then SIGKILL."""
    if p in RUNNING:
        RUNNING.remove(p)
    if p.poll() is not None:
        return p.returncode
    os.kill(p.pid, signal.SIGTERM)
    try:
        return p.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        return p.wait(timeout=30)


def wait_answer(port, name, want_rcode, p, timeout, server="127.0.0.1"):
    """Poll every 20 ms until `name` gets `want_rcode`; return seconds or None."""
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if p is not None and p.poll() is not None:
            return None
        rc, _ = dnsq.query(server, port, name, timeout=0.2)
        if rc == want_rcode:
            return True
        time.sleep(0.02)
    return None


def wait_all_blocked(port, names, p, timeout):
    """Re-poll until every name in `names` answers NXDOMAIN (a server may answer the probe
    before its whole policy is active, e.g. BIND's RPZ summary build).  Returns True/None."""
    remaining = list(dict.fromkeys(names))
    t_end = time.monotonic() + timeout
    while remaining and time.monotonic() < t_end:
        if p is not None and p.poll() is not None:
            return None
        remaining = [n for n in remaining if dnsq.query("127.0.0.1", port, n, timeout=0.5)[0] != "NXDOMAIN"]
        if remaining:
            time.sleep(0.05)
    return True if not remaining else None


def wild_probe(ddir):
    """Last wildcard entry of the zone (near its end): polling never-seen-before names under
    it avoids answers cached before the policy was active (PowerDNS Recursor's packet cache
    keeps serving those)."""
    last = None
    with open(os.path.join(ddir, "domains.txt")) as f:
        for line in f:
            if line.startswith("*."):
                last = line.strip()[2:]
    return last


def wait_probe(port, ddir, meta, p, timeout):
    """Poll until the zone is active: a fresh name under the last wildcard entry AND the
    last exact entry answer NXDOMAIN.  Returns True or None."""
    wild = wild_probe(ddir)
    t_end = time.monotonic() + timeout
    i = 0
    while time.monotonic() < t_end:
        if p is not None and p.poll() is not None:
            return None
        i += 1
        if dnsq.query("127.0.0.1", port, "probe%d.%s" % (i, wild), timeout=0.2)[0] == "NXDOMAIN":
            break
        time.sleep(0.02)
    else:
        return None
    return wait_answer(port, meta["probe"], "NXDOMAIN", p, max(1, t_end - time.monotonic()))


def read_lines(path):
    with open(path) as f:
        return [l.strip() for l in f if l.strip()]


def correctness(port, ddir):
    res = {}
    def run(fname, ok):
        names = read_lines(os.path.join(ddir, fname))
        good, bad = 0, []
        for n in names:
            rc, ans = dnsq.query("127.0.0.1", port, n, timeout=2.0)
            if ok(rc, ans):
                good += 1
            else:
                bad.append("%s -> %s %s" % (n, rc, ans))
        return dict(ok=good, total=len(names), bad=bad[:5])
    res["blocked_nxdomain"] = run("check-blocked.txt", lambda rc, a: rc == "NXDOMAIN")
    res["clean_A"] = run("check-clean.txt",
                         lambda rc, a: rc == "NOERROR" and ("A", "198.51.100.7") in a)
    res["passthru_A"] = run("check-passthru.txt",
                            lambda rc, a: rc == "NOERROR" and ("A", "198.51.100.9") in a)
    return res


DP_RE = {
    "sent": r"Queries sent:\s+(\d+)",
    "completed": r"Queries completed:\s+(\d+)",
    "lost": r"Queries lost:\s+(\d+)",
    "qps": r"Queries per second:\s+([\d.]+)",
    "avg_lat_s": r"Average Latency \(s\):\s+([\d.]+)",
    "min_lat_s": r"Average Latency \(s\):\s+[\d.]+ \(min ([\d.]+)",
    "max_lat_s": r"max ([\d.]+)\)",
    "lat_stddev_s": r"Latency StdDev \(s\):\s+([\d.]+)",
    "runtime_s": r"Run time \(s\):\s+([\d.]+)",
}


def machine_busy_pct(interval=1.0):
    """Percent of both cores busy (not idle/iowait) over `interval` seconds."""
    a0 = proc_stat()
    time.sleep(interval)
    a1 = proc_stat()
    d = [y - x for x, y in zip(a0, a1)]
    tot = float(sum(d[:8])) or 1.0
    return 100.0 * (1 - (d[3] + d[4]) / tot)


QUIET_PCT = float(os.environ.get("QUIET_PCT", "10"))
QUIET_MAX_WAIT = int(os.environ.get("QUIET_MAX_WAIT", "180"))


def wait_quiet():
    """Other sessions may share this machine: wait (bounded) until it is idle.
    Returns (busy % at start of the measurement, seconds waited)."""
    t0 = time.monotonic()
    busy = machine_busy_pct()
    while busy > QUIET_PCT and time.monotonic() - t0 < QUIET_MAX_WAIT:
        time.sleep(2)
        busy = machine_busy_pct()
    return round(busy, 1), round(time.monotonic() - t0, 1)


def dnsperf(port, qfile, duration, clients, outstanding, server_pid, logpath, gate=True):
    pre_busy, waited = wait_quiet() if gate else (None, 0)
    cmd = (["taskset", "-c", CLIENT_CPU] if PIN else []) + ["dnsperf", "-s", "127.0.0.1", "-p", str(port),
           "-d", qfile, "-l", str(duration), "-c", str(clients), "-q", str(outstanding), "-t", "5"]
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    st0 = proc_stat()
    c0 = cpu_ticks(server_pid)
    k0 = cpu_ticks(server_pid, sys_only=True)
    t0 = time.monotonic()
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         timeout=duration + 60).stdout.decode(errors="replace")
    wall = time.monotonic() - t0
    c1 = cpu_ticks(server_pid)
    k1 = cpu_ticks(server_pid, sys_only=True)
    st1 = proc_stat()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(logpath, "a") as f:
        f.write("$ %s\n%s\n" % (" ".join(cmd), out))
    r = {"cmd": " ".join(cmd), "pre_busy_pct": pre_busy, "quiet_wait_s": waited}
    for k, rx in DP_RE.items():
        m = re.search(rx, out)
        r[k] = float(m.group(1)) if m else None
    m = re.search(r"Response codes:\s+(.*)", out)
    r["rcodes"] = m.group(1).strip() if m else None
    hz = os.sysconf("SC_CLK_TCK")
    if c0 is not None and c1 is not None:
        r["server_cpu_pct"] = round(100.0 * (c1 - c0) / hz / wall, 1)
    if k0 is not None and k1 is not None:
        r["server_sys_pct"] = round(100.0 * (k1 - k0) / hz / wall, 1)
    d = [b - a_ for a_, b in zip(st0, st1)]
    tot = float(sum(d[:8])) or 1.0
    r["machine_idle_pct"] = round(100.0 * (d[3] + d[4]) / tot, 1)   # of both cores
    r["machine_steal_pct"] = round(100.0 * d[7] / tot, 1)
    r["machine_softirq_pct"] = round(100.0 * d[6] / tot, 1)  # loopback packet processing lands here
    # CPU (in % of one core) used by anything but the server and dnsperf (softirq, upstream, OTHER
    # PROCESSES ON THE MACHINE); high values flag a disturbed run
    if r.get("server_cpu_pct") is not None:
        busy_cores_pct = 200.0 * (1 - (d[3] + d[4]) / tot)
        r["other_cpu_pct"] = round(busy_cores_pct - r["server_cpu_pct"] - 100.0 * (
            (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)) / wall, 1)
    r["dnsperf_cpu_pct"] = round(100.0 * ((ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)) / wall, 1)
    return r


def proc_stat():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v  # user nice system idle iowait irq softirq steal ...


def versions():
    v = {}
    for pkg in ("unbound", "bind9", "pdns-recursor", "knot-resolver", "knot", "dnsperf"):
        try:
            v[pkg] = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL).stdout.decode()
        except OSError:
            v[pkg] = "?"
    try:
        v["sharedefend"] = subprocess.run([SHAREDEFEND_BIN, "--version"], stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL).stdout.decode().strip()
        v["sharedefend_commit"] = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"],
                                                 stdout=subprocess.PIPE,
                                                 stderr=subprocess.DEVNULL).stdout.decode().strip()
    except OSError:
        v["sharedefend"] = "?"
    v["kernel"] = os.uname().release
    try:
        v["cpu"] = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")][0]
    except Exception:
        v["cpu"] = "?"
    v["nproc"] = os.cpu_count()
    return v


def emit(results, rec):
    rec["ts"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    with open(results, "a") as f:
        f.write(json.dumps(rec) + "\n")


def parse_plan(plan):
    out = []
    for item in plan.split():
        srv, sizes = item.split(":")
        for s in sizes.split(","):
            out.append((srv, s))
    return out


def cmd_run(a):
    safety_check()
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    os.makedirs(a.work, exist_ok=True)
    emit(a.results, {"kind": "meta", "versions": versions(), "duration": a.duration,
                     "repeats": a.repeats, "clients": a.clients, "outstanding": a.outstanding,
                     "threads": a.threads, "pinned": PIN,
                     "server_cpu": SERVER_CPU if PIN else "any", "client_cpu": CLIENT_CPU if PIN else "any"})
    # --- upstream
    udir = os.path.join(a.work, "upstream")
    os.makedirs(os.path.join(udir, "db"), exist_ok=True)
    render("upstream-knot.conf", os.path.join(udir, "knot.conf"),
           dict(DIR=udir, CONFDIR=CONFDIR, UPSTREAM_IP=UPSTREAM_IP))
    up = start(["knotd", "-c", os.path.join(udir, "knot.conf")], os.path.join(udir, "stdout.log"), CLIENT_CPU)
    try:
        if not wait_answer(53, "x.bench.example", "NOERROR", up, 30, server=UPSTREAM_IP):
            sys.exit("upstream knotd did not come up; see %s" % udir)
        log("upstream knotd pid", up.pid, "on %s:53" % UPSTREAM_IP)
        for srv, size in parse_plan(a.plan):
            try:
                run_one(a, srv, size)
            except Exception as e:  # keep going with the other servers
                log("ERROR", srv, size, repr(e))
                emit(a.results, {"kind": "error", "server": srv, "size": size, "error": repr(e)})
    finally:
        stop(up)
        log("upstream stopped")


def run_one(a, srv, size):
    spec = SERVERS[srv]
    ddir = os.path.join(a.data_root, size)
    rpz = os.path.join(ddir, "rpz.zone")
    meta = json.load(open(os.path.join(ddir, "meta.json")))
    sdir = os.path.join(a.work, "%s-%s" % (srv, size))
    subprocess.run(["rm", "-rf", sdir])
    os.makedirs(sdir)
    subst = dict(DIR=sdir, CONFDIR=CONFDIR, PORT=spec["port"], RPZ=rpz, THREADS=a.threads,
                 UPSTREAM_IP=UPSTREAM_IP)
    for tpl, dst in spec["templates"]:
        render(tpl, os.path.join(sdir, dst), subst)
    cmd = [c.format(DIR=sdir, THREADS=a.threads, RPZ=rpz, BIN=SHAREDEFEND_BIN) for c in spec["cmd"]]
    probe = meta["probe"]
    log("start", srv, size, " ".join(cmd))
    t0 = time.monotonic()
    p = start(cmd, os.path.join(sdir, "stdout.log"), SERVER_CPU)
    ok = wait_probe(spec["port"], ddir, meta, p, a.load_timeout)
    probe_s = time.monotonic() - t0
    if ok:
        ok = wait_all_blocked(spec["port"], read_lines(os.path.join(ddir, "check-blocked.txt")), p, a.load_timeout)
    load_s = time.monotonic() - t0
    if not ok:
        rc = p.poll()
        stop(p)
        raise RuntimeError("%s %s: probe %s never answered NXDOMAIN (exit=%s, %.0fs); see %s"
                           % (srv, size, probe, rc, load_s, sdir))
    time.sleep(1.0)
    rss, hwm = rss_kb(p.pid)
    log("%s %s loaded in %.2fs (probe %.2fs), RSS %.0f MiB (peak %.0f MiB)" % (srv, size, load_s, probe_s, rss / 1024, hwm / 1024))
    chk = correctness(spec["port"], ddir)
    log("checks", {k: "%d/%d" % (v["ok"], v["total"]) for k, v in chk.items()})
    emit(a.results, {"kind": "load", "server": srv, "size": size, "n": meta["n"],
                     "policy_records": meta["zone_policy_records"], "load_s": round(load_s, 3),
                     "probe_s": round(probe_s, 3),
                     "rss_mib": round(rss / 1024, 1), "peak_rss_mib": round(hwm / 1024, 1),
                     "checks": chk, "pid": p.pid, "cmd": " ".join(cmd)})
    if not a.load_only:
        dlog = os.path.join(sdir, "dnsperf.log")
        # short warm-up with the mixed file (fills the cache for the clean names); not recorded
        dnsperf(spec["port"], os.path.join(ddir, "queries-mixed.txt"), 3, a.clients, a.outstanding, p.pid, dlog,
                gate=False)
        for rep in range(1, a.repeats + 1):
            for qf in a.qfiles.split(","):
                r = dnsperf(spec["port"], os.path.join(ddir, "queries-%s.txt" % qf), a.duration,
                            a.clients, a.outstanding, p.pid, dlog)
                r.update(kind="perf", server=srv, size=size, qfile=qf, rep=rep)
                log("%s %s %s #%d: %.0f qps, avg %.3f ms, lost %s, srv cpu %s%%, dnsperf cpu %s%%, "
                    "machine idle %s%% softirq %s%% steal %s%%, other %s%% (pre-busy %s%%, waited %ss)" % (
                    srv, size, qf, rep, r["qps"] or 0, (r["avg_lat_s"] or 0) * 1000, r["lost"],
                    r.get("server_cpu_pct"), r["dnsperf_cpu_pct"], r["machine_idle_pct"], r["machine_softirq_pct"], r["machine_steal_pct"],
                    r.get("other_cpu_pct"), r["pre_busy_pct"], r["quiet_wait_s"]))
                emit(a.results, r)
        rss2, hwm2 = rss_kb(p.pid)
        emit(a.results, {"kind": "after", "server": srv, "size": size,
                         "rss_mib": round((rss2 or 0) / 1024, 1), "peak_rss_mib": round((hwm2 or 0) / 1024, 1)})
    t1 = time.monotonic()
    rc = stop(p)
    log("stopped", srv, size, "rc=%s in %.1fs" % (rc, time.monotonic() - t1))


# ---------------------------------------------------------------- table
def fmt_pair(vals, f):
    vals = [v for v in vals if v is not None]
    return " / ".join(f(v) for v in vals) if vals else "-"


def per_core(runs):
    """QPS normalised by the server's CPU use: mean over runs of qps / (cpu%/100)."""
    v = [r["qps"] / (r["server_cpu_pct"] / 100.0) for r in runs
         if r.get("qps") and r.get("server_cpu_pct")]
    return "%.0f" % (sum(v) / len(v)) if v else "-"


def cmd_table(a):
    recs = [json.loads(l) for l in open(a.results) if l.strip()]
    meta = [r for r in recs if r["kind"] == "meta"]
    loads = {}
    perf = {}
    after = {}
    errors = []
    order = []
    for r in recs:
        k = (r.get("server"), r.get("size"))
        if r["kind"] == "load":
            loads[k] = r
            if k not in order:
                order.append(k)
            perf[k] = {}  # a later load of the same key supersedes earlier perf runs
        elif r["kind"] == "perf":
            perf.setdefault(k, {}).setdefault(r["qfile"], []).append(r)
        elif r["kind"] == "after":
            after[k] = r
        elif r["kind"] == "error":
            errors.append(r)
    hdr = ["server", "N", "load s", "RSS MiB", "peak MiB", "RSS after MiB",
           "blocked QPS (run1 / run2)", "blocked avg lat ms", "mixed QPS (run1 / run2)",
           "mixed avg lat ms", "QPS per srv core (blk / mix)", "srv CPU % (b1/b2/m1/m2)",
           "dnsperf CPU % (b1/b2/m1/m2)", "other CPU % (b1/b2/m1/m2)", "lost", "checks"]
    rows = []
    if not order:
        hdr = []
    for k in order:
        L = loads[k]
        P = perf.get(k, {})
        b, m = P.get("blocked", []), P.get("mixed", [])
        allp = b + m
        chk = L["checks"]
        cstr = "ok" if all(v["ok"] == v["total"] for v in chk.values()) else \
            "FAIL " + ",".join("%s %d/%d" % (n, v["ok"], v["total"]) for n, v in chk.items())
        rows.append([k[0], k[1], ("%.2f" % L["load_s"]) + (" (probe %.2f)" % L["probe_s"] if "probe_s" in L else ""), "%.0f" % L["rss_mib"], "%.0f" % L["peak_rss_mib"],
                     "%.0f" % after[k]["rss_mib"] if k in after else "-",
                     fmt_pair([r["qps"] for r in b], lambda v: "%.0f" % v),
                     fmt_pair([r["avg_lat_s"] for r in b], lambda v: "%.3f" % (v * 1000)),
                     fmt_pair([r["qps"] for r in m], lambda v: "%.0f" % v),
                     fmt_pair([r["avg_lat_s"] for r in m], lambda v: "%.3f" % (v * 1000)),
                     "%s / %s" % (per_core(b), per_core(m)),
                     fmt_pair([r.get("server_cpu_pct") for r in allp], lambda v: "%.0f" % v),
                     fmt_pair([r.get("dnsperf_cpu_pct") for r in allp], lambda v: "%.0f" % v),
                     fmt_pair([r.get("other_cpu_pct") for r in allp], lambda v: "%.0f" % v),
                     "%d" % sum(int(r["lost"] or 0) for r in allp) if allp else "-",
                     cstr])
    if not rows:
        pass
    elif a.md:
        print("| " + " | ".join(hdr) + " |")
        print("|" + "---|" * len(hdr))
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        w = [max(len(str(x[i])) for x in [hdr] + rows) for i in range(len(hdr))]
        for r in [hdr] + rows:
            print("  ".join(str(c).ljust(w[i]) for i, c in enumerate(r)))
    # Ours against the best of the four reference resolvers, per size, in this file.
    def per_core_value(runs):
        v = [r["qps"] / (r["server_cpu_pct"] / 100.0) for r in runs
             if r.get("qps") and r.get("server_cpu_pct")]
        return sum(v) / len(v) if v else None
    for size in dict.fromkeys(k[1] for k in order):
        if ("filter", size) not in loads:
            continue
        parts = []
        for qf in ("blocked", "mixed"):
            ours = per_core_value(perf.get(("filter", size), {}).get(qf, []))
            refs = [(per_core_value(perf.get((s, size), {}).get(qf, [])), s) for s in REFERENCE]
            refs = [(v, s) for v, s in refs if v]
            if ours and refs:
                best, who = max(refs)
                parts.append("%s %.2fx (ours %.0f, best %s %.0f)" % (qf, ours / best, ours, who, best))
        lrefs = [(loads[(s, size)]["load_s"], loads[(s, size)]["rss_mib"], s) for s in REFERENCE
                 if (s, size) in loads]
        L = loads[("filter", size)]
        if lrefs:
            parts.append("load %.2f s (fastest of the four %s %.2f s)" % (
                L["load_s"], min(lrefs)[2], min(lrefs)[0]))
            parts.append("RSS %.0f MiB (smallest of the four %s %.0f MiB)" % (
                L["rss_mib"], min(lrefs, key=lambda x: x[1])[2], min(lrefs, key=lambda x: x[1])[1]))
        if parts:
            print("\nfilter vs the best of %s at %s, queries per server CPU-second: %s"
                  % ("/".join(REFERENCE), size, "; ".join(parts)))
    xm = [r for r in recs if r["kind"] == "xfr-meta"]
    xr = [r for r in recs if r["kind"] == "xfr"]
    if xr:
        for m in xm:
            print("primary (knotd, TSIG-only ACL), N=%s: unsigned AXFR refused=%s, TSIG AXFR records=%s"
                  % (m["size"], m.get("unsigned_axfr_refused"), m.get("signed_axfr_records")))
        xh = ["server", "auth", "N", "transfer+load s (probe / all checks)", "RSS MiB", "checks",
              "IXFR update -> blocked s", "name cached before update blocked after?", "error"]
        xrows = [[r["server"], r.get("auth", "-"), r["size"], "%s / %s" % (r.get("initial_probe_s", "-"), r.get("initial_load_s", "-")),
                  str(r.get("rss_mib", "-")),
                  " ".join("%s=%s" % kv for kv in (r.get("checks") or {}).items()) or "-",
                  str(r.get("update_propagation_s")) if r.get("update_ok") else ("FAILED" if "update_ok" in r else "-"),
                  str(r.get("pre_cached_name_blocked_after_update", "-")),
                  r.get("error", "")] for r in xr]
        if a.md:
            print("| " + " | ".join(xh) + " |")
            print("|" + "---|" * len(xh))
            for r in xrows:
                print("| " + " | ".join(r) + " |")
        else:
            w = [max(len(str(x[i])) for x in [xh] + xrows) for i in range(len(xh))]
            for r in [xh] + xrows:
                print("  ".join(str(c).ljust(w[i]) for i, c in enumerate(r)))
    for e in errors:
        print("\nERROR %s %s: %s" % (e["server"], e["size"], e["error"]))
    if meta and a.versions:
        print("\nversions:", json.dumps(meta[-1]["versions"]))


# ---------------------------------------------------------------- xfr test
TSIG = dict(TSIG_NAME="hub-key", TSIG_ALG="hmac-sha256",
            TSIG_SECRET="c6fbQQ9fTG5/edBR03J/GkFP5Jn7Vp7yGVpK168IYCI=")  # test-only key
PRIMARY_IP = "127.0.0.3"      # TSIG-only primary
PRIMARY_IP_ACL = "127.0.0.6"  # source-address-ACL primary (for Unbound, no TSIG support)
XFR = {
    "bind": dict(templates=[("xfr/named-xfr.conf", "named.conf")]),
    "pdns": dict(templates=[("xfr/recursor-xfr.conf", "recursor.conf"), ("xfr/recursor-xfr.lua", "recursor.lua")]),
    "unbound": dict(templates=[("xfr/unbound-xfr.conf", "unbound.conf")], primary="ipacl"),
    "kresd": dict(templates=[("xfr/kresd-xfr.lua", "kresd.lua")],
                  pre=("xfr/kresd-knot-secondary.conf", "knot/knot.conf")),
}


def sh(cmd, timeout=60):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    return r.returncode, r.stdout.decode(errors="replace")


def grep_logs(d, words=("IXFR", "AXFR", "ixfr", "axfr", "TSIG", "tsig", "transfer", "Transfer")):
    hits = []
    for root, _, files in os.walk(d):
        for fn in files:
            if fn.endswith((".log",)):
                try:
                    for line in open(os.path.join(root, fn), errors="replace"):
                        if any(w in line for w in words):
                            hits.append("%s: %s" % (fn, line.strip()[:220]))
                except OSError:
                    pass
    return hits[-12:]


def cmd_xfr(a):
    safety_check()
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    os.makedirs(a.work, exist_ok=True)
    ddir = os.path.join(a.data_root, a.size)
    rpz = os.path.join(ddir, "rpz.zone")
    meta = json.load(open(os.path.join(ddir, "meta.json")))
    base = dict(CONFDIR=CONFDIR, UPSTREAM_IP=UPSTREAM_IP, PRIMARY_IP=PRIMARY_IP, PRIMARY_PORT=53,
                RPZ_ZONE="rpz.bench.", RPZ=rpz, THREADS=1, **TSIG)
    # upstream + primary
    udir = os.path.join(a.work, "upstream")
    os.makedirs(os.path.join(udir, "db"), exist_ok=True)
    render("upstream-knot.conf", os.path.join(udir, "knot.conf"), dict(base, DIR=udir))
    up = start(["knotd", "-c", os.path.join(udir, "knot.conf")], os.path.join(udir, "stdout.log"), CLIENT_CPU)
    pdir = os.path.join(a.work, "primary")
    subprocess.run(["rm", "-rf", pdir])
    os.makedirs(os.path.join(pdir, "db"))
    render("xfr/knot-primary.conf", os.path.join(pdir, "knot.conf"), dict(base, DIR=pdir))
    prim = start(["knotd", "-c", os.path.join(pdir, "knot.conf")], os.path.join(pdir, "stdout.log"), CLIENT_CPU)
    knotc = ["knotc", "-c", os.path.join(pdir, "knot.conf")]
    a._keep = [up, prim]
    out = {"kind": "xfr-meta", "size": a.size}
    try:
        if not wait_answer(53, "rpz.bench", "NOERROR", prim, 120, server=PRIMARY_IP):
            raise RuntimeError("primary did not come up, see %s" % pdir)
        if not wait_answer(53, "x.bench.example", "NOERROR", up, 30, server=UPSTREAM_IP):
            raise RuntimeError("upstream did not come up")
        # the primary really enforces TSIG: unsigned AXFR refused, signed AXFR works
        rc, o = sh(["dig", "@" + PRIMARY_IP, "rpz.bench.", "AXFR", "+tries=1", "+time=5"])
        out["unsigned_axfr_refused"] = ("Transfer failed" in o) or ("REFUSED" in o) or ("NOTAUTH" in o)
        rc, o = sh(["dig", "-y", "%s:%s:%s" % (TSIG["TSIG_ALG"], TSIG["TSIG_NAME"], TSIG["TSIG_SECRET"]),
                    "@" + PRIMARY_IP, "rpz.bench.", "AXFR", "+tries=1", "+time=30"], timeout=120)
        m = re.search(r"XFR size: (\d+) records", o)
        out["signed_axfr_records"] = int(m.group(1)) if m else None
        log("primary checks:", out)
        emit(a.results, out)
        for srv in a.servers.split(","):
            try:
                if XFR[srv].get("primary") == "ipacl":
                    xfr_one_ipacl(a, srv, base, meta, ddir)
                    continue
                xfr_one(a, srv, base, meta, ddir, knotc)
            except Exception as e:
                log("ERROR xfr", srv, repr(e))
                emit(a.results, {"kind": "xfr", "server": srv, "size": a.size, "error": repr(e)})
    finally:
        stop(prim)
        stop(up)


def xfr_one_ipacl(a, srv, base, meta, ddir):
    """Same test against a second primary that authorises by source address (no TSIG)."""
    qdir = os.path.join(a.work, "primary-ipacl")
    subprocess.run(["rm", "-rf", qdir])
    os.makedirs(os.path.join(qdir, "db"))
    b2 = dict(base, PRIMARY_IP=PRIMARY_IP_ACL)
    render("xfr/knot-primary-ipacl.conf", os.path.join(qdir, "knot.conf"), dict(b2, DIR=qdir))
    prim2 = start(["knotd", "-c", os.path.join(qdir, "knot.conf")], os.path.join(qdir, "stdout.log"), CLIENT_CPU)
    a._keep.append(prim2)
    try:
        if not wait_answer(53, "rpz.bench", "NOERROR", prim2, 120, server=PRIMARY_IP_ACL):
            raise RuntimeError("ip-acl primary did not come up, see %s" % qdir)
        xfr_one(a, srv, b2, meta, ddir, ["knotc", "-c", os.path.join(qdir, "knot.conf")])
    finally:
        a._keep.remove(prim2)
        stop(prim2)


def xfr_one(a, srv, base, meta, ddir, knotc):
    spec = SERVERS[srv]
    x = XFR[srv]
    sdir = os.path.join(a.work, "xfr-%s-%s" % (srv, a.size))
    subprocess.run(["rm", "-rf", sdir])
    os.makedirs(sdir)
    subst = dict(base, DIR=sdir, PORT=spec["port"])
    for tpl, dst in x["templates"]:
        render(tpl, os.path.join(sdir, dst), subst)
    cmd = [c.format(DIR=sdir, THREADS=1) for c in spec["cmd"]]
    rec = {"kind": "xfr", "server": srv, "size": a.size, "primary": base["PRIMARY_IP"],
           "auth": "source-IP ACL" if base["PRIMARY_IP"] == PRIMARY_IP_ACL else "TSIG " + TSIG["TSIG_ALG"]}
    t0 = time.monotonic()
    try:
        if "pre" in x:  # kresd: local knotd secondary does the TSIG transfer into a file
            kd = os.path.join(sdir, "knot")
            os.makedirs(os.path.join(kd, "db"))
            render(x["pre"][0], os.path.join(sdir, x["pre"][1]), subst)
            pre = start(["knotd", "-c", os.path.join(sdir, x["pre"][1])], os.path.join(kd, "stdout.log"), SERVER_CPU)
            zf = os.path.join(sdir, "rpz.bench.zone")
            t_end = time.monotonic() + a.load_timeout
            last = -1
            while time.monotonic() < t_end:  # file present and no longer growing
                sz = os.path.getsize(zf) if os.path.exists(zf) else -1
                if sz > 0 and sz == last:
                    break
                last = sz
                time.sleep(0.5)
            rec["secondary_file_ready_s"] = round(time.monotonic() - t0, 2)
        p = start(cmd, os.path.join(sdir, "stdout.log"), SERVER_CPU)
        ok = wait_probe(spec["port"], ddir, meta, p, a.load_timeout)
        rec["initial_probe_s"] = round(time.monotonic() - t0, 2)
        if ok:
            ok = wait_all_blocked(spec["port"], read_lines(os.path.join(ddir, "check-blocked.txt")), p, a.load_timeout)
        rec["initial_load_s"] = round(time.monotonic() - t0, 2)
        rec["initial_ok"] = bool(ok)
        if not ok:
            rec["log"] = grep_logs(sdir)
            raise RuntimeError("%s never blocked the probe after transfer (exit=%s)" % (srv, p.poll()))
        rss, hwm = rss_kb(p.pid)
        rec["rss_mib"] = round(rss / 1024, 1)
        rec["checks"] = {k: "%d/%d" % (v["ok"], v["total"]) for k, v in correctness(spec["port"], ddir).items()}
        # incremental update on the primary -> NOTIFY -> IXFR -> new names blocked?
        ts = int(time.time())
        newname = "xfr-update-%s-%d.example.com" % (srv, ts)
        pre = "pre-cached-%s-%d.example.com" % (srv, ts)
        rcp, ansp = dnsq.query("127.0.0.1", spec["port"], pre)  # resolved (and cached) BEFORE the update
        rec["pre_cached_before"] = "%s %s" % (rcp, ansp)
        for c in (["zone-begin", "rpz.bench."],
                  ["zone-set", "rpz.bench.", newname + ".rpz.bench.", "300", "CNAME", "."],
                  ["zone-set", "rpz.bench.", "*." + newname + ".rpz.bench.", "300", "CNAME", "."],
                  ["zone-set", "rpz.bench.", pre + ".rpz.bench.", "300", "CNAME", "."],
                  ["zone-commit", "rpz.bench."]):
            rc, o = sh(knotc + c)
            if rc != 0:
                raise RuntimeError("knotc %s failed: %s" % (c, o))
        t1 = time.monotonic()
        # poll never-seen-before names under the new wildcard (no resolver cache involved)
        ok2 = False
        i = 0
        while time.monotonic() - t1 < a.update_timeout:
            i += 1
            if p.poll() is not None:
                break
            if dnsq.query("127.0.0.1", spec["port"], "q%d.%s" % (i, newname), timeout=0.5)[0] == "NXDOMAIN":
                ok2 = True
                break
            time.sleep(0.05)
        rec["update_ok"] = ok2
        rec["update_propagation_s"] = round(time.monotonic() - t1, 2) if ok2 else None
        if ok2:
            time.sleep(0.5)
            rec["update_apex_blocked"] = dnsq.query("127.0.0.1", spec["port"], newname)[0] == "NXDOMAIN"
            rcq = [dnsq.query("127.0.0.1", spec["port"], pre)[0] for _ in range(3)]
            rec["pre_cached_name_blocked_after_update"] = rcq[-1] == "NXDOMAIN"
            rec["pre_cached_after"] = rcq
        time.sleep(1)
        rec["log"] = grep_logs(sdir)
        log("xfr", srv, {k: v for k, v in rec.items() if k != "log"})
    finally:
        for q in list(RUNNING):  # whatever this server test left running (server, knotd secondary)
            if q not in (a._keep or []):
                stop(q)
        emit(a.results, rec)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--data-root", required=True)
    r.add_argument("--work", required=True)
    r.add_argument("--results", required=True)
    r.add_argument("--plan", required=True, help='e.g. "unbound:100k,1M bind:100k"')
    r.add_argument("--duration", type=int, default=20)
    r.add_argument("--repeats", type=int, default=2)
    r.add_argument("--clients", type=int, default=10)
    r.add_argument("--outstanding", type=int, default=100)
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--qfiles", default="blocked,mixed")
    r.add_argument("--load-timeout", type=int, default=1200)
    r.add_argument("--load-only", action="store_true")
    x = sub.add_parser("xfr")
    x.add_argument("--data-root", required=True)
    x.add_argument("--work", required=True)
    x.add_argument("--results", required=True)
    x.add_argument("--size", default="100k")
    x.add_argument("--servers", default="bind,pdns,unbound,kresd")
    x.add_argument("--load-timeout", type=int, default=600)
    x.add_argument("--update-timeout", type=int, default=120)
    t = sub.add_parser("table")
    t.add_argument("results")
    t.add_argument("--md", action="store_true")
    t.add_argument("--versions", action="store_true")
    a = ap.parse_args()
    if a.cmd == "run":
        cmd_run(a)
    elif a.cmd == "xfr":
        cmd_xfr(a)
    else:
        cmd_table(a)


if __name__ == "__main__":
    main()
