"""HEIC/HEIF, WebP (still and animated), AVIF and PDF on every surface: the library, the CLI, the REST API, the AWS
endpoint (JPEG and PNG only unless FACECOMPARE_AWS_EXTRA_FORMATS=on), batch and its report, and the review console.

The fixtures (tests/fixtures/formats, made by scripts/make_format_fixtures.py from the JPEG fixtures) are stored
sideways with the orientation that turns them upright (HEIF and AVIF: ``irot``; WebP: EXIF), as a phone saves
them; the PDF's first page is the back of an ID card (no face), its second page the card."""

from __future__ import annotations

import base64
import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

import facecompare
from facecompare import InvalidImageFormatException
from facecompare.engine import page_from_notes
from facecompare.errors import ConfigurationError
from facecompare.formats import media_type, sniff_format
from facecompare.images import load_image
from facecompare.native import other_faces, verification_dict
from facecompare.review.service import ReviewQueue
from facecompare.review.store import open_review_store
from facecompare.server.app import create_app
from facecompare.server.config import ServerConfig
from facecompare.server.console import render
from facecompare.storage import S3Reader

FIXTURES = Path(__file__).parent / "fixtures"
FORMATS = FIXTURES / "formats"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ROTATED = {"HEIF": "obama_rotated.heic", "AVIF": "obama_rotated.avif", "WEBP": "obama_rotated.webp"}
PDF = FORMATS / "id_card_2pages.pdf"
SELFIE = EXAMPLES / "selfie.jpg"  # obama.jpg, downscaled
CARD = EXAMPLES / "id_card.jpg"  # a synthetic ID card of another photo of the same man


def _upright_reference() -> np.ndarray:
    return np.asarray(Image.open(FIXTURES / "obama.jpg").convert("RGB")).astype(float)


# -- sniffing and decoding ---------------------------------------------------------------------------------------

def test_the_format_is_sniffed_from_the_bytes_only(tmp_path):
    expected = {**{name: fmt for fmt, name in ROTATED.items()}, "obama_then_biden.webp": "WEBP",
                "id_card_2pages.pdf": "PDF"}
    for name, fmt in expected.items():
        data = (FORMATS / name).read_bytes()
        assert sniff_format(data) == fmt, name
        wrong = tmp_path / f"{name}.jpg"  # a misleading file name changes nothing
        wrong.write_bytes(data)
        assert load_image(wrong).format == fmt
    assert media_type((FORMATS / ROTATED["HEIF"]).read_bytes()) == "image/heic"
    assert media_type(PDF.read_bytes()) == "application/pdf"
    for data in (b"GIF89a" + b"\0" * 64, b"RIFF\0\0\0\0AVI LIST", b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom"):
        assert sniff_format(data) is None
        with pytest.raises(InvalidImageFormatException):
            load_image(data)


@pytest.mark.parametrize("fmt", list(ROTATED))
def test_each_format_lands_upright_as_the_jpeg_does(fmt):
    """Stored sideways: without its irot (HEIF, AVIF) or EXIF orientation (WebP) applied it would be 640x512."""
    data = (FORMATS / ROTATED[fmt]).read_bytes()
    if fmt in ("HEIF", "AVIF"):
        assert b"irot" in data  # the orientation is the container's own transform, not only EXIF
    decoded = load_image(data)
    assert (decoded.width, decoded.height) == (512, 640)
    difference = np.abs(decoded.view(1).astype(float) - _upright_reference()).mean()
    assert difference < 6, difference  # the same picture, up to compression


def test_an_animated_webp_is_read_from_its_first_frame():
    decoded = load_image((FORMATS / "obama_then_biden.webp").read_bytes())
    first = np.abs(decoded.view(1).astype(float) - _upright_reference()).mean()
    biden = np.asarray(Image.open(FIXTURES / "biden.jpg").convert("RGB").resize((512, 640))).astype(float)
    assert first < 6 < np.abs(decoded.view(1).astype(float) - biden).mean()


def test_a_pdf_is_every_page_rendered_at_the_dpi(verifier):
    decoded = load_image(PDF)
    assert (decoded.format, decoded.page, decoded.pages) == ("PDF", 1, 2)
    card = decoded.open_page(2)
    with Image.open(CARD) as im:  # 1024 px at 150 DPI in the PDF, rendered at 200 DPI
        long_side = round(1024 * verifier.settings.pdf_dpi / 150)
        assert max(card.width, card.height) in (long_side - 1, long_side, long_side + 1)
        assert abs(card.width / card.height - im.width / im.height) < 0.01


# -- the library ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [*ROTATED.values(), "obama_then_biden.webp"])
def test_library_verifies_each_format_as_its_jpeg(verifier, name):
    reference = verifier.verify(FIXTURES / "obama.jpg", CARD)
    v = verifier.verify(FORMATS / name, CARD)
    assert v.decision == reference.decision == "MATCH"
    assert abs(v.similarity - reference.similarity) < 1
    assert v.selfie.rotation == 0  # upright from the metadata: no rotation search was needed
    box, ref = v.selfie_face.bounding_box, reference.selfie_face.bounding_box
    assert max(abs(box.left - ref.left), abs(box.top - ref.top), abs(box.width - ref.width)) < 0.02


def test_library_takes_the_pdf_page_with_the_face_and_says_which(verifier):
    v = verifier.verify(SELFIE, PDF)
    reference = verifier.verify(SELFIE, CARD)
    assert v.decision == reference.decision == "MATCH"
    assert abs(v.similarity - reference.similarity) < 1
    assert "DOCUMENT_PDF_PAGE_2_OF_2" in v.notes and v.document.page == 2
    assert page_from_notes(v.notes, "document") == 2 and page_from_notes(v.notes, "selfie") is None
    ref = reference.document_face.bounding_box
    box = v.document_face.bounding_box
    assert max(abs(box.left - ref.left), abs(box.top - ref.top), abs(box.width - ref.width)) < 0.02
    response = facecompare.detect_faces(PDF)  # Rekognition's shape: no notes in it
    assert len(response["FaceDetails"]) >= 1 and "notes" not in json.dumps(response)
    compared = facecompare.compare_faces(FORMATS / ROTATED["HEIF"], PDF)
    assert compared["FaceMatches"] and compared["FaceMatches"][0]["Similarity"] > 90


# -- the CLI -------------------------------------------------------------------------------------------------

def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "facecompare.cli", *args], capture_output=True, text=True,
                          timeout=300)


