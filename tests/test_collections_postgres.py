"""Two real ``facecompare serve`` processes (replicas) on one PostgreSQL database, driven by the unmodified boto3
client: what one replica indexes the other finds, what one deletes the other no longer finds, and a NextToken of
one is good on the other."""

from __future__ import annotations

import pytest

from test_collections_aws import _client, _code, two_servers


@pytest.fixture(scope="module")
def replicas(postgres_cluster, tmp_path_factory):
    yield from two_servers(tmp_path_factory, postgres_cluster.new_database(), "pg-serve")


def test_two_replicas_on_one_postgres_database_see_each_others_writes(replicas, fixtures):
    a, b = (_client(server) for server in replicas)
    colin1 = {"Bytes": (fixtures / "Colin_Powell_0001.jpg").read_bytes()}
    colin2 = {"Bytes": (fixtures / "Colin_Powell_0002.jpg").read_bytes()}
    serena = {"Bytes": (fixtures / "Serena_Williams_0001.jpg").read_bytes()}
    a.create_collection(CollectionId="kyc")
    assert _code(lambda: b.create_collection(CollectionId="kyc")) == "ResourceAlreadyExistsException"
    assert b.search_faces_by_image(CollectionId="kyc", Image=colin2)["FaceMatches"] == []  # b builds its index now
    colin_id = a.index_faces(CollectionId="kyc", Image=colin1, ExternalImageId="colin-1")["FaceRecords"][0]["Face"][
        "FaceId"]
    serena_id = b.index_faces(CollectionId="kyc", Image=serena)["FaceRecords"][0]["Face"]["FaceId"]
    # each replica finds what the other indexed, and only the right person
    found = b.search_faces_by_image(CollectionId="kyc", Image=colin2)["FaceMatches"]
    assert [(m["Face"]["FaceId"], m["Face"]["ExternalImageId"]) for m in found] == [(colin_id, "colin-1")]
    assert [m["Face"]["FaceId"] for m in a.search_faces(CollectionId="kyc", FaceId=serena_id)["FaceMatches"]] == []
    assert b.describe_collection(CollectionId="kyc")["FaceCount"] == 2
    # a page token from one replica continues on the other
    first = a.list_faces(CollectionId="kyc", MaxResults=1)
    second = b.list_faces(CollectionId="kyc", MaxResults=1, NextToken=first["NextToken"])
    assert sorted(f["FaceId"] for f in first["Faces"] + second["Faces"]) == sorted([colin_id, serena_id])
    # deleted on one: the other no longer finds it
    assert a.delete_faces(CollectionId="kyc", FaceIds=[colin_id])["DeletedFaces"] == [colin_id]
    assert b.search_faces_by_image(CollectionId="kyc", Image=colin2)["FaceMatches"] == []
    assert _code(lambda: b.search_faces(CollectionId="kyc", FaceId=colin_id)) == "InvalidParameterException"
    assert b.describe_collection(CollectionId="kyc")["FaceCount"] == 1
    b.delete_collection(CollectionId="kyc")
    assert _code(lambda: a.describe_collection(CollectionId="kyc")) == "ResourceNotFoundException"
    assert _code(lambda: a.search_faces_by_image(CollectionId="kyc", Image=colin2)) == "ResourceNotFoundException"
