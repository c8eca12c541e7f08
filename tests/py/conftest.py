"""Starts the real hearth binary once per test session on a loopback address and hands tests
what they need to connect: address, ports, the self-signed certificate to trust, and account
creation through the `hearth` CLI.

The binary is `$HEARTH_BIN`, else `$CARGO_TARGET_DIR/debug/hearth` (default `target/`; build it
first: `cargo build`).
Every test creates its own, uniquely named accounts, so tests are independent of each other.
When a test fails, the tail of the server's log is attached to its report."""

import contextlib
import itertools
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
# An address of our own in 127.0.0.0/8, so other servers on 127.0.0.1 do not matter.
HOST = "127.0.0.7"
DOMAIN = "localhost"
LOG_TAIL_LINES = 80


def free_ports(count, host=HOST):
    """`count` distinct ports free on `host` (all probes stay bound until each is chosen, so
    the kernel cannot hand out one twice)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for s in probes:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in probes]
    finally:
        for s in probes:
            s.close()


class Server:
    def __init__(self, binary, workdir, domain=DOMAIN, host=HOST, s2s=None, tls=None, proxy65="",
                 extra="", registration=True, admins=()):
        """`s2s`: the `[s2s]` section's lines (default: a free port on `host`, and
        remote.example as a server that is down). `tls`: (certificate chain, key) files to use
        instead of the self-signed certificate; clients trust the chain's last certificate.
        `proxy65`: more lines for the `[modules.proxy65]` section (the bytestream proxy listens
        on a free port on `host`, `proxy_port`). `extra`: more config sections, appended; the
        component listener is on a free port on `host` (`component_port`), so components are
        configured with `[components.hosts."…"]` tables, not a `[components]` section.
        `registration`: in-band registration (on for most tests; off where accounts come from
        LDAP). `admins`: the server's administrators (the top-level `admins` key)."""
        self.binary = binary
        self.dir = pathlib.Path(workdir)
        self.domain = domain
        self.host = host
        (self.port, self.tls_port, s2s_port, self.http_port, self.internal_port,
         self.proxy_port, self.component_port) = free_ports(7, host)
        if s2s is None:
            s2s = (
                f'listen = ["{host}:{s2s_port}"]\n'
                # remote.example is a server that is down: nothing listens on port 9.
                "connect_timeout_secs = 2\n"
                '[s2s.peers."remote.example"]\naddress = "127.0.0.1:9"\n'
            )
        self.config = self.dir / "hearth.toml"
        self.config.write_text(
            f'domain = "{domain}"\n'
            f'data_dir = "{self.dir / "data"}"\n'
            # A JSON array of strings is a TOML array too.
            f"admins = {json.dumps(list(admins))}\n"
            "[log]\nlevel = \"debug\"\n"
            f"[s2s]\n{s2s}"
            f'[c2s]\nlisten = ["{host}:{self.port}"]\n'
            f'direct_tls_listen = ["{host}:{self.tls_port}"]\n'
            # The tests log in (and fail to) many times from one address.
            "[auth]\nmax_failures_per_ip = 0\n"
            + ("[modules.register]\nallow_registration = true\n" if registration else "")
            + f'[modules.proxy65]\nlisten = ["{host}:{self.proxy_port}"]\naddress = "{host}"\n{proxy65}'
            + f'[components]\nlisten = ["{host}:{self.component_port}"]\n'
            + (f'[tls]\ncertificate = "{tls[0]}"\nkey = "{tls[1]}"\n' if tls else "")
            + self._with_http(extra)
        )
        self.log_path = self.dir / "hearth.log"
        self.cert = tls[0] if tls else str(self.dir / "data" / "tls" / "selfsigned.crt")
        self._names = itertools.count(1)
        self._start()

    def _with_http(self, extra):
        """`extra` with the HTTP listeners in its `[http]` section (added if it has none)."""
        http = (
            f'[http]\nlisten = ["{self.host}:{self.http_port}"]\n'
            f'internal_listen = ["{self.host}:{self.internal_port}"]\n'
        )
        if "[http]\n" in extra:
            return extra.replace("[http]\n", http, 1)
        return extra + "\n" + http

    @property
    def base_url(self):
        return f"https://{self.host}:{self.http_port}"

    def _start(self):
        self._log_file = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--config", str(self.config)],
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hearth exited with {self.proc.returncode} at start:\n{self.log_tail()}")
            try:
                socket.create_connection((self.host, self.port), timeout=1).close()
                socket.create_connection((self.host, self.tls_port), timeout=1).close()
                # Bound after every XMPP listener (the component listener included).
                socket.create_connection((self.host, self.internal_port), timeout=1).close()
                if os.path.exists(self.cert):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"hearth did not accept connections within 30 s:\n{self.log_tail()}")
            time.sleep(0.05)

    def restart(self):
        """Stops the server (SIGTERM) and starts it again on the same data and ports."""
        self.stop()
        self._start()

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines=LOG_TAIL_LINES, since=0):
        """The last `lines` lines of the log, counting only what was written after offset `since`."""
        return "\n".join(self.log()[since:].splitlines()[-lines:])

    def alive(self):
        return self.proc.poll() is None

    def cli(self, *args, stdin=""):
        return subprocess.run(
            [self.binary, "--config", str(self.config), *args],
            input=stdin, capture_output=True, text=True, timeout=60,
        )

    def new_account(self, prefix="user", password=None):
        """Creates a fresh account with a name unique in this session; returns (bare JID, password)."""
        name = f"{prefix}{next(self._names)}"
        password = password or f"pw-{name}-secret"
        r = self.cli("user", "add", "--stdin", stdin=f"{name} {password}\n")
        assert r.returncode == 0, f"`hearth user add --stdin` failed ({r.returncode}): {r.stdout}{r.stderr}"
        return f"{name}@{self.domain}", password

    def unique_name(self, prefix):
        return f"{prefix}{next(self._names)}"

    def stop(self):
        terminate(self.proc)
        self._log_file.close()


