"""The REST API's face collections under ``/v1/collections`` (Rekognition's collections, users and tags in the
native shapes): one handler per operation, validated parameters in, the response out (run in an engine thread),
and :data:`COLLECTION_OPERATIONS`, what each one's parameters come from. The routes are :class:`.rest_api.RestApi`'s."""

from __future__ import annotations

from ..rekognition import compared_face
from .pipeline import Pipeline
from .rest_collection_models import (
    CollectionCreate,
    DeleteFacesJson,
    FacesQuery,
    IndexForm,
    IndexJson,
    ListQuery,
    SearchForm,
    SearchJson,
    TagKeysJson,
    TagsJson,
    UserCreate,
    UserFacesJson,
    UserSearchForm,
    UserSearchJson,
    UsersQuery,
)


def _box(box) -> dict:
    width, height, left, top = box
    return {"width": round(float(width), 6), "height": round(float(height), 6), "left": round(float(left), 6),
            "top": round(float(top), 6)}


def stored_face_dict(face) -> dict:
    """A :class:`~facecompare.collections.store.StoredFace` as the REST API shows it (never its embedding)."""
    return {"face_id": face.face_id, "image_id": face.image_id, "external_image_id": face.external_image_id,
            "bounding_box": _box(face.bounding_box), "confidence": round(float(face.confidence), 4),
            "indexed_at": round(float(face.indexed_at), 3), "user_id": face.user_id}


def collection_dict(info) -> dict:
    return {"collection_id": info.collection_id, "face_model_version": info.model, "face_count": info.face_count,
            "created_at": round(float(info.created_at), 3), "tags": dict(info.tags), "user_count": info.user_count}


def create_collection(pipeline: Pipeline, params: dict) -> dict:
    body: CollectionCreate = params["body"]
    return collection_dict(pipeline.collections.create_collection(body.collection_id, body.tags))


def list_collections(pipeline: Pipeline, params: dict) -> dict:
    query: ListQuery = params["query"]
    infos, token = pipeline.collections.list_collections(query.next_token, query.max_results)
    return {"collections": [collection_dict(i) for i in infos], **({"next_token": token} if token else {})}


def describe_collection(pipeline: Pipeline, params: dict) -> dict:
    return collection_dict(pipeline.collections.describe_collection(params["collection_id"]))


def delete_collection(pipeline: Pipeline, params: dict) -> dict:
    pipeline.collections.delete_collection(params["collection_id"])
    return {"collection_id": params["collection_id"], "deleted": True}


def index_faces(pipeline: Pipeline, params: dict) -> dict:
    body: IndexJson = params["body"]
    collections = pipeline.collections
    result = collections.index_faces(params["collection_id"], pipeline.verifier.load(body.image),
                                     external_image_id=body.external_image_id, max_faces=body.max_faces,
                                     quality_filter=body.quality_filter)
    return {"faces": [{"face": stored_face_dict(r.stored), "detail": compared_face(r.face)} for r in result.records],
            "unindexed": [{"face": compared_face(u.face), "reasons": list(u.reasons)} for u in result.unindexed],
            "face_model_version": collections.model_version, "image_width": result.image_width,
            "image_height": result.image_height}


def list_faces(pipeline: Pipeline, params: dict) -> dict:
    query: FacesQuery = params["query"]
    collections = pipeline.collections
    faces, token = collections.list_faces(params["collection_id"], query.next_token, query.max_results,
                                          query.face_ids, user_id=query.user_id)
    return {"faces": [stored_face_dict(f) for f in faces], **({"next_token": token} if token else {}),
            "face_model_version": collections.model_version}


def delete_faces(pipeline: Pipeline, params: dict) -> dict:
    body: DeleteFacesJson = params["body"]
    deleted, refused = pipeline.collections.delete_faces_with_reasons(params["collection_id"], body.face_ids)
    return {"deleted": list(deleted), "not_found": [r.face_id for r in refused if r.reason == "FACE_NOT_FOUND"],
            "associated": [{"face_id": r.face_id, "user_id": r.user_id} for r in refused
                           if r.reason == "ASSOCIATED_TO_AN_EXISTING_USER"]}


def search_faces(pipeline: Pipeline, params: dict) -> dict:
    body: SearchJson = params["body"]
    collections = pipeline.collections
    if body.face_id is not None:
        matches = collections.search_faces(params["collection_id"], body.face_id, max_faces=body.max_faces,
                                           threshold=body.threshold)
        searched = {"searched_face_id": body.face_id}
    else:
        result = collections.search_faces_by_image(params["collection_id"], pipeline.verifier.load(body.image),
                                                   max_faces=body.max_faces, threshold=body.threshold,
                                                   quality_filter=body.quality_filter)
        matches = result.matches
        searched = {"searched_face": compared_face(result.searched_face)}
    return {**searched, "matches": [{"similarity": round(float(m.similarity), 4), "face": stored_face_dict(m.face)}
                                    for m in matches],
            "face_model_version": collections.model_version}


# -- users (Rekognition's Users API) and tags ----------------------------------------------------------------


