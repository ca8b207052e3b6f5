"""Synthetic identity documents and phone photos of them, reproducible from a seed.

No public set of real selfie + ID pairs exists, so the project builds its own: a face photo is printed on
an ID card (background pattern, text, a small portrait, optionally grayscale, with guilloche lines over it
and a ghost portrait), and the card is then "photographed": placed on a desk in a large frame, tilted in
perspective, turned 0/90/180/270 degrees (with or without an EXIF tag that undoes the turn), blurred, given
glare, and saved as JPEG.

A second renderer (:func:`render_specimen`) uses real document artwork instead of a drawn card: the face is
pasted into the portrait box of a real specimen (``labels.csv`` of a specimen folder such as
``../shared/data/id_specimens``), at the size of the printed face, in grayscale where the printed portrait is,
and the specimen is then photographed the same way. One renderer alone would hide what it does not draw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

from .synth_photo import PhotoConditions, photograph

CARD_ASPECT = 85.6 / 54.0  # ID-1 format
PORTRAIT_OF_CARD = 0.30  # portrait width as a fraction of the card width

_NAMES = ("MUSTERFRAU", "DOE", "ROSSI", "DUPONT", "NOWAK", "SILVA", "SMITH", "GARCIA", "KOWALSKI", "JANSEN")
_GIVEN = ("ERIKA", "JANE", "MARIA", "ANNA", "JOHN", "LUCA", "PIOTR", "SOFIA", "PAUL", "EVA")


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):
        return ImageFont.load_default()


def guilloche(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], rng: np.random.Generator,
              color: tuple[int, int, int, int], lines: int = 14, width: int = 1) -> None:
    """Interlaced sine waves, the security pattern printed over card backgrounds and portraits."""
    x1, y1, x2, y2 = box
    h = y2 - y1
    xs = np.linspace(x1, x2, 200)
    f1, f2 = rng.uniform(2, 6), rng.uniform(5, 11)
    for i in range(lines):
        phase = i * 2 * math.pi / lines
        ys = y1 + h * (0.5 + 0.35 * np.sin(f1 * (xs - x1) / (x2 - x1) * 2 * math.pi + phase)
                       * np.cos(f2 * (xs - x1) / (x2 - x1) * math.pi + phase / 2))
        draw.line(list(zip(xs.tolist(), ys.tolist())), fill=color, width=width)


def portrait_crop(face_photo: Image.Image, face_box: tuple[float, float, float, float] | None = None) -> Image.Image:
    """A passport-style crop (head and shoulders, 7:9) around the face box (pixels), or the image centre."""
    w, h = face_photo.size
    if face_box is None:  # LFW-style photos: the face is centred, about 40 % of the width
        cx, cy, fw = w / 2, h / 2, 0.42 * w
    else:
        x1, y1, x2, y2 = face_box
        cx, cy, fw = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1
    cw = fw * 1.6
    ch = cw * 9 / 7
    left, top = cx - cw / 2, cy - ch * 0.45
    return face_photo.crop((round(left), round(top), round(left + cw), round(top + ch)))


def render_card(face_photo: Image.Image, rng: np.random.Generator, *, width: int = 1000, grayscale: bool = False,
                ghost: bool = False, face_box: tuple[float, float, float, float] | None = None
                ) -> tuple[Image.Image, dict]:
    """An ID-1 card image with the face printed as its portrait. Returns the card and the portrait's box
    (``portrait``) and ghost box (``ghost``) in card pixels."""
    height = round(width / CARD_ASPECT)
    base = np.array(rng.integers(170, 235, size=3))
    gradient = np.linspace(0, 1, width)[None, :, None]
    tint = (base[None, None, :] * (1 - 0.25 * gradient) + np.array([235, 235, 235]) * 0.25 * gradient)
    card = Image.fromarray(np.broadcast_to(tint, (height, width, 3)).astype(np.uint8), "RGB").convert("RGBA")
    overlay = Image.new("RGBA", card.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    for k in range(3):
        guilloche(draw, (0, round(height * k / 3), width, round(height * (k + 1) / 3)), rng,
                  (*rng.integers(60, 160, size=3).tolist(), 70), lines=18, width=max(1, width // 600))
    card = Image.alpha_composite(card, overlay)
    draw = ImageDraw.Draw(card)
    # header and text fields
    draw.rectangle([0, 0, width, round(height * 0.12)], fill=(*rng.integers(20, 90, size=3).tolist(), 255))
    draw.text((round(width * 0.04), round(height * 0.02)), "IDENTITY CARD  CARTE D'IDENTITE",
              fill=(255, 255, 255), font=_font(max(10, height // 16)))
    pw = round(width * PORTRAIT_OF_CARD)
    ph = round(pw * 9 / 7)
    px, py = round(width * 0.04), round(height * 0.18)
    font = _font(max(9, height // 20))
    tx = px + pw + round(width * 0.05)
    birth = f"{int(rng.integers(1, 28)):02d}.{int(rng.integers(1, 12)):02d}.{int(rng.integers(1950, 2004))}"
    fields = [("Surname", _NAMES[int(rng.integers(len(_NAMES)))]),
              ("Given names", _GIVEN[int(rng.integers(len(_GIVEN)))]),
              ("Date of birth", birth),
              ("Document no.", "".join(str(int(d)) for d in rng.integers(0, 10, size=9)))]
    for i, (label, value) in enumerate(fields):
        y = py + round(i * height * 0.16)
        draw.text((tx, y), label, fill=(70, 70, 70), font=_font(max(8, height // 28)))
        draw.text((tx, y + max(9, height // 26)), value, fill=(10, 10, 10), font=font)
    portrait = portrait_crop(face_photo, face_box).resize((pw, ph), Image.Resampling.LANCZOS)
    if grayscale:
        portrait = portrait.convert("L").convert("RGB")
    portrait = ImageEnhance.Contrast(portrait).enhance(0.9)
    card.paste(portrait, (px, py))
    # guilloche printed over the portrait
    over = Image.new("RGBA", card.size, (0, 0, 0, 0))
    guilloche(ImageDraw.Draw(over), (px, py, px + pw, py + ph), rng, (120, 60, 160, 60), lines=10,
              width=max(1, width // 700))
    card = Image.alpha_composite(card, over)
    info = {"portrait": (px, py, pw, ph), "ghost": None}
    if ghost:
        gw = round(pw * 0.45)
        gh = round(gw * 9 / 7)
        gx, gy = round(width * 0.78), round(height * 0.52)
        ghost_img = portrait.convert("L").resize((gw, gh), Image.Resampling.LANCZOS)
        ghost_img = ImageEnhance.Contrast(ghost_img).enhance(0.45).convert("RGBA")
        ghost_img.putalpha(130)
        card.alpha_composite(ghost_img, (gx, gy))
        info["ghost"] = (gx, gy, gw, gh)
    # machine-readable-zone-like lines at the bottom
    mrz = "IDUTO" + "".join(str(int(d)) for d in rng.integers(0, 10, size=9)) + "<" * 16
    draw = ImageDraw.Draw(card)
    draw.text((round(width * 0.04), round(height * 0.86)), mrz, fill=(20, 20, 20), font=_font(max(8, height // 22)))
    return card.convert("RGB"), info


@dataclass(frozen=True)
class Specimen:
    """A real document image with its printed face's box (and the ghost portrait's, if any), in its pixels."""

    path: Path
    face_box: tuple[int, int, int, int]  # x, y, w, h
    ghost_box: tuple[int, int, int, int] | None
    grayscale: bool  # the printed portrait is grayscale (possibly tinted by the page's print)


#: a printed portrait is grayscale when its colour differences (R-G, G-B) barely vary: a gray photo under the
#: page's tint has a constant offset; measured on the specimens: the gray ones 2.2-6.0, the colour ones 7.3-32
GRAYSCALE_CHROMA_STD = 7.0


def _box(text: str) -> tuple[int, int, int, int] | None:
    parts = text.split()
    return tuple(int(float(v)) for v in parts) if len(parts) == 4 else None  # type: ignore[return-value]


def load_specimens(root: str | Path) -> list[Specimen]:
    """The usable, labelled specimens of a folder with ``labels.csv`` (columns ``file``, ``face_usable``,
    ``face_bbox_xywh``, ``ghost_bbox_xywh``, as in ``../shared/data/id_specimens``)."""
    import csv

    root = Path(root)
    labels = root / "labels.csv"
    if not labels.is_file():
        raise ValueError(f"{root} has no labels.csv (one row per specimen with its face_bbox_xywh).")
    out = []
    with open(labels, newline="") as handle:
        for row in csv.DictReader(handle):
            face = _box(row.get("face_bbox_xywh") or "")
            if row.get("face_usable") != "1" or face is None or not (root / row["file"]).is_file():
                continue
            x, y, w, h = face
            with Image.open(root / row["file"]) as image:
                crop = np.asarray(image.convert("RGB").crop((x, y, x + w, y + h)), dtype=np.float64)
            chroma = max(float((crop[..., 0] - crop[..., 1]).std()), float((crop[..., 1] - crop[..., 2]).std()))
            out.append(Specimen(root / row["file"], face, _box(row.get("ghost_bbox_xywh") or ""),
                                chroma < GRAYSCALE_CHROMA_STD))
    if not out:
        raise ValueError(f"{labels} lists no usable specimen with a face_bbox_xywh.")
    return out


def _paste_face(page: Image.Image, face_photo: Image.Image, source_box: tuple[float, float, float, float],
                target: tuple[float, float, float, float], grayscale: bool, feather: float = 0.08) -> None:
    """Paste the face ``source_box`` (x1, y1, x2, y2 of ``face_photo``) over the face box ``target`` (x, y, w, h
    of ``page``), in place: an ellipse around the face with soft edges, its colours matched to the printed
    face it replaces (channel means and spreads: the page's tint, contrast and grayscale print)."""
    tx, ty, tw, th = target
    sx1, sy1, sx2, sy2 = source_box
    scale = tw / (sx2 - sx1)
    # the region pasted: the face with some hair and chin, 1.5 x 1.8 face widths
    rw, rh = 1.5 * tw, 1.8 * tw
    cx, cy = tx + tw / 2, ty + th / 2 - 0.05 * tw
    left, top = round(cx - rw / 2), round(cy - rh / 2)
    right, bottom = round(cx + rw / 2), round(cy + rh / 2)
    # the source pixels that land there
    scx, scy = (sx1 + sx2) / 2, (sy1 + sy2) / 2
    src = (scx + (left - (tx + tw / 2)) / scale, scy + (top - (ty + th / 2)) / scale,
           scx + (right - (tx + tw / 2)) / scale, scy + (bottom - (ty + th / 2)) / scale)
    size = (right - left, bottom - top)
    face = face_photo.convert("RGB").resize(size, Image.Resampling.LANCZOS, box=src)
    if grayscale:
        face = face.convert("L").convert("RGB")
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).ellipse([0, 0, size[0] - 1, size[1] - 1], fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(max(1.0, feather * tw)))
    under = np.asarray(page.crop((left, top, right, bottom)).convert("RGB"), dtype=np.float64)
    pixels = np.asarray(face, dtype=np.float64)
    inside = np.asarray(mask) > 128
    matched = np.empty_like(pixels)
    for c in range(3):
        mu_f, sd_f = pixels[..., c][inside].mean(), pixels[..., c][inside].std() + 1e-6
        mu_o, sd_o = under[..., c][inside].mean(), under[..., c][inside].std()
        matched[..., c] = (pixels[..., c] - mu_f) / sd_f * max(sd_o, 0.5 * sd_f) + mu_o
    face = Image.fromarray(np.clip(matched, 0, 255).astype(np.uint8), "RGB")
    page.paste(face, (left, top), mask)


