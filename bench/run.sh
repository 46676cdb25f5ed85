#!/usr/bin/env bash
# bench/run.sh [--quick] [runner options] SWITCHBOARD_BIN
#
# Measures switchboard against echo servers of our own on other event
# libraries (bench/peers/), answers HOWTO section 5.1 with numbers, and
# measures `serve --app http` against nginx under wrk (`--only http` runs
# that part alone).
# This script prepares the machine (Debian packages, peer binaries, file
# descriptor limit) and hands over to bench/runner.py, which runs every
# workload against every server, interleaved by repetition, and writes
# bench/results/latest.{md,json,svg} (--quick: build/bench-quick/).
# `bench/runner.py --help` lists the options.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

# Debian packages the peers and the HTTP tools need; installed only when
# missing, without questions.
need=()
for p in libuv1-dev libevent-dev nginx wrk python3; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        need+=("$p")
    fi
done
if ((${#need[@]})); then
    echo "bench: installing ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
    $sudo apt-get update -qq || true
    $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

peers="$root/build/bench-peers"
make -s -C "$here/peers" OUT="$peers" >&2

# Workload D holds 10,000 connections on each side of loopback.
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt 20000 ]; then
    ulimit -n "$hard"
    echo "bench: file descriptor limit is only $hard; workload D may be cut short" >&2
else
    ulimit -n 20000
fi

exec python3 "$here/runner.py" --peers "$peers" "$@"
