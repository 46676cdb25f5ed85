#!/bin/sh
# fuzz/run.sh [SECONDS]: build every fuzz/fuzz_*.c as a libFuzzer target
# (clang, -fsanitize=fuzzer,address,undefined) against the library sources
# and run each for SECONDS (default 60) from its seed corpus in
# fuzz/corpus/<name>/. Prints the executions per target; exits non-zero if a
# target fails to build or finds a crash (the input is kept in
# build-fuzz/artifacts/<name>/).
#
# The seed corpus is only read: new inputs go to build-fuzz/corpus/<name>/,
# so runs accumulate coverage without touching the committed seeds.
set -u

secs=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/build-fuzz
cc=${CC:-clang}
san="address,undefined"
cflags="-g -O1 -std=c11 -D_GNU_SOURCE -I$root/include -I$root/src -fno-omit-frame-pointer"
status=0

mkdir -p "$out/obj"

# Library objects: every src/*.c except the io_uring backend (optional,
# needs liburing). A file that does not compile is reported and left out;
# only the targets that need it fail to link.
objs=""
for src in "$root"/src/*.c; do
    name=$(basename "$src" .c)
    [ "$name" = loop_uring ] && continue
    obj=$out/obj/$name.o
    if $cc $cflags -fsanitize=fuzzer-no-link,$san -c "$src" -o "$obj" 2>"$out/obj/$name.log"; then
        objs="$objs $obj"
    else
        echo "run.sh: src/$name.c does not compile (see build-fuzz/obj/$name.log)" >&2
    fi
done
rm -f "$out/libsb-fuzz.a"
# shellcheck disable=SC2086
ar rcs "$out/libsb-fuzz.a" $objs

for target in "$root"/fuzz/fuzz_*.c; do
    name=$(basename "$target" .c)
    bin=$out/$name
    if ! $cc $cflags -fsanitize=fuzzer,$san "$target" "$out/libsb-fuzz.a" -lpthread -lm \
        -o "$bin" 2>"$out/$name.build.log"; then
        echo "$name: BUILD FAILED (see build-fuzz/$name.build.log)"
        status=1
        continue
    fi
    mkdir -p "$out/corpus/$name" "$out/artifacts/$name" "$root/fuzz/corpus/$name"
    "$bin" -max_total_time="$secs" -print_final_stats=1 \
        -artifact_prefix="$out/artifacts/$name/" \
        "$out/corpus/$name" "$root/fuzz/corpus/$name" >"$out/$name.log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$name.log" | tail -n 1)
    if [ $rc -ne 0 ]; then
        echo "$name: FAILED after ${execs:-?} executions (exit $rc, see build-fuzz/$name.log)"
        status=1
    else
        echo "$name: ${execs:-?} executions in ${secs}s"
    fi
done
exit $status
