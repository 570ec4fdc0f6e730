#!/usr/bin/env bash
# The long fault run in chain mode (`./run.sh soak`): 5 minutes by default.
exec python3 "$(dirname "$0")/test_faults.py" --chain anvil --duration "${SOAK_SECONDS:-300}" --clients 8