def render_specimen(face_photo: Image.Image, specimen: Specimen, rng: np.random.Generator, *,
                    face_box: tuple[float, float, float, float] | None = None, min_face: int = 240,
                    max_side: int = 2600) -> tuple[Image.Image, dict]:
    """A real specimen with ``face_photo``'s face pasted over its printed face (and its ghost portrait, if any).

    The specimen is first enlarged (LANCZOS) until its printed face is ``min_face`` px wide (at most
    ``max_side`` px on its longer side), so the pasted face keeps the detail of a close photograph. Returns the
    page and, as :func:`render_card` does, the portrait's box (``portrait``: the passport-style 7:9 box around
    the face, the same geometry as the drawn card's, so ``portrait_fraction`` means the same face size) and
    the ghost's box, in page pixels."""
    with Image.open(specimen.path) as opened:
        page = opened.convert("RGB")
    x, y, w, h = specimen.face_box
    scale = max(1.0, min(min_face / w, max_side / max(page.size)))
    if scale > 1.0:
        page = page.resize((round(page.width * scale), round(page.height * scale)), Image.Resampling.LANCZOS)
    target = (x * scale, y * scale, w * scale, h * scale)
    pw_photo, ph_photo = face_photo.size
    if face_box is None:  # LFW-style photos: the face is centred, about 42 % of the width (as portrait_crop)
        fw = 0.42 * pw_photo
        face_box = (pw_photo / 2 - fw / 2, ph_photo / 2 - fw / 2, pw_photo / 2 + fw / 2, ph_photo / 2 + fw / 2)
    _paste_face(page, face_photo, face_box, target, specimen.grayscale)
    # a faint security print over the new portrait, as the original has over its own
    card = page.convert("RGBA")
    over = Image.new("RGBA", card.size, (0, 0, 0, 0))
    tx, ty, tw, _ = target
    guilloche(ImageDraw.Draw(over), (round(tx - 0.2 * tw), round(ty - 0.2 * tw), round(tx + 1.2 * tw),
                                     round(ty + 1.3 * tw)), rng, (120, 60, 160, 40), lines=8,
              width=max(1, round(tw / 200)))
    page = Image.alpha_composite(card, over).convert("RGB")
    info: dict = {"portrait": None, "ghost": None}
    if specimen.ghost_box is not None:
        gx, gy, gw, gh = (v * scale for v in specimen.ghost_box)
        _paste_face(page, face_photo, face_box, (gx, gy, gw, gh), True)
        info["ghost"] = _passport_box(gx, gy, gw)
    info["portrait"] = _passport_box(*target[:3])
    return page, info


