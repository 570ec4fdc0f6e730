#!/usr/bin/env bash
# The Jepsen-style fault run (test_faults.py) in chain mode: a cluster on a
# local anvil with the authenticated raft transport and the contract as
# leader arbiter, under kill -9, SIGSTOP and restarts for 20 s.
exec python3 "$(dirname "$0")/test_faults.py" --chain anvil "$@"
