#!/usr/bin/env bash
# Rebuilds the HAMMER ABI fixtures from the C transcriptions in this directory
# and compares them with the checked-in copies:
#
#   tests/fixtures/abi.txt      <- abi_check.c (struct sizes/offsets, ioctl numbers)
#   tests/fixtures/golden/*     <- golden.c    (records, stream.bin, dump.txt)
#
#   scripts/hammer-abi/regen.sh           build in a temp dir, diff; exit 1 on any difference
#   scripts/hammer-abi/regen.sh --update  write the regenerated fixtures in place
#
# Needs a C compiler (CC, default cc) for an LP64 little-endian host; the
# numbers are DragonFly x86_64's.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
fixtures="$root/tests/fixtures"
cc=${CC:-cc}

update=0
case "${1:-}" in
  --update) update=1 ;;
  "") ;;
  *) echo "usage: $0 [--update]" >&2; exit 2 ;;
esac

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

$cc -O2 -Wall -Werror -o "$tmp/abi_check" "$here/abi_check.c"
$cc -O2 -Wall -Werror -o "$tmp/golden" "$here/golden.c"
mkdir "$tmp/golden-out"
"$tmp/abi_check" >"$tmp/abi.txt"
"$tmp/golden" "$tmp/golden-out"

if [ "$update" = 1 ]; then
  mkdir -p "$fixtures/golden"
  cp "$tmp/abi.txt" "$fixtures/abi.txt"
  cp "$tmp"/golden-out/* "$fixtures/golden/"
  echo "updated $fixtures/abi.txt and $fixtures/golden/"
  exit 0
fi

status=0
diff -u "$fixtures/abi.txt" "$tmp/abi.txt" || status=1
# README.md is written by hand, not generated.
diff -r --exclude=README.md "$fixtures/golden" "$tmp/golden-out" || status=1
if [ "$status" = 0 ]; then
  echo "fixtures reproduced: no difference"
else
  echo "fixtures differ from the C transcriptions (run with --update to rewrite them)" >&2
fi
exit "$status"
