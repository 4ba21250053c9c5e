#!/usr/bin/env bash
# Starts a throw-away sshd on 127.0.0.1 for the end-to-end tests and benchmarks.
# Usage: scripts/start-sshd.sh <dir>
# Creates <dir>/{host_key,user_key,authorized_keys,sshd_config,sshd.log,sshd.pid},
# starts sshd on a free port, waits until it listens, and prints one line:
#   PORT=<port> KEY=<dir>/user_key PID=<pid>
# Stop it with: kill "$(cat <dir>/sshd.pid)"
set -euo pipefail
dir=${1:?usage: start-sshd.sh <dir>}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
sshd=$(command -v sshd || echo /usr/sbin/sshd)
if [ ! -x "$sshd" ]; then
    echo "start-sshd.sh: sshd not found (install openssh-server)" >&2
    exit 2
fi
# Debian's sshd refuses to start without its privilege-separation directory.
[ -d /run/sshd ] || mkdir -p -m 0755 /run/sshd 2>/dev/null || true
[ -f "$dir/host_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key"
[ -f "$dir/user_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$dir/user_key"
cp "$dir/user_key.pub" "$dir/authorized_keys"
chmod 600 "$dir/authorized_keys"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$dir/sshd_config" <<CONF
ListenAddress 127.0.0.1
Port $port
HostKey $dir/host_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
PrintMotd no
PermitUserEnvironment no
AcceptEnv no
CONF
: > "$dir/sshd.log"
"$sshd" -D -f "$dir/sshd_config" -E "$dir/sshd.log" </dev/null >/dev/null 2>&1 &
pid=$!
echo "$pid" > "$dir/sshd.pid"
for _ in $(seq 1 100); do
    if grep -q "Server listening" "$dir/sshd.log" 2>/dev/null; then
        echo "PORT=$port KEY=$dir/user_key PID=$pid"
        exit 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "start-sshd.sh: sshd exited:" >&2
        cat "$dir/sshd.log" >&2
        exit 1
    fi
    sleep 0.1
done
echo "start-sshd.sh: sshd did not start listening" >&2
cat "$dir/sshd.log" >&2
kill "$pid" 2>/dev/null || true
exit 1
