"""A self-contained HTML report of a batch run: counts, a score histogram, and a sortable, filterable table in
which REVIEW, NO_MATCH and ERROR rows show the two images side by side with the compared faces boxed."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from PIL import ImageDraw

from .engine import page_from_notes
from .sources import ImageReader, is_s3_url

THUMB = 220  # px, long side of each thumbnail
MAX_ROWS_WITH_IMAGES = 500
COLORS = {"MATCH": "#1a9e4b", "NO_MATCH": "#d62728", "REVIEW": "#e69500", "ERROR": "#777777"}


def _read(location: str, s3) -> bytes:
    return ImageReader(s3).read_bytes(location)


def thumbnail(location: str, face: dict | None, color: str, s3, page: int | None = None) -> str:
    """A small JPEG (base64 data URL) of the image (any accepted format, converted; for a PDF its ``page``) with
    the face box drawn, or '' when unreadable."""
    try:
        from .draw import display_image

        image = display_image(_read(location, s3), THUMB * 2, page)
        image.thumbnail((THUMB, THUMB))
        if face:
            b = face["bounding_box"]
            w, h = image.size
            ImageDraw.Draw(image).rectangle(
                [b["left"] * w, b["top"] * h, (b["left"] + b["width"]) * w, (b["top"] + b["height"]) * h],
                outline=color, width=3)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=80)
        return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
    except Exception:  # an unreadable image is shown as missing; the row already carries its error
        return ""


def _histogram_svg(results: list[dict], threshold: float) -> str:
    values = [r["similarity"] for r in results if r.get("similarity") is not None]
    bins = [0] * 20
    for v in values:
        bins[min(19, int(v // 5))] += 1
    top = max(bins) or 1
    bars = []
    for i, count in enumerate(bins):
        height = 150 * count / top
        bars.append(f'<rect x="{40 + i * 22}" y="{170 - height:.1f}" width="20" height="{height:.1f}" fill="#4a7bd0">'
                    f"<title>{i * 5}-{i * 5 + 5}: {count}</title></rect>")
    tx = 40 + threshold / 5 * 22
    axis = "".join(f'<text x="{40 + i * 22}" y="188" font-size="10">{i * 5}</text>' for i in range(0, 21, 4))
    return (f'<svg width="500" height="200" role="img" aria-label="similarity histogram">{"".join(bars)}'
            f'<line x1="{tx}" x2="{tx}" y1="10" y2="172" stroke="black" stroke-dasharray="4"/>'
            f'<text x="{tx + 3}" y="20" font-size="11">threshold {threshold:g}</text>{axis}'
            f'<line x1="40" x2="480" y1="171" y2="171" stroke="#333"/></svg>')


def write_report(out: Path, results: list[dict], summary: dict, s3=None) -> Path:
    if s3 is None and any(is_s3_url(str(r.get("selfie", ""))) or is_s3_url(str(r.get("document", ""))) for r in results):
        from .storage import S3Reader

        s3 = S3Reader()
    rows_html = []
    with_images = 0
    order = {"ERROR": 0, "REVIEW": 1, "NO_MATCH": 2, "MATCH": 3}
    for r in sorted(results, key=lambda r: (order.get(r["decision"], 9), r["id"])):
        decision = r["decision"]
        color = COLORS.get(decision, "#777")
        images = ""
        if decision != "MATCH" and with_images < MAX_ROWS_WITH_IMAGES:
            with_images += 1
            a = thumbnail(r["selfie"], r.get("selfie_face"), color, s3, page_from_notes(r.get("notes"), "selfie"))
            b = thumbnail(r["document"], r.get("document_face"), color, s3,
                           page_from_notes(r.get("notes"), "document"))
            images = "".join(f'<img src="{src}" alt="{html.escape(alt)}">' if src else
                             f'<span class="missing">{html.escape(alt)} unreadable</span>'
                             for src, alt in ((a, "selfie"), (b, "document")))
        similarity = "" if r.get("similarity") is None else f"{r['similarity']:.2f}"
        reasons = ", ".join(r.get("reasons") or [])
        expected = r.get("expected") or ""
        rows_html.append(
            f'<tr data-decision="{decision}"><td>{html.escape(r["id"])}</td>'
            f'<td><span class="badge" style="background:{color}">{decision}</span></td>'
            f'<td data-sort="{r.get("similarity") if r.get("similarity") is not None else -1}">{similarity}</td>'
            f"<td>{html.escape(reasons)}</td><td>{html.escape(expected)}</td>"
            f'<td class="images">{images}</td>'
            f'<td class="path">{html.escape(r["selfie"])}<br>{html.escape(r["document"])}'
            f'{"<br><em>" + html.escape(r["error"]) + "</em>" if r.get("error") else ""}</td></tr>')
    counts = "".join(f'<li><span class="badge" style="background:{COLORS.get(k, "#777")}">{k}</span> {v}</li>'
                     for k, v in sorted(summary["by_decision"].items()))
    reasons = "".join(f"<li>{html.escape(k)}: {v}</li>" for k, v in sorted(summary["by_reason"].items())) or "<li>none</li>"
    accuracy = ""
    if "with_expected" in summary:
        e = summary["with_expected"]
        acc = "-" if e["accuracy_of_decided"] is None else f"{100 * e['accuracy_of_decided']:.2f} %"
        accuracy = (f"<p>Against <code>expected</code>: {e['rows']} rows, accuracy of decided rows {acc}, "
                    f"{e['false_matches']} false matches, {e['false_non_matches']} false non-matches, "
                    f"{e['review_or_error']} REVIEW or ERROR.</p>")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>facecompare batch report</title>
<style>
body{{font-family:system-ui,sans-serif;margin:1.5em}} table{{border-collapse:collapse;width:100%}}
td,th{{border-bottom:1px solid #ddd;padding:4px 8px;vertical-align:top;text-align:left}}
th{{cursor:pointer;background:#f3f3f3;position:sticky;top:0}} .badge{{color:#fff;padding:1px 6px;border-radius:4px}}
.images img{{max-height:{THUMB}px;margin-right:6px}} .path{{font-size:11px;color:#555;word-break:break-all}}
ul.inline li{{display:inline;margin-right:1.2em}} .missing{{color:#999}}
</style></head>
<body>
<h1>facecompare batch report</h1>
<p>{summary['rows']} rows, threshold {summary['threshold']:g}.</p>
<ul class="inline" id="counts">{counts}</ul>
<p>Reasons:</p><ul>{reasons}</ul>
{accuracy}
<h2>Similarity</h2>{_histogram_svg(results, summary['threshold'])}
<h2>Rows</h2>
<p><label>Filter <input id="filter" placeholder="id, reason, path..."></label>
<label>Decision <select id="decision"><option value="">all</option><option>MATCH</option><option>NO_MATCH</option>
<option>REVIEW</option><option>ERROR</option></select></label> <span id="shown"></span></p>
<table id="rows"><thead><tr><th>id</th><th>decision</th><th>similarity</th><th>reasons</th><th>expected</th>
<th>images (selfie, document)</th><th>files</th></tr></thead>
<tbody>{''.join(rows_html)}</tbody></table>
<script>
const table = document.getElementById('rows'), body = table.tBodies[0];
function apply() {{
  const text = document.getElementById('filter').value.toLowerCase();
  const decision = document.getElementById('decision').value;
  let shown = 0;
  for (const tr of body.rows) {{
    const ok = (!decision || tr.dataset.decision === decision) && (!text || tr.textContent.toLowerCase().includes(text));
    tr.style.display = ok ? '' : 'none'; if (ok) shown++;
  }}
  document.getElementById('shown').textContent = shown + ' shown';
  document.body.dataset.shown = shown;
}}
document.getElementById('filter').addEventListener('input', apply);
document.getElementById('decision').addEventListener('change', apply);
table.tHead.addEventListener('click', e => {{
  const th = e.target.closest('th'); if (!th) return;
  const i = th.cellIndex, asc = th.dataset.asc !== '1'; th.dataset.asc = asc ? '1' : '0';
  const key = tr => {{ const c = tr.cells[i]; const v = c.dataset.sort ?? c.textContent; const n = parseFloat(v);
                       return isNaN(n) ? v : n; }};
  [...body.rows].sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (asc ? 1 : -1))
    .forEach(tr => body.appendChild(tr));
}});
apply();
window.addEventListener('load', () => {{
  const imgs = [...document.images];
  document.body.dataset.rows = body.rows.length;
  document.body.dataset.imagesLoaded = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
}});
</script>
</body></html>
"""
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


