# swasm: the two commands are `make dev` (set up, build, run the demo) and `make test`.
# Every target is idempotent and quiet when nothing changed: set-up steps check before they
# act (scripts/setup.sh) and every guest is rebuilt only when its sources are newer.
#
#   make setup        tool chains: wasm32-wasip2, Python venv, npm ci, Debian clang, componentize-c
#   make plugins      example activities in four languages -> plugins/dist/<name>@<version>.wasm
#   make test-guests  misbehaving guests for the host's tests -> tests/guests/dist/
#   make build        cargo build -p swasm (dev profile)
#   make dev          setup plugins build, then `swasm dev --plugins plugins/dist`
#   make test         setup plugins test-guests check-components, then every test (the test
#                     build makes target/debug/swasm too)
#   make bench        bench/run, when it exists
#
# Env: CACHE or SWASM_CACHE (default $HOME/.cache/swasm): the venv, stamps, guest target dir
# ($(CACHE)/guest-target, so guests never wait on the host build's lock) and the default
# CARGO_TARGET_DIR of host builds ($(CACHE)/target). Exported to scripts/setup.sh,
# plugins/c/build.sh and bench/run, so they all use the same one.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

SWASM_CACHE ?= $(HOME)/.cache/swasm
CACHE ?= $(SWASM_CACHE)
export CARGO_TARGET_DIR ?= $(CACHE)/target
GUEST_TARGET := $(CACHE)/guest-target
VENV := $(CACHE)/venv
WASM_OUT := $(GUEST_TARGET)/wasm32-wasip2/release
COMPONENTIZE_C := $(GUEST_TARGET)/release/componentize-c
# What scripts/setup.sh installs into, plugins/c/build.sh runs and bench/run reads.
export SWASM_CACHE := $(CACHE)
export SWASM_GUEST_TARGET := $(GUEST_TARGET)
export COMPONENTIZE_C
WIT := wit/world.wit $(wildcard wit/deps/*.wit)
PLUGIN_DIST := plugins/dist
GUEST_DIST := tests/guests/dist

# Sources of a directory that affect its build (no build output, no node_modules).
sources = $(shell find $(1) -type f -not -path '*/target/*' -not -path '*/node_modules/*' \
	-not -path '*/__pycache__/*' -not -path '*/dist/*' -not -name '*.wasm' 2>/dev/null) $(WIT)

# Fails with a hint when a tool that `make setup` installs is missing.
need = test -x $(1) || { echo "$(1) is missing: run 'make setup' first" >&2; exit 1; }

.PHONY: help setup plugins test-guests build dev test bench check-components

help:
	@sed -n '1,17p' Makefile | sed 's/^# \{0,1\}//'

setup:
	@scripts/setup.sh

# ---- Rust examples: one cargo workspace, one build for all of them ----------------------
RUST_PLUGINS := echo countdown validate fetch
RUST_DIST := $(foreach p,$(RUST_PLUGINS),$(PLUGIN_DIST)/$(p)@1.wasm)

$(RUST_DIST) &: $(call sources,plugins/rust)
	@echo "plugins: rust ($(RUST_PLUGINS))"
	@CARGO_TARGET_DIR=$(GUEST_TARGET) cargo build -q --release --locked \
		--target wasm32-wasip2 --manifest-path plugins/rust/Cargo.toml
	@mkdir -p $(PLUGIN_DIST)
	@$(foreach p,$(RUST_PLUGINS),cp $(WASM_OUT)/$(p).wasm $(PLUGIN_DIST)/$(p)@1.wasm;)

# ---- Python examples: componentize-py, one component per directory ----------------------
PY_PLUGINS := echo countdown fetch
PY_DIST := $(foreach p,$(PY_PLUGINS),$(PLUGIN_DIST)/$(p)-py@1.wasm)
# Examples that call HTTP: the plugin-http world, with the swasm_http helper of
# plugins/python/lib bundled too.
PY_HTTP := fetch
py_http = $(filter $(1),$(PY_HTTP))

# Every file of the example's directory (-p bundles the modules next to app.py); $$* is the
# example's name, expanded a second time once the pattern matched (.SECONDEXPANSION).
.SECONDEXPANSION:
$(PLUGIN_DIST)/%-py@1.wasm: $$(call sources,plugins/python/$$*) plugins/python/requirements.txt \
		$$(if $$(call py_http,$$*),$$(call sources,plugins/python/lib))
	@echo "plugins: python $*"
	@$(call need,$(VENV)/bin/componentize-py)
	@mkdir -p $(PLUGIN_DIST)
	@$(VENV)/bin/componentize-py -d wit -w plugin$(if $(call py_http,$*),-http) componentize app \
		-p plugins/python/$* $(if $(call py_http,$*),-p plugins/python/lib) -o $@.tmp >/dev/null
	@mv $@.tmp $@

# ---- JavaScript examples: componentize-js CLI (not `jco componentize`, see docs) -------
JS_PLUGINS := echo countdown fetch
JS_DIST := $(foreach p,$(JS_PLUGINS),$(PLUGIN_DIST)/$(p)-js@1.wasm)

$(PLUGIN_DIST)/%-js@1.wasm: plugins/js/%/app.js plugins/js/package-lock.json $(WIT)
	@echo "plugins: javascript $*"
	@$(call need,plugins/js/node_modules/.bin/componentize-js)
	@mkdir -p $(PLUGIN_DIST)
	@plugins/js/node_modules/.bin/componentize-js plugins/js/$*/app.js \
		--wit wit -n plugin -o $@.tmp >/dev/null
	@mv $@.tmp $@

# ---- C examples: clang -> core module -> componentize-c (bindings + adapter) -----------
C_PLUGINS := echo countdown
C_DIST := $(foreach p,$(C_PLUGINS),$(PLUGIN_DIST)/$(p)-c@1.wasm)

$(PLUGIN_DIST)/%-c@1.wasm: plugins/c/%/app.c plugins/c/build.sh $(WIT) $(COMPONENTIZE_C)
	@echo "plugins: c $*"
	@mkdir -p $(PLUGIN_DIST)
	@plugins/c/build.sh $* $@

# Built by `make setup`; this rule only rebuilds it when its sources change.
$(COMPONENTIZE_C): $(call sources,plugins/tools/componentize-c)
	@echo "tools: componentize-c"
	@CARGO_TARGET_DIR=$(GUEST_TARGET) cargo build -q --release --locked \
		--manifest-path plugins/tools/componentize-c/Cargo.toml
	@touch $@

plugins: $(RUST_DIST) $(PY_DIST) $(JS_DIST) $(C_DIST)
	@:

# ---- Test guests -----------------------------------------------------------------------
TEST_GUESTS := hostile spin hog recurse trap bigresult envread wrongsig remember
GUEST_FILES := $(foreach g,$(TEST_GUESTS),$(GUEST_DIST)/$(g)@1.wasm) $(GUEST_DIST)/echo-b.wasm

$(GUEST_FILES) &: $(call sources,tests/guests)
	@echo "test-guests: $(TEST_GUESTS) echo-b"
	@CARGO_TARGET_DIR=$(GUEST_TARGET) cargo build -q --release --locked \
		--target wasm32-wasip2 --manifest-path tests/guests/Cargo.toml
	@mkdir -p $(GUEST_DIST)
	@$(foreach g,$(TEST_GUESTS),cp $(WASM_OUT)/$(g).wasm $(GUEST_DIST)/$(g)@1.wasm;)
	@cp $(WASM_OUT)/echo_b.wasm $(GUEST_DIST)/echo-b.wasm

test-guests: $(GUEST_FILES)
	@:

# Every built .wasm must be a component targeting swasm:activity/plugin.
check-components: plugins test-guests
	@$(COMPONENTIZE_C) check $(PLUGIN_DIST)/*.wasm $(GUEST_DIST)/*.wasm >/dev/null

# ---- Host ------------------------------------------------------------------------------
build:
	@cargo build -q -p swasm

dev: setup plugins build
	$(CARGO_TARGET_DIR)/debug/swasm dev --plugins $(PLUGIN_DIST)$(if $(SERVE), --serve)

# No `build` here: the test build makes target/debug/swasm itself (host's integration tests
# need the binary), and `cargo build -p swasm` resolves other features than the workspace's
# test build (tokio's test-util comes from dev-dependencies), so running both compiled about
# 90 crates twice and doubled a fresh machine's build time.
test: setup plugins test-guests check-components
	@export PATH="$(VENV)/bin:$$PATH" SWASM_REQUIRE_MOTO=1 \
		SWASM_PLUGINS_DIST="$(CURDIR)/$(PLUGIN_DIST)" SWASM_TEST_GUESTS_DIST="$(CURDIR)/$(GUEST_DIST)"; \
	if cargo nextest --version >/dev/null 2>&1; then \
		cargo nextest run --workspace --no-fail-fast; \
	else \
		cargo test --workspace --no-fail-fast; \
	fi

bench:
	@if [[ -x bench/run ]]; then bench/run; else echo "bench: no bench/run yet"; fi
