"""Accuracy on labelled pairs: LFW's 10-fold protocol, ROC/EER, TAR at fixed FMR, failure to acquire,
and the fit of the distance-to-Similarity calibration.

Each image is embedded once (in worker processes that load the models once), then every pair is scored.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import FaceCompareError, InvalidParameterException
from .faces import Embedding, distance


@dataclass(frozen=True)
class Pair:
    first: str
    second: str
    same: bool
    fold: int | None = None
    conditions: tuple[tuple[str, str], ...] = ()  # extra CSV columns (e.g. the synthetic benchmark's)


def read_lfw_pairs(path: str | Path, root: str | Path) -> list[Pair]:
    """LFW ``pairs.txt``: a header ``folds<TAB>n``, then per fold n same-person and n different-person lines."""
    root = Path(root)
    lines = [line.split("\t") for line in Path(path).read_text().splitlines() if line.strip()]
    try:
        folds, per_fold = int(lines[0][0]), int(lines[0][1])
    except (IndexError, ValueError):
        raise InvalidParameterException(f"{path} is not an LFW pairs file (first line: folds<TAB>pairs).") from None

    def image(name: str, index: str) -> str:
        return str(root / name / f"{name}_{int(index):04d}.jpg")

    pairs = []
    for i, parts in enumerate(lines[1:]):
        fold = i // (2 * per_fold) if folds > 1 else None
        if len(parts) == 3:
            pairs.append(Pair(image(parts[0], parts[1]), image(parts[0], parts[2]), True, fold))
        elif len(parts) == 4:
            pairs.append(Pair(image(parts[0], parts[1]), image(parts[2], parts[3]), False, fold))
        else:
            raise InvalidParameterException(f"{path} line {i + 2}: expected 3 or 4 tab-separated fields.")
    return pairs


def read_csv_pairs(path: str | Path, root: str | Path | None = None) -> list[Pair]:
    """CSV with columns ``selfie,document,same`` (same: 1/0, true/false, yes/no); optional ``fold``."""
    base = Path(root) if root else Path(path).parent
    pairs = []
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"selfie", "document", "same"} - set(reader.fieldnames or [])
        if missing:
            raise InvalidParameterException(f"{path} lacks the column(s) {', '.join(sorted(missing))}.")
        for row in reader:
            same = str(row["same"]).strip().lower() in ("1", "true", "yes", "same", "y")
            fold = int(row["fold"]) if row.get("fold") not in (None, "") else None
            extra = tuple((k, str(v)) for k, v in row.items() if k not in _PAIR_COLUMNS and k is not None)
            pairs.append(Pair(_resolve(base, row["selfie"]), _resolve(base, row["document"]), same, fold, extra))
    return pairs


_PAIR_COLUMNS = {"selfie", "document", "same", "fold", "pair_id", "id"}
MAX_CONDITION_VALUES = 20  # columns with more distinct values are identifiers, left out of the breakdown


def _resolve(base: Path, name: str) -> str:
    return name if "://" in name or os.path.isabs(name) else str(base / name)


# -- embedding many images in worker processes ----------------------------------------------------------------

_worker_verifier = None


def _init_worker(settings) -> None:
    """Load and warm the models of ``settings``. Only the embedding is needed here, so no calibration is loaded:
    a recognizer of your own has none until ``facecompare calibrate`` has fitted one, on these very workers."""
    global _worker_verifier
    from dataclasses import replace

    from .engine import Verifier

    _worker_verifier = Verifier(replace(settings, threads=1))
    _worker_verifier.warm(calibration=False)


def _embed_one(job: tuple[str, str]) -> tuple[str, dict | None, str, float]:
    """(path, embedding as a dictionary or None, failure reason or '', seconds)."""
    path, choose = job
    started = time.perf_counter()
    try:
        analyzed = _worker_verifier.analyze(path, embed=1 if choose == "largest" else 100)
    except FaceCompareError as exc:
        return path, None, exc.code, time.perf_counter() - started
    if not analyzed.faces:
        return path, None, "NO_FACE", time.perf_counter() - started
    if choose == "center":
        face = min(analyzed.faces, key=lambda f: abs(f.bounding_box.left + f.bounding_box.width / 2 - 0.5)
                   + abs(f.bounding_box.top + f.bounding_box.height / 2 - 0.5))
    else:
        face = analyzed.faces[0]
    return path, face.embedding.to_dict(), "", time.perf_counter() - started


def embed_images(paths: list[str], *, choose: str = "largest", workers: int | None = None,
                 settings=None, settings_kwargs: dict | None = None, progress: bool = True) -> dict[str, tuple]:
    """Embed each image once, in ``workers`` processes. Returns {path: (Embedding|None, reason, seconds)}.

    The workers use ``settings`` (a :class:`~facecompare.settings.Settings`; default ``Settings.from_env`` with
    ``settings_kwargs``), every field of it. A worker that cannot start raises its error here, at once."""
    from tqdm import tqdm

    from .settings import Settings
    from .workers import WorkerPool

    if settings is None:
        settings = Settings.from_env(**(settings_kwargs or {}))
    workers = workers or os.cpu_count() or 1
    jobs = [(p, choose) for p in sorted(set(paths))]
    results: dict[str, tuple] = {}
    with WorkerPool(min(workers, max(1, len(jobs))), _init_worker, (settings,)) as pool:
        iterator = pool.map_unordered(_embed_one, jobs)
        for path, vector, reason, seconds in tqdm(iterator, total=len(jobs), disable=not progress,
                                                  desc="embedding", unit="img"):
            results[path] = (None if vector is None else Embedding.from_dict(vector), reason, seconds)
    return results


# -- metrics --------------------------------------------------------------------------------------------------


def pair_distances(pairs: list[Pair], embeddings: dict[str, tuple]) -> np.ndarray:
    """Distance per pair; ``inf`` where either image has no usable face (a failure to acquire)."""
    out = np.full(len(pairs), np.inf)
    for i, p in enumerate(pairs):
        a, b = embeddings[p.first][0], embeddings[p.second][0]
        if a is not None and b is not None:
            out[i] = distance(a, b)
    return out


def roc(distances: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, FMR, TMR) calling a pair a match when distance <= threshold, for every distinct threshold."""
    d = np.asarray(distances, dtype=np.float64)
    y = np.asarray(same).astype(bool)
    finite = np.unique(d[np.isfinite(d)])
    thresholds = np.concatenate([[-np.inf], finite])
    order = np.argsort(d, kind="mergesort")
    ds, ys = d[order], y[order]
    n_pos, n_neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    cum_pos = np.concatenate([[0], np.cumsum(ys)])
    cum_neg = np.concatenate([[0], np.cumsum(~ys)])
    idx = np.searchsorted(ds, thresholds, side="right")
    return thresholds, cum_neg[idx] / n_neg, cum_pos[idx] / n_pos


