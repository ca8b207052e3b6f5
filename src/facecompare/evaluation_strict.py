"""The strict end of the error curve: every genuine and every cross-identity pair of a set of images.

``facecompare evaluate --all-impostors``: each image is embedded once (every face of it), then every selfie is
scored against every document with CompareFaces' rule (the selfie's largest face against each face of the
document; the pair's score is the best of them). An LFW-style list, whose images play both roles, gives each
unordered pair once. With millions of impostor pairs, TAR at FMR 1e-4 and 1e-5 can be measured, with intervals:
the rule of three when no false match is seen, and a bootstrap over identities (ISO/IEC 19795-1 practice:
pairs of one person are not independent, so people, not pairs, are resampled).
"""

from __future__ import annotations

import math
import multiprocessing
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import FaceCompareError, InvalidParameterException

TARGET_FMRS = (1e-2, 1e-3, 1e-4, 1e-5)
#: per face: the geometry and quality the engine measures (what quality gates and the worst-impostor review use)
FEATURES = ("width_px", "height_px", "left", "top", "box_width", "box_height", "confidence", "roll", "yaw",
            "pitch", "brightness", "sharpness", "image_width", "image_height")


@dataclass
class ImageSet:
    """Selfies and documents with their identities. ``single_role``: one list plays both roles (LFW), and each
    unordered pair is scored once (the earlier image in sorted order as the selfie)."""

    selfies: list[str]
    selfie_ids: list[str]
    documents: list[str]
    document_ids: list[str]
    single_role: bool = False
    excluded: set[tuple[str, str]] = field(default_factory=set)  # (selfie, document): the same source photo

    @property
    def images(self) -> list[str]:
        return sorted(set(self.selfies) | set(self.documents))


def image_set_from_pairs(pairs: list, *, fmt: str) -> ImageSet:
    """The images of a pair list and who they show. LFW: the person folder. CSV: a ``selfie_identity`` /
    ``document_identity`` column, else the first folder of ``selfie_source`` / ``document_source`` (what
    `synth-kyc` writes), else the image's folder. Pairs whose two images come from the same source photo are
    left out (a synthetic card printed from the selfie itself is no test)."""
    selfie_id: dict[str, str] = {}
    document_id: dict[str, str] = {}
    source: dict[str, str] = {}
    for p in pairs:
        c = dict(p.conditions)
        for path, role, ids in ((p.first, "selfie", selfie_id), (p.second, "document", document_id)):
            if fmt == "lfw":
                who = Path(path).parent.name
            elif c.get(f"{role}_identity"):
                who = c[f"{role}_identity"]
            elif c.get(f"{role}_source"):
                who = c[f"{role}_source"].replace("\\", "/").split("/")[0]
                source[path] = c[f"{role}_source"]
            else:
                who = Path(path).parent.name
            if ids.setdefault(path, who) != who:
                raise InvalidParameterException(f"{path} is labelled as two identities ({ids[path]} and {who}).")
    single = fmt == "lfw" or set(selfie_id) == set(document_id)
    if single:
        merged = {**selfie_id, **document_id}
        images = sorted(merged)
        return ImageSet(images, [merged[p] for p in images], images, [merged[p] for p in images], True)
    selfies, documents = sorted(selfie_id), sorted(document_id)
    excluded = {(s, d) for s in selfies for d in documents
                if s in source and d in source and source[s] == source[d]} if source else set()
    return ImageSet(selfies, [selfie_id[p] for p in selfies], documents, [document_id[p] for p in documents],
                    False, excluded)


# -- embedding every face of every image ----------------------------------------------------------------------

_verifier = None


def _init(settings_kwargs: dict, processes: int = 1) -> None:
    global _verifier
    from .engine import Verifier
    from .models import cpu
    from .settings import Settings

    cpu.share(processes)  # one of ``processes`` workers: no second core per model call

    _verifier = Verifier(Settings.from_env(**settings_kwargs, threads=1))
    _verifier.warm()


def face_features(face, width: int, height: int) -> list[float]:
    b, p, q = face.bounding_box, face.pose, face.quality
    return [face.width_px, face.height_px, b.left, b.top, b.width, b.height, face.confidence, p.roll, p.yaw,
            p.pitch, q.brightness, q.sharpness, float(width), float(height)]