# -- the duplicate-identity sweep (``facecompare dedupe``) -----------------------------------------------------

FACE_THUMB = 112  # px, side of each face thumbnail
MAX_GROUPS_WITH_IMAGES = 500


def _face_thumbnail(location: str, box: dict | None, s3) -> str:
    """A small JPEG (base64 data URL) of the face in ``box`` (ratios of the image) with a margin, or ''."""
    try:
        from .draw import display_image

        image = display_image(_read(location, s3), FACE_THUMB * 8)
        if box:
            w, h = image.size
            side = max(box["width"] * w, box["height"] * h) * 1.4
            cx, cy = (box["left"] + box["width"] / 2) * w, (box["top"] + box["height"] / 2) * h
            image = image.crop((int(cx - side / 2), int(cy - side / 2), int(cx + side / 2), int(cy + side / 2)))
        image.thumbnail((FACE_THUMB, FACE_THUMB))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=80)
        return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
    except Exception:  # an unreadable image is shown as missing
        return ""


def write_dedupe_report(out: Path, rows: dict[str, dict], groups: list[dict], errors: list[dict], summary: dict,
                        s3=None) -> Path:
    """``report.html`` of a dedupe run: each group's faces side by side with the similarity of each matching
    pair, then the rows that could not be indexed. Self-contained (thumbnails are data URIs)."""
    if s3 is None and any(is_s3_url(str(r.get("image", ""))) for r in rows.values()):
        from .storage import S3Reader

        s3 = S3Reader()
    sections = []
    for g in groups:
        faces = []
        for member in g["ids"]:
            r = rows[member]
            src = _face_thumbnail(r["image"], r.get("box"), s3) if g["group"] <= MAX_GROUPS_WITH_IMAGES else ""
            picture = (f'<img src="{src}" alt="face of {html.escape(member)}">' if src
                       else '<span class="missing">no image</span>')
            faces.append(f'<figure>{picture}<figcaption>{html.escape(member)}</figcaption></figure>')
        pairs = "".join(f"<tr><td>{html.escape(e['a'])}</td><td>{html.escape(e['b'])}</td>"
                        f"<td>{e['similarity']:.2f}</td></tr>" for e in g["pairs"])
        sections.append(
            f'<section class="group" data-size="{len(g["ids"])}"><h3>Group {g["group"]}: {len(g["ids"])} ids</h3>'
            f'<div class="faces">{"".join(faces)}</div>'
            f'<table class="pairs"><thead><tr><th>id</th><th>id</th><th>similarity</th></tr></thead>'
            f"<tbody>{pairs}</tbody></table></section>")
    error_rows = "".join(f"<tr><td>{html.escape(r['id'])}</td><td>{html.escape(r['error'])}</td>"
                         f"<td>{html.escape(r.get('message', ''))}</td>"
                         f'<td class="path">{html.escape(r["image"])}</td></tr>' for r in errors)
    by_error = ", ".join(f"{html.escape(k)} {v}" for k, v in summary["errors_by_type"].items()) or "none"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>facecompare dedupe report</title>