def test_cli_compares_heic_with_pdf_and_annotates_the_right_page(tmp_path):
    out = tmp_path / "annotated.png"
    done = _cli("compare", str(FORMATS / ROTATED["HEIF"]), str(PDF), "--json", "--annotate", str(out))
    assert done.returncode == 0, done.stderr[-2000:]  # exit code 0: MATCH
    result = json.loads(done.stdout)
    assert result["verification"]["decision"] == "MATCH"
    assert "DOCUMENT_PDF_PAGE_2_OF_2" in result["verification"]["notes"]
    assert result["CompareFaces"]["FaceMatches"]
    with Image.open(out) as annotated:
        # two panels at the same height: the selfie (4:5) and page 2, the card (wider than tall); page 1, the back of
        # a card, is wider still (about 1.42 against 1.25), so the width tells the page
        card = Image.open(CARD)
        selfie_width = round(720 * 512 / 640)
        expected = selfie_width + 16 + round(720 * card.width / card.height)
        assert abs(annotated.width - expected) <= 3, (annotated.size, expected)
    done = _cli("detect", str(FORMATS / ROTATED["AVIF"]))
    assert done.returncode == 0 and "1 face in" in done.stdout and "(512x640)" in done.stdout, done.stdout


# -- the REST API and the AWS endpoint ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client_for(verifier, tmp_path_factory):
    made = []

    def make(**config):
        url = f"sqlite:///{tmp_path_factory.mktemp('formats') / 'store.db'}"
        app = create_app(verifier.settings, ServerConfig(auth=False, warm=False, collections_url=url, **config),
                         verifier=verifier, s3=S3Reader())
        client = TestClient(app, base_url="http://127.0.0.1")  # a loopback Host (auth is off)
        client.__enter__()
        made.append(client)
        return client

    yield make
    for client in made:
        client.__exit__(None, None, None)


