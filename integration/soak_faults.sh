#!/usr/bin/env bash
# The long fault run (`./run.sh soak`): test_faults.py for 5 minutes.
exec python3 "$(dirname "$0")/test_faults.py" --duration "${SOAK_SECONDS:-300}" --clients 8
