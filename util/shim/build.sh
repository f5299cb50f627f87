#!/usr/bin/env bash
# util/shim/build.sh - build the LD_PRELOAD shim (saveitem_shim.c) into
# build/shim/libsaveitem_shim.so and print its path; see the header of
# saveitem_shim.c for what it does and its environment
#
#   util/shim/build.sh
#
# knobs: CC (default cc)

set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

SRC=$SAVEITEM_UTIL/shim/saveitem_shim.c
OUT=$SAVEITEM_ROOT/build/shim/libsaveitem_shim.so

mkdir -p "$(dirname "$OUT")"

if [ ! -f "$OUT" ] || [ "$SRC" -nt "$OUT" ]; then
    "${CC:-cc}" -O2 -g -Wall -Wextra -Werror -shared -fPIC \
        -o "$OUT.tmp" "$SRC" -ldl || die "cannot build the shim"
    mv -f "$OUT.tmp" "$OUT"
    say "built $OUT"
fi

printf '%s\n' "$OUT"
