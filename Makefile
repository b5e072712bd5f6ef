# Thin wrapper around meson. `make demo` and `make check` install missing Debian
# packages first (scripts/install-deps.sh: idempotent, root or sudo).
BUILD ?= build
MESON_FLAGS ?=

.PHONY: all deps build check check-valgrind demo bench fuzz clean

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	@test -f $(BUILD)/build.ninja || meson setup $(BUILD) $(MESON_FLAGS)
	ninja -C $(BUILD)

check: build
	meson test -C $(BUILD) --print-errorlogs --num-processes 2

# The plugin's GstCheck tests under valgrind's memcheck (tests/gst/meson.build,
# suppressions in tests/gst/valgrind.supp): fails on memory errors and
# definite leaks. A plain run first, so that a plain failure shows as such.
# A minute or two on 2 cores.
VALGRIND_TESTS = gst-avcrowdcount gst-helpers gst-shared-engine gst-exitclassify gst-audioexitclassify engine gst-earlyexitpublish gst-props

check-valgrind: build
	@command -v valgrind >/dev/null || { echo "check-valgrind: valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
	@# a build configured before valgrind was installed lacks the setup
	@meson test -C $(BUILD) --setup valgrind --list >/dev/null 2>&1 || meson setup --reconfigure $(BUILD)
	meson test -C $(BUILD) --print-errorlogs $(VALGRIND_TESTS)
	meson test -C $(BUILD) --setup valgrind --print-errorlogs --num-processes 2 $(VALGRIND_TESTS)

demo: build
	@bash scripts/demo.sh $(BUILD)

bench: build
	@bash scripts/bench.sh $(BUILD)

# libFuzzer on the model-file reader: make fuzz FUZZ_SECONDS=600
FUZZ_SECONDS ?= 60
fuzz: deps
	bash tests/fuzz/run-fuzz.sh $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD)
