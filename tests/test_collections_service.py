"""The collections library (:class:`facecompare.collections.service.Collections`) on real faces from
tests/fixtures, over a real SQLite file: matching, idempotent IndexFaces, MaxFaces and QualityFilter reasons,
pagination, unknown ids, mismatched models, the quota, two services on one file, and erasure in the file."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter

from facecompare.collections import open_store
from facecompare.collections.index import ExactIndex
from facecompare.collections.service import DEFAULT_PAGE_SIZE, Collections
from facecompare.errors import (
    InvalidPaginationTokenException,
    InvalidParameterException,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
    ServiceQuotaExceededException,
)


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95)
    return out.getvalue()


@pytest.fixture
def service(verifier, tmp_path):
    collections = Collections(verifier, open_store(f"sqlite:///{tmp_path}/collections.db"))
    yield collections
    collections.store.close()


@pytest.fixture
def people(service, fixtures):
    """A collection with one photo each of Colin Powell, Serena Williams and Tony Blair."""
    service.create_collection("people")
    ids = {}
    for name in ("Colin_Powell_0001", "Serena_Williams_0001", "Tony_Blair_0001"):
        result = service.index_faces("people", fixtures / f"{name}.jpg", external_image_id=name)
        ids[name] = result.records[0].stored.face_id
    return ids


def test_two_photos_of_one_person_match_and_another_person_does_not(service, people, fixtures):
    result = service.search_faces_by_image("people", fixtures / "Colin_Powell_0002.jpg")
    assert [m.face.external_image_id for m in result.matches] == ["Colin_Powell_0001"]
    assert result.matches[0].similarity >= 80 and result.searched_face.confidence > 90
    serena = service.search_faces_by_image("people", (fixtures / "Serena_Williams_0002.jpg").read_bytes())
    assert [m.face.external_image_id for m in serena.matches] == ["Serena_Williams_0001"]
    # at threshold 0 every face comes back, highest first, and the other people score low
    everyone = service.search_faces_by_image("people", fixtures / "Colin_Powell_0002.jpg", threshold=0)
    similarities = [m.similarity for m in everyone.matches]
    assert len(everyone.matches) == 3 and similarities == sorted(similarities, reverse=True)
    assert similarities[1] < 50
    assert len(service.search_faces_by_image("people", fixtures / "Colin_Powell_0002.jpg", threshold=0,
                                             max_faces=2).matches) == 2


def test_search_faces_excludes_the_face_itself(service, people, fixtures):
    again = service.index_faces("people", fixtures / "Colin_Powell_0002.jpg", external_image_id="colin-2")
    colin2 = again.records[0].stored.face_id
    matches = service.search_faces("people", people["Colin_Powell_0001"])
    assert [m.face.face_id for m in matches] == [colin2]
    everyone = service.search_faces("people", people["Colin_Powell_0001"], threshold=0)
    assert people["Colin_Powell_0001"] not in [m.face.face_id for m in everyone] and len(everyone) == 3
    with pytest.raises(InvalidParameterException, match="not in collection"):
        service.search_faces("people", "00000000-0000-4000-8000-000000000000")
    with pytest.raises(InvalidParameterException):
        service.search_faces("people", "NOT-A-UUID")
    with pytest.raises(InvalidParameterException):
        service.search_faces("people", people["Colin_Powell_0001"], max_faces=4097)


def test_index_faces_is_idempotent(service, fixtures):
    service.create_collection("c")
    service.create_collection("d")
    first = service.index_faces("c", fixtures / "two_people.jpg", external_image_id="photo-1")
    assert len(first.records) == 2 and service.describe_collection("c").face_count == 2
    # the same bytes (given as bytes, not a path) and the same external id: the same ids, nothing stored
    again = service.index_faces("c", (fixtures / "two_people.jpg").read_bytes(), external_image_id="photo-1")
    assert [r.stored.face_id for r in again.records] == [r.stored.face_id for r in first.records]
    assert {r.stored.image_id for r in again.records} == {first.records[0].stored.image_id}
    assert service.describe_collection("c").face_count == 2
    # another external id is another image; another collection gets the same ids (as Rekognition documents)
    other = service.index_faces("c", fixtures / "two_people.jpg", external_image_id="photo-2")
    assert not {r.stored.face_id for r in other.records} & {r.stored.face_id for r in first.records}
    assert service.describe_collection("c").face_count == 4
    elsewhere = service.index_faces("d", fixtures / "two_people.jpg", external_image_id="photo-1")
    assert [r.stored.face_id for r in elsewhere.records] == [r.stored.face_id for r in first.records]
    # records are largest first, with the stored box equal to the detected one
    areas = [r.face.bounding_box.area for r in first.records]
    assert areas == sorted(areas, reverse=True)
    assert first.records[0].stored.bounding_box[0] == pytest.approx(first.records[0].face.bounding_box.width)


def test_max_faces_and_no_face(service, fixtures):
    service.create_collection("c")
    result = service.index_faces("c", fixtures / "two_people.jpg", max_faces=1)
    assert len(result.records) == 1 and [u.reasons for u in result.unindexed] == [["EXCEEDS_MAX_FACES"]]
    nothing = service.index_faces("c", fixtures / "id_back_mrz_only_che.jpg")
    assert nothing.records == [] and nothing.unindexed == [] and nothing.image_width > 0
    with pytest.raises(InvalidParameterException):
        service.index_faces("c", fixtures / "two_people.jpg", max_faces=0)
    with pytest.raises(InvalidParameterException, match="no face"):
        service.search_faces_by_image("c", fixtures / "id_back_mrz_only_che.jpg")


def test_quality_filter_reasons(service, fixtures):
    service.create_collection("c")
    colin = Image.open(fixtures / "Colin_Powell_0001.jpg").convert("RGB")
    cases = {
        "dark": (ImageEnhance.Brightness(colin).enhance(0.12), "LOW_BRIGHTNESS"),
        "blurred": (colin.filter(ImageFilter.GaussianBlur(3)), "LOW_SHARPNESS"),
        "small": (colin.resize((96, 96)), "SMALL_BOUNDING_BOX"),
    }
    for name, (image, reason) in cases.items():
        data = _jpeg(image)
        filtered = service.index_faces("c", data, external_image_id=name)  # QualityFilter AUTO by default
        assert filtered.records == [] and reason in filtered.unindexed[0].reasons, name
        kept = service.index_faces("c", data, external_image_id=name, quality_filter="NONE")
        assert len(kept.records) == 1 and kept.unindexed == [], name
    # a profile face beside a frontal one: indexed under NONE, EXTREME_POSE under AUTO
    blair = service.index_faces("c", fixtures / "Tony_Blair_0001.jpg")
    assert len(blair.records) == 1 and [u.reasons for u in blair.unindexed] == [["EXTREME_POSE"]]
    assert service.index_faces("c", fixtures / "Colin_Powell_0001.jpg", quality_filter="HIGH").records
    with pytest.raises(InvalidParameterException, match="QualityFilter"):
        service.index_faces("c", fixtures / "Colin_Powell_0001.jpg", quality_filter="BEST")
    # SearchFacesByImage refuses a largest face under its QualityFilter (default NONE accepts it)
    with pytest.raises(InvalidParameterException, match="LOW_SHARPNESS"):
        service.search_faces_by_image("c", _jpeg(cases["blurred"][0]), quality_filter="AUTO")
    service.search_faces_by_image("c", _jpeg(cases["blurred"][0]))


def test_pagination_over_several_pages(service, people, fixtures):
    for name in ("Colin_Powell_0002", "Serena_Williams_0002", "obama", "biden", "two_people"):
        service.index_faces("people", fixtures / f"{name}.jpg", external_image_id=name)
    every, _ = service.list_faces("people")
    assert len(every) == 9 and [f.face_id for f in every] == sorted(f.face_id for f in every)
    pages, token = [], None
    while True:
        page, token = service.list_faces("people", next_token=token, max_results=2)
        pages.append(page)
        if token is None:
            break
        assert len(token) <= 255
    assert [len(p) for p in pages] == [2, 2, 2, 2, 1]
    assert [f.face_id for p in pages for f in p] == [f.face_id for f in every]
    # FaceIds filter, paged too; unknown ids are simply absent
    wanted = [every[5].face_id, every[1].face_id, "00000000-0000-4000-8000-000000000000"]
    first, token = service.list_faces("people", face_ids=wanted, max_results=1)
    assert [f.face_id for f in first] == [every[1].face_id]
    second, token = service.list_faces("people", face_ids=wanted, next_token=token, max_results=1)
    assert [f.face_id for f in second] == [every[5].face_id] and token is None
    # MaxResults 0 or omitted is the default page size
    assert DEFAULT_PAGE_SIZE == 1000 and len(service.list_faces("people", max_results=0)[0]) == 9

    for i in range(5):
        service.create_collection(f"c{i}")
    names, token = [], None
    while True:
        page, token = service.list_collections(next_token=token, max_results=2)
        names += [c.collection_id for c in page]
        if token is None:
            break
    assert names == ["c0", "c1", "c2", "c3", "c4", "people"]


def test_bad_pagination_tokens(service, people):
    service.create_collection("other")
    _, token = service.list_faces("people", max_results=1)
    _, collections_token = service.list_collections(max_results=1)
    tampered = token[:-1] + ("0" if token[-1] != "0" else "1")
    for bad in (tampered, "garbage", "", "v1:f:" + "0" * 16 + ":" + token.rsplit(":", 1)[1], collections_token,
                "x" * 300):
        with pytest.raises(InvalidPaginationTokenException):
            service.list_faces("people", next_token=bad)
    with pytest.raises(InvalidPaginationTokenException):  # a token of another collection
        service.list_faces("other", next_token=token)
    with pytest.raises(InvalidPaginationTokenException):
        service.list_collections(next_token=token)
    # a token outlives nothing: the collection deleted and created again is another generation
    service.delete_collection("people")
    service.create_collection("people")
    with pytest.raises(InvalidPaginationTokenException):
        service.list_faces("people", next_token=token)


def test_long_collection_ids_page_through(service):
    long_ids = sorted("x" * 240 + f"{i:02d}" for i in range(5))
    for cid in long_ids:
        service.create_collection(cid)
    names, token = [], None
    while True:
        page, token = service.list_collections(next_token=token, max_results=2)
        names += [c.collection_id for c in page]
        if token is None:
            break
        assert len(token) <= 255
    assert names == long_ids


def test_unknown_collections_and_ids(service, fixtures):
    for call in (lambda: service.describe_collection("nope"), lambda: service.delete_collection("nope"),
                 lambda: service.list_faces("nope"),
                 lambda: service.delete_faces("nope", ["00000000-0000-4000-8000-000000000000"]),
                 lambda: service.index_faces("nope", fixtures / "obama.jpg"),
                 lambda: service.search_faces_by_image("nope", fixtures / "obama.jpg")):
        with pytest.raises(ResourceNotFoundException):
            call()
    service.create_collection("c", tags={"owner": "kyc team"})
    with pytest.raises(ResourceAlreadyExistsException):
        service.create_collection("c")
    for bad in ("", "has space", "x" * 256, "slash/"):
        with pytest.raises(InvalidParameterException):
            service.create_collection(bad)
    with pytest.raises(InvalidParameterException):
        service.create_collection("t", tags={"aws:owner": "x"})
    record = service.index_faces("c", fixtures / "obama.jpg").records[0].stored
    unknown = "00000000-0000-4000-8000-000000000000"
    assert service.delete_faces("c", [record.face_id, unknown]) == ([record.face_id], [unknown])
    assert service.describe_collection("c").face_count == 0 and service.describe_collection("c").tags == {
        "owner": "kyc team"}
    with pytest.raises(InvalidParameterException):
        service.delete_faces("c", [])
    with pytest.raises(InvalidParameterException):
        service.index_faces("c", fixtures / "obama.jpg", external_image_id="not allowed/")


def test_a_collection_of_another_model_is_refused(service, fixtures):
    # a collection made by the dlib recognizer (building a dlib Verifier is slow: the store row is enough)
    service.store.create_collection("dlib-faces", "dlib-resnet-v1", "euclidean", 128)
    for call in (lambda: service.index_faces("dlib-faces", fixtures / "obama.jpg"),
                 lambda: service.search_faces_by_image("dlib-faces", fixtures / "obama.jpg"),
                 lambda: service.search_faces("dlib-faces", "00000000-0000-4000-8000-000000000000")):
        with pytest.raises(InvalidParameterException, match="dlib-resnet-v1"):
            call()
    assert service.describe_collection("dlib-faces").face_count == 0
    assert service.create_collection("mine").model == service.model_version == service.verifier.recognizer.name


def test_quota(verifier, tmp_path, fixtures):
    service = Collections(verifier, open_store(f"sqlite:///{tmp_path}/q.db"), max_faces_per_collection=2)
    service.create_collection("c")
    service.index_faces("c", fixtures / "two_people.jpg")
    service.index_faces("c", fixtures / "two_people.jpg")  # idempotent: nothing new, so no quota error
    with pytest.raises(ServiceQuotaExceededException):
        service.index_faces("c", fixtures / "obama.jpg")
    assert service.describe_collection("c").face_count == 2


def test_two_services_on_one_file_see_each_others_writes(verifier, tmp_path, fixtures):
    url = f"sqlite:///{tmp_path}/shared.db"
    made = []

    def factory(metric, dimension, size):
        made.append(size)
        return ExactIndex(metric, dimension)

    a = Collections(verifier, open_store(url))
    b = Collections(verifier, open_store(url), index_factory=factory)
    a.create_collection("c")
    a.index_faces("c", fixtures / "Serena_Williams_0001.jpg")
    assert b.search_faces_by_image("c", fixtures / "Colin_Powell_0002.jpg").matches == []  # b's index built
    colin = a.index_faces("c", fixtures / "Colin_Powell_0001.jpg").records[0].stored.face_id
    assert [m.face.face_id for m in b.search_faces_by_image("c", fixtures / "Colin_Powell_0002.jpg").matches] == [colin]
    a.delete_faces("c", [colin])
    assert b.search_faces_by_image("c", fixtures / "Colin_Powell_0002.jpg").matches == []
    assert made == [1]  # built once, then kept in step with changes_since
    # deleted and created again elsewhere: b rebuilds (a new generation)
    a.delete_collection("c")
    a.create_collection("c")
    a.index_faces("c", fixtures / "Colin_Powell_0001.jpg")
    assert len(b.search_faces_by_image("c", fixtures / "Colin_Powell_0002.jpg").matches) == 1
    assert made == [1, 1]
    a.store.close()
    b.store.close()


def test_deleted_faces_are_erased_from_the_database_file(service, fixtures):
    service.create_collection("c")
    service.create_collection("keep")
    for name in ("Colin_Powell_0001", "Serena_Williams_0001"):
        service.index_faces("c", fixtures / f"{name}.jpg", external_image_id=name)
    service.index_faces("keep", fixtures / "obama.jpg")
    faces = {f.external_image_id: f for f in service.list_faces("c")[0]}
    kept = service.list_faces("keep")[0][0]
    store = service.store

    def content() -> bytes:
        store.checkpoint()
        wal = store.path.with_name(store.path.name + "-wal")
        return store.path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")

    blobs = {name: np.asarray(f.embedding, dtype=np.float32).tobytes() for name, f in faces.items()}
    assert all(blob in content() for blob in blobs.values())
    service.delete_faces("c", [faces["Colin_Powell_0001"].face_id])
    data = content()
    assert blobs["Colin_Powell_0001"] not in data and blobs["Serena_Williams_0001"] in data
    service.delete_collection("c")
    data = content()
    assert blobs["Serena_Williams_0001"] not in data and kept.embedding.tobytes() in data
    assert b"Serena_Williams_0001" not in data  # the external id went with its row


def test_faces_deleted_elsewhere_leave_this_process_memory(verifier, tmp_path, fixtures):
    url = f"sqlite:///{tmp_path}/shared.db"
    a, b = Collections(verifier, open_store(url)), Collections(verifier, open_store(url))
    a.create_collection("c")
    colin = a.index_faces("c", fixtures / "Colin_Powell_0001.jpg").records[0].stored.face_id
    a.index_faces("c", fixtures / "Serena_Williams_0001.jpg")
    b.search_faces("c", colin)  # b now holds an index of 2 faces
    cached = b._indexes["c"].index
    assert len(cached) == 2
    a.delete_faces("c", [colin])
    b.sweep(force=True)  # no search of "c" in b: the sweep alone drops the face
    assert len(cached) == 1 and colin not in cached
    a.delete_collection("c")
    b.sweep(force=True)
    assert "c" not in b._indexes
    a.store.close()
    b.store.close()


def test_the_index_is_rebuilt_only_when_the_collection_crosses_the_line(verifier, tmp_path, fixtures):
    made = []

    def factory(metric, dimension, size):
        made.append(size)
        return ExactIndex(metric, dimension)  # what the default does when no approximate index is installed

    service = Collections(verifier, open_store(f"sqlite:///{tmp_path}/line.db"), approximate_above=2,
                          index_factory=factory)
    service.create_collection("c")
    ids = [r.stored.face_id for r in service.index_faces("c", fixtures / "two_people.jpg").records]
    service.search_faces("c", ids[0])
    ids.append(service.index_faces("c", fixtures / "obama.jpg").records[0].stored.face_id)
    for _ in range(3):
        service.search_faces("c", ids[0])
    assert made == [2, 3]  # built small, rebuilt once when it went over 2, then kept in step
    service.delete_faces("c", [ids[2]])  # 2 faces: still over 90 % of the line, no rebuild
    service.search_faces("c", ids[0])
    service.delete_faces("c", [ids[1]])
    service.search_faces("c", ids[0])
    assert made == [2, 3, 1]
    service.store.close()


def test_index_faces_takes_every_kind_of_image_and_refuses_a_missing_file(service, fixtures, tmp_path):
    service.create_collection("c")
    path = fixtures / "obama.jpg"
    with open(path, "rb") as stream:
        ids = {service.index_faces("c", source, external_image_id="o").records[0].stored.face_id
               for source in (path, str(path), path.read_bytes(), stream)}
    assert len(ids) == 1  # one image, one face id, whichever way it came
    pil = Image.open(path).convert("RGB")
    from_pixels = service.index_faces("c", pil, external_image_id="o").records[0].stored.face_id
    assert from_pixels not in ids  # pixels are hashed, not the file
    assert service.index_faces("c", pil, external_image_id="o").records[0].stored.face_id == from_pixels
    assert len(service.index_faces("c", np.asarray(pil), external_image_id="o").records) == 1
    assert service.describe_collection("c").face_count == 3
    with pytest.raises(InvalidParameterException, match="not found"):
        service.index_faces("c", tmp_path / "missing.jpg")
