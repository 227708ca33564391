# virtio-msg secure partition: build, run, test.
#
#   make run    the SP serving its devices to the `vmsg` host tool, in the simulated FF-A world
#   make test   every test: unit, integration, end to end, lints

CARGO ?= cargo

.PHONY: all run test check lint fmt toolchain clean

all: test

toolchain:
	@command -v rustup >/dev/null || { echo "rustup is required: https://rustup.rs" >&2; exit 1; }
	@rustup show active-toolchain >/dev/null 2>&1 || rustup toolchain install
	@rustup target list --installed | grep -qx aarch64-unknown-none || rustup target add aarch64-unknown-none

run: toolchain
	$(CARGO) build -q -p host-tools --bin vmsg
	./target/debug/vmsg demo

test: toolchain lint
	$(CARGO) test --workspace --all-features

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy -q --workspace --all-targets --all-features -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
