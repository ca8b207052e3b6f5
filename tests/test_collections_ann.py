"""ApproximateIndex (collections/ann.py) against exact search, on real face embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from facecompare.collections.ann import ApproximateIndex
from facecompare.errors import ConfigurationError


def exact(matrix: np.ndarray, ids: list[str], query: np.ndarray, k: int, metric: str = "cosine",
          max_distance: float = float("inf"), exclude: str | None = None) -> list[tuple[str, float]]:
    """The reference: every row compared, in float64."""
    m = matrix.astype(np.float64)
    q = np.asarray(query, dtype=np.float64)
    if metric == "cosine":
        m = m / np.linalg.norm(m, axis=1, keepdims=True)
        q = q / np.linalg.norm(q)
        d = 1.0 - m @ q
    else:
        d = np.linalg.norm(m - q, axis=1)
    order = np.argsort(d, kind="stable")
    out = [(ids[i], float(d[i])) for i in order if ids[i] != exclude and d[i] <= max_distance]
    return out[:k]


@pytest.fixture(scope="module")
def fixture_faces(verifier, fixtures) -> np.ndarray:
    """Every face of the committed fixture images, embedded with the default recognizer (SFace)."""
    vectors = []
    for path in sorted(fixtures.glob("*.jpg")):
        for face in verifier.analyze(path).faces:
            if face.embedding is not None:
                vectors.append(np.asarray(face.embedding.vector, dtype=np.float32))
    assert len(vectors) >= 8
    return np.array(vectors)


def neighbourhood(real: np.ndarray, per_face: int, spread: float, seed: int = 0) -> np.ndarray:
    """Vectors around each real face (the face plus Gaussian noise, normalised): a crowd of look-alikes, so that the
    graph has to find the nearest among many near ones."""
    rng = np.random.default_rng(seed)
    noisy = np.repeat(real, per_face, axis=0) + rng.normal(0, spread, (len(real) * per_face, real.shape[1]))
    return (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)


def test_top1_equals_exact_among_look_alikes_of_fixture_faces(fixture_faces):
    crowd = neighbourhood(fixture_faces, 300, 0.04)
    ids = [f"face-{i}" for i in range(len(crowd))]
    index = ApproximateIndex("cosine", crowd.shape[1], threads=1)
    index.add(ids, crowd)
    assert len(index) == len(crowd)
    queries = np.vstack([fixture_faces, neighbourhood(fixture_faces, 20, 0.04, seed=1)])
    misses = 0
    for q in queries:
        got, every = index.search(q, 1), exact(crowd, ids, q, len(crowd))
        misses += got[0][0] != every[0][0]
        assert got[0][1] == pytest.approx(dict(every)[got[0][0]], abs=1e-5)  # its exact distance, hit or miss
    assert misses == 0, f"{misses} of {len(queries)} approximate top-1 differ from exact"


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_distances_equal_the_exact_ones(fixture_faces, metric):
    vectors = fixture_faces * (1.0 if metric == "cosine" else 1.7)  # euclidean on vectors that are not unit
    ids = [f"f{i}" for i in range(len(vectors))]
    index = ApproximateIndex(metric, vectors.shape[1])
    index.add(ids, vectors)
    for q in vectors:
        got, want = index.search(q, len(ids)), exact(vectors, ids, q, len(ids), metric)
        assert [i for i, _ in got] == [i for i, _ in want]
        np.testing.assert_allclose([d for _, d in got], [d for _, d in want], atol=1e-5)


def test_exclude_and_max_distance(fixture_faces):
    ids = [f"f{i}" for i in range(len(fixture_faces))]
    index = ApproximateIndex("cosine", fixture_faces.shape[1])
    index.add(ids, fixture_faces)
    q = fixture_faces[0]
    assert index.search(q, 1)[0][0] == "f0"
    got = index.search(q, 3, exclude="f0")
    assert "f0" not in [i for i, _ in got] and len(got) == 3
    assert [i for i, _ in got] == [i for i, _ in exact(fixture_faces, ids, q, 3, exclude="f0")]
    everything = exact(fixture_faces, ids, q, len(ids))
    limit = (everything[2][1] + everything[3][1]) / 2  # between the 3rd and 4th nearest
    near = index.search(q, len(ids), max_distance=limit)
    assert [i for i, _ in near] == [i for i, _ in everything[:3]]
    assert all(d <= limit for _, d in near)
    assert index.search(q, len(ids), max_distance=-1.0) == []
    assert index.search(q, 0) == []
    assert index.search(q, 2, exclude="not-there") == index.search(q, 2)


def test_add_and_remove_keep_it_in_step_with_exact(fixture_faces):
    rng = np.random.default_rng(3)
    pool = neighbourhood(fixture_faces, 60, 0.05, seed=4)
    pool_ids = [f"p{i}" for i in range(len(pool))]
    index = ApproximateIndex("cosine", pool.shape[1], threads=1)
    present: dict[str, np.ndarray] = {}
    for step in range(12):
        adding = rng.choice(len(pool), 40, replace=False)
        index.add([pool_ids[i] for i in adding], pool[adding])
        present.update({pool_ids[i]: pool[i] for i in adding})
        if step % 3 == 2:  # some ids again, with other vectors: replaced, not duplicated
            again = list(present)[:5]
            moved = neighbourhood(fixture_faces[:1], 5, 0.05, seed=step)
            index.add(again, moved)
            present.update(dict(zip(again, moved, strict=True)))
        gone = [i for i in present if rng.random() < 0.2] + ["never-added"]
        index.remove(gone)
        for face_id in gone:
            present.pop(face_id, None)
        assert len(index) == len(present)
        ids, matrix = list(present), np.array(list(present.values()))
        for q in fixture_faces:
            got, want = index.search(q, 5), exact(matrix, ids, q, 5)
            assert [i for i, _ in got] == [i for i, _ in want]
            np.testing.assert_allclose([d for _, d in got], [d for _, d in want], atol=1e-5)
    index.remove(list(present))
    assert len(index) == 0 and index.search(fixture_faces[0], 3) == []


def test_same_id_twice_in_one_batch_keeps_the_last(fixture_faces):
    index = ApproximateIndex("cosine", fixture_faces.shape[1])
    index.add(["a", "b", "a"], fixture_faces[:3])
    assert len(index) == 2
    assert index.search(fixture_faces[2], 1)[0] == ("a", pytest.approx(0.0, abs=1e-5))
    expected = exact(fixture_faces[1:3], ["b", "a"], fixture_faces[0], 2)  # "a" is the third row, not the first
    got = index.search(fixture_faces[0], 2)
    assert [i for i, _ in got] == [i for i, _ in expected]
    np.testing.assert_allclose([d for _, d in got], [d for _, d in expected], atol=1e-5)


def test_rejects_wrong_shapes_and_settings(fixture_faces):
    index = ApproximateIndex("cosine", fixture_faces.shape[1])
    with pytest.raises(ValueError):
        index.add(["a"], np.zeros((1, 64), dtype=np.float32))
    with pytest.raises(ValueError):
        index.add(["a", "b"], fixture_faces[:1])
    with pytest.raises(ValueError):
        ApproximateIndex("manhattan", 128)
    with pytest.raises(ValueError):
        ApproximateIndex("cosine", 128, dtype="i8")  # its distances are off by up to 0.04: not offered


def test_memory_bytes_counts_vectors_and_ids(fixture_faces):
    index = ApproximateIndex("cosine", fixture_faces.shape[1])
    empty = index.memory_bytes()
    crowd = neighbourhood(fixture_faces, 1000, 0.05)
    index.add([f"{i:08d}-0000-4000-8000-000000000000" for i in range(len(crowd))], crowd)
    assert index.memory_bytes() - empty >= crowd.nbytes  # at least the float32 vectors
    assert index.memory_bytes() < empty + 4 * crowd.nbytes  # and not wildly more (graph + ids)


@pytest.mark.shared_data
def test_top1_equals_exact_on_lfw_with_distractors(verifier, shared):
    """A few hundred LFW faces (two images of each of 150 people, one indexed, one searched) among 5,000
    distractors drawn from a Gaussian fitted to them: the approximate top-1 is the exact top-1."""
    lfw = shared / "lfw" / "lfw-deepfunneled"
    people = [p for p in sorted(lfw.iterdir()) if (p / f"{p.name}_0002.jpg").exists()][:150]
    indexed, searched = [], []
    for person in people:
        pair = []
        for n in (1, 2):
            faces = verifier.analyze(person / f"{person.name}_000{n}.jpg", embed=1, max_faces=1).faces
            if faces and faces[0].embedding is not None:
                pair.append(np.asarray(faces[0].embedding.vector, dtype=np.float32))
        if len(pair) == 2:
            indexed.append(pair[0])
            searched.append(pair[1])
    assert len(indexed) >= 140
    real = np.array(indexed + searched)
    rng = np.random.default_rng(7)
    cov = np.cov(real, rowvar=False) + 1e-6 * np.eye(real.shape[1])
    fake = rng.multivariate_normal(real.mean(axis=0), cov, 5_000)
    fake = (fake / np.linalg.norm(fake, axis=1, keepdims=True)).astype(np.float32)
    matrix = np.vstack([np.array(indexed), fake])
    ids = [f"lfw-{i}" for i in range(len(indexed))] + [f"synthetic-{i}" for i in range(len(fake))]
    index = ApproximateIndex("cosine", matrix.shape[1], threads=1)
    index.add(ids, matrix)
    misses = 0
    for q in searched:
        got, want = index.search(q, 1), exact(matrix, ids, q, 1)
        misses += got[0][0] != want[0][0]
        if got[0][0] == want[0][0]:
            assert got[0][1] == pytest.approx(want[0][1], abs=1e-5)
    assert misses == 0, f"{misses} of {len(searched)} approximate top-1 differ from exact"


def test_in_step_with_exact_index_through_adds_replacements_and_removals(fixture_faces):
    """The project's ExactIndex and ApproximateIndex fed the same changes answer the same, distances within 1e-5."""
    from facecompare.collections.index import ExactIndex

    rng = np.random.default_rng(11)
    pool = neighbourhood(fixture_faces, 80, 0.05, seed=12)
    pool_ids = [f"q{i}" for i in range(len(pool))]
    approximate, reference = ApproximateIndex("cosine", pool.shape[1], threads=1), ExactIndex("cosine", pool.shape[1])
    for step in range(8):
        chosen = rng.choice(len(pool), 60, replace=False)  # ids already there come back with a new vector
        vectors = neighbourhood(fixture_faces, 80, 0.05, seed=100 + step)[chosen]  # no two rows alike: no ties
        for index in (approximate, reference):
            index.add([pool_ids[i] for i in chosen], vectors)
        gone = [pool_ids[i] for i in rng.choice(len(pool), 40, replace=False)]
        for index in (approximate, reference):
            index.remove(gone)
        assert len(approximate) == len(reference)
        for q in np.vstack([fixture_faces, pool[rng.choice(len(pool), 10)]]):
            exclude = reference.search(q, 1)[0][0]
            for kwargs in ({}, {"exclude": exclude}, {"max_distance": 0.3}):
                got, want = approximate.search(q, 4, **kwargs), reference.search(q, 4, **kwargs)
                assert [i for i, _ in got] == [i for i, _ in want]
                np.testing.assert_allclose([d for _, d in got], [d for _, d in want], atol=1e-5)


