#!/usr/bin/env bash
# Builds hammer-mirror and installs the binary, the man page, shell
# completions and (where systemd runs) the stream unit. Fetches nothing
# itself; cargo needs the crates already downloaded (e.g. by an earlier
# build) when the machine is offline.
#
# Usage: scripts/install.sh [--no-build] [--systemd|--no-systemd]
#   PREFIX   where to install (default /usr/local)
#   DESTDIR  staging root for packaging (default empty: install for real)
#   --no-build      install target/release/hammer-mirror as it is
#   --systemd       install the unit even where systemd is not running
#   --no-systemd    never install the unit
#
# Installs:
#   $PREFIX/bin/hammer-mirror
#   $PREFIX/share/man/man8/hammer-mirror.8
#   $PREFIX/share/bash-completion/completions/hammer-mirror
#   $PREFIX/share/zsh/site-functions/_hammer-mirror
#   $PREFIX/share/fish/vendor_completions.d/hammer-mirror.fish
#   $PREFIX/share/doc/hammer-mirror/hammer-mirror-stream.conf.example
#   $PREFIX/share/doc/hammer-mirror/hammer-mirror.toml.example
#   $PREFIX/lib/systemd/system/hammer-mirror-stream@.service   (with systemd)
#   $PREFIX/lib/systemd/system/hammer-mirror-watch@.service    (with systemd)
#   $PREFIX/lib/systemd/system/hammer-mirror.service           (with systemd)
set -euo pipefail
cd "$(dirname "$0")/.."

PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
build=1
systemd=auto
for a in "$@"; do
    case "$a" in
        --no-build) build=0 ;;
        --systemd) systemd=yes ;;
        --no-systemd) systemd=no ;;
        -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown option $a (try --help)" >&2; exit 2 ;;
    esac
done
case "$PREFIX" in
    /*) ;;
    *) echo "install.sh: PREFIX must be an absolute path, not '$PREFIX'" >&2; exit 2 ;;
esac

if [ $build = 1 ]; then
    cargo build --release --locked
fi
bin=target/release/hammer-mirror
[ -x "$bin" ] || { echo "install.sh: $bin is missing; run without --no-build" >&2; exit 1; }

root=$DESTDIR$PREFIX
if [ -z "$DESTDIR" ] && ! { mkdir -p "$root" 2>/dev/null && [ -w "$root" ]; }; then
    echo "install.sh: cannot write to $root; run it as root (sudo), or set PREFIX=\$HOME/.local" >&2
    exit 1
fi

installed=()
put() { # put MODE SOURCE-FILE DESTINATION
    install -d "$(dirname "$3")"
    install -m "$1" "$2" "$3"
    installed+=("$3")
}

put 0755 "$bin" "$root/bin/hammer-mirror"
put 0644 man/hammer-mirror.8 "$root/share/man/man8/hammer-mirror.8"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" completions bash >"$tmp/bash"
"$bin" completions zsh >"$tmp/zsh"
"$bin" completions fish >"$tmp/fish"
put 0644 "$tmp/bash" "$root/share/bash-completion/completions/hammer-mirror"
put 0644 "$tmp/zsh" "$root/share/zsh/site-functions/_hammer-mirror"
put 0644 "$tmp/fish" "$root/share/fish/vendor_completions.d/hammer-mirror.fish"
put 0644 scripts/hammer-mirror-stream.conf.example "$root/share/doc/hammer-mirror/hammer-mirror-stream.conf.example"
put 0644 scripts/hammer-mirror.toml.example "$root/share/doc/hammer-mirror/hammer-mirror.toml.example"

if [ $systemd = auto ]; then
    # systemd runs here only if it booted the machine: a systemctl binary alone proves nothing.
    if [ -d /run/systemd/system ]; then
        systemd=yes
    else
        systemd=no
        echo "install.sh: systemd is not running here (no /run/systemd/system): no unit installed." >&2
        echo "  Run a stream under nohup instead: nohup $PREFIX/bin/hammer-mirror stream SRC DST >>stream.log 2>&1 &" >&2
        echo "  (and a watch: nohup $PREFIX/bin/hammer-mirror watch DIR SRC >>watch.log 2>&1 &)" >&2
        echo "  or pass --systemd to install the unit anyway (for a machine image that boots systemd)." >&2
    fi
fi
if [ $systemd = yes ]; then
    # The unit names the binary by its installed path.
    for unit in hammer-mirror-stream@.service hammer-mirror-watch@.service hammer-mirror.service; do
        sed "s|/usr/local/bin/hammer-mirror|$PREFIX/bin/hammer-mirror|" "scripts/$unit" >"$tmp/$unit"
        put 0644 "$tmp/$unit" "$root/lib/systemd/system/$unit"
    done
fi

echo "install.sh: installed"
printf '  %s\n' "${installed[@]}"
if [ $systemd = yes ]; then
    echo "install.sh: for a stream, write /etc/hammer-mirror/NAME.conf like"
    echo "  $PREFIX/share/doc/hammer-mirror/hammer-mirror-stream.conf.example, then run"
    echo "  systemctl daemon-reload && systemctl enable --now hammer-mirror-stream@NAME"
    echo "install.sh: for all of a host's jobs in one process, write /etc/hammer-mirror/hammer-mirror.toml like"
    echo "  $PREFIX/share/doc/hammer-mirror/hammer-mirror.toml.example, then run"
    echo "  systemctl daemon-reload && systemctl enable --now hammer-mirror"
    echo "  (with DIR= in the same file, hammer-mirror-watch@NAME records that directory into SOURCE)"
fi
case ":${PATH:-}:" in
    *":$PREFIX/bin:"*) ;;
    *) [ -n "$DESTDIR" ] || echo "install.sh: note: $PREFIX/bin is not on PATH" ;;
esac
case "$PREFIX" in
    /usr/local|/usr) ;;
    *) echo "install.sh: note: commands that ssh runs on this host see only the default PATH;"
       echo "  peers that copy to or from here need --remote-cmd $PREFIX/bin/hammer-mirror" ;;
esac
