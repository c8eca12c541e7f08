#!/usr/bin/env bash
# Runs every test: Rust unit and integration tests, then the client-library tests (slixmpp,
# nbxmpp) against the real binary. Installs the Python/Debian packages those need.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --all-targets
cargo test --workspace
bash tests/py/install-deps.sh
"${HEARTH_TEST_PYTHON:-/opt/hearth-test-venv/bin/python}" -m pytest tests/py -q