def auc(fmr: np.ndarray, tmr: np.ndarray) -> float:
    x = np.concatenate([fmr, [1.0]])
    y = np.concatenate([tmr, [1.0]])
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))


def eer(fmr: np.ndarray, tmr: np.ndarray) -> float:
    """Equal error rate: where FMR = FNMR (linear interpolation between ROC points)."""
    fnmr = 1.0 - tmr
    diff = fmr - fnmr  # rises from -1 to >= 0
    i = int(np.argmax(diff >= 0))
    if i == 0:
        return float(fmr[0])
    x0, x1 = diff[i - 1], diff[i]
    t = 0.0 if x1 == x0 else -x0 / (x1 - x0)
    return float(fmr[i - 1] + t * (fmr[i] - fmr[i - 1]))


def tar_at_fmr(distances: np.ndarray, same: np.ndarray, target_fmr: float) -> dict:
    """The true-match rate at the loosest threshold whose FMR is at most ``target_fmr``."""
    thresholds, fmr, tmr = roc(distances, same)
    ok = np.flatnonzero(fmr <= target_fmr)
    impostors = int((~np.asarray(same).astype(bool)).sum())
    i = int(ok[-1])
    return {
        "fmr_target": target_fmr,
        "tar": float(tmr[i]),
        "distance_threshold": float(thresholds[i]),
        "fmr_measured": float(fmr[i]),
        "impostor_pairs": impostors,
        "supported": impostors * target_fmr >= 1.0,  # at least one impostor at that rate
    }


