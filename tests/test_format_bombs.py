"""Bombs of the formats beyond JPEG and PNG (tests/format_bombs.py): HEIF and AVIF headers declaring huge images
(a grid image declares its whole size the same way), a WebP canvas far larger than its frames, PDFs of thousands of
pages, of an absurd page size, of an embedded image declaring 900 megapixels, of forms nested into millions of
objects. Each is a typed error with a message that says what to do, in bounded time and memory, measured in a
child process (its kernel-reported peak RSS, and the PDF renderer's, a grandchild), as in test_bounded_work.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import facecompare
from format_bombs import bombs, slow_bombs

MB = 1024 * 1024

_CHILD = textwrap.dedent("""
    import json, resource, sys, time
    sys.path.insert(0, sys.argv[1])
    import format_bombs
    from facecompare.images import load_image
    from facecompare.errors import FaceCompareError

    def status():
        fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
        return {k: int(fields[k].split()[0]) * 1024 for k in ("VmHWM", "VmRSS")}

    cases = {**format_bombs.bombs(), **(format_bombs.slow_bombs() if sys.argv[2] == "slow" else {})}
    load_image((format_bombs.FORMATS / "obama_rotated.heic").read_bytes())  # libraries loaded before measuring
    out = {}
    for name, (data, _) in cases.items():
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # reset VmHWM
        before = status()["VmRSS"]
        started = time.perf_counter()
        try:
            load_image(data)
            error, message = None, ""
        except FaceCompareError as exc:
            error, message = exc.code, exc.message
        out[name] = {"error": error, "message": message, "seconds": time.perf_counter() - started,
                     "peak": status()["VmHWM"] - before,
                     "renderer_peak": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}
    print(json.dumps(out))
""")


def _refusals(kind: str) -> dict:
    if not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.skip("needs Linux /proc/self/clear_refs to reset the peak RSS")
    env = dict(os.environ, PYTHONPATH=str(Path(facecompare.__file__).resolve().parents[1]))
    done = subprocess.run([sys.executable, "-c", _CHILD, str(Path(__file__).parent), kind], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr == ""  # no library prints anything (the PDF renderer's stderr is dropped)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _check(results: dict, expected: dict, seconds: float, renderer: int = 300 * MB) -> None:
    for name, (_, error) in expected.items():
        result = results[name]
        assert result["error"] == error, (name, result)
        assert 30 < len(result["message"]) < 400, (name, result["message"])
        # a hang guard, not a timing: an accepted bomb would take minutes or gigabytes
        assert result["seconds"] < seconds, (name, result)
        assert result["peak"] < 50 * MB, (name, result)  # refused from the header: nothing large was allocated
        assert result["renderer_peak"] < renderer, (name, result)


def test_each_bomb_is_refused_with_a_typed_error_in_bounded_time_and_memory():
    _check(_refusals("fast"), bombs(), seconds=8)


@pytest.mark.slow
def test_pdfs_of_nested_forms_are_refused_by_the_object_count_or_the_render_timeout():
    from facecompare.formats import PDF_RENDER_MEMORY, PDF_RENDER_TIMEOUT

    results = _refusals("slow")
    # PDFium's page load is bounded by the renderer's time and address-space limits (it reached 310 MB)
    _check(results, slow_bombs(), seconds=PDF_RENDER_TIMEOUT + 5, renderer=PDF_RENDER_MEMORY)
    # about 4 s of page load, then the count; on a machine busy enough the timeout comes first (both bound it)
    message = results["pdf of nested forms, 810000 objects"]["message"]
    assert "objects to draw" in message or "took more than" in message
    message = results["pdf of nested forms, 100000000 objects"]["message"]
    assert "took more than" in message or "GiB to render" in message


def test_a_pdf_over_the_renderers_address_space_is_image_too_large(monkeypatch):
    """PDFium aborts when an allocation fails; that is the PDF's size, not a broken file."""
    from facecompare import ImageTooLargeException, formats
    from facecompare.images import load_image
    from format_bombs import pdf_nested_forms

    monkeypatch.setattr(formats, "PDF_RENDER_MEMORY", 200 * MB)
    with pytest.raises(ImageTooLargeException, match="GiB to render"):
        load_image(pdf_nested_forms(100, 3))
