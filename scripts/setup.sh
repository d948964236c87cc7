#!/usr/bin/env bash
# Everything a fresh machine needs to build the guests in four languages and run the tests.
# Each step checks first and skips what is already satisfied, so a warm run takes under a second
# and prints nothing but the summary line. `make setup` runs this.
#
# Needs (present on the project's machines): rustup, Python 3.11 with pip, node 20 + npm,
# Debian (apt-get, as root or via sudo).
#
# Env: SWASM_CACHE (default $HOME/.cache/swasm) holds the venv, stamps and the guest target dir.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=${SWASM_CACHE:-$HOME/.cache/swasm}
VENV=$CACHE/venv
STAMPS=$CACHE/stamps
GUEST_TARGET=${SWASM_GUEST_TARGET:-$CACHE/guest-target}
mkdir -p "$STAMPS"

did=()
step() { did+=("$1"); echo "setup: $1" >&2; }

# Hash of the given files (missing files hash as empty), to know when a stamp is stale.
digest() { cat "$@" 2>/dev/null | sha256sum | cut -d' ' -f1; }
fresh() { [[ -f "$STAMPS/$1" && "$(cat "$STAMPS/$1")" == "$2" ]]; }

# 1. Rust: the wasm32-wasip2 target (guests compile straight to components).
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    step "rustup target add wasm32-wasip2"
    rustup target add wasm32-wasip2
fi

# 2. C tool chain from Debian: clang + lld for wasm32, wasi-libc, the wasm32 builtins.
apt_packages=(clang lld wasi-libc libclang-rt-dev-wasm32)
missing=()
for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    step "apt-get install ${missing[*]}"
    sudo=()
    [[ $(id -u) == 0 ]] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
        "${apt_packages[@]}" >/dev/null
fi

# 3. Python venv: componentize-py for the Python guests; boto3 + moto[server] for the tests
#    (tests/requirements.txt, when present).
py_reqs=(plugins/python/requirements.txt)
[[ -f tests/requirements.txt ]] && py_reqs+=(tests/requirements.txt)
py_digest=$(digest "${py_reqs[@]}")
if [[ ! -x $VENV/bin/python3 ]] || ! fresh venv "$py_digest"; then
    step "python venv $VENV (${py_reqs[*]})"
    [[ -x $VENV/bin/python3 ]] || python3 -m venv "$VENV"
    reqs=()
    for r in "${py_reqs[@]}"; do reqs+=(-r "$r"); done
    "$VENV/bin/pip" install -q --disable-pip-version-check "${reqs[@]}"
    echo "$py_digest" >"$STAMPS/venv"
fi

# 4. JavaScript: componentize-js, exactly as package-lock.json pins it.
js_digest=$(digest plugins/js/package-lock.json)
if [[ ! -d plugins/js/node_modules ]] || ! fresh npm "$js_digest-$ROOT"; then
    step "npm ci (plugins/js)"
    # npm 11 leaves other platforms' optional packages (rolldown bindings) out of the lock
    # it writes, and then its own `npm ci` refuses that lock (npm/cli#8320). Fall back to
    # `npm install`, which installs the locked versions, and keep the committed lock as is.
    (
        cd plugins/js
        if ! npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>"$STAMPS/npm-ci.log"; then
            cp -p package-lock.json "$STAMPS/package-lock.json.orig"
            npm install --no-audit --no-fund --loglevel=error >/dev/null
            cp -p "$STAMPS/package-lock.json.orig" package-lock.json
        fi
    )
    echo "$js_digest-$ROOT" >"$STAMPS/npm"
fi

# 5. componentize-c: our small Rust tool that makes C bindings and C components
#    (instead of `cargo install wit-bindgen-cli wasm-tools`, which takes minutes).
tool_dir=plugins/tools/componentize-c
if [[ -f $tool_dir/Cargo.toml ]]; then
    tool_digest=$(find "$tool_dir" -type f \( -name '*.rs' -o -name 'Cargo.*' \) -not -path '*/target/*' \
        | sort | xargs cat | sha256sum | cut -d' ' -f1)
    if [[ ! -x $GUEST_TARGET/release/componentize-c ]] || ! fresh componentize-c "$tool_digest"; then
        step "cargo build componentize-c"
        CARGO_TARGET_DIR=$GUEST_TARGET cargo build -q --release --locked \
            --manifest-path "$tool_dir/Cargo.toml"
        echo "$tool_digest" >"$STAMPS/componentize-c"
    fi
fi

if ((${#did[@]})); then
    echo "setup: done (${#did[@]} steps)" >&2
fi
