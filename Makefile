# Thin wrapper around meson. `make demo` and `make check` install missing Debian
# packages first (scripts/install-deps.sh: idempotent, root or sudo).
BUILD ?= build
MESON_FLAGS ?=

.PHONY: all deps build check demo bench fuzz clean

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	@test -f $(BUILD)/build.ninja || meson setup $(BUILD) $(MESON_FLAGS)
	ninja -C $(BUILD)

check: build
	meson test -C $(BUILD) --print-errorlogs --num-processes 2

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
