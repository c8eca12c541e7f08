#!/usr/bin/env bash
# Installs what the client-library tests (tests/py) need, on a fresh Debian 12 machine or again
# on one that has them (idempotent):
#   1. from Debian: PyGObject, GLib/Gio and libsoup3 introspection data (nbxmpp's runtime),
#      venv support for Debian's Python 3.11, Prosody (with its libunbound resolver) and
#      ejabberd for the federation tests, coturn for the TURN test, slapd and ldap-utils for the
#      LDAP tests (their services are not started: the tests run their own instances);
#   2. a venv at $HEARTH_TEST_VENV (default /opt/hearth-test-venv) over /usr/bin/python3.11 with
#      --system-site-packages, so it sees Debian's python3-gi;
#   3. into it, the pinned packages of requirements.txt (nbxmpp without dependencies: Debian's
#      python3-gi 3.42 is its PyGObject);
#   4. strophe.js and its Node.js helpers from tests/web/package-lock.json (npm ci), if node and
#      npm are installed; without node, test_web.py skips its strophe.js tests.
# Then run the tests with: $HEARTH_TEST_VENV/bin/pytest tests/py
set -euo pipefail
VENV=${HEARTH_TEST_VENV:-/opt/hearth-test-venv}
SYSPY=/usr/bin/python3.11
here=$(cd "$(dirname "$0")" && pwd)
req="$here/requirements.txt"
export DEBIAN_FRONTEND=noninteractive
say() { echo "install-deps: $*"; }

apt_pkgs=(python3.11 python3.11-venv python3-gi gir1.2-glib-2.0 gir1.2-soup-3.0 prosody lua5.4-unbound ejabberd coturn slapd ldap-utils openssl)
missing=()
for pkg in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { say "need root to install ${missing[*]}"; exit 1; }
  say "apt-get update"
  apt-get update -qq
  say "apt-get install ${missing[*]}"
  # Packaged daemons are not started: they would hold the XMPP ports on every address.
  no_start=/usr/sbin/policy-rc.d
  [ -e "$no_start" ] || { printf '#!/bin/sh\nexit 101\n' >"$no_start"; chmod +x "$no_start"; trap 'rm -f "$no_start"' EXIT; }
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  say "Debian packages present: ${apt_pkgs[*]}"
fi

# A venv that cannot import Debian's gi (missing, broken, or made from another Python) is remade.
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys, gi; assert sys.base_prefix == "/usr"' 2>/dev/null; then
  say "venv $VENV present"
else
  say "creating venv $VENV ($SYSPY -m venv --system-site-packages)"
  rm -rf "$VENV"
  "$SYSPY" -m venv --system-site-packages "$VENV"
fi

pip=("$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q)
nbxmpp_pin=$(grep -E '^nbxmpp==' "$req")
say "pip install --no-deps $nbxmpp_pin"
"${pip[@]}" --no-deps "$nbxmpp_pin"
others=$(grep -vE '^(#|nbxmpp==|[[:space:]]*$)' "$req" | tr '\n' ' ')
say "pip install $others"
# shellcheck disable=SC2086
"${pip[@]}" $others

if command -v node >/dev/null && command -v npm >/dev/null; then
  say "npm ci --prefix tests/web (strophe.js for test_web.py)"
  npm ci --prefix "$here/../web" --no-audit --no-fund --loglevel=error
else
  say "node/npm not found: test_web.py will skip its strophe.js tests"
fi

"$VENV/bin/python" - <<'PY'
import gi
gi.require_version("Gio", "2.0")
gi.require_version("GLib", "2.0")
gi.require_version("Soup", "3.0")
from gi.repository import GLib, Soup  # noqa: F401
import nbxmpp, slixmpp, pytest, websockets, prometheus_client  # noqa: F401
from nbxmpp.client import Client  # noqa: F401
print(f"install-deps: ok: nbxmpp {nbxmpp.__version__}, slixmpp {slixmpp.__version__}, "
      f"PyGObject {gi.__version__}, GLib {GLib.MAJOR_VERSION}.{GLib.MINOR_VERSION}, pytest {pytest.__version__}")
PY
say "venv: $VENV — run the tests with: $VENV/bin/pytest tests/py"