def test_rest_verifies_webp_against_pdf_whatever_the_content_type(client_for):
    client = client_for()
    files = {"selfie": ("selfie.png", (FORMATS / ROTATED["WEBP"]).read_bytes(), "image/png"),
             "document": ("scan.jpg", PDF.read_bytes(), "image/jpeg")}
    r = client.post("/v1/verify", files=files, data={"annotate": "true"})
    assert r.status_code == 200, r.text[:500]
    body = r.json()
    assert body["decision"] == "MATCH" and "DOCUMENT_PDF_PAGE_2_OF_2" in body["notes"]
    assert Image.open(io.BytesIO(base64.b64decode(body["annotated_png"]))).height == 720
    r = client.post("/v1/detect", json={"image": base64.b64encode((FORMATS / ROTATED["HEIF"]).read_bytes()).decode()})
    assert r.status_code == 200 and len(r.json()["faces"]) == 1 and r.json()["width"] == 512, r.text[:500]


def _aws(client, target: str, body: dict):
    return client.post("/", content=json.dumps(body), headers={"X-Amz-Target": f"RekognitionService.{target}",
                                                                "Content-Type": "application/x-amz-json-1.1"})


def test_aws_endpoint_keeps_jpeg_and_png_unless_the_setting_is_on(client_for):
    heic = base64.b64encode((FORMATS / ROTATED["HEIF"]).read_bytes()).decode()
    pdf = base64.b64encode(PDF.read_bytes()).decode()
    jpeg = base64.b64encode(SELFIE.read_bytes()).decode()
    default = client_for()
    for target, body in (("DetectFaces", {"Image": {"Bytes": heic}}),
                         ("CompareFaces", {"SourceImage": {"Bytes": jpeg}, "TargetImage": {"Bytes": pdf}})):
        r = _aws(default, target, body)
        assert r.status_code == 400 and r.json()["__type"] == "InvalidImageFormatException", r.text[:300]
        assert "FACECOMPARE_AWS_EXTRA_FORMATS=on" in r.json()["Message"]
    assert _aws(default, "DetectFaces", {"Image": {"Bytes": jpeg}}).status_code == 200
    assert _aws(default, "CreateCollection", {"CollectionId": "kyc"}).status_code == 200
    r = _aws(default, "IndexFaces", {"CollectionId": "kyc", "Image": {"Bytes": heic}})
    assert r.json()["__type"] == "InvalidImageFormatException"

    extra = client_for(aws_extra_formats=True)
    r = _aws(extra, "DetectFaces", {"Image": {"Bytes": heic}})
    assert r.status_code == 200 and len(r.json()["FaceDetails"]) == 1, r.text[:300]
    r = _aws(extra, "CompareFaces", {"SourceImage": {"Bytes": heic}, "TargetImage": {"Bytes": pdf}})
    assert r.status_code == 200 and r.json()["FaceMatches"], r.text[:300]
    assert "notes" not in r.text and "PDF_PAGE" not in r.text  # Rekognition's shapes only
    assert _aws(extra, "CreateCollection", {"CollectionId": "kyc"}).status_code == 200
    r = _aws(extra, "IndexFaces", {"CollectionId": "kyc", "Image": {"Bytes": heic}, "ExternalImageId": "obama"})
    assert r.status_code == 200 and len(r.json()["FaceRecords"]) == 1, r.text[:300]
    r = _aws(extra, "SearchFacesByImage", {"CollectionId": "kyc", "Image": {"Bytes": pdf}})
    assert r.status_code == 200 and r.json()["FaceMatches"][0]["Face"]["ExternalImageId"] == "obama", r.text[:300]


def test_aws_extra_formats_setting_from_the_environment():
    assert ServerConfig.from_env({}).aws_extra_formats is False
    assert ServerConfig.from_env({"FACECOMPARE_AWS_EXTRA_FORMATS": "on"}).aws_extra_formats is True
    with pytest.raises(ConfigurationError, match="FACECOMPARE_AWS_EXTRA_FORMATS"):
        ServerConfig.from_env({"FACECOMPARE_AWS_EXTRA_FORMATS": "maybe"})


# -- batch and its report ----------------------------------------------------------------------------------------