def _passport_box(x: float, y: float, w: float) -> tuple[int, int, int, int]:
    """The 7:9 head-and-shoulders box around a face box of width ``w`` at (x, y): the geometry of
    :func:`portrait_crop`, in which the face is 1/1.6 of the portrait's width."""
    cw = 1.6 * w
    ch = cw * 9 / 7
    cx, cy = x + w / 2, y + w / 2
    return (round(cx - cw / 2), round(cy - ch * 0.45), round(cw), round(ch))


CONDITION_COLUMNS = ("size", "portrait_pct", "rotation", "exif", "grayscale", "ghost", "glare", "tilt", "blur",
                     "jpeg")


def identities(faces_dir: Path) -> tuple[list[list[Path]], list[Path]]:
    """(people with at least two photos, all photos) from a folder of one sub-folder per person."""
    people, everyone = [], []
    for person in sorted(p for p in faces_dir.iterdir() if p.is_dir()):
        photos = sorted(q for q in person.iterdir() if q.suffix.lower() in (".jpg", ".jpeg", ".png"))
        everyone.extend(photos)
        if len(photos) >= 2:
            people.append(photos)
    return people, everyone


def sample_conditions(rng: np.random.Generator) -> tuple[PhotoConditions, dict]:
    """Random photo conditions and their categorical labels (the benchmark's breakdown columns)."""
    size = str(rng.choice(["small", "medium", "large"]))
    fraction = {"small": (0.02, 0.04), "medium": (0.04, 0.07), "large": (0.07, 0.10)}[size]
    rotation = int(rng.choice([0, 90, 180, 270], p=[0.55, 0.15, 0.15, 0.15]))
    exif = bool(rotation and rng.random() < 0.5)
    glare = str(rng.choice(["none", "low", "high"], p=[0.6, 0.25, 0.15]))
    tilt = str(rng.choice(["none", "low", "high"], p=[0.4, 0.4, 0.2]))
    blur = str(rng.choice(["none", "some"], p=[0.6, 0.4]))
    quality = int(rng.integers(60, 91))
    conditions = PhotoConditions(
        portrait_fraction=float(rng.uniform(*fraction)),
        rotation=rotation,
        exif=exif,
        tilt=float(rng.uniform(*{"none": (0, 0.03), "low": (0.05, 0.12), "high": (0.15, 0.25)}[tilt])),
        blur=float(0 if blur == "none" else rng.uniform(0.5, 1.5)),
        glare=float(rng.uniform(*{"none": (0, 0), "low": (0.2, 0.4), "high": (0.5, 0.8)}[glare])),
        jpeg_quality=quality,
        grayscale=bool(rng.random() < 0.25),
        ghost=bool(rng.random() < 0.4),
    )
    labels = {"size": size,
              # the portrait's width in whole percent of the frame's width: 2 (2-3 %) to 9, the aims' bins
              "portrait_pct": str(int(conditions.portrait_fraction * 100)),
              "rotation": str(rotation), "exif": "yes" if exif else "no",
              "grayscale": "yes" if conditions.grayscale else "no", "ghost": "yes" if conditions.ghost else "no",
              "glare": glare, "tilt": tilt, "blur": blur, "jpeg": "60-74" if quality < 75 else "75-90"}
    return conditions, labels


