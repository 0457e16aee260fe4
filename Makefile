# layerlab: two commands.
#   make run    install what is missing, build, and start the server
#   make test   install what the tests need, then run every check and test
#
# Build outputs and caches live outside the checkout, so a fresh clone
# reuses them and the repository stays clean.

SHELL := /bin/bash
# rustup's place first: `make` installs Rust there when the system's cargo
# is missing or too old (scripts/ensure-rust.sh).
export PATH := $(HOME)/.cargo/bin:$(PATH)
STATE ?= /var/tmp/layerlab
export CARGO_TARGET_DIR ?= $(STATE)/target
# Accounts, the image store and sandboxes; outside the checkout so a fresh
# clone reuses the built catalog.
DATA_DIR ?= $(STATE)/data
LISTEN ?= 127.0.0.1:8080
HUB_LISTEN ?= 127.0.0.1:5001

# Debian packages: to build, to run labs, and to test (browser, image tools).
APT_BUILD := gcc libc6-dev pkg-config make ca-certificates curl
APT_RUN := busybox-static debootstrap binutils e2fsprogs gnupg dpkg-dev
# g++: the fuzz targets' libFuzzer, which lint type-checks, is C++.
APT_TEST := chromium skopeo docker.io docker-compose postgresql g++
# Comparisons the benchmarks measure against (dockerd and skopeo come
# with APT_TEST).
APT_BENCH := docker-registry python3-terminado

IMAGE ?= layerlab:latest

.PHONY: image run test build deps deps-test apt-build apt-run apt-test apt-bench rust web lint unit browser bench bench-class fuzz fuzz-tools clean-state

LAYERLAB := $(CARGO_TARGET_DIR)/release/layerlab

# On a first start the server builds the catalog images in the background
# (minutes; the pages show how far it got) and serves at once. A catalog
# from an earlier run is brought up to date first (seconds when nothing
# changed), as the server builds only images that are missing, not recipes
# or a layerlab binary that changed since.
run: deps build
	@if [ -d $(DATA_DIR)/store ]; then $(LAYERLAB) images build --data-dir $(DATA_DIR); fi
	@echo
	@echo "layerlab starts at http://$(LISTEN); the hub serves the catalog at http://$(HUB_LISTEN)/v2/"
	@echo "  log in: open the one-time /setup link printed below to create the admin account,"
	@echo "  or run: $(LAYERLAB) user add NAME --role admin --data-dir $(DATA_DIR)"
	@echo
	$(LAYERLAB) serve --listen $(LISTEN) --hub-listen $(HUB_LISTEN) --data-dir $(DATA_DIR)

build: rust web
	cargo build --release --locked -p server

test: deps deps-test lint unit browser

deps: apt-build rust apt-run web
deps-test: apt-test

# Installs only what is missing; `apt-get update` runs only when needed.
define apt_install
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

apt-build:
	$(call apt_install,$(APT_BUILD))
	@command -v node >/dev/null && command -v npm >/dev/null || { \
	  echo "installing Node.js and npm"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; }
apt-run:
	$(call apt_install,$(APT_RUN))
rust: apt-build
	@scripts/ensure-rust.sh
apt-test:
	$(call apt_install,$(APT_TEST))
apt-bench:
	$(call apt_install,$(APT_BENCH))

# Front-end packages from npm; the server's build script embeds their
# browser files from web/node_modules and refuses to build without them.
web: web/node_modules/.installed
web/node_modules/.installed: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	@touch $@

# Every crate of the workspace: within each, files import each other one
# way only (scripts/module-cycles.py names any cycle).
CRATES := server course grader $(wildcard sandbox/*)

# The fuzz targets live outside the workspace: lint checks that they still
# build against the libraries (stable is enough to type-check them).
lint:
	scripts/module-cycles.py --self-test
	scripts/module-cycles.py $(CRATES)
	cargo fmt --all -- --check
	cargo clippy --locked --workspace --all-targets -- -D warnings
	cargo check --locked --manifest-path fuzz/Cargo.toml --bins

# The suites share one catalog in $(STATE)/test-data; the server's
# integration tests run a second time on PostgreSQL (a cluster the tests
# start from Debian's postgresql in a temporary directory, on a port of its
# own, stopped with them); the compose test, which brings its own
# PostgreSQL, runs once. it is brought up to
# date first with the real layerlab binary, which registry:2 and the lab
# node carry (a suite that found it missing could only put its own
# executable there).
unit:
	cargo build --locked -p server
	$(CARGO_TARGET_DIR)/debug/layerlab images build --data-dir $(STATE)/test-data
	cargo test --locked --workspace
	LAYERLAB_TEST_DATABASE=postgres cargo test --locked -p server --test it -- --skip compose::

browser:
	cargo build --locked -p server
	cd web && LAYERLAB_BIN=$(CARGO_TARGET_DIR)/debug/layerlab \
	  LAYERLAB_TEST_OUTPUT=$(STATE)/test-output node --test tests/

# Benchmarks: each prints layerlab's figure beside its comparison, measured
# in the same run. Release builds; they need root like the tests.
bench: deps deps-test apt-bench build
	cargo bench --locked -p store --bench unpack
	cargo bench --locked -p images --bench catalog
	cargo bench --locked -p runtime --bench start
	cargo bench --locked -p server --bench terminal
	cargo bench --locked -p registry --bench push_pull
	cargo bench --locked -p host --bench engine
	cargo bench --locked -p host --bench build
	cd web && LAYERLAB_BIN=$(LAYERLAB) node bench/click-to-prompt.mjs

# A class at once (about 12 minutes, labs from the test catalog that `make
# unit` builds): classes of 50, 100 and 200 students, starts spread over a
# minute and in one burst, then a kill -9 in the middle of the largest.
# LAYERLAB_CLASS_SIZES, _PLAY, _SPREAD and _PHASES change the run.
bench-class: deps
	cargo bench --locked -p server --bench class

# Fuzzing: each target in fuzz/ for FUZZ_SECONDS (default 600), one after
# another; FUZZ_TARGETS picks some. Corpora, crashes and logs go to
# $(STATE)/fuzz, the build to $(STATE)/target-fuzz-nightly (scripts/fuzz.sh).
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?=
fuzz: fuzz-tools
	STATE=$(STATE) FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh $(FUZZ_TARGETS)

# cargo-fuzz and the nightly toolchain whose sanitizers and libFuzzer it
# uses, installed into ~/.cargo and ~/.rustup when missing.
fuzz-tools: rust
	@cargo +nightly --version >/dev/null 2>&1 || rustup toolchain install nightly --profile minimal
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

# The image docker-compose.yml runs: this machine's release binary on
# Debian (see Dockerfile). Needs a running dockerd.
image: build
	rm -rf $(STATE)/image && mkdir -p $(STATE)/image
	cp $(LAYERLAB) $(STATE)/image/layerlab
	docker build -f Dockerfile -t $(IMAGE) $(STATE)/image

clean-state:
	rm -rf $(STATE)/target $(STATE)/test-output
