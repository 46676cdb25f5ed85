# The Windows build (mingw-w64, natively or cross: cmake/mingw-w64-x86_64.cmake).
#
# The sources are the Linux ones: compat/win32/ stands in for the POSIX
# headers Windows lacks and sb_win32.h, force-included in every file, maps
# the POSIX calls to src/os_win32.c (see the comment at its top). What
# Windows cannot do is left out: epoll, io_uring, TLS (no mingw-w64
# OpenSSL on Debian), the fork model (refused by the command).
include_directories(BEFORE SYSTEM ${CMAKE_SOURCE_DIR}/compat/win32)
add_compile_options($<$<COMPILE_LANGUAGE:C>:-include$<SEMICOLON>sb_win32.h>)
# gmtime_r and localtime_r from mingw-w64's time.h; 64-bit off_t; C99
# printf formats (%zu, %lld) from mingw-w64's stdio rather than msvcrt's.
add_compile_definitions(_POSIX_THREAD_SAFE_FUNCTIONS=200112L _FILE_OFFSET_BITS=64 __USE_MINGW_ANSI_STDIO=1)
# One self-contained .exe and .dll: winpthreads and libgcc linked in, so
# that they run with nothing else installed (and under Wine as they are).
add_link_options(-static)
link_libraries(ws2_32 iphlpapi)
# socklen_t is a signed int in Winsock.
add_compile_options(-Wno-sign-compare -Wno-format)
# Unit tests that test POSIX machinery itself: interval timers and a
# SIGALRM storm (test_faults), descriptor numbers chosen with dup3 and the
# FD_SETSIZE bitmap bound (test_loop), systemd socket activation
# (test_activation: setenv, pipe).
set(SB_WIN32_SKIP_TESTS test_faults test_activation)
set(SB_TLS OFF CACHE BOOL "TLS with OpenSSL 3 when found" FORCE)

# build-windows/switchboard-wine: the .exe under Wine, for the e2e suites.
set(SB_WINE_EXE ${CMAKE_BINARY_DIR}/switchboard.exe)
configure_file(${CMAKE_SOURCE_DIR}/cmake/wine-run.sh.in ${CMAKE_BINARY_DIR}/switchboard-wine
               @ONLY FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
               WORLD_READ WORLD_EXECUTE)

# Windows' own unit tests (tests/windows/test_*.c).
file(GLOB SB_WIN32_UNIT_TESTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/windows/test_*.c)
foreach(src ${SB_WIN32_UNIT_TESTS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/src ${CMAKE_SOURCE_DIR}/tests)
  target_link_libraries(${name} PRIVATE switchboard_static)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES TIMEOUT 120)
endforeach()
