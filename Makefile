# virtio-msg secure partition: build, run, test.
#
#   make run    the SP serving its devices to the `vmsg` host tool, in the simulated FF-A world
#   make test   every test: unit, integration, end to end, lints, the SP image booted on QEMU
#   make sp     the aarch64 SP image and its package for Hafnium: out/sp.bin, out/virtio-msg-sp.dtb,
#               out/virtio-msg-sp.pkg (see manifests/README.md)
#   make fuzz   every fuzz target (fuzz/, cargo-fuzz on a nightly toolchain) for FUZZ_SECONDS each
#   make bench  what each request costs: FF-A calls by function, partition instructions
#               (callgrind), throughput, image size; a table, and out/bench.json

CARGO ?= cargo
# Recipes use pipefail (the fuzz runs filter libFuzzer's output).
SHELL := /bin/bash

.PHONY: all run test check lint fmt toolchain clean sp fuzz fuzz-smoke bench

all: test

toolchain:
	@command -v rustup >/dev/null || { echo "rustup is required: https://rustup.rs" >&2; exit 1; }
	@rustup show active-toolchain >/dev/null 2>&1 || rustup toolchain install
	@rustup target list --installed | grep -qx aarch64-unknown-none || rustup target add aarch64-unknown-none

run: toolchain
	$(CARGO) build -q -p host-tools --bin vmsg
	./target/debug/vmsg demo

# tests/tests/qemu.rs boots the SP image (it runs `make sp` itself too, a no-op by then).
test: toolchain lint sp
	$(CARGO) test --workspace --all-features
	$(MAKE) --no-print-directory fuzz-smoke

# The benchmark (host-tools/src/bench.rs): exact counts, never asserted on time. Partition
# instructions need valgrind (callgrind); without it the column says "-". The boot count
# (host-tools/src/bench/boot.rs) boots the package on qemu-system-aarch64 against the EL3
# stand-in; without QEMU it says "-".
bench: toolchain sp standin
	$(CARGO) build -q --release -p host-tools --bin vmsg
	@mkdir -p $(OUT)
	$(SP_TARGET_DIR)/release/vmsg bench --json $(OUT)/bench.json --image $(OUT)/sp.bin \
		--package $(OUT)/virtio-msg-sp.pkg --standin $(OUT)/el3-standin.bin \
		$$(command -v valgrind >/dev/null && echo --callgrind)

# Fuzzing (fuzz/, outside the workspace): cargo-fuzz needs a nightly toolchain. `make test` runs
# each target briefly (FUZZ_SMOKE_SECONDS) when both are installed and says so when they are not;
# `make fuzz` runs each for FUZZ_SECONDS and prints libFuzzer's execution counts.
FUZZ_TARGETS := frames descriptors virtqueue blk console vsock partition
FUZZ_SECONDS ?= 600
FUZZ_SMOKE_SECONDS ?= 10
FUZZ_TARGET_DIR := $(abspath fuzz/target)
HAVE_FUZZ = cargo +nightly --version >/dev/null 2>&1 && cargo +nightly fuzz --version >/dev/null 2>&1

# A target that does not build with the installed nightly is reported and skipped; a crash
# or a failed check in a run fails `make test`.
fuzz-smoke:
	@if ! $(HAVE_FUZZ); then \
		echo "SKIPPED fuzz smoke run: needs a nightly toolchain and cargo-fuzz (rustup toolchain install nightly; cargo install cargo-fuzz)"; \
	elif ! (cd fuzz && CARGO_TARGET_DIR=$(FUZZ_TARGET_DIR) cargo +nightly fuzz build -O); then \
		echo "SKIPPED fuzz smoke run: the fuzz targets do not build with this nightly (see above)"; \
	else \
		$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(FUZZ_SMOKE_SECONDS); \
	fi

fuzz:
	@$(HAVE_FUZZ) || { echo "make fuzz: needs a nightly toolchain and cargo-fuzz" >&2; exit 1; }
	cd fuzz && CARGO_TARGET_DIR=$(FUZZ_TARGET_DIR) cargo +nightly fuzz build -O
	@set -eo pipefail; for t in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/corpus/$$t; \
		( cd fuzz && CARGO_TARGET_DIR=$(FUZZ_TARGET_DIR) cargo +nightly fuzz run -O $$t corpus/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 2>&1 ) \
			| grep -E '^(Done|stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY)|panicked|Test unit written' \
			| sed "s/^/fuzz $$t: /"; \
	done

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml -- --check
	$(CARGO) clippy -q --workspace --all-targets --all-features -- -D warnings
	$(CARGO) clippy -q --target $(SP_TARGET) -p sp -p sp-qemu -- -D warnings
	$(CARGO) clippy -q --target $(SP_TARGET) -p nwd-payload -- -D warnings
	$(CARGO) clippy -q --target $(SP_TARGET) -p el3-standin -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean

# The SP image: built for aarch64-unknown-none at opt-level "z" (size; the workspace release
# profile says "s"), turned into a raw binary, packaged with its manifest (SPKG v2).
SP_TARGET := aarch64-unknown-none
# The file names of panic locations in the aarch64 images (the SP's and the payload's) name
# crates.io dependencies without the registry's directory (`arm-ffa-0.5.0/src/lib.rs`, not
# `$$CARGO_HOME/registry/src/index.crates.io-<hash>/arm-ffa-0.5.0/src/lib.rs`): 0.5 KiB of
# the SP image, and nothing of the build machine in it. RUSTFLAGS, if set, replace this.
REGISTRY_SRC := $(wildcard $(or $(CARGO_HOME),$(HOME)/.cargo)/registry/src/*/)
export CARGO_TARGET_AARCH64_UNKNOWN_NONE_RUSTFLAGS ?= $(foreach d,$(REGISTRY_SRC),--remap-path-prefix=$(d)=)
# The SP image alone is built for the tiny code model: every symbol it names lies within
# 1 MiB of its code (the link fails otherwise), so an address takes one ADR or LDR (literal)
# instead of an ADRP pair: 3.7 KiB less code. The payload, with its 16 MiB heap, cannot be.
SP_RUSTFLAGS := $(CARGO_TARGET_AARCH64_UNKNOWN_NONE_RUSTFLAGS) -C code-model=tiny
SP_TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
OUT ?= out
DTC ?= dtc
# Any of these writes the raw binary; .ci/run installs binutils-aarch64-linux-gnu if none is there.
OBJCOPY ?= $(firstword $(foreach t,rust-objcopy llvm-objcopy aarch64-linux-gnu-objcopy,$(shell command -v $(t) 2>/dev/null)))

sp: toolchain
	@test -n "$(OBJCOPY)" || { echo "make sp: no objcopy (install llvm or binutils-aarch64-linux-gnu)" >&2; exit 1; }
	@command -v $(DTC) >/dev/null || { echo "make sp: no dtc (install device-tree-compiler)" >&2; exit 1; }
	CARGO_PROFILE_RELEASE_OPT_LEVEL=z CARGO_TARGET_AARCH64_UNKNOWN_NONE_RUSTFLAGS="$(SP_RUSTFLAGS)" \
		$(CARGO) build -q --release --target $(SP_TARGET) -p sp-qemu
	$(CARGO) build -q -p host-tools --bin spkg
	@mkdir -p $(OUT)
	$(OBJCOPY) -O binary $(SP_TARGET_DIR)/$(SP_TARGET)/release/sp-qemu $(OUT)/sp.bin
	$(DTC) -q -I dts -O dtb -o $(OUT)/virtio-msg-sp.dtb manifests/virtio-msg-sp.dts
	$(SP_TARGET_DIR)/debug/spkg --manifest $(OUT)/virtio-msg-sp.dtb --image $(OUT)/sp.bin --output $(OUT)/virtio-msg-sp.pkg

# The EL3 stand-in of the benchmark's boot count (host-tools/el3-standin): assembled by rustc,
# a raw binary like the SP image.
.PHONY: standin
standin: toolchain
	@test -n "$(OBJCOPY)" || { echo "make standin: no objcopy (install llvm or binutils-aarch64-linux-gnu)" >&2; exit 1; }
	$(CARGO) build -q --release --target $(SP_TARGET) -p el3-standin
	@mkdir -p $(OUT)
	$(OBJCOPY) -O binary $(SP_TARGET_DIR)/$(SP_TARGET)/release/el3-standin $(OUT)/el3-standin.bin

# The normal-world test payload: a BL33 image for QEMU virt (entered at NS-EL2 at 0x60000000)
# that drives the partition over real FF-A calls; built and converted like the SP image.
# tests/tests/qemu_payload.rs boots it (and runs `make payload` itself, a no-op when done).
.PHONY: payload
payload: toolchain
	@test -n "$(OBJCOPY)" || { echo "make payload: no objcopy (install llvm or binutils-aarch64-linux-gnu)" >&2; exit 1; }
	CARGO_PROFILE_RELEASE_OPT_LEVEL=z $(CARGO) build -q --release --target $(SP_TARGET) -p nwd-payload
	@mkdir -p $(OUT)
	$(OBJCOPY) -O binary $(SP_TARGET_DIR)/$(SP_TARGET)/release/nwd-payload $(OUT)/nwd-payload.bin
	@echo "$(OUT)/nwd-payload.bin: $$(wc -c < $(OUT)/nwd-payload.bin) bytes"
