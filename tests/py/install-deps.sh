#!/usr/bin/env bash
# Installs what the client-library tests need on a fresh Debian 12 machine:
# Debian's PyGObject/GLib/libsoup3 (nbxmpp's runtime), and a venv at $VENV over the system
# Python (so it sees python3-gi) with slixmpp, nbxmpp and pytest. Idempotent.
set -euo pipefail
VENV=${HEARTH_TEST_VENV:-/opt/hearth-test-venv}
here=$(cd "$(dirname "$0")" && pwd)
export DEBIAN_FRONTEND=noninteractive
need=()
for pkg in python3-gi gir1.2-glib-2.0 gir1.2-soup-3.0 python3-venv; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${need[*]}"
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "install-deps: creating $VENV"
  /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
# nbxmpp without dependencies: pip would otherwise build PyGObject from source, while Debian's
# python3-gi (3.42) already satisfies it.
"$VENV/bin/pip" install -q --disable-pip-version-check --no-deps "$(grep '^nbxmpp' "$here/requirements.txt")"
"$VENV/bin/pip" install -q --disable-pip-version-check $(grep -v '^#\|^nbxmpp\|^$' "$here/requirements.txt")
"$VENV/bin/python" -c "import nbxmpp, slixmpp; print('install-deps: nbxmpp', nbxmpp.__version__, 'slixmpp', slixmpp.__version__)"
