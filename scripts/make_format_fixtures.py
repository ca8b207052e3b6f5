"""Make tests/fixtures/formats/ (HEIC, AVIF, WebP, animated WebP, PDF) from the committed JPEG fixtures and
examples; the outputs are committed, and running this again makes equivalent files.

    python scripts/make_format_fixtures.py

- ``obama_rotated.{heic,avif,webp}``: tests/fixtures/obama.jpg stored sideways (turned 90 degrees
  anticlockwise) with orientation 6 (turn 90 degrees clockwise to show it), as a phone held sideways saves it:
  HEIF and AVIF carry it as ``irot`` (pillow-heif and Pillow write the EXIF orientation as ``irot``), WebP as
  EXIF. Decoded upright, each is obama.jpg.
- ``obama_then_biden.webp``: an animated WebP whose first frame is obama.jpg and whose second is biden.jpg
  (only the first frame is read).
- ``id_card_2pages.pdf``: a 2-page "scan": page 1 the MRZ-only back of a Swiss ID card (no face,
  tests/fixtures/id_back_mrz_only_che.jpg), page 2 examples/id_card.jpg (the synthetic ID card of obama2.jpg)
  at 1024 px, 150 DPI.
"""

from __future__ import annotations

import io
from pathlib import Path

import pillow_heif
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
OUT = FIXTURES / "formats"


def sideways(path: Path) -> tuple[Image.Image, bytes]:
    """The image turned 90 degrees anticlockwise, and EXIF saying 'turn 90 degrees clockwise to show'."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return Image.open(path).convert("RGB").transpose(Image.Transpose.ROTATE_90), exif.tobytes()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    stored, exif = sideways(FIXTURES / "obama.jpg")
    buffer = io.BytesIO()
    pillow_heif.from_pillow(stored).save(buffer, format="HEIF", quality=70, exif=exif)
    (OUT / "obama_rotated.heic").write_bytes(buffer.getvalue())
    stored.save(OUT / "obama_rotated.avif", format="AVIF", quality=60, exif=exif)
    stored.save(OUT / "obama_rotated.webp", format="WEBP", quality=75, exif=exif)

    first = Image.open(FIXTURES / "obama.jpg").convert("RGB")
    second = Image.open(FIXTURES / "biden.jpg").convert("RGB").resize(first.size)
    first.save(OUT / "obama_then_biden.webp", format="WEBP", save_all=True, append_images=[second], duration=500,
               loop=0, quality=75)

    back = Image.open(FIXTURES / "id_back_mrz_only_che.jpg").convert("RGB")
    card = Image.open(ROOT / "examples" / "id_card.jpg").convert("RGB")
    card.thumbnail((1024, 1024), Image.Resampling.LANCZOS)
    back.save(OUT / "id_card_2pages.pdf", format="PDF", resolution=150, save_all=True, append_images=[card],
              quality=85)
    for path in sorted(OUT.iterdir()):
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