def best_threshold(distances: np.ndarray, same: np.ndarray) -> float:
    """The distance threshold with the highest accuracy (midpoint between neighbouring distances)."""
    d = np.asarray(distances, dtype=np.float64)
    y = np.asarray(same).astype(bool)
    finite = np.sort(np.unique(d[np.isfinite(d)]))
    if finite.size == 0:
        return 0.0
    candidates = np.concatenate([[finite[0] - 1e-6], (finite[1:] + finite[:-1]) / 2, [finite[-1] + 1e-6]])
    accuracy = [np.mean((d <= t) == y) for t in candidates]
    return float(candidates[int(np.argmax(accuracy))])


def kfold_accuracy(distances: np.ndarray, same: np.ndarray, folds: np.ndarray) -> dict:
    """LFW's protocol: for each fold, pick the threshold on the other folds, measure on this one."""
    d, y, f = np.asarray(distances), np.asarray(same).astype(bool), np.asarray(folds)
    accuracies, thresholds = [], []
    for k in np.unique(f):
        train, test = f != k, f == k
        t = best_threshold(d[train], y[train])
        thresholds.append(t)
        accuracies.append(float(np.mean((d[test] <= t) == y[test])))
    return {"mean": float(np.mean(accuracies)), "std": float(np.std(accuracies)), "folds": accuracies,
            "thresholds": thresholds}


def summarize(pairs: list[Pair], distances: np.ndarray, embeddings: dict[str, tuple] | None, calibration,
              similarity_thresholds: tuple[float, ...] = (80, 90, 95, 99), *, model: str = "") -> dict:
    """The evaluation summary. Without ``embeddings`` (re-scoring a pairs.csv) image-level figures are omitted;
    without ``calibration`` (a recognizer not yet calibrated) the Similarity operating points are."""
    from .scoring import error_rates

    same = np.array([p.same for p in pairs])
    thresholds, fmr, tmr = roc(distances, same)
    summary = {
        "model": model,
        "pairs": len(pairs),
        "genuine_pairs": int(same.sum()),
        "impostor_pairs": int((~same).sum()),
        "pairs_with_failure": int(np.sum(~np.isfinite(distances))),
    }
    if embeddings is not None:
        images = list(embeddings.values())
        failures = [r for r in images if r[0] is None]
        summary.update({
            "images": len(images),
            "failure_to_acquire_images": len(failures),
            "failure_to_acquire_rate": len(failures) / max(1, len(images)),
            "seconds_per_image_mean": float(np.mean([r[2] for r in images])) if images else 0.0,
        })
    summary.update({
        "roc_auc": auc(fmr, tmr),
        "eer": eer(fmr, tmr),
        "tar_at_fmr": [tar_at_fmr(distances, same, t) for t in (1e-2, 1e-3, 1e-4)],
        "best_distance_threshold": best_threshold(distances, same),
    })
    folds = [p.fold for p in pairs]
    if all(f is not None for f in folds) and len(set(folds)) > 1:
        summary["kfold_accuracy"] = kfold_accuracy(distances, same, np.array(folds))
    rows = []
    for t in similarity_thresholds if calibration is not None else ():
        dist = calibration.distance_at(t)
        fm, fnm = error_rates(distances, same, dist)
        rows.append({"similarity_threshold": t, "distance": round(dist, 4), "fmr": fm, "fnmr": fnm,
                     "accuracy": float(np.mean((distances <= dist) == same))})
    summary["operating_points"] = rows
    if embeddings is not None and any(p.conditions for p in pairs):
        summary["by_condition"] = breakdown(pairs, distances, same, embeddings)
    return summary


