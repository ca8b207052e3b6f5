"""Benchmark: RetinaFace MobileNetV2 against our RetinaFace MobileNet-0.25 as the cascade's confirmer (issue #21,
item 3): with the same window, does MobileNetV2's landmarks align a chip that SFace matches better, and at what
cost per window?

For the first ``--n`` genuine pairs of each set (a ``synth-kyc`` pairs.csv: columns selfie, document, same, ...),
the engine finds the portrait (``Verifier().analyze(document, embed=1)``: its largest face gives the box and the
turn) and the selfie's embedding (``Verifier().analyze(selfie, embed=1)``, unchanged). Then, in the window the
cascade confirms a proposal in (``engine.cascade.confirm_windows``: 4 face widths, the face about 80 px; cut,
resized and turned by the finder's own ``_detect_box``, so the geometry is the cascade's to the pixel), both
detectors run on the same input, interleaved (which goes first alternates document by document), models warm:

- (a) ``retinaface``: our RetinaFace MobileNet-0.25 (the engine's detector);
- (b) ``mnv2``: RetinaFace MobileNetV2 (peteryuX/retinaface-tf2, the frozen graph of the PyPI wheel
  ``retinaface==1.1.1``) converted by ``scripts/convert_retinaface_mnv2.py`` (``--model``, default
  /tmp/retinaface_mnv2.onnx), run with onnxruntime (the engine's session options, the same thread count) and
  decoded with our anchors (``models.retinaface``) and our NMS.

Each detector's face is the upright detection (score above the engine's threshold, 0.8) overlapping the engine's
box most (IoU at least ``MIN_IOU``); its landmarks align the SFace chip exactly as the engine does
(``FaceDescriber.chip`` from the smallest fine-enough decode, ``FaceDescriber.embed`` with the engine's TTA), and
the cosine distance to the selfie is taken. Per set and detector: how often a face is found in the window, the
mean and median genuine distance, TAR at the shipped calibration's FMR 1e-3 distance (the loosest operating point
of ``calibration-sface-*.json`` whose FMR on LFW's pairs is at most 1e-3; also at Similarity 80, the default
threshold), the median detector ms per window (``detect`` only: preprocessing, the ONNX run, decoding, NMS), and
the paired difference (b - a) on the documents both found: mean, and how many got closer / further (also per
portrait size). The engine's own chip (the cascade's answer) is reported beside them as ``engine``. With
``--control-face-px P`` a third row, ``retinaface@P``, runs our detector in the same window scaled so the face is
about P px: what the extra milliseconds buy when spent on our own detector instead (the "per millisecond" control).

    PYTHONPATH=src nice -n 19 python benchmarks/bench_confirmer_alignment.py \\
        --set cards=/tmp/acc/cards/pairs.csv --set specimens=/tmp/acc/specimens/pairs.csv \\
        --n 150 --control-face-px 160 --out benchmarks/results/confirmer-alignment.json

Times are on a shared machine: compare the two detectors' ratio, measured in the same run, not the absolutes.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from facecompare import Verifier  # noqa: E402
from facecompare.engine.cascade import CONFIRM_FACE_PX, CONFIRM_WINDOW_WIDTHS, confirm_windows  # noqa: E402
from facecompare.engine.finder import TURN_WINDOW_MAX_FACTOR  # noqa: E402
from facecompare.engine.geometry import turn_points  # noqa: E402
from facecompare.faces import Embedding, distance  # noqa: E402
from facecompare.models import Detection  # noqa: E402
from facecompare.models.onnx_graph import session  # noqa: E402
from facecompare.models.retinaface import ANCHOR_SIZES, STRIDES, decode_heads  # noqa: E402

#: a detector's face must overlap the engine's box at least this much to be "the portrait" in the window
MIN_IOU = 0.3
DETECTORS = ["retinaface", "mnv2"]  # and the control, when asked for


class MobileNetV2Detector:
    """RetinaFace MobileNetV2 from the ONNX file of scripts/convert_retinaface_mnv2.py, decoded like ours."""

    name = "retinaface-mobilenetv2"
    default_threshold = 0.8

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime

        onnxruntime.set_default_logger_severity(3)  # tf2onnx's Resize keeps an attribute opset 13 deprecates
        self._session = session(path.read_bytes(), threads)
        names = [o.name for o in self._session.get_outputs()]
        if names != ["loc", "conf", "landm"] or self._session.get_inputs()[0].name != "x":
            raise SystemExit(f"{path}: not the file of scripts/convert_retinaface_mnv2.py (outputs {names})")
        assert STRIDES == (8, 16, 32) and ANCHOR_SIZES == ((16, 32), (64, 128), (256, 512))  # peteryuX's cfg

    def load(self) -> None:
        pass

    def detect(self, rgb: np.ndarray, score_threshold: float = 0.8, nms_threshold: float = 0.4) -> list[Detection]:
        height, width = rgb.shape[:2]
        ph, pw = -(-height // 32) * 32, -(-width // 32) * 32
        blob = np.zeros((1, ph, pw, 3), dtype=np.float32)  # RGB 0-255, padded with black as the wheel does;
        blob[0, :height, :width] = rgb  # the graph normalises (x / 127.5 - 1)
        loc, conf, landms = self._session.run(None, {"x": blob})
        return decode_heads(loc, conf, landms, ph, pw, score_threshold, nms_threshold)


class Timed:
    """A detector whose ``detect`` calls are timed (the last call's milliseconds in ``last_ms``)."""

    def __init__(self, detector) -> None:
        self.detector = detector
        self.name = detector.name
        self.default_threshold = detector.default_threshold
        self.last_ms = 0.0

    def load(self) -> None:
        self.detector.load()

    def detect(self, rgb, score_threshold: float = 0.8):
        t = time.perf_counter()
        out = self.detector.detect(rgb, score_threshold=score_threshold)
        self.last_ms = 1000 * (time.perf_counter() - t)
        return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def fmr_1e3_distance(verifier: Verifier) -> tuple[float, dict]:
    """The shipped calibration's loosest operating point with FMR at most 1e-3 (its distance, the point)."""
    points = [p for p in verifier.calibration.operating_points if p.get("fmr", 1.0) <= 1e-3]
    if not points:
        raise SystemExit("the calibration has no operating point at FMR <= 1e-3")
    best = max(points, key=lambda p: p["distance"])
    return float(best["distance"]), best


def genuine_rows(pairs_csv: Path, n: int) -> list[dict]:
    rows, seen = [], set()
    with pairs_csv.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row.get("same") not in ("1", "true", "True") or row["document"] in seen:
                continue
            seen.add(row["document"])
            rows.append(row)
            if len(rows) >= n:
                break
    return rows


def turned_box(face, width: int, height: int, rotation: int) -> np.ndarray:
    """The engine's face box (ratios of the unrotated image) in full-resolution pixels of the image turned by
    ``rotation`` (where the finder found it)."""
    b = face.bounding_box
    corners = np.array([[b.left * width, b.top * height], [(b.left + b.width) * width, (b.top + b.height) * height]])
    turned = turn_points(corners, rotation, width, height)
    return np.concatenate([turned.min(axis=0), turned.max(axis=0)])


def one_document(v: Verifier, detectors: dict, row: dict, base: Path, order: list[str],
                 control_face_px: int = 0) -> dict:
    """The measures of one genuine pair (no image content, no path beyond the pair's own id)."""
    out: dict = {"pair_id": row.get("pair_id"), "size": row.get("size"), "portrait_pct": row.get("portrait_pct"),
                 "rotation_rendered": row.get("rotation")}
    selfie = v.analyze(str(base / row["selfie"]), embed=1).largest
    if selfie is None or selfie.embedding is None:
        out["skipped"] = "no face in the selfie"
        return out
    decoded = v.load(str(base / row["document"]))
    analyzed = v.analyze(decoded, embed=1)
    face = analyzed.largest
    if face is None or face.embedding is None:
        out["skipped"] = "the engine found no portrait"
        return out
    out["engine"] = {"distance": distance(selfie.embedding, face.embedding)}
    rotation = analyzed.rotation
    box = turned_box(face, decoded.width, decoded.height, rotation)
    size = (decoded.height, decoded.width) if rotation in (90, 270) else (decoded.width, decoded.height)
    proposal = Detection(box, 1.0, np.zeros((5, 2)))
    (window, wanted), = confirm_windows([proposal], size)
    finder = v.finder
    factor = finder._pixel_bounded(min(TURN_WINDOW_MAX_FACTOR, wanted), window)
    out.update(rotation=rotation, face_px=float(box[2] - box[0]), window_factor=factor)
    found: dict[str, Detection] = {}
    for name in order:
        timed = detectors[name.partition("@")[0]]
        f = factor
        if "@" in name:  # the control: our detector, the face about control_face_px wide
            f = finder._pixel_bounded(min(TURN_WINDOW_MAX_FACTOR, wanted * control_face_px / CONFIRM_FACE_PX), window)
        upright, _, turned = finder._detect_box(decoded, rotation, f, window, f"confirming with {name}",
                                                detector=timed)
        best = max(upright, key=lambda d: iou(d.box, box), default=None)
        r = {"ms": timed.last_ms, "input_px": list(turned.shape[1::-1]), "found": False}
        if best is not None and iou(best.box, box) >= MIN_IOU:
            chip = v.describer.chip(decoded, rotation, best)
            vector = v.describer.embed([chip])[0]
            emb = Embedding(vector, v.recognizer.name, v.recognizer.metric)
            r.update(found=True, score=best.score, iou=iou(best.box, box), distance=distance(selfie.embedding, emb))
            found[name] = best
        out[name] = r
    if "retinaface" in found and "mnv2" in found:  # how far apart the two put the 5 points, in face widths
        a, b = found["retinaface"], found["mnv2"]
        out["landmark_gap"] = float(np.mean(np.linalg.norm(a.landmarks - b.landmarks, axis=1)) / max(a.width, 1.0))
    decoded.release_views()
    return out


def summarize(docs: list[dict], threshold: float, threshold_80: float) -> dict:
    usable = [d for d in docs if "skipped" not in d]
    summary: dict = {"documents": len(docs), "skipped": len(docs) - len(usable),
                     "skipped_why": sorted({d["skipped"] for d in docs if "skipped" in d})}
    for name in ("engine", *DETECTORS):
        if not all(name in d for d in usable):
            continue
        dist = [d[name]["distance"] for d in usable if d[name].get("distance") is not None]
        row = {
            "found": len(dist), "found_pct": 100 * len(dist) / max(1, len(usable)),
            "mean_distance": statistics.fmean(dist) if dist else None,
            "median_distance": statistics.median(dist) if dist else None,
            # a window in which the detector found nothing counts as a non-match (failure to acquire)
            "tar_at_fmr_1e-3": sum(x <= threshold for x in dist) / max(1, len(usable)),
            "tar_at_similarity_80": sum(x <= threshold_80 for x in dist) / max(1, len(usable)),
        }
        if name != "engine":
            ms = [d[name]["ms"] for d in usable]
            row["median_ms_per_window"] = statistics.median(ms) if ms else None
            row["p90_ms_per_window"] = float(np.percentile(ms, 90)) if ms else None
        summary[name] = row
    both = [d for d in usable if d["retinaface"]["found"] and d["mnv2"]["found"]]
    diff = [d["mnv2"]["distance"] - d["retinaface"]["distance"] for d in both]
    summary["paired_mnv2_minus_retinaface"] = {
        "documents_both_found": len(both),
        "mean_difference": statistics.fmean(diff) if diff else None,
        "median_difference": statistics.median(diff) if diff else None,
        "closer": sum(x < 0 for x in diff), "further": sum(x > 0 for x in diff), "same": sum(x == 0 for x in diff),
        "median_landmark_gap_face_widths": statistics.median([d["landmark_gap"] for d in both]) if both else None,
    }
    by_size: dict = {}
    for d in both:
        x = d["mnv2"]["distance"] - d["retinaface"]["distance"]
        g = by_size.setdefault(d.get("size") or "", {"documents": 0, "sum": 0.0, "closer": 0, "further": 0})
        g["documents"] += 1
        g["sum"] += x
        g["closer"] += x < 0
        g["further"] += x > 0
    summary["paired_mnv2_minus_retinaface"]["by_size"] = {
        k: {"documents": g["documents"], "mean_difference": g["sum"] / g["documents"], "closer": g["closer"],
            "further": g["further"]} for k, g in sorted(by_size.items())}
    for name in DETECTORS[1:]:
        ratio = [d[name]["ms"] / d["retinaface"]["ms"] for d in usable if d["retinaface"]["ms"] > 0 and name in d]
        summary[f"ms_ratio_{name}_over_retinaface_median"] = statistics.median(ratio) if ratio else None
        if name != "mnv2":
            pair = [d for d in usable if d["retinaface"]["found"] and d.get(name, {}).get("found")]
            diff = [d[name]["distance"] - d["retinaface"]["distance"] for d in pair]
            summary[f"paired_{name}_minus_retinaface"] = {
                "documents_both_found": len(pair), "mean_difference": statistics.fmean(diff) if diff else None,
                "closer": sum(x < 0 for x in diff), "further": sum(x > 0 for x in diff)}
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", action="append", required=True, metavar="NAME=PAIRS_CSV",
                        help="a synth-kyc pairs.csv (repeat for several sets)")
    parser.add_argument("--n", type=int, default=150, help="genuine documents per set (the first N)")
    parser.add_argument("--model", type=Path, default=Path("/tmp/retinaface_mnv2.onnx"),
                        help="the ONNX file of scripts/convert_retinaface_mnv2.py")
    parser.add_argument("--control-face-px", type=int, default=0,
                        help="also run our detector with the face about this wide in the same window (0: not)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "confirmer-alignment.json")
    args = parser.parse_args()
    import hashlib

    if args.control_face_px:
        DETECTORS.append(f"retinaface@{args.control_face_px}")

    v = Verifier()
    v.warm()
    mnv2 = MobileNetV2Detector(args.model, v.settings.threads)
    detectors = {"retinaface": Timed(v.detector), "mnv2": Timed(mnv2)}
    blank = np.full((320, 320, 3), 128, np.uint8)
    for d in detectors.values():  # warm both at a window's size
        d.detect(blank, score_threshold=0.8)
    threshold, point = fmr_1e3_distance(v)
    threshold_80 = v.calibration.distance_at(80.0)
    result: dict = {
        "what": "the cascade's confirm window re-run with RetinaFace MobileNet-0.25 (ours) and MobileNetV2",
        "window": {"face_widths": CONFIRM_WINDOW_WIDTHS, "face_px": CONFIRM_FACE_PX,
                   "control_face_px": args.control_face_px or None},
        "threshold": {"distance_fmr_1e-3": threshold, "operating_point": point, "distance_similarity_80": threshold_80,
                      "detection_score": v.finder.threshold, "min_iou_with_engine_box": MIN_IOU},
        "mnv2_onnx_sha256": hashlib.sha256(args.model.read_bytes()).hexdigest(),
        "threads": v.settings.threads, "note": "shared 2-core machine, nice -n 19; compare ratios, not absolutes",
        "sets": {},
    }
    for spec in args.set:
        name, _, path = spec.partition("=")
        pairs = Path(path)
        rows = genuine_rows(pairs, args.n)
        docs = []
        t0 = time.perf_counter()
        for i, row in enumerate(rows):
            k = i % len(DETECTORS)  # which detector goes first turns document by document
            order = DETECTORS[k:] + DETECTORS[:k]
            docs.append(one_document(v, detectors, row, pairs.parent, order, args.control_face_px))
            if (i + 1) % 25 == 0:
                print(f"{name}: {i + 1}/{len(rows)} in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        summary = summarize(docs, threshold, threshold_80)
        result["sets"][name] = {"pairs_csv": str(pairs), "summary": summary, "documents": docs}
        print_table(name, summary)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")  # after each set: a partial run keeps its sets
    print(f"wrote {args.out}")


def print_table(name: str, s: dict) -> None:
    print(f"\n{name}: {s['documents']} genuine documents ({s['skipped']} skipped: {', '.join(s['skipped_why'])})")
    print(f"{'detector':<14} {'found %':>8} {'mean d':>7} {'median d':>8} {'TAR@1e-3':>8} {'TAR@80':>7} {'ms/window':>9}")
    for det in ("engine", *DETECTORS):
        r = s.get(det)
        if r is None:
            continue
        ms = f"{r['median_ms_per_window']:.1f}" if r.get("median_ms_per_window") is not None else "-"
        md = f"{r['mean_distance']:.4f}" if r["mean_distance"] is not None else "-"
        mdd = f"{r['median_distance']:.4f}" if r["median_distance"] is not None else "-"
        print(f"{det:<14} {r['found_pct']:>8.1f} {md:>7} {mdd:>8} {100 * r['tar_at_fmr_1e-3']:>8.2f} "
              f"{100 * r['tar_at_similarity_80']:>7.2f} {ms:>9}")
    p = s["paired_mnv2_minus_retinaface"]
    mean = f"{p['mean_difference']:+.4f}" if p["mean_difference"] is not None else "-"
    print(f"paired (mnv2 - retinaface) on {p['documents_both_found']}: mean {mean}, closer {p['closer']}, "
          f"further {p['further']}; ms ratio {s['ms_ratio_mnv2_over_retinaface_median']:.2f}")
    for size, g in p["by_size"].items():
        print(f"  portraits {size}: {g['documents']} documents, mean {g['mean_difference']:+.4f}, "
              f"closer {g['closer']}, further {g['further']}")
    for det in DETECTORS[2:]:
        c = s[f"paired_{det}_minus_retinaface"]
        mean = f"{c['mean_difference']:+.4f}" if c["mean_difference"] is not None else "-"
        print(f"paired ({det} - retinaface) on {c['documents_both_found']}: mean {mean}, closer {c['closer']}, "
              f"further {c['further']}; ms ratio {s[f'ms_ratio_{det}_over_retinaface_median']:.2f}")


if __name__ == "__main__":
    main()
