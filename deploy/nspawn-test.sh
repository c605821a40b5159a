#!/usr/bin/env bash
# Runs deploy/sshbio.service under a real systemd: boots Debian 12 in a systemd-nspawn container
# with a private network (loopback only, nothing leaves the machine), installs the unit the way
# deploy/README.md says, and checks from inside: port 22 answers as a dynamic non-root user with
# CAP_NET_BIND_SERVICE as its only capability, seccomp on; a key pre-seeded in /var/lib/sshbio is
# the one served (systemd moves it to /var/lib/private); /healthz and /readyz; live reload on
# edit; `systemctl reload` validating first; a clean stop. Exit status 0 when all passed.
#
#   sudo bash deploy/nspawn-test.sh PATH/TO/sshbio
#
# Not part of check.sh or CI: it needs root, `apt-get install debootstrap systemd-container`,
# and Debian's package mirror for the first run (the tree is kept in $NSPAWN_TREE,
# default /var/tmp/sshbio-nspawn-root, and reused).
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${1:?usage: deploy/nspawn-test.sh PATH/TO/sshbio}"
tree="${NSPAWN_TREE:-/var/tmp/sshbio-nspawn-root}"
for tool in debootstrap systemd-nspawn; do
    command -v "$tool" >/dev/null || { echo "needs $tool: apt-get install debootstrap systemd-container" >&2; exit 1; }
done

if [ ! -x "$tree/lib/systemd/systemd" ]; then
    echo "debootstrap Debian 12 into $tree (once)"
    debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,procps,curl bookworm "$tree" \
        http://deb.debian.org/debian >/dev/null
    echo sshbio-nspawn-test >"$tree/etc/hostname"
fi

# A fresh state for every run.
rm -rf "$tree/var/lib/private/sshbio" "$tree/var/lib/sshbio" "$tree/etc/sshbio" "$tree/results"
mkdir -p "$tree/results"
install -m 0755 "$bin" "$tree/usr/local/bin/sshbio"
install -d -m 0755 "$tree/etc/sshbio"
install -m 0644 content.toml "$tree/etc/sshbio/content.toml"
install -m 0644 deploy/sshbio.service "$tree/etc/systemd/system/sshbio.service"
# README, systemd step 2: an existing key, installed before the first start.
seed="$(mktemp -d)"
trap 'rm -rf "$seed"' EXIT
"$bin" keygen --keys "$seed" >/dev/null
install -D -m 0600 "$seed/ssh_host_ed25519_key" "$tree/var/lib/sshbio/keys/ssh_host_ed25519_key"
fingerprint_out="$("$bin" fingerprint --keys "$seed")"
printf '%s\n' "${fingerprint_out%%$'\n'*}" >"$tree/results/want-fingerprint"

cat >"$tree/usr/local/bin/sshbio-probe" <<'PROBE'
#!/bin/bash
# Inside the container, after sshbio.service started. PASS/FAIL lines go to /results/out.
exec >/results/out 2>&1
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; }
expect() { if eval "$1"; then pass "$2"; else fail "$2"; fi; }

for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/22) 2>/dev/null && break; sleep 0.1; done
banner=""
if exec 3<>/dev/tcp/127.0.0.1/22; then IFS= read -r -t 5 banner <&3; exec 3<&-; fi
expect '[[ "$banner" == SSH-2.0-* ]]' "banner on port 22: ${banner%$'\r'}"

pid=$(systemctl show sshbio -p MainPID --value)
uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
expect '[ "$uid" -ne 0 ]' "runs as uid $uid, not root"
expect '[ "$(systemctl show sshbio -p User --value)" = sshbio ]' "DynamicUser sshbio"
caps=$(awk '/^CapEff:/ {print $2}' "/proc/$pid/status")
expect '[ "$caps" = 0000000000000400 ]' "effective capabilities $caps = CAP_NET_BIND_SERVICE only"
expect 'grep -q "^NoNewPrivs:[[:space:]]*1" /proc/$pid/status' "NoNewPrivs"
expect 'grep -q "^Seccomp:[[:space:]]*2" /proc/$pid/status' "seccomp filter on"

key=/var/lib/private/sshbio/keys/ssh_host_ed25519_key
expect '[ -L /var/lib/sshbio ] && [ -f $key ]' "state moved to /var/lib/private/sshbio"
expect '[ "$(stat -c "%a %u" $key)" = "600 $uid" ]' "key mode 600, owned by the service: $(stat -c '%a %u' $key)"
got=$(/usr/local/bin/sshbio fingerprint --keys /var/lib/sshbio/keys | sed -n 1p)
expect '[ "$got" = "$(cat /results/want-fingerprint)" ]' "the pre-seeded key is served: $got"

for path in /healthz /readyz; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:9090$path")
    expect '[ "$code" = 200 ]' "GET $path: $code"
done

since=$(date '+%Y-%m-%d %H:%M:%S')
sed -i 's/^headline = .*/headline = "Edited in the container"/' /etc/sshbio/content.toml
reloaded=no
for _ in $(seq 1 50); do
    journalctl -u sshbio --since "$since" -o cat | grep -q 'content reloaded' && { reloaded=yes; break; }
    sleep 0.1
done
expect '[ $reloaded = yes ]' "edit reloaded live (inotify on /etc/sshbio under ProtectSystem=strict)"
expect 'systemctl reload sshbio' "systemctl reload (valid file)"
echo 'not = = toml' >>/etc/sshbio/content.toml
expect '! systemctl reload sshbio 2>/dev/null' "systemctl reload fails on an invalid file"
expect 'systemctl is-active -q sshbio' "still serving after the failed reload"

start=$(date +%s%N)
systemctl stop sshbio
took=$(( ($(date +%s%N) - start) / 1000000 ))
expect '[ "$(systemctl show sshbio -p Result --value)" = success ]' "stopped cleanly in $took ms"
journalctl -u sshbio --no-pager -o cat | sed 's/^/  journal: /'
echo DONE
PROBE
chmod 0755 "$tree/usr/local/bin/sshbio-probe"
cat >"$tree/etc/systemd/system/sshbio-probe.service" <<'UNIT'
[Unit]
After=sshbio.service
Wants=sshbio.service
SuccessAction=poweroff-force
FailureAction=poweroff-force
[Service]
Type=oneshot
ExecStart=/usr/local/bin/sshbio-probe
UNIT
mkdir -p "$tree/etc/systemd/system/multi-user.target.wants"
ln -sf /etc/systemd/system/sshbio.service "$tree/etc/systemd/system/multi-user.target.wants/sshbio.service"
ln -sf /etc/systemd/system/sshbio-probe.service "$tree/etc/systemd/system/multi-user.target.wants/sshbio-probe.service"

echo "boot the container (private network)"
timeout 300 systemd-nspawn --quiet --keep-unit --register=no --private-network -D "$tree" -b \
    </dev/null >"$tree/results/boot.log" 2>&1 || true
if ! grep -q '^DONE' "$tree/results/out" 2>/dev/null; then
    echo "FAIL the probe did not finish; boot log:"
    tail -40 "$tree/results/boot.log"
    exit 1
fi
cat "$tree/results/out"
if grep -q '^FAIL' "$tree/results/out"; then
    echo "deploy/nspawn-test.sh: FAILED"
    exit 1
fi
echo "deploy/nspawn-test.sh: all checks passed"
