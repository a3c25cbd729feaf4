#!/bin/sh
# The one-shot steps of the development stack (docker-compose.yml), as `make run` does them:
#   dev.sh setup   the checkout's secrets and the simulator's demo account into /app/var (made once, then
#                  kept: the var volume), the schema, the recorded candles for backtests
#   dev.sh demo    the market catalog from the simulator, the demo account with its running paper run, and
#                  the simulated Binance account's keys (printed)
set -eu

case "${1:-}" in
setup)
    # The secret files do not exist before this step: nothing may read them yet.
    JWT_SECRET_KEY_FILE= TOTP_ENCRYPTION_KEY_FILE= VAULT_PUBLIC_KEYS_FILE= VAULT_PRIVATE_KEYS_FILE= \
        python -c 'from tradefleet.security.local_secrets import ensure_local_secrets; ensure_local_secrets()'
    python -c 'from tradefleet.cli.stack import _demo_sim_accounts; _demo_sim_accounts()'
    tradefleet migrate
    tradefleet data import /app/data/ohlcv/*.csv.gz --exchange binance
    ;;
demo)
    tradefleet refresh-markets
    tradefleet demo
    python -c 'import json
key = json.load(open("/app/var/sim-demo-accounts.json"))[0]
print("simulated Binance account for live runs (add it on the Keys page, exchange binance): API key",
      key["api_key"] + ", secret", key["secret"])'
    ;;
*)
    echo "usage: dev.sh setup|demo" >&2
    exit 2
    ;;
esac
