#!/bin/sh
# Container entrypoint: puts the SSH host key where sshbio reads it, then runs sshbio.
#
# sshbio reads its host key only from KEYS/ssh_host_ed25519_key and refuses a key file that
# group or others can read. Platforms hand secrets over in other shapes, so this copies one in:
#   SSHBIO_HOST_KEY_FILE  path of the key to copy, e.g. a Kubernetes Secret or Docker secret
#                         mount (root-owned, or group-readable through fsGroup: not usable in place)
#   SSHBIO_HOST_KEY_B64   the key itself, base64-encoded (fly.io secrets are environment variables)
# The copy lands in KEYS with mode 0600, owned by the user running sshbio. With neither variable
# set, sshbio uses the key already in KEYS or creates one there on first start.
# KEYS is the --keys argument if one is given, else $SSHBIO_KEYS, else ./keys (sshbio's default).
set -eu

keys="${SSHBIO_KEYS:-keys}"
prev=""
for arg in "$@"; do
    [ "$prev" = "--keys" ] && keys="$arg"
    case "$arg" in --keys=*) keys="${arg#--keys=}" ;; esac
    prev="$arg"
done
key="$keys/ssh_host_ed25519_key"
tmp="$key.tmp.$$"

if [ -n "${SSHBIO_HOST_KEY_B64:-}" ] || [ -n "${SSHBIO_HOST_KEY_FILE:-}" ]; then
    mkdir -p "$keys"
    rm -f "$tmp"
    if [ -n "${SSHBIO_HOST_KEY_B64:-}" ]; then
        (umask 077 && printf '%s' "$SSHBIO_HOST_KEY_B64" | base64 -d >"$tmp") || {
            rm -f "$tmp"
            echo "sshbio-entrypoint: SSHBIO_HOST_KEY_B64 is not valid base64" >&2
            exit 1
        }
    else
        (umask 077 && cat "$SSHBIO_HOST_KEY_FILE" >"$tmp") || {
            rm -f "$tmp"
            echo "sshbio-entrypoint: cannot read SSHBIO_HOST_KEY_FILE=$SSHBIO_HOST_KEY_FILE" >&2
            exit 1
        }
    fi
    chmod 600 "$tmp"
    mv -f "$tmp" "$key"
fi
# The key is on disk now; sshbio and anything it might start need not see it in the environment.
unset SSHBIO_HOST_KEY_B64

# sshbio from PATH: /usr/local/bin/sshbio in the image (check.sh runs this script with another).
exec sshbio "$@"
