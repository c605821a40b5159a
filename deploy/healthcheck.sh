#!/bin/bash
# Container health check: an HTTP GET of sshbio's /healthz (or the path in $1) on its metrics
# listener, through bash's /dev/tcp because the image has no curl or wget. Exit 0 on HTTP 200.
#
#   sshbio-healthcheck [PATH [ADDR:PORT]]    (ADDR:PORT defaults to $SSHBIO_METRICS_LISTEN)
set -u

path="${1:-/healthz}"
listen="${2:-${SSHBIO_METRICS_LISTEN:-}}"
if [ -z "$listen" ]; then
    echo "no metrics listener: set SSHBIO_METRICS_LISTEN (or --metrics-listen) for health checks" >&2
    exit 1
fi
port="${listen##*:}"
addr="${listen%:*}"
case "$addr" in
    "" | 0.0.0.0) host=127.0.0.1 ;;
    "[::]") host=::1 ;;
    "["*"]") host="${addr#[}" && host="${host%]}" ;;
    *) host="$addr" ;;
esac

if ! exec 3<>"/dev/tcp/$host/$port"; then
    echo "cannot connect to $host port $port" >&2
    exit 1
fi
printf 'GET %s HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n' "$path" >&3
if ! IFS= read -r -t 4 status <&3; then
    echo "no answer from $host port $port" >&2
    exit 1
fi
status="${status%$'\r'}"
case "$status" in
    "HTTP/1."[01]" 200"*) exit 0 ;;
esac
echo "$path: $status" >&2
exit 1
