#!/usr/bin/env bash
# The baseline for BENCHMARKS.md: the same load generator against OpenSSH's sshd with a
# ForceCommand that runs the same UI (`sshbio preview`) on the pty sshd allocates.
#
#   bench/sshd-baseline.sh [load generator options...]     e.g.  bench/sshd-baseline.sh --quick
#
# Needs root: it installs openssh-server if missing (without starting the distribution's
# sshd), creates a throwaway local user with an empty password (sshd accepts "none" auth for
# it with PermitEmptyPasswords), runs a private sshd on 127.0.0.1:<free high port> with its own
# host key and config in a temporary directory, and removes all of that again on exit.
# The OpenSSH-client part runs under `script` only: with pipes `ssh -tt` asks for a 0x0 pty,
# which sshbio maps to 80x24 but a program on a real pty (the preview) cannot.
# Environment: SSHD_IDLE (idle levels, default 1000: each sshd session is 4 processes and
# kernel.pid_max here is 32768), FEATURES (cargo features for the bench build, e.g. aws-lc).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "sshd-baseline: needs root (a private sshd and a throwaway user)" >&2
  exit 1
fi

if [ ! -x /usr/sbin/sshd ]; then
  export DEBIAN_FRONTEND=noninteractive
  added_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    # Keep the package's postinst from starting a system sshd on port 22.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    added_policy=1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends openssh-server
  if [ -n "$added_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
fi

features=()
if [ -n "${FEATURES:-}" ]; then features=(--features "$FEATURES"); fi
cargo bench --bench load "${features[@]}" --no-run
bin=${CARGO_TARGET_DIR:-target}/release/sshbio

user=sshbio-bench
tmp=$(mktemp -d /tmp/sshbio-sshd.XXXXXX)
chmod 755 "$tmp"
sshd_pid=
created_user=
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  if [ -n "$sshd_pid" ]; then
    kill "$sshd_pid" 2>/dev/null || true
    wait "$sshd_pid" 2>/dev/null || true
  fi
  if [ -n "$created_user" ]; then
    # Sessions' processes are gone once sshd is; userdel refuses while any remain.
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      userdel "$user" 2>/dev/null && break
      sleep 0.5
    done
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

if ! id "$user" >/dev/null 2>&1; then
  useradd --no-create-home --home-dir / --shell /bin/sh "$user"
  created_user=1
fi
passwd -d "$user" >/dev/null

cp "$bin" "$tmp/sshbio"
cp content.toml "$tmp/content.toml"
chmod 755 "$tmp/sshbio"
chmod 644 "$tmp/content.toml"

if "$tmp/sshbio" preview --help >/dev/null 2>&1; then
  command="$tmp/sshbio preview --content $tmp/content.toml"
  what="sshbio preview"
else
  # Stand-in without ratatui: the frame sshbio sends, then wait for q.
  echo "sshd-baseline: no 'sshbio preview' in this build; using a captured frame as the ForceCommand" >&2
  cargo bench --bench load "${features[@]}" -- --parts first --first 1 --dump-frame "$tmp/frame.ans" >/dev/null
  cat >"$tmp/standin.sh" <<EOF
#!/bin/sh
stty raw -echo
cat $tmp/frame.ans
while c=\$(dd bs=1 count=1 2>/dev/null) && [ -n "\$c" ]; do
  [ "\$c" = q ] && break
done
printf '\033[?1049l'
EOF
  chmod 755 "$tmp/standin.sh"
  command="$tmp/standin.sh"
  what="captured frame (cat) stand-in"
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
  shuf -i 40000-59999 -n 1)
ssh-keygen -q -t ed25519 -N '' -f "$tmp/host_ed25519" >/dev/null
mkdir -p /run/sshd
cat >"$tmp/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $tmp/host_ed25519
PidFile $tmp/sshd.pid
UsePAM no
AllowUsers $user
PermitRootLogin no
PasswordAuthentication yes
PermitEmptyPasswords yes
KbdInteractiveAuthentication no
PubkeyAuthentication no
StrictModes no
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowTcpForwarding no
AllowAgentForwarding no
PermitTTY yes
AcceptEnv LANG LC_* COLORTERM NO_COLOR
MaxStartups 4000
MaxSessions 1
LoginGraceTime 30
LogLevel ERROR
ForceCommand $command
EOF
/usr/sbin/sshd -t -f "$tmp/sshd_config"
ulimit -n 65536 2>/dev/null || true
/usr/sbin/sshd -D -e -f "$tmp/sshd_config" 2>"$tmp/sshd.log" &
sshd_pid=$!
for _ in $(seq 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  sleep 0.05
done

sshd_version=$(/usr/sbin/sshd -V 2>&1 | head -1 || true)
echo "sshd-baseline: $sshd_version on 127.0.0.1:$port (pid $sshd_pid), ForceCommand $what"
status=0
cargo bench --bench load "${features[@]}" -- \
  --target "127.0.0.1:$port" --server-pid "$sshd_pid" --user "$user" \
  --label "OpenSSH sshd + ForceCommand ($what)" --idle "${SSHD_IDLE:-1000}" --ssh-via script "$@" || status=$?
if [ -s "$tmp/sshd.log" ]; then
  echo "sshd log (last lines):"
  tail -5 "$tmp/sshd.log"
fi
exit $status