def make_kyc_pair(index: int, seed: int, people: list[list[Path]], everyone: list[Path], out: Path,
                  specimens: list[Specimen] | None = None) -> dict:
    """One selfie + document pair, determined by (seed, index) alone (and, with ``specimens``, by them: the
    face is pasted into a real specimen instead of a drawn card)."""
    rng = np.random.default_rng([seed, index])
    same = bool(rng.random() < 0.5)
    person = people[int(rng.integers(len(people)))]
    order = rng.permutation(len(person))
    card_photo = person[int(order[0])]
    if same:
        selfie_photo = person[int(order[1])]
    else:
        while True:
            selfie_photo = everyone[int(rng.integers(len(everyone)))]
            if selfie_photo.parent != card_photo.parent:
                break
    conditions, labels = sample_conditions(rng)
    extra: dict = {}
    if specimens:
        specimen = specimens[int(rng.integers(len(specimens)))]
        # the print is the specimen's: grayscale and ghost are what its artwork has
        conditions.grayscale, conditions.ghost = specimen.grayscale, specimen.ghost_box is not None
        labels["grayscale"] = "yes" if conditions.grayscale else "no"
        labels["ghost"] = "yes" if conditions.ghost else "no"
        card, info = render_specimen(Image.open(card_photo).convert("RGB"), specimen, rng)
        extra["specimen"] = specimen.path.name
    else:
        card, info = render_card(Image.open(card_photo).convert("RGB"), rng, width=1000,
                                 grayscale=conditions.grayscale, ghost=conditions.ghost)
    data, _ = photograph(card, info, rng, conditions)
    images = out / "images"
    selfie_name, document_name = f"images/{index:05d}_selfie.jpg", f"images/{index:05d}_document.jpg"
    (images / f"{index:05d}_selfie.jpg").write_bytes(selfie_photo.read_bytes())
    (images / f"{index:05d}_document.jpg").write_bytes(data)
    return {"pair_id": index, "selfie": selfie_name, "document": document_name, "same": int(same),
            "selfie_source": f"{selfie_photo.parent.name}/{selfie_photo.name}",
            "document_source": f"{card_photo.parent.name}/{card_photo.name}", **labels, **extra}