def _embed_all(path: str) -> tuple[str, list, str]:
    """(path, [(vector, features, metric, model)] largest face first, failure reason or '')."""
    try:
        analyzed = _verifier.analyze(path)
    except FaceCompareError as exc:
        return path, [], exc.code
    faces = [(np.asarray(f.embedding.vector, dtype=np.float32), face_features(f, analyzed.width, analyzed.height),
              f.embedding.metric, f.embedding.model) for f in analyzed.faces if f.embedding is not None]
    return path, faces, "" if faces else "NO_FACE"


@dataclass
class FaceTable:
    """Every embedded face of a set of images: ``owner[k]`` is the index in ``paths`` of face ``k``'s image;
    faces of one image are contiguous, largest first."""

    paths: list[str]
    owner: np.ndarray
    vectors: np.ndarray
    features: np.ndarray
    reasons: list[str]
    model: str
    metric: str

    def save(self, path: str | Path) -> None:
        np.savez_compressed(path, paths=np.array(self.paths), owner=self.owner, vectors=self.vectors,
                            features=self.features, reasons=np.array(self.reasons), model=self.model,
                            metric=self.metric)

    @classmethod
    def load(cls, path: str | Path) -> FaceTable:
        z = np.load(path, allow_pickle=False)
        return cls([str(p) for p in z["paths"]], z["owner"], z["vectors"], z["features"],
                   [str(r) for r in z["reasons"]], str(z["model"]), str(z["metric"]))

    def merged(self, other: FaceTable) -> FaceTable:
        """This table and ``other``'s images (of the same recognizer) in one."""
        if (other.model, other.metric) != (self.model, self.metric):
            raise InvalidParameterException(f"Cannot merge faces of {other.model} into a table of {self.model}.")
        if set(other.paths) & set(self.paths):
            raise InvalidParameterException("The two face tables share images.")
        dim = self.vectors.shape[1] if len(self.vectors) else other.vectors.shape[1]
        return FaceTable(self.paths + other.paths, np.concatenate([self.owner, other.owner + len(self.paths)]),
                         np.concatenate([self.vectors.reshape(-1, dim), other.vectors.reshape(-1, dim)]),
                         np.concatenate([self.features, other.features]), self.reasons + other.reasons,
                         self.model, self.metric)

    def first_face(self) -> np.ndarray:
        """Per image, the index of its largest face, or -1."""
        first = np.full(len(self.paths), -1, dtype=np.int64)
        idx = np.arange(len(self.owner))[::-1]
        first[self.owner[::-1]] = idx
        return first


def embed_all_faces(paths: list[str], *, workers: int | None = None, settings_kwargs: dict | None = None,
                    progress: bool = True, model: str = "", metric: str = "cosine") -> FaceTable:
    from tqdm import tqdm

    paths = sorted(set(paths))
    workers = workers or os.cpu_count() or 1
    found: dict[str, tuple[list, str]] = {}
    with multiprocessing.get_context("spawn").Pool(workers, initializer=_init,
                                                   initargs=(settings_kwargs or {}, workers)) as pool:
        for path, faces, reason in tqdm(pool.imap_unordered(_embed_all, paths, chunksize=4), total=len(paths),
                                        disable=not progress, desc="embedding", unit="img"):
            found[path] = (faces, reason)
    owner, vectors, features, reasons = [], [], [], []
    for i, path in enumerate(paths):
        faces, reason = found[path]
        reasons.append(reason)
        for vector, feats, _metric, _model in faces:
            owner.append(i)
            vectors.append(vector)
            features.append(feats)
    dim = len(vectors[0]) if vectors else 0
    return FaceTable(paths, np.array(owner, dtype=np.int64), np.array(vectors, dtype=np.float32).reshape(-1, dim),
                     np.array(features, dtype=np.float32).reshape(-1, len(FEATURES)), reasons, model, metric)


# -- scoring every pair ---------------------------------------------------------------------------------------


