#!/bin/sh
# `redis-server ARGS` listening on every interface without protected mode (as the official image does).
set -eu
if [ "${1:-}" = redis-server ]; then
    shift
    exec redis-server --bind 0.0.0.0 --protected-mode no --dir /data "$@"
fi
exec "$@"