def test_the_service_searches_through_the_approximate_index_over_the_line(verifier, tmp_path, fixtures):
    """Collections over approximate_above uses ApproximateIndex (the default factory) and answers as exact does."""
    from facecompare.collections import open_store
    from facecompare.collections.service import Collections

    answers = {}
    for line in (2, 1000):
        service = Collections(verifier, open_store(f"sqlite:///{tmp_path}/line{line}.db"), approximate_above=line)
        service.create_collection("c")
        for name in ("Colin_Powell_0001", "Serena_Williams_0001", "Tony_Blair_0001", "obama", "biden"):
            service.index_faces("c", fixtures / f"{name}.jpg", external_image_id=name)
        result = service.search_faces_by_image("c", fixtures / "Colin_Powell_0002.jpg", threshold=0)
        entry = service._indexes["c"]
        assert isinstance(entry.index, ApproximateIndex) == (line == 2)
        answers[line] = [(m.face.external_image_id, round(m.similarity, 4)) for m in result.matches]
        service.store.close()
    assert answers[2] == answers[1000] and answers[2][0][0] == "Colin_Powell_0001" and len(answers[2]) == 5


def test_f16_vectors_give_distances_within_2e_4(fixture_faces):
    crowd = neighbourhood(fixture_faces, 100, 0.04, seed=5)
    ids = [f"h{i}" for i in range(len(crowd))]
    index = ApproximateIndex("cosine", crowd.shape[1], dtype="f16", threads=1)
    index.add(ids, crowd)
    for q in fixture_faces:
        every = dict(exact(crowd, ids, q, len(ids)))
        got = index.search(q, 5)
        assert len(got) == 5
        assert max(abs(d - every[i]) for i, d in got) < 2e-4


