"""From embedding distance to Rekognition's Similarity (0-100), and from Similarity to a decision.

The mapping is a logistic curve fitted on labelled pairs (by default LFW's official 6,000 pairs):
``Similarity = 100 / (1 + exp(slope * (distance - midpoint)))``. It is strictly decreasing in distance,
so every Similarity threshold is one distance threshold, and ``Similarity`` reads as the fitted probability
(in percent) that a pair at that distance is the same person, with equal numbers of genuine and impostor
pairs. The calibration file also carries the operating-point table (threshold -> FMR, FNMR) measured on
the pairs it was fitted on.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import InvalidParameterException


def default_calibration_file(model: str) -> str:
    """The name of the calibration shipped for a model (fitted on LFW's official pairs)."""
    return f"calibration-{model}-lfw.json"


@dataclass(frozen=True)
class Calibration:
    slope: float
    midpoint: float
    model: str = ""
    source: str = ""
    operating_points: list[dict] = field(default_factory=list)

    def similarity(self, distance: float) -> float:
        z = self.slope * (distance - self.midpoint)
        if z > 700:
            return 0.0
        return 100.0 / (1.0 + math.exp(z))

    def distance_at(self, similarity: float) -> float:
        """The distance whose Similarity is ``similarity`` (the inverse mapping)."""
        s = min(max(similarity, 1e-9), 100.0 - 1e-9)
        return self.midpoint + math.log(100.0 / s - 1.0) / self.slope

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "mapping": {"type": "logistic", "slope": self.slope, "midpoint": self.midpoint},
            "source": self.source,
            "operating_points": self.operating_points,
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def load_calibration(path: str | Path | None = None, *, model: str) -> Calibration:
    """A calibration file (see :meth:`Calibration.to_dict`); ``None`` or empty: the one shipped for ``model``.

    The file must have been fitted for ``model`` (the recognizer's name): a distance of one model means nothing
    on another's scale, so a mismatch is an error, not a warning.
    """
    shipped = default_calibration_file(model)
    try:
        if path:
            text = Path(path).read_text()
        else:
            resource = resources.files("facecompare.data").joinpath(shipped)
            if not resource.is_file():
                raise InvalidParameterException(
                    f"No calibration ships for the recognizer {model}: fit one on labelled pairs with "
                    "`facecompare calibrate PAIRS --out calibration.json` and pass it with --calibration "
                    "or FACECOMPARE_CALIBRATION."
                )
            text = resource.read_text()
        raw = json.loads(text)
        mapping = raw["mapping"]
        if mapping.get("type") != "logistic":
            raise ValueError(f"unknown mapping type {mapping.get('type')!r}")
        slope, midpoint = float(mapping["slope"]), float(mapping["midpoint"])
        if not slope > 0:
            raise ValueError("slope must be positive (Similarity falls as distance grows)")
        if not (math.isfinite(slope) and math.isfinite(midpoint)):  # Infinity and NaN pass json.loads
            raise ValueError("slope and midpoint must be finite numbers")
    except FileNotFoundError:
        raise InvalidParameterException(f"Calibration file not found: {path}.") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidParameterException(
            f"Calibration file {path or shipped} is not valid ({str(exc)[:200]}); "
            "write one with `facecompare calibrate`."
        ) from None
    fitted_for = str(raw.get("model", ""))
    if fitted_for != model:
        raise InvalidParameterException(
            f"Calibration file {path or shipped} was fitted for the recognizer {fitted_for or '(unnamed)'}, not "
            f"{model}: distances of different models are not comparable. Use the calibration of {model}, or fit "
            "one with `facecompare calibrate` using the same recognizer."
        )
    return Calibration(
        slope=slope,
        midpoint=midpoint,
        model=fitted_for,
        source=raw.get("source", ""),
        operating_points=list(raw.get("operating_points", [])),
    )


def fit_logistic(distances: np.ndarray, same: np.ndarray, iterations: int = 100) -> tuple[float, float]:
    """Fit P(same | d) = 1 / (1 + exp(slope * (d - midpoint))) by Newton's method (maximum likelihood).

    Genuine and impostor pairs are weighted to count equally, so the midpoint is where both are as likely.
    """
    d = np.asarray(distances, dtype=np.float64)
    y = np.asarray(same, dtype=np.float64)
    if d.size == 0 or y.min() == y.max():
        raise InvalidParameterException("Calibration needs both genuine and impostor pairs.")
    weights = np.where(y == 1, 0.5 / y.sum(), 0.5 / (1 - y).sum())
    # parametrise as logit = a + b * d  (b = -slope, a = slope * midpoint)
    a, b = 0.0, 0.0
    x = np.stack([np.ones_like(d), d], axis=1)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(a + b * d)))
        grad = x.T @ (weights * (y - p))
        hess = -(x.T * (weights * p * (1 - p))) @ x - 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-10:
            break
    slope = -b
    if not slope > 0:
        raise InvalidParameterException("Calibration failed: genuine pairs are not closer than impostor pairs.")
    return float(slope), float(a / slope)


def error_rates(distances: np.ndarray, same: np.ndarray, distance_threshold: float) -> tuple[float, float]:
    """(FMR, FNMR) when pairs at or below ``distance_threshold`` are called a match."""
    d = np.asarray(distances, dtype=np.float64)
    y = np.asarray(same).astype(bool)
    match = d <= distance_threshold
    fmr = float(match[~y].mean()) if (~y).any() else float("nan")
    fnmr = float((~match[y]).mean()) if y.any() else float("nan")
    return fmr, fnmr


def operating_points(calibration: Calibration, distances: np.ndarray, same: np.ndarray,
                     thresholds: tuple[float, ...] = (50, 70, 80, 90, 95, 99)) -> list[dict]:
    y = np.asarray(same).astype(bool)
    rows = []
    for t in thresholds:
        dist = calibration.distance_at(t)
        fmr, fnmr = error_rates(distances, same, dist)
        rows.append({
            "similarity_threshold": t,
            "distance": round(dist, 4),
            "fmr": fmr,
            "fnmr": fnmr,
            "impostor_pairs": int((~y).sum()),
            "genuine_pairs": int(y.sum()),
        })
    return rows