def _pairwise(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    if metric == "euclidean":
        sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
        return np.sqrt(np.maximum(sq, 0.0))
    an = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    bn = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return 1.0 - an @ bn.T


def score_matrix(selfie_vectors: np.ndarray, selfie_ok: np.ndarray, doc_vectors: np.ndarray, doc_owner: np.ndarray,
                 n_documents: int, metric: str = "cosine", block: int = 256) -> np.ndarray:
    """Distance of every selfie to every document: the smallest over the document's faces (CompareFaces' best
    match). ``inf`` where the selfie (``selfie_ok`` False) or the document has no face: a failure to acquire,
    which never matches. ``doc_owner`` must be sorted (each document's faces contiguous)."""
    out = np.full((len(selfie_vectors), n_documents), np.inf, dtype=np.float32)
    if len(doc_owner) == 0:
        return out
    if np.any(np.diff(doc_owner) < 0):
        raise ValueError("document faces must be grouped by document")
    docs, starts = np.unique(doc_owner, return_index=True)
    rows = np.flatnonzero(selfie_ok)
    for k in range(0, len(rows), block):
        r = rows[k:k + block]
        d = _pairwise(selfie_vectors[r].astype(np.float64), doc_vectors.astype(np.float64), metric)
        out[np.ix_(r, docs)] = np.minimum.reduceat(d, starts, axis=1)
    return out


@dataclass
class Scores:
    """The scored pairs: ``distance`` (selfies x documents) and which cells are genuine / impostor pairs."""

    distance: np.ndarray
    genuine: np.ndarray  # bool, same shape
    impostor: np.ndarray  # bool, same shape
    selfie_code: np.ndarray  # identity index per selfie
    document_code: np.ndarray
    identities: list[str]


def score_set(images: ImageSet, table: FaceTable, *, face: str = "largest", document_faces: str = "all") -> Scores:
    """Every pair of ``images`` from the faces in ``table``. ``face='center'``: each image's face nearest its
    centre stands for it in both roles (LFW's protocol); ``document_faces='largest'``: only the document's largest
    face (the verify rule) instead of all of them (CompareFaces)."""
    index = {p: i for i, p in enumerate(table.paths)}
    missing = [p for p in images.images if p not in index]
    if missing:
        raise InvalidParameterException(f"{len(missing)} images have no entry in the face table (first: {missing[0]}).")
    first = table.first_face()
    if face == "center":
        f = table.features
        off = np.abs(f[:, 2] + f[:, 4] / 2 - 0.5) + np.abs(f[:, 3] + f[:, 5] / 2 - 0.5)
        chosen = np.full(len(table.paths), -1, dtype=np.int64)
        for k in np.argsort(-off, kind="stable"):  # the last write per owner is the most central face
            chosen[table.owner[k]] = k
        first = chosen
    s_idx = np.array([index[p] for p in images.selfies], dtype=np.int64)
    d_idx = np.array([index[p] for p in images.documents], dtype=np.int64)
    s_face = first[s_idx]
    s_ok = s_face >= 0
    s_vec = table.vectors[np.where(s_ok, s_face, 0)] if len(table.vectors) else np.zeros((len(s_idx), 1))
    position = {img: j for j, img in enumerate(d_idx)}
    if face == "center" or document_faces == "largest":
        keep = np.array([k for k in first[d_idx] if k >= 0], dtype=np.int64)
    else:
        keep = np.flatnonzero(np.isin(table.owner, d_idx))
    owner = np.array([position[table.owner[k]] for k in keep], dtype=np.int64)
    order = np.argsort(owner, kind="stable")
    keep, owner = keep[order], owner[order]
    dist = score_matrix(s_vec, s_ok, table.vectors[keep], owner, len(d_idx), table.metric)
    identities = sorted(set(images.selfie_ids) | set(images.document_ids))
    code = {who: i for i, who in enumerate(identities)}
    sc = np.array([code[w] for w in images.selfie_ids], dtype=np.int64)
    dc = np.array([code[w] for w in images.document_ids], dtype=np.int64)
    same = sc[:, None] == dc[None, :]
    valid = np.ones_like(same)
    if images.single_role:
        valid = np.triu(valid, k=1)
    if images.excluded:
        si = {p: i for i, p in enumerate(images.selfies)}
        di = {p: j for j, p in enumerate(images.documents)}
        for s, d in images.excluded:
            valid[si[s], di[d]] = False
    return Scores(dist, same & valid, ~same & valid, sc, dc, identities)


# -- rates with intervals -------------------------------------------------------------------------------------


def rule_of_three(n: int) -> float:
    """The 95 % upper bound of a rate when none of ``n`` independent trials erred."""
    return 3.0 / n if n else 1.0


def supported(n_impostors: int, fmr: float) -> bool:
    """Whether ``n_impostors`` pairs can show an FMR of ``fmr``: by the rule of three, zero false matches among
    them bound the FMR at ``fmr`` or below (n >= 3 / fmr)."""
    return n_impostors >= 3.0 / fmr


def tar_at_fmr(genuine: np.ndarray, impostor_sorted: np.ndarray, fmr: float) -> tuple[float, float, int]:
    """(TAR, the exclusive distance threshold, false matches allowed) at the loosest threshold with FMR <= fmr:
    with k = floor(fmr * n) false matches allowed, a pair matches when its distance is below the (k+1)-th
    smallest impostor distance."""
    n = len(impostor_sorted)
    k = int(math.floor(fmr * n + 1e-9))
    limit = float(impostor_sorted[k]) if k < n else math.inf
    tar = float(np.mean(genuine < limit)) if len(genuine) else math.nan
    return tar, limit, k


class IdentityBootstrap:
    """Resample identities with replacement: an impostor pair of identities (a, b) counts m_a * m_b times, a
    genuine pair of a counts m_a times (m: how often each identity was drawn)."""

    def __init__(self, scores: Scores, cutoff: float, replicates: int = 200, seed: int = 0):
        self.replicates, self.rng = replicates, np.random.default_rng(seed)
        self.n_ids = len(scores.identities)
        gi, gj = np.nonzero(scores.genuine)
        self.g_dist = scores.distance[gi, gj].astype(np.float64)
        self.g_id = scores.selfie_code[gi]
        ti, tj = np.nonzero(scores.impostor & (scores.distance <= cutoff))
        order = np.argsort(scores.distance[ti, tj], kind="stable")
        ti, tj = ti[order], tj[order]
        self.t_dist = scores.distance[ti, tj].astype(np.float64)
        self.t_s, self.t_d = scores.selfie_code[ti], scores.document_code[tj]
        self.cutoff = cutoff
        self.mask = scores.impostor.astype(np.float32)
        self.s_code, self.d_code = scores.selfie_code, scores.document_code

    def draws(self):
        for _ in range(self.replicates):
            m = np.bincount(self.rng.integers(0, self.n_ids, self.n_ids), minlength=self.n_ids).astype(np.float64)
            total = float(m[self.s_code] @ (self.mask @ m[self.d_code].astype(np.float32)))
            yield m, total

    def intervals(self, fmrs: tuple[float, ...], distance_thresholds: tuple[float, ...]) -> dict:
        """95 % percentile intervals of TAR at each FMR, and of FMR / FNMR at each distance threshold."""
        tars = {f: [] for f in fmrs}
        at = {t: ([], []) for t in distance_thresholds}
        for m, total in self.draws():
            gw = m[self.g_id]
            tw = m[self.t_s] * m[self.t_d]
            cum = np.cumsum(tw)
            g_total = gw.sum()
            for f in fmrs:
                k = int(np.searchsorted(cum, f * total + 1e-9, side="right"))
                if k >= len(cum):
                    tars[f].append(math.nan)  # the tail kept is too short for this rate
                    continue
                limit = self.t_dist[k]
                tars[f].append(float(gw[self.g_dist < limit].sum() / g_total) if g_total else math.nan)
            for t in distance_thresholds:
                at[t][0].append(float(tw[self.t_dist <= t].sum() / total) if total else math.nan)
                at[t][1].append(float(gw[self.g_dist > t].sum() / g_total) if g_total else math.nan)

        def ci(values):
            v = np.array(values, dtype=np.float64)
            v = v[np.isfinite(v)]
            return [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] if len(v) else None

        return {"tar_at_fmr": {f: ci(v) for f, v in tars.items()},
                "at_threshold": {t: (ci(a), ci(b)) for t, (a, b) in at.items()}}


def strict_summary(scores: Scores, calibration, *, similarity_thresholds=(80, 90, 95, 99), targets=TARGET_FMRS,
                   bootstrap: int = 200, seed: int = 0) -> dict:
    """TAR at each target FMR and FMR / FNMR at each Similarity threshold, with 95 % intervals."""
    g = scores.distance[scores.genuine].astype(np.float64)
    imp = np.sort(scores.distance[scores.impostor].astype(np.float64))
    n_g, n_i = len(g), len(imp)
    out = {"genuine_pairs": n_g, "impostor_pairs": n_i, "identities": len(scores.identities),
           "genuine_failures": int(np.sum(~np.isfinite(g))), "impostor_failures": int(np.sum(~np.isfinite(imp)))}
    dist_at = {t: calibration.distance_at(t) for t in similarity_thresholds} if calibration is not None else {}
    rows = []
    limits = []
    for f in targets:
        tar, limit, k = tar_at_fmr(g, imp, f) if n_i else (math.nan, math.inf, 0)
        limits.append(limit)
        row = {"fmr_target": f, "tar": tar, "fnmr": 1 - tar, "distance_below": limit, "false_matches_allowed": k,
               "false_matches": int(np.sum(imp < limit)), "supported": supported(n_i, f)}
        if calibration is not None and math.isfinite(limit):
            row["similarity_above"] = calibration.similarity(limit)
        rows.append(row)
    out["tar_at_fmr"] = rows
    points = []
    for t, d in dist_at.items():
        fm = int(np.sum(imp <= d))
        points.append({"similarity_threshold": t, "distance": d, "false_matches": fm, "fmr": fm / n_i if n_i else None,
                       "fmr_rule_of_three_upper": rule_of_three(n_i) if fm == 0 else None,
                       "fnmr": float(np.mean(g > d)) if n_g else None})
    out["operating_points"] = points
    if n_i and calibration is not None:
        out["highest_impostor_similarity"] = calibration.similarity(float(imp[0]))
    if bootstrap and n_i and n_g:
        finite = [x for x in limits if math.isfinite(x)]
        tail = float(imp[min(n_i - 1, max(2000, int(3 * max(targets) * n_i)))])
        cutoff = max([tail, *finite, *dist_at.values()])
        boot = IdentityBootstrap(scores, cutoff, bootstrap, seed).intervals(tuple(targets), tuple(dist_at.values()))
        for row in rows:
            row["tar_ci95"] = boot["tar_at_fmr"][row["fmr_target"]]
        for p in points:
            p["fmr_ci95"], p["fnmr_ci95"] = boot["at_threshold"][p["distance"]]
        out["bootstrap"] = {"replicates": bootstrap, "over": "identities", "seed": seed}
    return out


def worst_impostors(scores: Scores, images: ImageSet, table: FaceTable, calibration, n: int = 20) -> list[dict]:
    """The ``n`` impostor pairs with the smallest distance, with both faces' measurements."""
    d = np.where(scores.impostor, scores.distance, np.inf).ravel()
    n = min(n, int(np.sum(np.isfinite(d))))
    if n == 0:
        return []
    top = np.argpartition(d, n - 1)[:n]
    top = top[np.argsort(d[top], kind="stable")]
    index = {p: i for i, p in enumerate(table.paths)}
    first = table.first_face()
    rows = []
    for flat in top:
        i, j = divmod(int(flat), scores.distance.shape[1])
        s_img, d_img = index[images.selfies[i]], index[images.documents[j]]
        s_face = int(first[s_img])
        faces = np.flatnonzero(table.owner == d_img)
        best = int(faces[np.argmin(_pairwise(table.vectors[[s_face]].astype(np.float64),
                                             table.vectors[faces].astype(np.float64), table.metric)[0])])
        row = {"selfie": images.selfies[i], "document": images.documents[j], "selfie_identity": images.selfie_ids[i],
               "document_identity": images.document_ids[j], "distance": float(d[flat]),
               "document_face_rank": int(best - faces[0]), "document_faces": int(len(faces)),
               "selfie_face": dict(zip(FEATURES, map(float, table.features[s_face]))),
               "document_face": dict(zip(FEATURES, map(float, table.features[best])))}
        if calibration is not None:
            row["similarity"] = calibration.similarity(float(d[flat]))
        rows.append(row)
    return rows


def write_det(path: Path, scores: Scores, title: str = "", floor: float = 1e-5) -> Path:
    """DET curve (FNMR against FMR, probit axes) down to ``floor`` or 1 / impostor pairs."""
    from .plots import probit, pyplot

    plt = pyplot()
    g = scores.distance[scores.genuine].astype(np.float64)
    imp = np.sort(scores.distance[scores.impostor].astype(np.float64))
    lowest = max(floor, 1.0 / max(len(imp), 1))
    fmrs = np.logspace(math.log10(lowest), 0, 120)
    fnmr = np.array([1 - tar_at_fmr(g, imp, f)[0] for f in fmrs])
    keep = fnmr > 0
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.plot(probit(fmrs[keep]), probit(fnmr[keep]), lw=2)
    ticks = np.array([1e-5, 1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.5])
    ax.set_xticks(probit(ticks))
    ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.set_yticks(probit(ticks))
    ax.set_yticklabels([f"{t:g}" for t in ticks])
    ax.set_xlim(probit(np.array([lowest * 0.9]))[0], probit(np.array([0.6]))[0])
    ax.set_xlabel(f"false match rate ({len(imp):,} impostor pairs)")
    ax.set_ylabel(f"false non-match rate ({len(g):,} genuine pairs)")
    ax.set_title(f"DET, all cross-identity pairs {title}".strip())
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
