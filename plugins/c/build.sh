#!/usr/bin/env bash
# Builds one C example into a component: build.sh <example> <out.wasm>
#   1. componentize-c bindings: plugin.h / plugin.c / plugin_component_type.o from ../../wit
#   2. Debian clang + wasi-libc: a WASI preview 1 reactor core module
#   3. componentize-c component: core module + the preview 1 reactor adapter -> component
# Env: COMPONENTIZE_C (default $HOME/.cache/swasm/guest-target/release/componentize-c), CC.
set -euo pipefail

example=${1:?usage: build.sh <example> <out.wasm>}
out=${2:?usage: build.sh <example> <out.wasm>}
here=$(cd "$(dirname "$0")" && pwd)
tool=${COMPONENTIZE_C:-$HOME/.cache/swasm/guest-target/release/componentize-c}
[[ -f $here/$example/app.c ]] || { echo "build.sh: no $here/$example/app.c" >&2; exit 2; }
[[ -x $tool ]] || { echo "build.sh: $tool missing: run make setup" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$tool" bindings "$here/../../wit" plugin "$work/gen"
# --strip-debug: Debian's wasi-libc carries DWARF (about 110 KB) that no one reads here; the
# name section stays, so traps still show function names.
${CC:-clang} --target=wasm32-wasi -mexec-model=reactor -Os -Wl,--strip-debug -Wall -Wextra -Werror \
    -Wno-unused-parameter -I "$work/gen" \
    -o "$work/core.wasm" "$here/$example/app.c" "$work/gen/plugin.c" "$work/gen/plugin_component_type.o"
"$tool" component "$work/core.wasm" "$out.tmp"
mv "$out.tmp" "$out"
