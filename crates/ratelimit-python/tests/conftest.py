"""Fixtures: private redis-server processes (a free port, a temporary
directory, killed at teardown; never the Redis on 6379), with and without
TLS, and the repository's paths."""

import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass

import pytest

CRATE = pathlib.Path(__file__).resolve().parent.parent
REPO = CRATE.parent.parent


@dataclass
class Server:
    host: str
    port: int
    dir: pathlib.Path
    process: subprocess.Popen
    tls: bool = False

    @property
    def url(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{self.host}:{self.port}/"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(*extra: str, tls_dir: "pathlib.Path | None" = None) -> Server:
    """A redis-server of our own; fails (never skips) when there is none."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is required (apt-get install -y redis-server)"
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="rate-limiter-redis-"))
    port = free_port()
    args = [binary, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)]
    if tls_dir is None:
        args += ["--port", str(port)]
    else:
        args += [
            "--port", "0",
            "--tls-port", str(port),
            "--tls-cert-file", str(tls_dir / "server.crt"),
            "--tls-key-file", str(tls_dir / "server.key"),
            "--tls-ca-cert-file", str(tls_dir / "ca.crt"),
            "--tls-auth-clients", "no",
        ]
    args += list(extra)
    process = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=workdir
    )
    server = Server("127.0.0.1", port, workdir, process, tls=tls_dir is not None)
    deadline = time.monotonic() + 10
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"redis-server exited: {process.stderr.read().decode(errors='replace')}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError("redis-server did not start within 10 s")
            time.sleep(0.02)
    return server


@pytest.fixture(scope="session")
def redis_server():
    server = start_redis()
    yield server
    server.stop()
    shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture()
def redis_url(redis_server):
    """The session's server, emptied before each test."""
    import redis

    client = redis.Redis(host=redis_server.host, port=redis_server.port)
    client.flushall()
    client.close()
    return redis_server


@pytest.fixture()
def redis_client(redis_url):
    import redis

    client = redis.Redis(host=redis_url.host, port=redis_url.port, decode_responses=True)
    yield client
    client.close()


def pytest_report_header(config):
    return f"redis-server: {shutil.which('redis-server')}; repo: {REPO}"


os.environ.setdefault("PYTHONHASHSEED", "0")


def make_certificates(directory: pathlib.Path) -> pathlib.Path:
    """A private CA, a server certificate for localhost and 127.0.0.1, and a
    client certificate, made with the openssl command."""
    openssl = shutil.which("openssl")
    assert openssl, "openssl is required by the TLS tests"

    def run(*args):
        subprocess.run([openssl, *args], cwd=directory, check=True, capture_output=True)

    # The extensions strict verifiers (Python 3.13's ssl, rustls) demand:
    # key usage on the CA, key identifiers and extended key usage on leaves.
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=rate-limiter test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash",
        "-keyout", "ca.key", "-out", "ca.crt")
    for name, usage in (("server", "serverAuth"), ("client", "clientAuth")):
        (directory / f"{name}.cnf").write_text(
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            f"extendedKeyUsage={usage}\n"
            "subjectKeyIdentifier=hash\n"
            "authorityKeyIdentifier=keyid,issuer\n"
        )
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", f"{name}.cnf", "-out", f"{name}.crt")
    return directory


@pytest.fixture(scope="session")
def tls_dir(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture()
def tls_server(tls_dir):
    server = start_redis(tls_dir=tls_dir)
    yield server
    server.stop()
    shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture()
def private_redis():
    """Starts servers with extra arguments for one test; all stopped after."""
    servers = []

    def start(*extra):
        server = start_redis(*extra)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)
