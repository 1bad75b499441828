#!/usr/bin/env bash
# Set up and run the whole test suite. PostgreSQL tests run when
# ORGINVITES_TEST_DATABASE_URL is set (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)
# and are skipped with a message otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
status=0
.venv/bin/python -m pytest "$@" || status=$?
if [ "$status" = 5 ]; then
  echo "pytest collected no tests" >&2
fi
exit "$status"
