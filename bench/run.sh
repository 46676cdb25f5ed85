#!/usr/bin/env bash
# bench/run.sh [--quick] [runner options] SWITCHBOARD_BIN
#
# Measures switchboard against echo servers of our own on other event
# libraries (bench/peers/), answers HOWTO section 5.1 with numbers, and
# measures `serve --app http` against nginx under wrk, over HTTP and over
# HTTPS (`--only http` / `--only https` runs that part alone).
# This script prepares the machine and says what it does: the Debian
# packages of the peers and the HTTP tools (libuv1-dev libevent-dev nginx
# wrk openssl python3) are installed with apt-get when missing (as root, or through
# sudo), the peer servers are built into build/bench-peers, and the file
# descriptor limit is raised; then it hands over to bench/runner.py, which runs every
# workload against every server, interleaved by repetition, and writes
# bench/results/latest.{md,json,svg} (--quick: build/bench-quick/). The
# client is `switchboard bench --backend uring` for every server where it
# runs, else the epoll one (--client-backend chooses).
# `bench/runner.py --help` lists the options.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

# Debian packages the peers and the HTTP tools need; installed only when
# missing, without questions.
need=()
for p in libuv1-dev libevent-dev nginx wrk openssl python3; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        need+=("$p")
    fi
done
if ((${#need[@]})); then
    if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
    echo "bench: the peers need Debian packages that are missing: ${need[*]}" >&2
    echo "bench: installing them now with ${sudo:+sudo }apt-get install (needs the network)" >&2
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq || true
    if ! $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >&2; then
        echo "bench: could not install ${need[*]}; install them by hand and run again" >&2
        exit 1
    fi
fi

peers="$root/build/bench-peers"
if [ ! -d "$peers" ]; then
    echo "bench: building the peer servers (bench/peers/) into $peers" >&2
fi
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