def user_dict(user) -> dict:
    return {"user_id": user.user_id, "status": user.status}


def create_user(pipeline: Pipeline, params: dict) -> dict:
    body: UserCreate = params["body"]
    return user_dict(pipeline.collections.create_user(params["collection_id"], body.user_id,
                                                      body.client_request_token))


def list_users(pipeline: Pipeline, params: dict) -> dict:
    query: UsersQuery = params["query"]
    users, token = pipeline.collections.list_users(params["collection_id"], query.next_token, query.max_results)
    return {"users": [user_dict(u) for u in users], **({"next_token": token} if token else {})}


def delete_user(pipeline: Pipeline, params: dict) -> dict:
    pipeline.collections.delete_user(params["collection_id"], params["user_id"])
    return {"user_id": params["user_id"], "deleted": True}


def _refusals(refused, low=()) -> list[dict]:
    return [{"face_id": r.face_id, "reason": r.reason, "user_id": r.user_id} for r in refused] + [
        {"face_id": f, "reason": "LOW_MATCH_CONFIDENCE", "similarity": round(float(c), 4)} for f, c in low]


def associate_faces(pipeline: Pipeline, params: dict) -> dict:
    body: UserFacesJson = params["body"]
    result = pipeline.collections.associate_faces(params["collection_id"], params["user_id"], body.face_ids,
                                                  user_match_threshold=body.user_match_threshold,
                                                  client_request_token=body.client_request_token)
    return {"changed": result.associated, "refused": _refusals(result.refused, result.low_confidence),
            "user": user_dict(result.user)}


def disassociate_faces(pipeline: Pipeline, params: dict) -> dict:
    body: UserFacesJson = params["body"]
    change = pipeline.collections.disassociate_faces(params["collection_id"], params["user_id"], body.face_ids,
                                                     client_request_token=body.client_request_token)
    return {"changed": change.changed, "refused": _refusals(change.refused), "user": user_dict(change.user)}


def search_users(pipeline: Pipeline, params: dict) -> dict:
    body: UserSearchJson = params["body"]
    collections = pipeline.collections
    out: dict = {}
    if body.image is not None:
        result = collections.search_users_by_image(params["collection_id"], pipeline.verifier.load(body.image),
                                                   user_match_threshold=body.threshold, max_users=body.max_users,
                                                   quality_filter=body.quality_filter)
        matches = result.matches
        if result.searched_face is not None:
            out["searched_face"] = compared_face(result.searched_face)
        out["unsearched"] = [{"face": compared_face(f), "reasons": list(r)} for f, r in result.unsearched]
    else:
        matches = collections.search_users(params["collection_id"], user_id=body.user_id, face_id=body.face_id,
                                           user_match_threshold=body.threshold, max_users=body.max_users)
        out["searched_face_id" if body.face_id else "searched_user_id"] = body.face_id or body.user_id
    return {**out, "matches": [{"similarity": round(float(m.similarity), 4), "user": user_dict(m.user)}
                               for m in matches], "face_model_version": collections.model_version}


def tag_collection(pipeline: Pipeline, params: dict) -> dict:
    body: TagsJson = params["body"]
    return {"tags": pipeline.collections.tag_collection(params["collection_id"], body.tags)}


def untag_collection(pipeline: Pipeline, params: dict) -> dict:
    body: TagKeysJson = params["body"]
    return {"tags": pipeline.collections.untag_collection(params["collection_id"], body.keys)}


def list_tags(pipeline: Pipeline, params: dict) -> dict:
    return {"tags": pipeline.collections.collection_tags(params["collection_id"])}


# operation -> (what its parameters come from: "body" (JSON, or multipart with the images), "json" (JSON only),
# "query" or nothing; its JSON model, its multipart model, its image fields, its handler)
COLLECTION_OPERATIONS = {
    "create_collection": ("json", CollectionCreate, None, (), create_collection),
    "list_collections": ("query", ListQuery, None, (), list_collections),
    "describe_collection": (None, None, None, (), describe_collection),
    "delete_collection": (None, None, None, (), delete_collection),
    "index_faces": ("body", IndexJson, IndexForm, ("image",), index_faces),
    "list_faces": ("query", FacesQuery, None, (), list_faces),
    "delete_faces": ("json", DeleteFacesJson, None, (), delete_faces),
    "search_faces": ("body", SearchJson, SearchForm, ("image",), search_faces),
    "create_user": ("json", UserCreate, None, (), create_user),
    "list_users": ("query", UsersQuery, None, (), list_users),
    "delete_user": (None, None, None, (), delete_user),
    "associate_faces": ("json", UserFacesJson, None, (), associate_faces),
    "disassociate_faces": ("json", UserFacesJson, None, (), disassociate_faces),
    "search_users": ("body", UserSearchJson, UserSearchForm, ("image",), search_users),
    "tag_collection": ("json", TagsJson, None, (), tag_collection),
    "untag_collection": ("json", TagKeysJson, None, (), untag_collection),
    "list_tags": (None, None, None, (), list_tags),
}