def test_batch_reads_every_format_and_its_report_shows_them(tmp_path):
    for path in (*[FORMATS / name for name in ROTATED.values()], PDF, SELFIE, FIXTURES / "biden.jpg"):
        shutil.copy(path, tmp_path / path.name)
    rows = [(f"selfie-{fmt}", ROTATED[fmt], "id_card_2pages.pdf") for fmt in ROTATED]
    rows.append(("impostor-pdf", "biden.jpg", "id_card_2pages.pdf"))  # NO_MATCH: the report shows its images
    rows.append(("impostor-heic", "biden.jpg", ROTATED["HEIF"]))
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        csv.writer(handle).writerows([("id", "selfie", "document"), *rows])
    done = _cli("batch", str(manifest), "--out", str(tmp_path / "out"), "--workers", "1", "--no-progress")
    assert done.returncode == 0, done.stderr[-2000:]
    results = {r["id"]: r for r in map(json.loads, (tmp_path / "out" / "results.jsonl").read_text().splitlines())}
    for fmt in ROTATED:
        assert results[f"selfie-{fmt}"]["decision"] == "MATCH", results[f"selfie-{fmt}"]
        assert "DOCUMENT_PDF_PAGE_2_OF_2" in results[f"selfie-{fmt}"]["notes"]
    assert results["impostor-pdf"]["decision"] == "NO_MATCH" and results["impostor-heic"]["decision"] == "NO_MATCH"
    report = (tmp_path / "out" / "report.html").read_text()
    assert "unreadable" not in report
    assert report.count("data:image/jpeg;base64,") == 4  # both images of both NO_MATCH rows


def test_report_thumbnail_of_a_pdf_is_the_page_of_the_face(tmp_path):
    from facecompare.report import thumbnail as _thumbnail

    def size(page):
        src = _thumbnail(str(PDF), None, "#d62728", None, page)
        return Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).size

    first, second = size(None), size(2)
    back, card = Image.open(FIXTURES / "id_back_mrz_only_che.jpg"), Image.open(CARD)
    assert abs(first[0] / first[1] - back.width / back.height) < 0.02
    assert abs(second[0] / second[1] - card.width / card.height) < 0.02


# -- the review queue and console --------------------------------------------------------------------------------

def test_review_console_shows_a_queued_heic_and_the_pdf_page_of_the_face(verifier, tmp_path):
    selfie, document = (FORMATS / ROTATED["HEIF"]).read_bytes(), PDF.read_bytes()
    v = verifier.verify(selfie, document)
    queue = ReviewQueue(open_review_store(f"sqlite:///{tmp_path / 'review.db'}"))
    try:
        case, _ = queue.queue({**verification_dict(v), "other_faces": other_faces(v)}, verifier.recognizer.name,
                              selfie, document, source="api")
        assert queue.store.get_image(case.case_id, "selfie").media_type == "image/heic"
        assert queue.store.get_image(case.case_id, "document").media_type == "application/pdf"
        panel = Image.open(io.BytesIO(render.annotated_panel(case, "document", document, verifier.settings)))
        card = Image.open(CARD)
        assert panel.height == 720 and abs(panel.width - round(720 * card.width / card.height)) <= 3
        zoom = render.zoomed_face(case, "document", document, verifier.settings)
        assert zoom is not None and max(Image.open(io.BytesIO(zoom)).size) == 640
        panel = Image.open(io.BytesIO(render.annotated_panel(case, "selfie", selfie, verifier.settings)))
        assert panel.size == (round(720 * 512 / 640), 720)  # upright
    finally:
        queue.store.close()


def test_dedupe_groups_the_same_photo_across_formats_and_shows_each_face(tmp_path, capsys):
    from facecompare.cli import main

    rows = [("jpeg", FIXTURES / "obama.jpg"), *[(fmt.lower(), FORMATS / name) for fmt, name in ROTATED.items()],
            ("other", FIXTURES / "biden.jpg")]
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        csv.writer(handle).writerows([("id", "image"), *[(i, str(path)) for i, path in rows]])
    assert main(["dedupe", str(manifest), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    groups = json.loads((tmp_path / "run" / "groups.json").read_text())
    assert [sorted(g["ids"]) for g in groups] == [["avif", "heif", "jpeg", "webp"]]
    page = (tmp_path / "run" / "report.html").read_text()
    assert page.count('src="data:image/jpeg;base64,') == 4  # each face of the group, HEIC and AVIF converted
