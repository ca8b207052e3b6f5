"""Scale-out check: two `facecompare serve` replicas on one PostgreSQL database behind a small loopback proxy,
4 boto3 clients mixing IndexFaces, SearchFacesByImage, SearchFaces, DeleteFaces and CompareFaces for a few
minutes, one replica killed (SIGKILL) a third of the way in and restarted at two thirds.

Checked, and written to ``--out``:
* 5xx answers seen by the clients (after boto3's own retries), and connection errors (the killed connections);
* no face lost or duplicated: the collection's faces at the end (ListFaces through the proxy) against the clients'
  record (indexed minus deleted). An IndexFaces whose answer was lost with a killed connection is "uncertain":
  its face may or may not be there, and is reported apart;
* every committed face is seen: right after each IndexFaces, a SearchFaces by the new FaceId is sent through the
  proxy (so to either replica); a ResourceNotFound / "face not found" there is a miss.

    python benchmarks/bench_scaleout.py [--minutes 3] [--clients 4] [--out benchmarks/results/scaleout.json]

The proxy (``Proxy`` below) is a plain TCP round robin over the replicas that are up: a connection is passed to the
next replica that accepts it. A PostgreSQL cluster is made in a temporary directory (tests/conftest.py's
PostgresCluster: Unix socket only) and removed at the end. Every socket is on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import boto3
import httpx
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))
from bench_server import free_port  # noqa: E402

from conftest import PostgresCluster, _postgres_binaries  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
ACCESS, SECRET = "AKIDSCALEOUT", "scaleout-secret"
PEOPLE = {"colin": ["Colin_Powell_0001.jpg", "Colin_Powell_0002.jpg"],
          "serena": ["Serena_Williams_0001.jpg", "Serena_Williams_0002.jpg"],
          "blair": ["Tony_Blair_0001.jpg"], "obama": ["obama.jpg"], "biden": ["biden.jpg"]}
COLLECTION = "scaleout"


class Proxy:
    """A loopback TCP proxy: each accepted connection goes to the next replica (round robin) that accepts it."""

    def __init__(self, upstreams: list[int]) -> None:
        self.upstreams = upstreams
        self.port = free_port()
        self._cycle = itertools.cycle(range(len(upstreams)))
        self._server = socket.create_server(("127.0.0.1", self.port))
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = None
        for _ in range(len(self.upstreams)):
            port = self.upstreams[next(self._cycle)]
            try:
                upstream = socket.create_connection(("127.0.0.1", port), timeout=2)
                break
            except OSError:
                continue
        if upstream is None:
            client.close()
            return
        upstream.settimeout(None)

        def pipe(a: socket.socket, b: socket.socket) -> None:
            try:
                while data := a.recv(65536):
                    b.sendall(data)
            except OSError:
                pass
            finally:
                for s in (a, b):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
        pipe(client, upstream)

    def close(self) -> None:
        self.stopped.set()
        self._server.close()


class Replica:
    def __init__(self, port: int, env: dict, log: Path) -> None:
        self.port, self.env, self.log = port, env, log
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "facecompare.cli", "serve", "--port", str(self.port)],
                                        env=self.env, stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"))
        deadline = time.time() + 240
        while time.time() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                raise SystemExit(f"replica on {self.port} exited: {self.log.read_text()[-1500:]}")
            time.sleep(0.5)
        raise SystemExit(f"replica on {self.port} did not become ready")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(40)
            except subprocess.TimeoutExpired:
                self.process.kill()


class Record:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.indexed: dict[str, str] = {}  # face id -> external image id
        self.deleted: set[str] = set()
        self.uncertain: set[str] = set()  # external image ids whose IndexFaces answer was lost
        self.uncertain_deletes: set[str] = set()  # face ids whose DeleteFaces answer was lost
        self.outcomes: Counter[str] = Counter()
        self.misses: list[str] = []  # committed faces a search did not find

    def count(self, what: str) -> None:
        with self.lock:
            self.outcomes[what] += 1


def client_loop(url: str, images: dict[str, bytes], record: Record, deadline: float, index: int) -> None:
    rng = random.Random(index)
    rekognition = boto3.client("rekognition", endpoint_url=url, region_name="us-east-1", aws_access_key_id=ACCESS,
                               aws_secret_access_key=SECRET,
                               config=Config(retries={"mode": "standard", "max_attempts": 3}, read_timeout=60,
                                             connect_timeout=5))
    mine: list[str] = []
    serial = 0
    while time.time() < deadline:
        op = rng.choice(["index", "index", "search", "compare", "delete"])
        name = rng.choice(list(images))
        try:
            if op == "index":
                serial += 1
                external = f"c{index}-{serial}"
                try:
                    answer = rekognition.index_faces(CollectionId=COLLECTION, Image={"Bytes": images[name]},
                                                     ExternalImageId=external, MaxFaces=1)
                except (BotoCoreError, ClientError):
                    with record.lock:
                        record.uncertain.add(external)
                    raise
                for face in answer["FaceRecords"]:
                    face_id = face["Face"]["FaceId"]
                    with record.lock:
                        record.indexed[face_id] = external
                    mine.append(face_id)
                    # committed: a search by its id, through the proxy (either replica), must find it
                    try:
                        rekognition.search_faces(CollectionId=COLLECTION, FaceId=face_id, FaceMatchThreshold=99)
                    except ClientError as exc:
                        if exc.response["Error"]["Code"] in ("ResourceNotFoundException", "InvalidParameterException"):
                            with record.lock:
                                record.misses.append(face_id)
                        raise
            elif op == "search":
                rekognition.search_faces_by_image(CollectionId=COLLECTION, Image={"Bytes": images[name]})
            elif op == "compare":
                other = rng.choice(list(images))
                rekognition.compare_faces(SourceImage={"Bytes": images[name]}, TargetImage={"Bytes": images[other]})
            elif mine:
                face_id = mine.pop(rng.randrange(len(mine)))
                try:
                    answer = rekognition.delete_faces(CollectionId=COLLECTION, FaceIds=[face_id])
                except (BotoCoreError, ClientError):
                    with record.lock:
                        record.uncertain_deletes.add(face_id)
                    raise
                with record.lock:
                    record.deleted.update(answer["DeletedFaces"])
            record.count(f"{op} ok")
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            record.count(f"{op} {exc.response['Error']['Code']} {status}")
        except BotoCoreError as exc:  # a connection the killed replica dropped (after boto3's retries)
            record.count(f"{op} {type(exc).__name__}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "scaleout.json"))
    args = parser.parse_args()
    bindir = _postgres_binaries()
    if bindir is None:
        raise SystemExit("PostgreSQL is not installed (initdb, pg_ctl)")
    cluster = PostgresCluster(bindir)
    tmp = tempfile.TemporaryDirectory()
    replicas: list[Replica] = []
    proxy = None
    try:
        database = cluster.new_database()
        env = {k: v for k, v in os.environ.items() if k not in ("FACECOMPARE_AUTH", "PYTHONWARNINGS")}
        env.update(FACECOMPARE_AUTH_KEYS=f"{ACCESS}:{SECRET}", FACECOMPARE_COLLECTIONS=database,
                   FACECOMPARE_S3_ENDPOINT_URL="http://127.0.0.1:9", AWS_EC2_METADATA_DISABLED="true")
        replicas = [Replica(free_port(), env, Path(tmp.name) / f"replica{i}.log") for i in range(2)]
        for replica in replicas:
            replica.start()
        proxy = Proxy([r.port for r in replicas])
        url = f"http://127.0.0.1:{proxy.port}"
        images = {f"{person}-{i}": (FIXTURES / name).read_bytes() for person, names in PEOPLE.items()
                  for i, name in enumerate(names)}
        boto3.client("rekognition", endpoint_url=url, region_name="us-east-1", aws_access_key_id=ACCESS,
                     aws_secret_access_key=SECRET).create_collection(CollectionId=COLLECTION)
        record = Record()
        started = time.time()
        deadline = started + 60 * args.minutes
        threads = [threading.Thread(target=client_loop, args=(url, images, record, deadline, i))
                   for i in range(args.clients)]
        for t in threads:
            t.start()
        events = []
        time.sleep(max(0.0, started + (deadline - started) / 3 - time.time()))
        replicas[1].kill()
        events.append({"at_s": round(time.time() - started, 1), "event": "replica 2 killed (SIGKILL)"})
        time.sleep(max(0.0, started + 2 * (deadline - started) / 3 - time.time()))
        replicas[1].start()
        events.append({"at_s": round(time.time() - started, 1), "event": "replica 2 restarted and ready"})
        for t in threads:
            t.join()
        reader = boto3.client("rekognition", endpoint_url=url, region_name="us-east-1", aws_access_key_id=ACCESS,
                              aws_secret_access_key=SECRET)
        stored = [f for page in reader.get_paginator("list_faces").paginate(CollectionId=COLLECTION)
                  for f in page["Faces"]]
        stored_ids = [f["FaceId"] for f in stored]
        expected = set(record.indexed) - record.deleted
        unexpected = [f for f in stored if f["FaceId"] not in expected]
        lost = sorted(expected - set(stored_ids) - record.uncertain_deletes)
        explained = [f for f in unexpected if f.get("ExternalImageId") in record.uncertain]
        fivexx = {k: v for k, v in record.outcomes.items() if k.rsplit(" ", 1)[-1].startswith("5")}
        result = {
            "minutes": args.minutes, "clients": args.clients, "replicas": 2, "events": events,
            "outcomes": dict(sorted(record.outcomes.items())), "5xx_after_retries": fivexx,
            "faces_indexed": len(record.indexed), "faces_deleted": len(record.deleted),
            "faces_stored_at_end": len(stored_ids), "duplicates": len(stored_ids) - len(set(stored_ids)),
            "lost": lost, "unexpected": len(unexpected), "unexpected_from_uncertain_indexfaces": len(explained),
            "uncertain_indexfaces": len(record.uncertain), "uncertain_deletefaces": len(record.uncertain_deletes),
            "committed_faces_not_found_by_search": record.misses,
            "machine": "shared 2-core machine, other engineers' work running",
        }
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
    finally:
        if proxy:
            proxy.close()
        for replica in replicas:
            replica.stop()
        cluster.stop()
        tmp.cleanup()


if __name__ == "__main__":
    main()
