"""Benchmark: the formats beyond JPEG and PNG (HEIC, WebP, AVIF, PDF).

- ``decode``: seconds and peak RSS growth of ``load_image`` (what every surface calls: header checks, decode,
  the detection-size view) on one 12 MP photo (4032x3024, an iPhone's size) saved as JPEG, HEIC and WebP (AVIF
  with ``--avif``: its encoder takes a minute at 12 MP), each in a child process of its own (the kernel's VmHWM,
  reset before each call; libraries imported and warmed on a small image first); median of ``--repeat`` calls.
- ``decisions``: the KYC decision and Similarity of the same pairs with the document image in each format (PNG,
  the lossless copy, is the reference): the same decision, Similarity within 1 point.
- ``pdf``: examples/selfie.jpg against examples/id_card.jpg as a PNG and as a 2-page PDF "scan" (page 1 the
  MRZ-only back of an ID card, page 2 the card, at 300 DPI): the same MATCH, the page named in the notes.
- ``dpi``: how the ID specimens (FACECOMPARE_SHARED_DATA or ../shared/data: id_specimens, the 29 with a labelled
  usable portrait) printed to PDF (each on an A4 page at its physical width: 85.6 mm for an ID card, 105 mm for a
  TD2, 125 mm for a passport data page, at its own pixels) are found when the page is rendered at 72, 100, 150,
  200 and 300 DPI: the share whose labelled portrait is found (box overlap 0.3), the median portrait width in
  pixels, and seconds per page (render and analysis); against the specimen images themselves. Chooses
  ``Settings.pdf_dpi``.

    python benchmarks/bench_formats.py [decode decisions pdf dpi] [--avif] [--out benchmarks/results/formats.json]

Seconds depend on what else runs on the machine: compare rows of one run (the JPEG row is the peer).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
SHARED = Path(os.environ.get("FACECOMPARE_SHARED_DATA", ROOT.parent / "shared" / "data"))
sys.path.insert(0, str(SRC))

_CHILD = textwrap.dedent("""
    import json, sys, time
    from facecompare.images import load_image
    from facecompare.settings import Settings

    def status():
        fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
        return {k: int(fields[k].split()[0]) * 1024 for k in ("VmHWM", "VmRSS")}

    data = open(sys.argv[1], "rb").read()
    repeat = int(sys.argv[2])
    load_image(open(sys.argv[3], "rb").read())  # its format's libraries loaded and warm
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    before = status()["VmRSS"]
    seconds = []
    for i in range(repeat):
        started = time.perf_counter()
        image = load_image(data, Settings(max_image_bytes=len(data) + 1))
        seconds.append(time.perf_counter() - started)
        if i == 0:
            peak = status()["VmHWM"] - before
        del image
    print(json.dumps({"seconds": seconds, "peak": peak}))
""")


def photo_12mp():
    """A 4032x3024 photo with a face: examples/id_card.jpg (a phone photo of a card, 2400x1800) enlarged, with a
    little noise so that it compresses like a sensor's picture rather than a smooth enlargement."""
    import numpy as np
    from PIL import Image

    im = Image.open(ROOT / "examples" / "id_card.jpg").convert("RGB").resize((4032, 3024), Image.Resampling.LANCZOS)
    noise = np.random.default_rng(0).normal(0, 3, (3024, 4032, 3))
    return Image.fromarray(np.clip(np.asarray(im, dtype=np.float32) + noise, 0, 255).astype(np.uint8))


