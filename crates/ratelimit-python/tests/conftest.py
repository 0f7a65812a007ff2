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


def free_port(below: int = 65536) -> int:
    """A port free now (and, for a cluster node, one whose bus port, the
    port plus 10000, exists)."""
    for _ in range(1000):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < below:
            return port
    raise RuntimeError(f"no free port below {below}")


def start_redis(*extra: str, tls_dir: "pathlib.Path | None" = None) -> Server:
    """A redis-server of our own; fails (never skips) when there is none."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is required (apt-get install -y redis-server)"
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="rate-limiter-redis-"))
    port = free_port(55536 if "--cluster-enabled" in extra else 65536)
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
    # The log goes to a file: a pipe nobody reads would stall the server.
    log = workdir / "redis.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    server = Server("127.0.0.1", port, workdir, process, tls=tls_dir is not None)
    deadline = time.monotonic() + 10
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"redis-server exited: {log.read_text(errors='replace')}"
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


@pytest.fixture(scope="session")
def redis_cluster():
    """Three masters, no replicas, slots spread by redis-cli; stopped after
    the session. Yields the servers."""
    redis_cli = shutil.which("redis-cli")
    assert redis_cli, "redis-cli is required by the cluster tests (apt-get install -y redis-tools)"
    servers = [
        start_redis("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", "5000")
        for _ in range(3)
    ]
    try:
        subprocess.run(
            [redis_cli, "--cluster", "create", *(f"127.0.0.1:{s.port}" for s in servers),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )
        import redis

        deadline = time.monotonic() + 30
        for s in servers:
            client = redis.Redis(host=s.host, port=s.port)
            while client.cluster("info").get("cluster_state") != "ok":
                assert time.monotonic() < deadline, "the cluster did not come up"
                time.sleep(0.05)
            client.close()
        yield servers
    finally:
        for s in servers:
            s.stop()
            shutil.rmtree(s.dir, ignore_errors=True)
