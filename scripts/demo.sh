#!/usr/bin/env bash
# Set up and run the demo: SQLite in ./instance, dev mailbox, http://127.0.0.1:5000
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/orginvites demo "$@"
