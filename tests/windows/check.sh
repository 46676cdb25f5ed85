#!/bin/sh
# make check-windows: the Windows build (build-windows/, make windows) run
# under Wine on this Linux machine. Wine's sockets are host sockets, so the
# .exe and the Linux build talk to each other over loopback.
#
#   1. the unit tests that hold on Windows, each an .exe under Wine, and
#      Windows' own (tests/windows/test_*.c: select's FD_SETSIZE is a count
#      of sockets there, not a bound on their numbers; the fork model
#      refused, the others stopped by the console handler);
#   2. the e2e echo matrix (tests/e2e_echo.py) with the .exe as server and
#      as `send`, for event/poll, event/select and threads, every SPEC, and
#      each model's checks (2,000 connections without a handle leak...); the
#      chat app (tests/e2e_event.py's chat checks); the
#      HTTP suite (tests/e2e_http.py: curl, traversal, smuggling, ranges,
#      the file cache, ...) against the .exe, event and threads;
#   3. across systems: the Linux `send` against the .exe server, and the
#      .exe's `send` and `bench` against the Linux server.
#
# Tests skip themselves, saying so, where Windows (or Wine) lacks what they
# test: unix: addresses (Wine has no AF_UNIX), the fork model, descriptor
# numbers chosen with dup3, poll reporting a closed socket (WSAPoll under
# Wine does not). Unit tests left out, and why (see docs/howto.md, "Portability
# alert"):
#   test_faults   interval timers and a SIGALRM storm: POSIX signals
#   test_server   minutes under Wine; its fork cases skip themselves, but
#                 with --workers 2 the workers share one listener (no
#                 SO_REUSEPORT), and connections still queued on it at a stop
#                 are reset only when the server is freed, not answered
#   test_torture  fault sweeps over epoll by name; minutes under Wine
#   test_activation  systemd's environment and pipes (not built for Windows)
#   test_uring, test_tls  no io_uring, no TLS in the Windows build
set -eu
WIN=${1:-build-windows}
LINUX=${2:-build}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
export WINEPREFIX="${WINEPREFIX:-$(cd "$WIN" && pwd)/wine}" WINEDEBUG=-all
t0=$(date +%s)
fail=0

echo "check-windows: Wine $(wine --version) in $WINEPREFIX"
# One wineserver for the whole run, started before anything else uses the
# prefix (one started by a program exits when it is idle and races the next
# program's start), and ended with the run, with every process of the
# prefix, which is this run's own.
mkdir -p "$WINEPREFIX"
wineserver -p 2>/dev/null || true
# At the end, every Windows process of this prefix goes: wineserver -k ends
# those it knows, and any a killed wine left behind (winedevice.exe, say)
# are found by their WINEPREFIX and their .exe command line.
cleanup() {
    wineserver -k 2>/dev/null || true
    for d in /proc/[0-9]*; do
        case "$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null)" in
        *.exe*) ;;
        *) continue ;;
        esac
        if tr '\0' '\n' <"$d/environ" 2>/dev/null | grep -qx "WINEPREFIX=$WINEPREFIX"; then
            kill -9 "${d#/proc/}" 2>/dev/null || true
        fi
    done
}
trap cleanup EXIT
wineboot -i >/dev/null 2>&1 || true

units="test_error test_buf test_frame test_pack test_url test_hist test_http_cut
       test_bench_http test_proxy test_http test_sock test_loop_connect test_stream
       test_conn test_addr test_loop test_select_win32 test_server_win32"
n=0
for t in $units; do
    n=$((n + 1))
    if timeout 120 wine "$WIN/$t.exe" >"$WIN/$t.log" 2>&1; then
        echo "ok   $t"
    else
        echo "FAIL $t (see $WIN/$t.log)"; tail -3 "$WIN/$t.log"; fail=1
    fi
done
echo "check-windows: $n unit tests in $(( $(date +%s) - t0 )) s"

t1=$(date +%s)
# Per model also: half-close, stop with connections open, --max-conns,
# 8 MiB pipelined, idle timeouts, and no handle leak after 2,000
# connections (SB_WINE=1: counted in the wineserver, see tests/sbtest.py).
# Left out: a stop signal racing Wine's own start-up.
SB_WINE=1 SB_MODELS="event/poll event/select threads" timeout 600 python3 "$SRC/tests/e2e_echo.py" \
    --bin "$WIN/switchboard-wine" --src "$SRC" --build "$WIN" \
    --only "[event/poll" --only "[event/select" --only "[threads" \
    --only "cli: serve --model bogus" --only "cli: --version" \
    --skip "SIGTERM as soon as the listening line appears" || fail=1