def test_a_large_k_with_a_threshold_returns_every_face_within_it(fixture_faces):
    """SearchFaces' MaxFaces is up to 4096 and the threshold bounds the answer: all faces within max_distance come
    back (more than one graph search's worth), and none beyond it."""
    crowd = neighbourhood(fixture_faces, 400, 0.03, seed=9)
    ids = [f"c{i}" for i in range(len(crowd))]
    index = ApproximateIndex("cosine", crowd.shape[1], ef_search=64, threads=1)
    index.add(ids, crowd)
    q = fixture_faces[0]
    every = exact(crowd, ids, q, len(ids))
    limit = every[300][1]  # about 300 faces within: more than the first ask (64) and than one face's crowd
    got = index.search(q, 4096, max_distance=limit)
    want = [i for i, d in every if d <= limit]
    assert len(want) > 64 and len(set(got)) == len(got)
    assert len({i for i, _ in got} & set(want)) >= 0.99 * len(want) and all(d <= limit for _, d in got)
    bounded, top = index.search(q, 4096, max_distance=every[10][1] - 1e-7), index.search(q, 10)
    assert [i for i, _ in bounded] == [i for i, _ in top]  # the same faces in the same order
    # and the same distances, to float32 rounding: the two searches run different graph walks, and usearch sums
    # float32 products in an order of its own (the 7th digit moves between its releases)
    assert np.allclose([d for _, d in bounded], [d for _, d in top], rtol=1e-5, atol=1e-6)


def test_the_approximate_index_is_opt_in(tmp_path):
    """Without FACECOMPARE_COLLECTION_APPROXIMATE_ABOVE every collection is searched exactly, whatever its size
    (the graph would be built synchronously on a first search); with it, collections above the line get the graph."""
    from facecompare.collections.index import ExactIndex
    from facecompare.collections.service import default_index_factory
    from facecompare.server.config import ServerConfig

    assert ServerConfig.from_env({}).collection_approximate_above is None
    assert isinstance(default_index_factory(None)("cosine", 128, 5_000_000), ExactIndex)
    config = ServerConfig.from_env({"FACECOMPARE_COLLECTION_APPROXIMATE_ABOVE": "1000"})
    assert config.collection_approximate_above == 1000
    factory = default_index_factory(config.collection_approximate_above)
    assert isinstance(factory("cosine", 128, 1000), ExactIndex)
    assert isinstance(factory("cosine", 128, 1001), ApproximateIndex)
    with pytest.raises(ConfigurationError, match="FACECOMPARE_COLLECTION_APPROXIMATE_ABOVE"):
        ServerConfig.from_env({"FACECOMPARE_COLLECTION_APPROXIMATE_ABOVE": "many"})
