"""Benchmark: what hostile (small file, huge raster) and very large images cost one DetectFaces / CompareFaces.

Each case runs in a child process of its own (models warm before the measurement): seconds for the call, peak
RSS growth over the RSS before it (the kernel's VmHWM, reset just before the call), and the RSS still held when
the call has returned and its result is dropped; also the CPU seconds the call used. Rows:

- ``new``: this tree with its default settings;
- ``old code``: the source tree of another commit (``--old-commit b7da801``, the code before the bounds,
  exported with ``git archive``; or ``--old-src DIR``), with its defaults;
- ``old limits``: this tree with the bounds switched off by settings (``max_working_pixels=0``,
  ``max_detection_pixels=0``): what the settings alone do; the JPEG checks, the turned last-resort input and the
  memory release stay on.

    python benchmarks/bench_hostile_images.py --old-commit b7da801 [--cases png_1bit_8000,...] \
        [--rows "new,old code"] [--out benchmarks/results/hostile.json]

Seconds depend on what else runs on the machine (compare rows of one run, not runs); CPU seconds (all threads of
the child) much less: on an idle 2-core machine a call took 0.6-0.75 of its CPU seconds in wall-clock time (the
detector runs on both cores), on a busy one about all of them.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"

#: the bounds switched off by settings (the "old limits" row)
OLD_LIMITS = {"max_working_pixels": 0, "max_detection_pixels": 0}


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def make_cases(workdir: Path) -> dict[str, tuple[str, list[Path]]]:
    """name -> (operation, image files): each file is small, its raster large."""
    import numpy as np
    from PIL import Image

    sys.path.insert(0, str(SRC))
    from facecompare.synth import PhotoConditions, photograph, render_card

    def save(name: str, im: Image.Image, **kw) -> Path:
        path = workdir / name
        im.save(path, **kw)
        return path

    cases: dict[str, tuple[str, list[Path]]] = {}
    one_bit = save("one_bit_8000.png", Image.new("1", (8000, 8000), 0), optimize=True)
    cases["png_1bit_8000"] = ("detect", [one_bit])
    cases["png_1bit_8000_compare"] = ("compare", [one_bit, one_bit])
    cases["png_rgb_flat_8000"] = ("detect", [save("rgb_8000.png", Image.new("RGB", (8000, 8000), (90, 140, 200)))])
    cases["png_palette_8000"] = ("detect", [save("p_8000.png", Image.new("P", (8000, 8000), 3))])
    cases["jpeg_progressive_8000"] = ("detect", [save("prog_8000.jpg", Image.new("RGB", (8000, 8000), (128, 128, 128)),
                                                      progressive=True, quality=75)])
    cases["png_1bit_7999x8001"] = ("detect", [save("one_bit_odd.png", Image.new("1", (7999, 8001), 1))])
    cases["png_1bit_16000x4000"] = ("detect", [save("one_bit_wide.png", Image.new("1", (16000, 4000), 0))])
    cases["png_1bit_6000x4000"] = ("detect", [save("one_bit_24mp.png", Image.new("1", (6000, 4000), 0))])
    cases["png_1bit_8000_interlaced"] = ("detect", [save("one_bit_adam7.png", Image.new("1", (8000, 8000), 0),
                                                         interlace=1)])
    cases["png_rgba_8000"] = ("detect", [save("rgba_8000.png", Image.new("RGBA", (8000, 8000), (9, 9, 9, 100)))])
    cases["png_16bit_grey_8000"] = ("detect", [save("i16_8000.png", Image.new("I;16", (8000, 8000), 3000))])
    cases["jpeg_baseline_8000"] = ("detect", [save("base_8000.jpg", Image.new("RGB", (8000, 8000), (128,) * 3),
                                                   quality=75)])
    cases["jpeg_progressive_444_8000"] = ("detect", [save("prog444_8000.jpg", Image.new("RGB", (8000, 8000),
                                                                                         (128,) * 3),
                                                          progressive=True, quality=75, subsampling=0)])
    progressive = (workdir / "prog_8000.jpg").read_bytes()
    path = workdir / "prog_8000_1000_scans.jpg"
    path.write_bytes(_repeat_last_scan(progressive, 1000))
    cases["jpeg_progressive_8000_1000_scans"] = ("detect", [path])
    # a large iCCP chunk: 4 MB of zlib that inflates to about 4 GB (Pillow caps text and ICC inflation)
    buf = io.BytesIO()
    Image.new("RGB", (400, 300), (10, 20, 30)).save(buf, format="PNG")
    png = buf.getvalue()
    bomb = zlib.compress(b"\0" * (1 << 30), 9)
    iccp = _png_chunk(b"iCCP", b"icc\0\0" + bomb)
    text = _png_chunk(b"tEXt", b"comment\0" + b"x" * 4_000_000)
    path = workdir / "iccp_bomb.png"
    path.write_bytes(png[:33] + iccp + png[33:])
    cases["png_iccp_bomb"] = ("detect", [path])
    path = workdir / "big_text.png"
    path.write_bytes(png[:-12] + text + png[-12:])
    cases["png_4mb_text_chunk"] = ("detect", [path])
    path = workdir / "many_chunks.png"
    path.write_bytes(png[:33] + _png_chunk(b"abCd", b"") * 400_000 + png[33:])
    cases["png_400k_empty_chunks"] = ("detect", [path])
    buf = io.BytesIO()
    Image.new("RGB", (400, 300), (10, 20, 30)).save(buf, format="JPEG")
    path = workdir / "many_segments.jpg"
    path.write_bytes(buf.getvalue()[:2] + b"\xff\xfe\x00\x02" * 1_200_000 + buf.getvalue()[2:])
    cases["jpeg_1.2m_empty_segments"] = ("detect", [path])
    # ordinary inputs, for scale: a 12 MP ID photo (portrait found at the small-face pass) and a 12 MP photo
    # without a face (every pass runs, the last-resort pass in all four turns)
    rng = np.random.default_rng(12)
    face = Image.open(ROOT / "tests" / "fixtures" / "obama.jpg").convert("RGB")
    card, info = render_card(face, rng, width=1200, ghost=True, face_box=(200, 80, 440, 380))
    data, _ = photograph(card, info, rng, PhotoConditions(portrait_fraction=0.04, tilt=0.1, glare=0.2,
                                                          jpeg_quality=85, frame=(4000, 3000)))
    (workdir / "id_12mp.jpg").write_bytes(data)
    cases["jpeg_12mp_id_photo"] = ("detect", [workdir / "id_12mp.jpg"])
    desk = rng.normal(128, 40, (60, 80, 3)).clip(0, 255).astype(np.uint8)
    desk = np.asarray(Image.fromarray(desk).resize((4000, 3000), Image.Resampling.BICUBIC)).astype(np.int16)
    desk = (desk + rng.normal(0, 4, desk.shape)).clip(0, 255).astype(np.uint8)
    cases["jpeg_12mp_no_face"] = ("detect", [save("no_face_12mp.jpg", Image.fromarray(desk), quality=90)])
    return cases


def _repeat_last_scan(data: bytes, copies: int) -> bytes:
    """A progressive JPEG with its last scan (and the Huffman table before it) repeated ``copies`` times."""
    marks, i = [], 2
    while i < len(data) - 1 and data[i + 1] != 0xD9:
        end = i + 2 + int.from_bytes(data[i + 2:i + 4], "big")
        if data[i + 1] == 0xDA:
            while not (data[end] == 0xFF and data[end + 1] not in (0x00, 0xFF) and not 0xD0 <= data[end + 1] <= 0xD7):
                end += 1
        marks.append((data[i + 1], i, end))
        i = end
    k = [n for n, m in enumerate(marks) if m[0] == 0xDA][-1]
    start = marks[k - 1][1] if marks[k - 1][0] == 0xC4 else marks[k][1]
    return data[:marks[k][2]] + data[start:marks[k][2]] * copies + data[marks[k][2]:]


def _status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":")
                out[key] = int(value.split()[0]) * 1024
    return out


def child(operation: str, paths: list[str], settings: dict) -> dict:
    """Run in the child: one warm call, measured."""
    import gc

    import facecompare
    from facecompare import FaceCompareError, Settings, Verifier

    verifier = Verifier(Settings(**settings))
    verifier.warm()
    gc.collect()
    before = _status()["VmRSS"]
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    started, cpu_started = time.perf_counter(), time.process_time()
    error = None
    faces = None
    try:
        if operation == "compare":
            result = verifier.compare(paths[0], paths[1])
            faces = len(result.matches) + len(result.unmatched)
        else:
            result = verifier.analyze(paths[0], embed=0)
            faces = len(result.faces)
        del result
    except FaceCompareError as exc:
        error = type(exc).__name__
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    gc.collect()
    after = _status()
    return {"seconds": round(seconds, 3), "cpu_seconds": round(cpu_seconds, 3), "rss_before_mb": round(before / 2**20),
            "peak_growth_mb": round((after["VmHWM"] - before) / 2**20),
            "retained_mb": round((after["VmRSS"] - before) / 2**20), "faces": faces, "error": error,
            "facecompare": facecompare.__file__}


def run_case(src: Path, operation: str, paths: list[Path], settings: dict, timeout: float) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src))
    command = [sys.executable, __file__, "--child", operation, json.dumps(settings), *map(str, paths)]
    started = time.perf_counter()
    try:
        out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:g} s"}
    if out.returncode != 0:
        return {"error": f"exit {out.returncode}: {out.stderr.strip().splitlines()[-1:]}",
                "wall": round(time.perf_counter() - started, 1)}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        operation, settings, *paths = sys.argv[2:]
        print(json.dumps(child(operation, paths, json.loads(settings))))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    parser.add_argument("--old-commit", help="a commit whose src/ runs as the 'old code' row (git archive)")
    parser.add_argument("--old-src", type=Path, help="a source tree (its src/ folder) to run as the 'old code' row")
    parser.add_argument("--rows", default="new,old code,old limits",
                        help="which rows to run (default: all; 'old code' only with --old-commit or --old-src)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per case and row")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        old_src = args.old_src
        if args.old_commit:
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.old_commit, "src"], check=True,
                                     capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
            old_src = Path(tmp) / "src"
        rows = [("new", SRC, {}), ("old code", old_src, {}), ("old limits", SRC, OLD_LIMITS)]
        wanted = args.rows.split(",")
        rows = [row for row in rows if row[0] in wanted and row[1] is not None]
        cases = make_cases(Path(tmp))
        names = [n for n in args.cases.split(",") if n] or list(cases)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"{os.cpu_count()} CPUs, load average {load:.2f} at the start")
        print(f"{'case':34} {'file KB':>8} {'row':10} {'seconds':>8} {'CPU s':>6} {'peak +MB':>9} {'held +MB':>9}  "
              "result")
        for name in names:
            operation, paths = cases[name]
            size = sum(p.stat().st_size for p in paths)
            for label, src, settings in rows:
                r = run_case(src, operation, paths, settings, args.timeout)
                r.update(case=name, row=label, operation=operation, file_bytes=size)
                results.append(r)
                outcome = r.get("error") or f"{r.get('faces')} faces"
                print(f"{name:34} {size / 1000:8.0f} {label:10} {r.get('seconds', float('nan')):8.2f} "
                      f"{r.get('cpu_seconds', float('nan')):6.1f} "
                      f"{r.get('peak_growth_mb', float('nan')):9.0f} {r.get('retained_mb', float('nan')):9.0f}  "
                      f"{outcome}", flush=True)
    if args.out:
        args.out.write_text(json.dumps({"cpu_count": os.cpu_count(), "load_average_at_start": load,
                                        "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
