#!/bin/sh
# The command of backend/Dockerfile.worker.
#   worker.sh QUEUES [celery worker options...]   a Celery worker consuming QUEUES (comma-separated:
#                                                 schedule,evaluate,default for ticks, live orders and
#                                                 e-mail; backtests for backtests and validations)
#   worker.sh beat [celery beat options...]       beat (exactly one per platform)
# Environment: CELERY_CONCURRENCY (pool processes, default 4), CELERY_MAX_TASKS_PER_CHILD (tasks before a
# pool process is replaced, default 1000), CELERY_NICE (0-19, CPU niceness, default 0), CELERY_LOGLEVEL
# (default INFO), CELERY_WORKER_NAME (node name before @hostname, default worker), CELERY_BEAT_SCHEDULE
# (beat's schedule file, default /app/var/celerybeat-schedule).
set -eu

if [ $# -lt 1 ] || [ -z "$1" ]; then
    echo "usage: worker.sh QUEUES|beat [options...]" >&2
    exit 2
fi
role="$1"
shift
loglevel="${CELERY_LOGLEVEL:-INFO}"

if [ "$role" = beat ]; then
    echo beat > /tmp/tradefleet-role
    exec celery -A tradefleet.worker.app beat --loglevel "$loglevel" \
        --schedule "${CELERY_BEAT_SCHEDULE:-/app/var/celerybeat-schedule}" "$@"
fi

name="${CELERY_WORKER_NAME:-worker}@$(hostname)"
echo "worker $name" > /tmp/tradefleet-role
exec nice -n "${CELERY_NICE:-0}" celery -A tradefleet.worker.app worker \
    --queues "$role" \
    --concurrency "${CELERY_CONCURRENCY:-4}" \
    --max-tasks-per-child "${CELERY_MAX_TASKS_PER_CHILD:-1000}" \
    --loglevel "$loglevel" \
    --hostname "$name" \
    "$@"