def _pair_job(job: tuple) -> dict:
    return make_kyc_pair(*job)


def add_impostor_pairs(rows: list[dict], per_document: int, seed: int) -> list[dict]:
    """Extra impostor rows that reuse the rendered images: each document against ``per_document`` selfies of
    other people, chosen by ``seed`` alone.

    A false-match rate of 1e-3 needs thousands of impostor pairs to be measured at all (with 1,000 it rests on
    a single pair); the rendered pairs give about n/2. These rows cost no rendering and, in `evaluate`, no
    extra embedding: each image is embedded once. The condition columns are the document's.
    """
    if per_document <= 0 or len(rows) < 2:
        return []
    rng = np.random.default_rng([seed, 1_000_003])
    identity = [row["selfie_source"].split("/")[0] for row in rows]
    extra: list[dict] = []
    next_id = max(int(row["pair_id"]) for row in rows) + 1
    for doc_row in rows:
        person = doc_row["document_source"].split("/")[0]
        candidates = [i for i, who in enumerate(identity) if who != person and rows[i] is not doc_row]
        if not candidates:
            continue
        picks = rng.choice(len(candidates), size=min(per_document, len(candidates)), replace=False)
        for pick in sorted(int(k) for k in picks):
            selfie_row = rows[candidates[pick]]
            extra.append({**doc_row, "pair_id": next_id, "selfie": selfie_row["selfie"], "same": 0,
                          "selfie_source": selfie_row["selfie_source"]})
            next_id += 1
    return extra