<style>
body{{font-family:system-ui,sans-serif;margin:1.5em}} table{{border-collapse:collapse}}
td,th{{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left}} th{{background:#f3f3f3}}
.group{{border:1px solid #ccc;border-radius:6px;padding:0.5em 1em;margin:1em 0}}
.faces{{display:flex;flex-wrap:wrap;gap:8px}} figure{{margin:0;text-align:center;font-size:12px}}
figure img{{width:{FACE_THUMB}px;height:{FACE_THUMB}px;object-fit:cover;border-radius:4px}}
.path{{font-size:11px;color:#555;word-break:break-all}} .missing{{color:#999}}
</style></head>
<body>
<h1>facecompare dedupe report</h1>
<p id="summary">{summary['rows']} rows: {summary['indexed']} indexed, {summary['errors']} not indexed ({by_error}).
{summary['groups']} groups of ids whose faces match at Similarity {summary['threshold']:g} or above
({summary['ids_in_groups']} ids in groups; recognizer {html.escape(summary['model'])}).</p>
<h2>Groups</h2>
{''.join(sections) or '<p>No two ids match.</p>'}
<h2>Rows not indexed</h2>
<table id="errors"><thead><tr><th>id</th><th>error</th><th>message</th><th>image</th></tr></thead>
<tbody>{error_rows}</tbody></table>
<script>
window.addEventListener('load', () => {{
  const imgs = [...document.images];
  document.body.dataset.groups = document.querySelectorAll('section.group').length;
  document.body.dataset.imagesLoaded = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
}});
</script>
</body></html>
"""
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
