#!/usr/bin/env bash
# Puts Monocypher 4.0.3 (monocypher.c, monocypher.h: keyed BLAKE2b for the link's MACs) into DEST.
# Monocypher is not committed: it comes from PyPI, as the sdist of the pymonocypher binding, whose
# top level holds the two files unchanged. The sdist's sha256 is pinned below; a file that does
# not match is refused. The sdist is kept in a cache (TT_CACHE_DIR, default ~/.cache/tinytrain)
# so the host, bare-metal and fuzz builds download it once.
#   tools/fetch-monocypher.sh DEST [PYTHON]
# Offline: put pymonocypher-4.0.3.4.tar.gz in the cache directory (or set
# TT_MONOCYPHER_SDIST=/path/to/it) and run the build again.
set -euo pipefail

VERSION=4.0.3.4
SHA256=5e56e3d3eb770a53e0b9f6274146663c11a11f3d0de5cd48e3be0428d1b07a4a
SDIST=pymonocypher-$VERSION.tar.gz

dest=${1:?usage: $0 DEST [PYTHON]}
python=${2:-python3}
cache=${TT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tinytrain}
stamp="$dest/.sdist-sha256"

if [ -f "$dest/monocypher.c" ] && [ -f "$dest/monocypher.h" ] && [ -f "$stamp" ] &&
   [ "$(cat "$stamp")" = "$SHA256" ]; then
  exit 0
fi

check() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$SHA256" ]; }

sdist=${TT_MONOCYPHER_SDIST:-$cache/$SDIST}
if ! check "$sdist"; then
  if [ -n "${TT_MONOCYPHER_SDIST:-}" ]; then
    echo "fetch-monocypher: TT_MONOCYPHER_SDIST=$sdist is missing or not sha256 $SHA256" >&2
    exit 1
  fi
  mkdir -p "$cache"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "fetch-monocypher: downloading $SDIST from PyPI into $cache" >&2
  if ! "$python" -m pip download -q "pymonocypher==$VERSION" --no-binary :all: --no-deps \
       --ignore-requires-python \
       -d "$tmp" >"$tmp/pip.log" 2>&1 || [ ! -f "$tmp/$SDIST" ]; then
    sed 's/^/  pip: /' "$tmp/pip.log" | tail -5 >&2
    echo "fetch-monocypher: cannot download $SDIST from PyPI (offline?). Monocypher provides the" \
         "link's MACs (docs/security.md). Put $SDIST (sha256 $SHA256) in $cache, or set" \
         "TT_MONOCYPHER_SDIST to its path, and build again." >&2
    exit 1
  fi
  if ! check "$tmp/$SDIST"; then
    echo "fetch-monocypher: $SDIST from PyPI has sha256 $(sha256sum "$tmp/$SDIST" | cut -d' ' -f1)," \
         "expected $SHA256: refused" >&2
    exit 1
  fi
  mv "$tmp/$SDIST" "$cache/$SDIST"
  sdist=$cache/$SDIST
fi

mkdir -p "$dest"
tar -xzf "$sdist" -C "$dest" --strip-components=1 \
  "pymonocypher-$VERSION/monocypher.c" "pymonocypher-$VERSION/monocypher.h" \
  "pymonocypher-$VERSION/LICENSE.txt"
echo "$SHA256" >"$stamp"