echo "check-windows: e2e echo matrix in $(( $(date +%s) - t1 )) s"

# The chat app: broadcast, and members that do not read.
t1=$(date +%s)
SB_WINE=1 timeout 300 python3 "$SRC/tests/e2e_event.py" \
    --bin "$WIN/switchboard-wine" --src "$SRC" --build "$WIN" \
    --only "[event/poll] chat" --only "[event/select] chat" --only "[threads] chat" || fail=1
echo "check-windows: e2e chat in $(( $(date +%s) - t1 )) s"

# The HTTP suite for event and threads. Left out: a document named with a
# backslash, which is a path separator on Windows.
t1=$(date +%s)
SB_WINE=1 SB_MODELS="event threads" timeout 600 python3 "$SRC/tests/e2e_http.py" \
    --bin "$WIN/switchboard-wine" --src "$SRC" --build "$WIN" \
    --skip "redirects never start with //" || fail=1
echo "check-windows: e2e http in $(( $(date +%s) - t1 )) s"

# What Windows refuses, with exit 2 and a reason.
refused() { # want-in-stderr, args...
    want=$1; shift
    err=$(timeout 20 "$WIN/switchboard-wine" "$@" 2>&1 >/dev/null) && rc=0 || rc=$?
    if [ $rc = 2 ] && echo "$err" | grep -q "$want"; then
        echo "ok   $* exits 2: $err"
    else
        echo "FAIL $*: exit $rc, $err (want 2 and '$want')"; fail=1
    fi
}
refused "Windows has no fork()" serve --model fork
refused "TLS is not available" serve --tls-cert c.pem --tls-key k.pem
refused "TLS is not available" send 127.0.0.1:1 --tls x
refused "not a backend built in (poll, select)" serve --backend epoll

# Across systems: one server of each kind, the other kind's client.
t2=$(date +%s)
exe="$WIN/switchboard-wine"
across() { # what, server command..., then "--", client command...
    what=$1; shift
    log=$(mktemp)
    srv=""
    while [ "$1" != "--" ]; do srv="$srv $1"; shift; done; shift
    $srv --listen 127.0.0.1:0 2>"$log" &
    pid=$!
    i=0
    while ! grep -q "listening on" "$log" && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
    addr=$(sed -n 's/.*listening on \([0-9.:]*\).*/\1/p' "$log" | head -1)
    out=$(printf 'one\ntwo words\n' | timeout 30 "$@" "$addr" 2>&1) || out="rc=$? $out"
    kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null || true
    if [ "${want_bench:-}" = 1 ]; then
        ok=$(echo "$out" | grep -c "errors      0 (" || true)
    else
        ok=$([ "$out" = "$(printf 'one\ntwo words')" ] && echo 1 || echo 0)
    fi
    if [ "$ok" = 1 ]; then
        echo "ok   $what"
    else
        echo "FAIL $what: $out"; cat "$log"; fail=1
    fi
    rm -f "$log"
}
for m in "--model event --backend poll" "--model event --backend select" "--model threads"; do
    across "Linux send -> .exe serve $m" $exe serve $m -- "$LINUX/switchboard" send
done
for m in "--model event" "--model threads"; do
    across ".exe send -> Linux serve $m" "$LINUX/switchboard" serve $m -- $exe send
done
want_bench=1 across ".exe bench -> Linux serve" "$LINUX/switchboard" serve -- \
    $exe bench --conns 4 --duration 1
want_bench=1 across ".exe bench -n 200 -> Linux serve" "$LINUX/switchboard" serve -- \
    $exe bench --conns 4 -n 200
want_bench=1 across "Linux bench -> .exe serve" $exe serve -- \
    "$LINUX/switchboard" bench --conns 4 --duration 1
echo "check-windows: across systems in $(( $(date +%s) - t2 )) s"

echo "check-windows: $([ $fail = 0 ] && echo passed || echo FAILED) in $(( $(date +%s) - t0 )) s"
exit $fail
