#!/bin/sh
# Launcher for unit test binaries: `make check VALGRIND=1` sets SB_VALGRIND=1
# and every unit test then runs under valgrind memcheck, where any error or
# definite/indirect leak fails the test.
if [ "${SB_VALGRIND:-}" = 1 ]; then
    exec valgrind -q --error-exitcode=99 --leak-check=full \
        --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
        --child-silent-after-fork=yes "$@"
fi
exec "$@"
