#!/usr/bin/env bash
# Builds hammer-mirror and runs its main job on the embedded store: make a
# master PFS, record a directory tree into it, copy it to a slave, change the
# tree, copy the increment, and export both TIDs to show the history.
# Usage: scripts/demo.sh [directory-to-record]   (default: this repository's src/)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked
hm=$PWD/target/release/hammer-mirror
src=${1:-$PWD/src}
work=$(mktemp -d "${TMPDIR:-/tmp}/hammer-mirror-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "== working in $work"
cp -a "$src" "$work/tree"
"$hm" pfs-master "$work/master" label=demo
"$hm" import "$work/tree" "$work/master"
"$hm" -y copy "$work/master" "$work/slave"
first=$("$hm" pfs-status --json "$work/slave" | sed -n 's/.*"sync_end_tid":"\(0x[0-9a-f]*\)".*/\1/p')
echo "changed" > "$work/tree/NEW-FILE"
"$hm" import "$work/tree" "$work/master"
"$hm" copy "$work/master" "$work/slave"
"$hm" pfs-status "$work/master" "$work/slave"
"$hm" export "$work/slave" "$work/now"
"$hm" export --as-of "$first" "$work/slave" "$work/before"
diff -r "$work/tree" "$work/now" && echo "== the slave's latest export equals the tree"
[ ! -e "$work/before/NEW-FILE" ] && echo "== as of $first the slave has no NEW-FILE: history is kept"
