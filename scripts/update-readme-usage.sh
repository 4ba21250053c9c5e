#!/usr/bin/env bash
# Rewrites the usage block of README.md (between <!-- usage:start --> and
# <!-- usage:end -->) from `cargo run --quiet -- --help`, so that it is
# exactly what the binary prints. tests/docs.rs fails when they differ.
# Usage: scripts/update-readme-usage.sh
set -euo pipefail
cd "$(dirname "$0")/.."

readme=README.md
start='<!-- usage:start -->'
end='<!-- usage:end -->'
grep -qxF "$start" "$readme" || { echo "update-readme-usage: no '$start' line in $readme" >&2; exit 1; }
grep -qxF "$end" "$readme" || { echo "update-readme-usage: no '$end' line in $readme" >&2; exit 1; }

help=$(mktemp)
out=$(mktemp)
trap 'rm -f "$help" "$out"' EXIT

# The help shows [env: HAMMER_RSH=<value>] and may follow COLUMNS: render it
# without the caller's settings, as tests/docs.rs does.
unset COLUMNS
while IFS= read -r var; do unset "$var"; done < <(env | sed -n 's/^\(HAMMER_[A-Za-z0-9_]*\)=.*/\1/p')
cargo run --quiet --locked -- --help >"$help"

awk -v start="$start" -v end="$end" -v help="$help" '
    $0 == start {
        print
        print "```text"
        while ((getline line < help) > 0) { sub(/[ \t]+$/, "", line); print line }
        print "```"
        skip = 1
        next
    }
    $0 == end { skip = 0 }
    !skip { print }
' "$readme" >"$out"

if cmp -s "$out" "$readme"; then
    echo "update-readme-usage: $readme is up to date"
else
    cat "$out" >"$readme"
    echo "update-readme-usage: rewrote the usage block of $readme"
fi
