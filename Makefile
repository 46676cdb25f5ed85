# Front door for the CMake build. The README's two commands:
#   make run     build, then start `switchboard serve` on its default (127.0.0.1:7000)
#   make check   build and run every test (ctest)
# Also: make run-http | make bench | make bench-quick | make fuzz | make docs
#       make install [PREFIX=/usr/local] | make uninstall | make clean
#   make check SANITIZE=address,undefined   (or SANITIZE=thread)
#   make check VALGRIND=1
#   make windows         cross-build for Windows (mingw-w64) into build-windows/
#   make check-windows   that build's tests under Wine (tests/windows/check.sh)

# No "Entering directory" lines from the sub-makes CMake's build runs.
MAKEFLAGS += --no-print-directory

SANITIZE ?=
CC ?= cc
BUILD ?= build$(if $(SANITIZE),-$(subst $(comma),-,$(SANITIZE)),)
comma := ,
PREFIX ?= /usr/local
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CTEST_ARGS ?=
SB := $(BUILD)/switchboard
CONFIGURE = cmake -S . -B $(BUILD) -DSANITIZE="$(SANITIZE)" -DCMAKE_INSTALL_PREFIX=$(PREFIX)

.PHONY: all build quiet-build run run-http check bench bench-quick fuzz docs install uninstall clean \
	windows check-windows

all: build

# PREFIX here is only the default of `cmake --install`; `make install
# PREFIX=P` installs into P whatever the build directory was configured with.
$(BUILD)/CMakeCache.txt:
	$(CONFIGURE)

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

# For the run targets: the build's output only if it fails, so that what
# shows is the server's own lines.
quiet-build:
	@test -f $(BUILD)/CMakeCache.txt || echo "switchboard: configuring and building in $(BUILD)/ (first time: about a minute)"
	@out=$$( { test -f $(BUILD)/CMakeCache.txt || $(CONFIGURE); } 2>&1 && \
	        cmake --build $(BUILD) -j $(JOBS) --target switchboard 2>&1) || { printf '%s\n' "$$out"; exit 1; }

run: quiet-build
	@echo "switchboard: echo app on 127.0.0.1:7000 - in another terminal: $(SB) send 127.0.0.1:7000 hello"
	@$(SB) serve $(ARGS)

run-http: quiet-build
	@echo "switchboard: web server for docs/ - open http://127.0.0.1:8080/ or: $(SB) get http://127.0.0.1:8080/howto.md"
	@$(SB) serve --app http --root docs --listen 127.0.0.1:8080 $(ARGS)

check: build
	cd $(BUILD) && SB_VALGRIND=$(VALGRIND) ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

bench: build
	bench/run.sh $(SB)

bench-quick: build
	bench/run.sh --quick $(SB)

fuzz:
	fuzz/run.sh $(FUZZ_SECONDS)

docs: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) --target docs

# Builds what is installed (not the tests), then installs it.
install: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS) --target switchboard switchboard_shared switchboard_static
	cmake --install $(BUILD) --prefix $(PREFIX)

# Removes what the last `make install` from $(BUILD) installed, wherever it went.
uninstall:
	cmake --build $(BUILD) --target uninstall

WINBUILD ?= build-windows

$(WINBUILD)/CMakeCache.txt:
	cmake -S . -B $(WINBUILD) -DCMAKE_TOOLCHAIN_FILE=cmake/mingw-w64-x86_64.cmake

# switchboard.exe, libswitchboard.dll (+ libswitchboard.dll.a) and
# libswitchboard.a, and the unit tests as .exe files.
windows: $(WINBUILD)/CMakeCache.txt
	cmake --build $(WINBUILD) -j $(JOBS)

# Runs the Windows build under Wine, with the Linux build as the other side.
check-windows: windows build
	tests/windows/check.sh $(WINBUILD) $(BUILD)

clean:
	rm -rf build build-*