def terminate(proc, secs=20):
    """SIGTERM, then SIGKILL if `proc` has not exited within `secs`."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=secs)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def pytest_configure(config):
    """The suite needs Debian's PyGObject next to the pinned packages: fail early and clearly
    when run by another interpreter (for example a pyenv Python without gi)."""
    try:
        import dnslib  # noqa: F401
        import gi  # noqa: F401
        import nbxmpp  # noqa: F401
        import slixmpp  # noqa: F401
    except ImportError as e:
        venv = os.environ.get("HEARTH_TEST_VENV", "/opt/hearth-test-venv")
        pytest.exit(
            f"{e}: run `bash tests/py/install-deps.sh`, then `{venv}/bin/pytest tests/py` "
            f"(this is {sys.executable})", returncode=4)


@contextlib.contextmanager
def serving(**kwargs):
    """A `Server(**kwargs)` in a temporary directory, stopped on exit; its log is kept in
    `$HEARTH_KEEP_LOG` if set."""
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    binary = os.environ.get("HEARTH_BIN", str(target / "debug" / "hearth"))
    if not os.access(binary, os.X_OK):
        pytest.exit(f"hearth binary {binary} not found: run `cargo build` first (or set HEARTH_BIN)", returncode=2)
    with tempfile.TemporaryDirectory(prefix="hearth-py-") as workdir:
        srv = Server(binary, workdir, **kwargs)
        try:
            yield srv
        finally:
            srv.stop()
            if os.environ.get("HEARTH_KEEP_LOG"):
                kept = pathlib.Path(os.environ["HEARTH_KEEP_LOG"])
                kept.write_text(srv.log())


@pytest.fixture(scope="session")
def hearth_server():
    with serving() as srv:
        yield srv


@pytest.fixture
def server(hearth_server):
    """The session's server, checked to be still running before and after each test."""
    assert hearth_server.alive(), f"hearth is no longer running (exit {hearth_server.proc.returncode}):\n{hearth_server.log_tail()}"
    hearth_server.test_log_start = len(hearth_server.log())
    yield hearth_server
    assert hearth_server.alive(), f"hearth died during the test (exit {hearth_server.proc.returncode})"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the tail of the server log to the report."""
    outcome = yield
    report = outcome.get_result()
    srv = getattr(item, "funcargs", {}).get("hearth_server")
    if report.failed and srv is not None:
        since = getattr(srv, "test_log_start", 0)
        report.sections.append((f"hearth log during this test (last {LOG_TAIL_LINES} lines, {srv.log_path})",
                                srv.log_tail(since=since)))
