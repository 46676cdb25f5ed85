# Cross-compiling for 64-bit Windows with mingw-w64 (Debian:
# gcc-mingw-w64-x86-64). Used by `make windows`:
#   cmake -S . -B build-windows -DCMAKE_TOOLCHAIN_FILE=cmake/mingw-w64-x86_64.cmake
# Natively on Windows (MSYS2's mingw-w64 shell) no toolchain file is needed.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
set(SB_MINGW_PREFIX x86_64-w64-mingw32 CACHE STRING "mingw-w64 tool prefix")
# The -posix variant where Debian ships both: its C++ runtime has std::thread
# (the C library's threads come from winpthreads either way).
find_program(CMAKE_C_COMPILER NAMES ${SB_MINGW_PREFIX}-gcc-posix ${SB_MINGW_PREFIX}-gcc REQUIRED)
find_program(CMAKE_CXX_COMPILER NAMES ${SB_MINGW_PREFIX}-g++-posix ${SB_MINGW_PREFIX}-g++)
find_program(CMAKE_RC_COMPILER NAMES ${SB_MINGW_PREFIX}-windres)
set(CMAKE_FIND_ROOT_PATH /usr/${SB_MINGW_PREFIX})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# Test programs run under Wine when cross-compiling (ctest, try_run).
find_program(SB_WINE NAMES wine wine64)
if(SB_WINE)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${SB_WINE})
endif()