def breakdown(pairs: list[Pair], distances: np.ndarray, same: np.ndarray, embeddings: dict,
              target_fmr: float = 1e-3) -> dict:
    """Per condition value: TAR at the global threshold for ``target_fmr``, and the document images' failure
    to acquire. The threshold is fixed on all impostor pairs, so every group is judged at the same point."""
    threshold = tar_at_fmr(distances, same, target_fmr)["distance_threshold"]
    out: dict[str, dict] = {}
    names = sorted({k for p in pairs for k, _ in p.conditions})
    for name in names:
        if len({dict(p.conditions).get(name, "") for p in pairs}) > MAX_CONDITION_VALUES:
            continue  # an identifier (e.g. a source file name), not a condition
        groups: dict[str, list[int]] = {}
        for i, p in enumerate(pairs):
            groups.setdefault(dict(p.conditions).get(name, ""), []).append(i)
        rows = {}
        for value, idx in sorted(groups.items()):
            idx_arr = np.array(idx)
            genuine = idx_arr[same[idx_arr]]
            documents = {pairs[i].second for i in idx}
            failures = sum(1 for doc in documents if embeddings[doc][0] is None)
            rows[value] = {
                "pairs": len(idx),
                "genuine_pairs": int(genuine.size),
                "tar": float(np.mean(distances[genuine] <= threshold)) if genuine.size else None,
                "document_failure_to_acquire": failures / max(1, len(documents)),
                "documents": len(documents),  # so that groups can be added up (e.g. every portrait of 3 % or more)
                "document_failures": failures,
            }
        out[name] = rows
    return {"fmr_target": target_fmr, "distance_threshold": threshold, "conditions": out}


def write_pair_rows(path: Path, pairs: list[Pair], distances: np.ndarray, embeddings: dict, calibration,
                    threshold: float = 80.0, *, model: str) -> None:
    """One row per pair: the distance (in ``model``'s metric), and with a calibration the Similarity and decision."""
    d_t = calibration.distance_at(threshold) if calibration is not None else None
    with open(path, "w", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(["first", "second", "same", "fold", "model", "distance", "similarity", "decision", "reasons"])
        for p, d in zip(pairs, distances):
            reasons = ";".join(r for r in (embeddings[p.first][1], embeddings[p.second][1]) if r)
            fold = "" if p.fold is None else p.fold
            if not math.isfinite(d):
                w.writerow([p.first, p.second, int(p.same), fold, model, "", "", "REVIEW", reasons or "NO_FACE"])
            elif d_t is None:
                w.writerow([p.first, p.second, int(p.same), fold, model, f"{d:.6f}", "", "", reasons])
            else:
                decision = "MATCH" if d <= d_t else "NO_MATCH"
                w.writerow([p.first, p.second, int(p.same), fold, model, f"{d:.6f}",
                            f"{calibration.similarity(d):.4f}", decision, reasons])


def read_pair_rows(path: str | Path) -> tuple[list[Pair], np.ndarray, str]:
    """Pairs, distances and the recognizer's name from a per-pair CSV written by :func:`write_pair_rows`."""
    pairs, distances, models = [], [], set()
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"first", "second", "same", "fold", "distance"} - set(reader.fieldnames or [])
        if missing:
            raise InvalidParameterException(
                f"{path} is not a pairs.csv written by `facecompare evaluate` (no column {', '.join(sorted(missing))})."
            )
        for row in reader:
            pairs.append(Pair(row["first"], row["second"], row["same"] == "1",
                              int(row["fold"]) if row["fold"] else None))
            distances.append(float(row["distance"]) if row["distance"] else np.inf)
            models.add(row.get("model") or "dlib-resnet-v1")  # files written before the column existed: dlib
    if len(models) > 1:
        raise InvalidParameterException(f"{path} mixes distances of several recognizers ({', '.join(sorted(models))}).")
    return pairs, np.array(distances), models.pop() if models else ""


def save_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")
