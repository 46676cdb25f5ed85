# Front door for the CMake build. The README's two commands:
#   make run     build, then start `switchboard serve` on its default (127.0.0.1:7000)
#   make check   build and run every test (ctest)
# Also: make bench | make bench-quick | make fuzz | make install | make clean
#   make check SANITIZE=address,undefined   (or SANITIZE=thread)
#   make check VALGRIND=1

SANITIZE ?=
CC ?= cc
BUILD ?= build$(if $(SANITIZE),-$(subst $(comma),-,$(SANITIZE)),)
comma := ,
PREFIX ?= /usr/local
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CTEST_ARGS ?=
SB := $(BUILD)/switchboard

.PHONY: all build run run-http check bench bench-quick fuzz install clean

all: build

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DSANITIZE="$(SANITIZE)" -DCMAKE_INSTALL_PREFIX=$(PREFIX)

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

run: build
	@echo "switchboard: echo app on 127.0.0.1:7000 - in another terminal: $(SB) send 127.0.0.1:7000 hello"
	$(SB) serve $(ARGS)

run-http: build
	@echo "switchboard: web server for docs/ - open http://127.0.0.1:8080/ or: $(SB) get http://127.0.0.1:8080/howto.md"
	$(SB) serve --app http --root docs --listen 127.0.0.1:8080 $(ARGS)

check: build
	cd $(BUILD) && SB_VALGRIND=$(VALGRIND) ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

bench: build
	bench/run.sh $(SB)

bench-quick: build
	bench/run.sh --quick $(SB)

fuzz:
	fuzz/run.sh $(FUZZ_SECONDS)

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf build build-*
