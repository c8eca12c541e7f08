"""Starts the real hearth binary once per test session on a loopback address and hands tests
what they need to connect: address, ports, the self-signed certificate to trust, and account
creation through the `hearth` CLI."""

import itertools
import os
import pathlib
import signal
import socket
import subprocess
import tempfile
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
HOST = "127.0.0.7"
DOMAIN = "localhost"


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary, workdir):
        self.binary = binary
        self.dir = pathlib.Path(workdir)
        self.port = free_port()
        self.tls_port = free_port()
        self.config = self.dir / "hearth.toml"
        self.config.write_text(
            f'domain = "{DOMAIN}"\n'
            f'data_dir = "{self.dir / "data"}"\n'
            "[log]\nlevel = \"debug\"\n"
            f'[c2s]\nlisten = ["{HOST}:{self.port}"]\ndirect_tls_listen = ["{HOST}:{self.tls_port}"]\n'
            "[auth]\nmax_failures_per_ip = 0\n"
            "[modules.register]\nallow_registration = true\n"
        )
        self.log_path = self.dir / "hearth.log"
        self.proc = subprocess.Popen(
            [binary, "--config", str(self.config), "serve"],
            stdout=subprocess.DEVNULL,
            stderr=open(self.log_path, "w"),
        )
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection((HOST, self.port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("hearth did not start:\n" + self.log())
                time.sleep(0.05)
        self.cert = str(self.dir / "data" / "tls" / "selfsigned.crt")
        self._names = itertools.count(1)

    def log(self):
        return self.log_path.read_text() if self.log_path.exists() else ""

    def cli(self, *args, stdin=""):
        return subprocess.run(
            [self.binary, "--config", str(self.config), *args],
            input=stdin, capture_output=True, text=True, timeout=60,
        )

    def new_account(self, prefix="user", password="correct horse battery"):
        """A fresh account (unique name) and its password."""
        name = f"{prefix}{next(self._names)}"
        r = self.cli("user", "add", name, stdin=password + "\n")
        assert r.returncode == 0, r.stdout + r.stderr
        return f"{name}@{DOMAIN}", password

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=20)


@pytest.fixture(scope="session")
def server():
    binary = os.environ.get("HEARTH_BIN", str(ROOT / "target" / "debug" / "hearth"))
    if not os.path.exists(binary):
        pytest.fail(f"{binary} not found: run `cargo build` first (or set HEARTH_BIN)")
    with tempfile.TemporaryDirectory(prefix="hearth-py-") as workdir:
        srv = Server(binary, workdir)
        try:
            yield srv
        finally:
            srv.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the tail of the server log to the report."""
    outcome = yield
    report = outcome.get_result()
    srv = item.funcargs.get("server") if hasattr(item, "funcargs") else None
    if report.failed and srv is not None:
        tail = "\n".join(srv.log().splitlines()[-60:])
        report.sections.append(("hearth log (tail)", tail))