def generate_kyc_set(faces_dir: str | Path, n: int, seed: int, out: str | Path, *, workers: int = 1,
                     progress: bool = True, impostors_per_document: int = 10,
                     specimens_dir: str | Path | None = None) -> Path:
    """Write ``n`` selfie/document pairs and ``pairs.csv`` to ``out``; the same arguments give the same files.

    ``pairs.csv`` also holds ``impostors_per_document`` extra impostor rows per document that reuse the
    rendered images (see :func:`add_impostor_pairs`). With ``specimens_dir`` (a folder with ``labels.csv``) the
    documents are real specimens with the face pasted in (:func:`render_specimen`). ``source-pairs.csv`` lists
    the same pairs on the original photos (paths relative to ``faces_dir``): the baseline that shows what
    printing and photographing cost."""
    import multiprocessing

    from tqdm import tqdm

    faces_dir, out = Path(faces_dir), Path(out)
    people, everyone = identities(faces_dir)
    if not people:
        raise ValueError(f"{faces_dir} has no sub-folder with two or more photos (one folder per person).")
    specimens = load_specimens(specimens_dir) if specimens_dir is not None else None
    (out / "images").mkdir(parents=True, exist_ok=True)
    jobs = [(i, seed, people, everyone, out, specimens) for i in range(n)]
    rows: list[dict] = []
    if workers > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for row in tqdm(pool.imap(_pair_job, jobs, chunksize=4), total=n, disable=not progress,
                            desc="rendering", unit="pair"):
                rows.append(row)
    else:
        for job in tqdm(jobs, disable=not progress, desc="rendering", unit="pair"):
            rows.append(_pair_job(job))
    rows += add_impostor_pairs(rows, impostors_per_document, seed)
    path = out / "pairs.csv"
    _write_rows(path, rows)
    # the same pairs on the original photos: what the recognizer reaches before printing and photographing
    _write_rows(out / "source-pairs.csv",
                [{**row, "selfie": row["selfie_source"], "document": row["document_source"]} for row in rows])
    return path


def _write_rows(path: Path, rows: list[dict]) -> None:
    import csv

    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
