#!/usr/bin/env bash
# THE test command (README, .ci/run): installs what it needs, then runs every test tier:
# unit (pure code), component (loopback fakes), contract + end-to-end on a real Asterisk with real SIP peers.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
cd "$HERE"
bash scripts/install.sh
mkdir -p artifacts
set +e
.venv/bin/python -m pytest -q -p no:cacheprovider --timeout=300 "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then echo "test: no tests collected"; fi
exit $rc
