"""What the review console costs per case: drawing a case's two annotated pictures and two zoomed faces from the
stored images (done on every request, nothing cached: the pages are ``no-store``), and the case page itself, for
1 MP and 12 MP pairs. There is no peer: the figure says how long a reviewer waits for a case to appear.

    python benchmarks/bench_console.py [--repeat 5] [--out benchmarks/results/console.json]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_batch import variants  # noqa: E402

PASSWORD = "benchmark password"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "console.json"))
    args = parser.parse_args()

    from starlette.testclient import TestClient

    from facecompare.engine import Verifier
    from facecompare.native import other_faces, verification_dict
    from facecompare.server.app import create_app
    from facecompare.server.config import ServerConfig
    from facecompare.settings import Settings
    from facecompare.storage import S3Reader

    verifier = Verifier(Settings())
    verifier.warm()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        url = f"sqlite:///{tmp / 'store.db'}"
        app = create_app(verifier.settings, ServerConfig(auth=False, warm=False, collections_url=url),
                         verifier=verifier, s3=S3Reader())
        queue = app.state.pipeline.review
        queue.add_reviewer("bench", PASSWORD)
        with TestClient(app, base_url="https://console.bench") as client:
            page = client.get("/console/login")
            token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
            client.post("/console/login", data={"csrf": token, "username": "bench", "password": PASSWORD})
            for size, (selfie, document) in variants(tmp).items():
                s, d = selfie.read_bytes(), document.read_bytes()
                v = verifier.verify(s, d)
                case, _ = queue.queue({**verification_dict(v), "other_faces": other_faces(v)},
                                      verifier.recognizer.name, s, d, source="cli")
                timings: dict[str, list[float]] = {}
                paths = {"case page": f"/console/cases/{case.case_id}",
                         **{f"{role} picture": f"/console/cases/{case.case_id}/image/{role}"
                            for role in ("selfie", "document")},
                         **{f"{role} zoom": f"/console/cases/{case.case_id}/face/{role}"
                            for role in ("selfie", "document")}}
                for _ in range(args.repeat):
                    for name, path in paths.items():
                        started = time.perf_counter()
                        response = client.get(path)
                        timings.setdefault(name, []).append(time.perf_counter() - started)
                        assert response.status_code == 200, (path, response.status_code)
                medians = {name: round(1000 * statistics.median(t), 1) for name, t in timings.items()}
                medians["whole case (page + 2 pictures + 2 zooms)"] = round(sum(medians.values()), 1)
                results[size] = {"selfie_bytes": len(s), "document_bytes": len(d), "median_ms": medians}
                print(size, json.dumps(medians))
        app.state.pipeline.close()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"repeat": args.repeat, "results": results}, indent=2) + "\n")
    print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()