def encode(im, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.from_pillow(im).save(buffer, format="HEIF", quality=80)
    elif fmt == "JPEG":
        im.save(buffer, format="JPEG", quality=90)
    elif fmt == "WEBP":
        im.save(buffer, format="WEBP", quality=85)
    elif fmt == "AVIF":
        im.save(buffer, format="AVIF", quality=70, speed=8)
    else:
        im.save(buffer, format=fmt)
    return buffer.getvalue()


def bench_decode(formats: list[str], repeat: int, tmp: Path) -> list[dict]:
    from PIL import Image

    photo = photo_12mp()
    small = Image.open(ROOT / "tests" / "fixtures" / "obama.jpg").convert("RGB")
    rows = []
    env = dict(os.environ, PYTHONPATH=str(SRC))
    for fmt in formats:
        started = time.perf_counter()
        data = encode(photo, fmt)
        encode_seconds = time.perf_counter() - started
        path, warm = tmp / f"photo.{fmt.lower()}", tmp / f"warm.{fmt.lower()}"
        path.write_bytes(data)
        warm.write_bytes(encode(small, fmt))
        out = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(repeat), str(warm)], env=env,
                             capture_output=True, text=True, timeout=900, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        row = {"format": fmt, "bytes": len(data), "encode_seconds": round(encode_seconds, 2),
               "load_seconds_median": round(statistics.median(result["seconds"]), 3),
               "load_seconds": [round(s, 3) for s in result["seconds"]], "peak_mb": round(result["peak"] / 2 ** 20)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    jpeg = next((r for r in rows if r["format"] == "JPEG"), None)
    if jpeg:
        for r in rows:
            r["time_vs_jpeg"] = round(r["load_seconds_median"] / jpeg["load_seconds_median"], 2)
            r["peak_vs_jpeg"] = round(r["peak_mb"] / max(1, jpeg["peak_mb"]), 2)
    return rows


PAIRS = [("Colin_Powell_0001.jpg", "Colin_Powell_0002.jpg"), ("Serena_Williams_0001.jpg", "Serena_Williams_0002.jpg"),
         ("Tony_Blair_0001.jpg", "Colin_Powell_0001.jpg"), ("obama.jpg", "biden.jpg")]


def bench_decisions(verifier, formats: list[str]) -> list[dict]:
    from PIL import Image

    fixtures = ROOT / "tests" / "fixtures"
    rows = []
    for selfie, document in PAIRS:
        im = Image.open(fixtures / document).convert("RGB")
        reference = verifier.verify(fixtures / selfie, encode(im, "PNG"))
        for fmt in formats:
            v = verifier.verify(fixtures / selfie, encode(im, fmt))
            row = {"pair": f"{selfie} / {document}", "format": fmt, "decision": v.decision,
                   "similarity": None if v.similarity is None else round(v.similarity, 3),
                   "png_decision": reference.decision, "png_similarity": round(reference.similarity, 3),
                   "same_decision": v.decision == reference.decision,
                   "within_1_point": v.similarity is not None and abs(v.similarity - reference.similarity) <= 1}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def two_page_pdf(front, back, dpi: int = 300) -> bytes:
    buffer = io.BytesIO()
    back.save(buffer, format="PDF", resolution=dpi, save_all=True, append_images=[front], quality=92)
    return buffer.getvalue()


def bench_pdf(verifier) -> dict:
    from PIL import Image

    from facecompare.native import verification_dict

    card = Image.open(ROOT / "examples" / "id_card.jpg").convert("RGB")
    back = Image.open(ROOT / "tests" / "fixtures" / "id_back_mrz_only_che.jpg").convert("RGB")
    back = back.resize((card.width, round(card.width * back.height / back.width)))
    selfie = ROOT / "examples" / "selfie.jpg"
    png = encode(card, "PNG")
    pdf = two_page_pdf(card, back)
    out = {}
    for name, data in (("png", png), ("pdf", pdf)):
        started = time.perf_counter()
        v = verification_dict(verifier.verify(selfie, data))
        out[name] = {"decision": v["decision"], "similarity": v["similarity"], "notes": v["notes"],
                     "bytes": len(data), "seconds": round(time.perf_counter() - started, 2)}
    out["same_decision"] = out["png"]["decision"] == out["pdf"]["decision"] == "MATCH"
    print(json.dumps(out), flush=True)
    return out


def _physical_width_mm(doc_type: str) -> float:
    kind = doc_type.lower()
    if "card" in kind:
        return 85.6
    if "td2" in kind or "visa" in kind:
        return 105.0
    return 125.0


def _iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = w * h
    return inter / (aw * ah + bw * bh - inter) if inter else 0.0


def bench_dpi(verifier, dpis: list[int]) -> dict:
    """See the module docstring. Boxes are compared as ratios of the page (or of the specimen image)."""
    from dataclasses import replace

    from PIL import Image

    from facecompare.engine import Verifier
    from facecompare.images import load_image

    specimens = SHARED / "id_specimens"
    rows = [r for r in csv.DictReader(open(specimens / "labels.csv")) if r["face_usable"] == "1" and r["face_bbox_xywh"]]
    a4 = (595.0, 842.0)  # points
    results: dict[str, dict] = {}

    def found(analyzed, box, scale_box) -> tuple[bool, float | None]:
        for face in analyzed.faces:
            b = face.bounding_box
            if _iou((b.left, b.top, b.width, b.height), scale_box(box)) > 0.3:
                return True, face.width_px
        return False, None

    original = {"found": 0, "widths": [], "seconds": []}
    pages = {}
    for row in rows:
        im = Image.open(specimens / row["file"]).convert("RGB")
        box = [float(v) for v in row["face_bbox_xywh"].split()]
        started = time.perf_counter()
        analyzed = verifier.analyze(load_image(specimens / row["file"]), embed=1)
        original["seconds"].append(time.perf_counter() - started)
        ok, width = found(analyzed, box, lambda b, im=im: (b[0] / im.width, b[1] / im.height, b[2] / im.width,
                                                           b[3] / im.height))
        original["found"] += ok
        if width:
            original["widths"].append(width)
        # the specimen on an A4 page at its physical width, at its own pixels, 20 mm from the top left corner
        width_pt = _physical_width_mm(row["doc_type"]) / 25.4 * 72
        image_dpi = im.width / (width_pt / 72)
        page = Image.new("RGB", (round(a4[0] / 72 * image_dpi), round(a4[1] / 72 * image_dpi)), "white")
        offset = round(20 / 25.4 * image_dpi)
        page.paste(im, (offset, offset))
        buffer = io.BytesIO()
        page.save(buffer, format="PDF", resolution=image_dpi, quality=92)
        pages[row["file"]] = (buffer.getvalue(), box, im.size, offset, page.size)
    results["specimen images"] = {"found": original["found"], "of": len(rows),
                                  "median_width_px": round(statistics.median(original["widths"])),
                                  "min_width_px": round(min(original["widths"])),
                                  "seconds_per_image": round(statistics.median(original["seconds"]), 3)}
    print(json.dumps({"specimen images": results["specimen images"]}), flush=True)
    for dpi in dpis:
        v = Verifier(replace(verifier.settings, pdf_dpi=float(dpi)), detector=verifier.detector,
                     recognizer=verifier.recognizer, calibration=verifier.calibration)
        hits, widths, seconds, too_small = 0, [], [], 0
        for data, box, (w, _), offset, (pw, ph) in pages.values():
            started = time.perf_counter()
            analyzed = v.analyze(data, embed=1)
            seconds.append(time.perf_counter() - started)
            ok, width = found(analyzed, box, lambda b, w=w, offset=offset, pw=pw, ph=ph: (
                (offset + b[0]) / pw, (offset + b[1]) / ph, b[2] / pw, b[3] / ph))
            hits += ok
            if width:
                widths.append(width)
                too_small += width < verifier.settings.min_face_px
        results[f"{dpi} dpi"] = {"found": hits, "of": len(pages),
                                 "median_width_px": round(statistics.median(widths)) if widths else None,
                                 "min_width_px": round(min(widths)) if widths else None,
                                 "narrower_than_min_face_px": too_small,
                                 "seconds_per_page": round(statistics.median(seconds), 3)}
        print(json.dumps({f"{dpi} dpi": results[f"{dpi} dpi"]}), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("parts", nargs="*", default=["decode", "decisions", "pdf", "dpi"])
    parser.add_argument("--avif", action="store_true", help="AVIF too in decode (its 12 MP encode is slow)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dpis", default="72,100,150,200,300")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "formats.json"))
    args = parser.parse_args()
    import tempfile

    from facecompare.engine import Verifier

    out_path = Path(args.out)
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    results["machine"] = f"{os.cpu_count()} cores, shared with other work; compare rows of one run"
    verifier = Verifier()
    if "decode" in args.parts:
        with tempfile.TemporaryDirectory() as tmp:
            results["decode_12mp"] = bench_decode(["JPEG", "HEIF", "WEBP"] + (["AVIF"] if args.avif else []),
                                                  args.repeat, Path(tmp))
    if "decisions" in args.parts:
        results["decisions"] = bench_decisions(verifier, ["JPEG", "HEIF", "WEBP", "AVIF"])
    if "pdf" in args.parts:
        results["pdf_two_pages"] = bench_pdf(verifier)
    if "dpi" in args.parts:
        results["pdf_dpi"] = bench_dpi(verifier, [int(d) for d in args.dpis.split(",")])
    out_path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
