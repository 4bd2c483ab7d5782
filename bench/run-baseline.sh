#!/usr/bin/env bash
# run-baseline.sh - RPZ benchmark of Unbound, BIND 9, PowerDNS Recursor, Knot Resolver
# and `sharedefend filter serve` on this machine (Debian 12), loopback only.
#
# A copy of ../shared/bench/run-baseline.sh (the four-resolver baseline behind
# ../shared/bench/BASELINE.md) with the filter added as a fifth server ("filter",
# port 5305): build it first with `cargo build --release -p sharedefend`; the binary
# is $SHAREDEFEND_BIN, else $CARGO_TARGET_DIR/release/sharedefend, else
# target/release/sharedefend of this repository.
#
# What it does
#   1. installs the Debian packages if missing (unbound bind9 pdns-recursor
#      knot-resolver knot dnsperf dnsutils), with /usr/sbin/policy-rc.d blocking the
#      packages' own service start-up;
#   2. generates the data sets (gen-data.py, seed 42) for every size in $PLAN into
#      $BENCH_WORK/data/<size>/ (skipped when already there);
#   3. re-executes itself inside a private network namespace (`unshare -n`, only `lo`),
#      so no packet can leave the machine whatever a server tries (priming, trust-anchor
#      updates, security polls...);
#   4. runs bench.py: upstream knotd on 127.0.0.2:53 (fake root + bench.example), then for
#      every server/size in $PLAN: start (pinned to CPU 1, 1 worker), load time until
#      the last zone entry answers NXDOMAIN, RSS, correctness checks, dnsperf (pinned to
#      CPU 0) on the blocked and mixed query files, $REPEATS times each, $DURATION s;
#   5. prints the results table (bench.py table) and leaves raw data in
#      $BENCH_WORK/results-<stamp>.jsonl (+ per-server logs in $BENCH_WORK/run-<stamp>/).
#
# Knobs (environment):
#   PLAN      default "filter:100k,1M unbound:100k,1M bind:100k,1M pdns:100k,1M kresd:100k,1M"
#             sizes: 1k 10k 100k 1M 5M (any <num>k/<num>M works)
#   DURATION  dnsperf seconds per run (20)      REPEATS  runs per query file (2)
#   CLIENTS   dnsperf -c (10)   OUTSTANDING dnsperf -q (100)   THREADS server workers (1)
#   PIN=0     do not pin (default: server on CPU 1, dnsperf + upstream on CPU 0)
#   BENCH_WORK  work dir (/var/tmp/rpzbench)    RESULTS  results file to append to
#   LOAD_ONLY=1 only load + RSS + checks (no dnsperf)
#
# Example: PLAN="unbound:5M pdns:5M" REPEATS=2 ./run-baseline.sh
# Runtime: ~2 min per server/size at the defaults, plus load time (minutes for 5M).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
WORK="${BENCH_WORK:-/var/tmp/rpzbench}"
PLAN="${PLAN:-filter:100k,1M unbound:100k,1M bind:100k,1M pdns:100k,1M kresd:100k,1M}"
REPO="$(cd "$HERE/.." && pwd)"
SHAREDEFEND_BIN="${SHAREDEFEND_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/release/sharedefend}"
case " $PLAN" in
  *" filter:"*) [ -x "$SHAREDEFEND_BIN" ] || { echo "no sharedefend binary at $SHAREDEFEND_BIN (cargo build --release -p sharedefend)" >&2; exit 2; };;
esac
DURATION="${DURATION:-20}"; REPEATS="${REPEATS:-2}"; CLIENTS="${CLIENTS:-10}"
OUTSTANDING="${OUTSTANDING:-100}"; THREADS="${THREADS:-1}"
STAMP="${STAMP:-$(date -u +%Y%m%dT%H%M%S)}"
RESULTS="${RESULTS:-$WORK/results-$STAMP.jsonl}"

size_to_n() {  # 100k -> 100000, 1M -> 1000000
  case "$1" in
    *k) echo $(( ${1%k} * 1000 ));;
    *M) echo $(( ${1%M} * 1000000 ));;
    *)  echo "$1";;
  esac
}

if [ "${BENCH_IN_NETNS:-}" != "1" ]; then
  need=()
  for b in unbound named pdns_recursor kresd knotd dnsperf dig unshare taskset ip; do
    command -v "$b" >/dev/null 2>&1 || need+=("$b")
  done
  if [ "${#need[@]}" -gt 0 ]; then
    echo "missing: ${need[*]} -> installing packages"
    made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made_policy=1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      unbound bind9 pdns-recursor knot-resolver knot dnsperf dnsutils util-linux iproute2 python3 >/dev/null
    [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  fi
  mkdir -p "$WORK/data"
  sizes=$(for item in $PLAN; do echo "${item#*:}" | tr ',' '\n'; done | sort -u)
  for s in $sizes; do
    if [ ! -f "$WORK/data/$s/meta.json" ]; then
      echo "generating data set $s ($(size_to_n "$s") domains)"
      python3 "$HERE/gen-data.py" --n "$(size_to_n "$s")" --out "$WORK/data/$s" >/dev/null
    fi
  done
  export SHAREDEFEND_BIN PIN="${PIN:-1}" BENCH_IN_NETNS=1 PLAN DURATION REPEATS CLIENTS OUTSTANDING THREADS STAMP RESULTS BENCH_WORK="$WORK"
  exec unshare -n -- bash "$0" "$@"
fi

# ---- inside the private network namespace: only `lo` exists
ip link set lo up
echo "network namespace interfaces: $(tail -n +3 /proc/self/net/dev | cut -d: -f1 | tr -d ' ' | tr '\n' ' ')"
extra=()
[ "${LOAD_ONLY:-0}" = 1 ] && extra+=(--load-only)
python3 "$HERE/bench.py" run --data-root "$WORK/data" --work "$WORK/run-$STAMP" \
  --results "$RESULTS" --plan "$PLAN" --duration "$DURATION" --repeats "$REPEATS" \
  --clients "$CLIENTS" --outstanding "$OUTSTANDING" --threads "$THREADS" "${extra[@]}"
echo
python3 "$HERE/bench.py" table "$RESULTS" --versions
echo "raw results: $RESULTS"
