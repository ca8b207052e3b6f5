"""One handler per Rekognition operation, moto's way: the operation ``CompareFaces`` is parsed by
``parse_compare_faces(body)`` and handled by ``compare_faces(context, params)``, both found by the operation's name
(:func:`handler_of`); no table lists them. ``grep -n CompareFaces`` lands on the pair.

``parse_*`` checks the request body (what boto3 does not check: members, enums, ranges, sizes, patterns) into the
operation's parameters; it runs before the request waits for an engine thread. The handler calls the engine or the
Collections service through a :class:`.context.Context` (the server's Pipeline or the CLI) and returns the
response in Rekognition's shapes (:mod:`facecompare.rekognition`). ``images`` reads the Image members: the wire's
Bytes or S3Object unless the CLI gives its own reader."""

from __future__ import annotations

import re
from collections.abc import Callable

from .. import rekognition as shapes
from ..checks import (
    check_client_request_token,
    check_collection_id,
    check_external_image_id,
    check_face_id,
    check_face_ids,
    check_int,
    check_quality_filter,
    check_tags,
    check_threshold,
    check_user_face_ids,
    check_user_id,
)
from ..collections.service import MAX_MATCHES, MAX_PAGE_SIZE
from ..collections.users import MAX_USER_RESULTS
from ..engine import MAX_FACES
from ..errors import InvalidParameterException, ResourceNotFoundException, quote_input
from ..rekognition import check_attributes
from .context import Context
from .wire import ImageMember, ProtocolError, check_members, image_source, next_token, optional, resource_arn

TARGET_PREFIX = "RekognitionService."
Parse = Callable[..., dict]  # (body, images=image_source) -> the operation's parameters
Handle = Callable[[Context, dict], dict]  # (context, parameters) -> the response body
_OPERATION_NAME = re.compile(r"(?:[A-Z][a-z]+)+")


def snake_case(operation: str) -> str:
    """``SearchFacesByImage`` -> ``search_faces_by_image``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()


def handler_of(operation: str) -> tuple[Parse, Handle] | None:
    """The parse function and the handler of ``operation`` (looked up by name), or None when there are none. Only a
    CamelCase name whose ``snake_case`` has both a ``parse_`` function and a handler here is an operation."""
    if not _OPERATION_NAME.fullmatch(operation):
        return None
    name = snake_case(operation)
    parse, handle = globals().get(f"parse_{name}"), globals().get(name)
    return (parse, handle) if callable(parse) and callable(handle) else None


def operation_from_target(target: str | None) -> str:
    if not target or not target.startswith(TARGET_PREFIX):
        raise ProtocolError("UnknownOperationException",
                            f"Missing or unknown X-Amz-Target {quote_input(target)}; expected "
                            "RekognitionService.<Operation>.")
    op = target[len(TARGET_PREFIX):]
    if handler_of(op) is not None:
        return op
    raise ProtocolError("UnknownOperationException", f"Unknown operation {quote_input(op)}.")


def call(context: Context, operation: str, body: dict) -> dict:
    """One operation, parsed and handled in this thread (the CLI; the server parses first and queues the handler)."""
    parse, handle = handler_of(operation)
    return handle(context, parse(body, context.image_source))


# -- faces: CompareFaces, DetectFaces -------------------------------------------------------------------------------

def parse_compare_faces(body: dict, images: ImageMember = image_source) -> dict:
    check_members(body, {"SourceImage", "TargetImage", "SimilarityThreshold", "QualityFilter"},
                  {"SourceImage", "TargetImage"}, "CompareFacesRequest")
    return {"source": images(body["SourceImage"], "SourceImage"),
            "target": images(body["TargetImage"], "TargetImage"),
            "threshold": check_threshold(body.get("SimilarityThreshold", 80.0), "SimilarityThreshold"),
            "quality_filter": check_quality_filter(body.get("QualityFilter", "NONE"))}


def compare_faces(context: Context, params: dict) -> dict:
    source = context.load_image(params["source"])
    target = context.load_image(params["target"])
    comparison = context.verifier.compare(source, target, params["threshold"], params["quality_filter"])
    return shapes.compare_faces_response(comparison)


def parse_detect_faces(body: dict, images: ImageMember = image_source) -> dict:
    check_members(body, {"Image", "Attributes"}, {"Image"}, "DetectFacesRequest")
    return {"image": images(body["Image"], "Image"),
            "attributes": check_attributes(body.get("Attributes", ["DEFAULT"]))}


def detect_faces(context: Context, params: dict) -> dict:
    image = context.load_image(params["image"])
    analyzed = context.verifier.analyze(image, embed=0, max_faces=MAX_FACES)
    return shapes.detect_faces_response(analyzed, params["attributes"])


# -- collections: Create/Delete/Describe/ListCollections -------------------------------------------------------------
# the store's calls run on the engine queue too (they are short, and one queue keeps the limits, metrics and log
# lines of every operation in one place)

def parse_create_collection(body: dict, images: ImageMember = image_source) -> dict:
    check_members(body, {"CollectionId", "Tags"}, {"CollectionId"}, "CreateCollectionRequest")
    return {"collection_id": check_collection_id(body["CollectionId"]), "tags": check_tags(body.get("Tags"))}


def create_collection(context: Context, params: dict) -> dict:
    info = context.collections.create_collection(params["collection_id"], params["tags"])
    return shapes.create_collection_response(info, context.region)


def parse_delete_collection(body: dict, images: ImageMember = image_source) -> dict:
    check_members(body, {"CollectionId"}, {"CollectionId"}, "DeleteCollectionRequest")
    return {"collection_id": check_collection_id(body["CollectionId"])}


def delete_collection(context: Context, params: dict) -> dict:
    context.collections.delete_collection(params["collection_id"])
    return shapes.delete_collection_response()


def parse_describe_collection(body: dict, images: ImageMember = image_source) -> dict:
    check_members(body, {"CollectionId"}, {"CollectionId"}, "DescribeCollectionRequest")
    return {"collection_id": check_collection_id(body["CollectionId"])}


def describe_collection(context: Context, params: dict) -> dict:
    info = context.collections.describe_collection(params["collection_id"])
    return shapes.describe_collection_response(info, context.region)


def parse_list_collections(body: dict, images: ImageMember = image_source) -> dict:
    check_members(body, {"NextToken", "MaxResults"}, set(), "ListCollectionsRequest")
    return {"next_token": next_token(body), "max_results": optional(body, "MaxResults", check_int, 0, MAX_PAGE_SIZE)}


def list_collections(context: Context, params: dict) -> dict:
    infos, token = context.collections.list_collections(params["next_token"], params["max_results"])
    return shapes.list_collections_response(infos, token)


# -- faces of a collection: IndexFaces, ListFaces, DeleteFaces, SearchFaces, SearchFacesByImage ---------------------

def parse_index_faces(body: dict, images: ImageMember = image_source) -> dict:
    check_members(body, {"CollectionId", "Image", "ExternalImageId", "DetectionAttributes", "MaxFaces",
                         "QualityFilter"}, {"CollectionId", "Image"}, "IndexFacesRequest")
    return {"collection_id": check_collection_id(body["CollectionId"]),
            "image": images(body["Image"], "Image"),
            "external_image_id": check_external_image_id(body.get("ExternalImageId")),
            "attributes": check_attributes(body.get("DetectionAttributes", ["DEFAULT"])),
            "max_faces": optional(body, "MaxFaces", check_int, 1, None),
            "quality_filter": check_quality_filter(body.get("QualityFilter", "AUTO"))}


def index_faces(context: Context, params: dict) -> dict:
    collections = context.collections
    collections.describe_collection(params["collection_id"])  # an unknown collection before any image work
    result = collections.index_faces(params["collection_id"], context.index_image(params["image"]),
                                     external_image_id=params["external_image_id"], max_faces=params["max_faces"],
                                     quality_filter=params["quality_filter"])
    return shapes.index_faces_response(result, collections.model_version)


def parse_list_faces(body: dict, images: ImageMember = image_source) -> dict:
    check_members(body, {"CollectionId", "NextToken", "MaxResults", "UserId", "FaceIds"}, {"CollectionId"},
                  "ListFacesRequest")
    user_id = check_user_id(body["UserId"]) if "UserId" in body else None
    return {"collection_id": check_collection_id(body["CollectionId"]), "next_token": next_token(body),
            "max_results": optional(body, "MaxResults", check_int, 0, MAX_PAGE_SIZE), "user_id": user_id,
            "face_ids": check_face_ids(body["FaceIds"]) if "FaceIds" in body else None}


def list_faces(context: Context, params: dict) -> dict:
    collections = context.collections
    info = collections.describe_collection(params["collection_id"])
    faces, token = collections.list_faces(params["collection_id"], params["next_token"], params["max_results"],
                                          params["face_ids"], user_id=params["user_id"])
    return shapes.list_faces_response(faces, token, info.model)


def parse_delete_faces(body: dict, images: ImageMember = image_source) -> dict:
    check_members(body, {"CollectionId", "FaceIds"}, {"CollectionId", "FaceIds"}, "DeleteFacesRequest")
    return {"collection_id": check_collection_id(body["CollectionId"]), "face_ids": check_face_ids(body["FaceIds"])}


def delete_faces(context: Context, params: dict) -> dict:
    deleted, refused = context.collections.delete_faces_with_reasons(params["collection_id"], params["face_ids"])
    return shapes.delete_faces_response(deleted, refused)


def parse_search_faces(body: dict, images: ImageMember = image_source) -> dict:
    check_members(body, {"CollectionId", "FaceId", "MaxFaces", "FaceMatchThreshold"}, {"CollectionId", "FaceId"},
                  "SearchFacesRequest")
    return {"collection_id": check_collection_id(body["CollectionId"]), "face_id": check_face_id(body["FaceId"]),
            "max_faces": optional(body, "MaxFaces", check_int, 1, MAX_MATCHES),
            "threshold": check_threshold(body.get("FaceMatchThreshold", 80.0), "FaceMatchThreshold")}


def search_faces(context: Context, params: dict) -> dict:
    collections = context.collections
    matches = collections.search_faces(params["collection_id"], params["face_id"], max_faces=params["max_faces"],
                                       threshold=params["threshold"])
    return shapes.search_faces_response(params["face_id"], matches, collections.model_version)


def parse_search_faces_by_image(body: dict, images: ImageMember = image_source) -> dict:
    check_members(body, {"CollectionId", "Image", "MaxFaces", "FaceMatchThreshold", "QualityFilter"},
                  {"CollectionId", "Image"}, "SearchFacesByImageRequest")
    return {"collection_id": check_collection_id(body["CollectionId"]),
            "image": images(body["Image"], "Image"),
            "max_faces": optional(body, "MaxFaces", check_int, 1, MAX_MATCHES),
            "threshold": check_threshold(body.get("FaceMatchThreshold", 80.0), "FaceMatchThreshold"),
            "quality_filter": check_quality_filter(body.get("QualityFilter", "NONE"))}


def search_faces_by_image(context: Context, params: dict) -> dict:
    collections = context.collections
    collections.describe_collection(params["collection_id"])  # an unknown collection before any image work
    result = collections.search_faces_by_image(params["collection_id"], context.load_image(params["image"]),
                                               max_faces=params["max_faces"], threshold=params["threshold"],
                                               quality_filter=params["quality_filter"])
    return shapes.search_faces_by_image_response(result, collections.model_version)


# -- users: CreateUser, DeleteUser, ListUsers, AssociateFaces, DisassociateFaces, SearchUsers, SearchUsersByImage ----

def _user_request(body: dict, where: str, members: set[str], required: set[str]) -> dict:
    check_members(body, {"CollectionId", "UserId", "ClientRequestToken", *members},
                  {"CollectionId", "UserId", *required}, where)
    return {"collection_id": check_collection_id(body["CollectionId"]), "user_id": check_user_id(body["UserId"]),
            "token": check_client_request_token(body.get("ClientRequestToken"))}


def parse_create_user(body: dict, images: ImageMember = image_source) -> dict:
    return _user_request(body, "CreateUserRequest", set(), set())


def create_user(context: Context, params: dict) -> dict:
    context.collections.create_user(params["collection_id"], params["user_id"], params["token"])
    return {}


def parse_delete_user(body: dict, images: ImageMember = image_source) -> dict:
    return _user_request(body, "DeleteUserRequest", set(), set())


def delete_user(context: Context, params: dict) -> dict:
    context.collections.delete_user(params["collection_id"], params["user_id"], params["token"])
    return {}


def parse_list_users(body: dict, images: ImageMember = image_source) -> dict:
    check_members(body, {"CollectionId", "NextToken", "MaxResults"}, {"CollectionId"}, "ListUsersRequest")
    return {"collection_id": check_collection_id(body["CollectionId"]), "next_token": next_token(body),
            "max_results": optional(body, "MaxResults", check_int, 1, MAX_USER_RESULTS)}


def list_users(context: Context, params: dict) -> dict:
    users, token = context.collections.list_users(params["collection_id"], params["next_token"],
                                                  params["max_results"])
    return shapes.list_users_response(users, token)


def parse_associate_faces(body: dict, images: ImageMember = image_source) -> dict:
    params = _user_request(body, "AssociateFacesRequest", {"FaceIds", "UserMatchThreshold"}, {"FaceIds"})
    params["face_ids"] = check_user_face_ids(body["FaceIds"])
    params["threshold"] = check_threshold(body.get("UserMatchThreshold", 75.0), "UserMatchThreshold")
    return params


def associate_faces(context: Context, params: dict) -> dict:
    result = context.collections.associate_faces(params["collection_id"], params["user_id"], params["face_ids"],
                                                 user_match_threshold=params["threshold"],
                                                 client_request_token=params["token"])
    return shapes.associate_faces_response(result)


def parse_disassociate_faces(body: dict, images: ImageMember = image_source) -> dict:
    params = _user_request(body, "DisassociateFacesRequest", {"FaceIds"}, {"FaceIds"})
    params["face_ids"] = check_user_face_ids(body["FaceIds"])
    return params


def disassociate_faces(context: Context, params: dict) -> dict:
    change = context.collections.disassociate_faces(params["collection_id"], params["user_id"], params["face_ids"],
                                                    client_request_token=params["token"])
    return shapes.disassociate_faces_response(change)


def parse_search_users(body: dict, images: ImageMember = image_source) -> dict:
    check_members(body, {"CollectionId", "UserId", "FaceId", "UserMatchThreshold", "MaxUsers"}, {"CollectionId"},
                  "SearchUsersRequest")
    if ("UserId" in body) == ("FaceId" in body):
        raise InvalidParameterException("Request has invalid parameters: SearchUsers needs exactly one of UserId or "
                                        "FaceId.")
    return {"collection_id": check_collection_id(body["CollectionId"]),
            "user_id": check_user_id(body["UserId"]) if "UserId" in body else None,
            "face_id": check_face_id(body["FaceId"]) if "FaceId" in body else None,
            "threshold": check_threshold(body.get("UserMatchThreshold", 80.0), "UserMatchThreshold"),
            "max_users": optional(body, "MaxUsers", check_int, 1, MAX_USER_RESULTS)}


def search_users(context: Context, params: dict) -> dict:
    collections = context.collections
    matches = collections.search_users(params["collection_id"], user_id=params["user_id"], face_id=params["face_id"],
                                       user_match_threshold=params["threshold"], max_users=params["max_users"])
    return shapes.search_users_response(matches, collections.model_version, face_id=params["face_id"],
                                        user_id=params["user_id"])


def parse_search_users_by_image(body: dict, images: ImageMember = image_source) -> dict:
    check_members(body, {"CollectionId", "Image", "UserMatchThreshold", "MaxUsers", "QualityFilter"},
                  {"CollectionId", "Image"}, "SearchUsersByImageRequest")
    return {"collection_id": check_collection_id(body["CollectionId"]),
            "image": images(body["Image"], "Image"),
            "threshold": check_threshold(body.get("UserMatchThreshold", 80.0), "UserMatchThreshold"),
            "max_users": optional(body, "MaxUsers", check_int, 1, MAX_USER_RESULTS),
            "quality_filter": check_quality_filter(body.get("QualityFilter", "NONE"))}


def search_users_by_image(context: Context, params: dict) -> dict:
    collections = context.collections
    collections.describe_collection(params["collection_id"])  # an unknown collection before any image work
    result = collections.search_users_by_image(params["collection_id"], context.load_image(params["image"]),
                                               user_match_threshold=params["threshold"],
                                               max_users=params["max_users"], quality_filter=params["quality_filter"])
    return shapes.search_users_by_image_response(result, collections.model_version)


# -- tags: TagResource, UntagResource, ListTagsForResource ----------------------------------------------------------
# a collection's ARN as this service makes it (the context's region, the account of rekognition.ACCOUNT)

def tagged_collection(context: Context, arn: tuple[str, str, str, str]) -> str:
    region, account, kind, resource = arn
    if kind != "collection" or region != context.region or account != context.account:
        raise ResourceNotFoundException(f"The resource {quote_input(f'{kind}/{resource}')} does not exist here: "
                                        f"this service holds collections of region {context.region} and "
                                        f"account {context.account}.")
    return resource


def parse_tag_resource(body: dict, images: ImageMember = image_source) -> dict:
    check_members(body, {"ResourceArn", "Tags"}, {"ResourceArn", "Tags"}, "TagResourceRequest")
    return {"arn": resource_arn(body["ResourceArn"]), "tags": check_tags(body["Tags"])}


def tag_resource(context: Context, params: dict) -> dict:
    context.collections.tag_collection(tagged_collection(context, params["arn"]), params["tags"])
    return {}


def parse_untag_resource(body: dict, images: ImageMember = image_source) -> dict:
    check_members(body, {"ResourceArn", "TagKeys"}, {"ResourceArn", "TagKeys"}, "UntagResourceRequest")
    keys = body["TagKeys"]
    if not isinstance(keys, list) or len(keys) > 200 or not all(isinstance(k, str) for k in keys):
        raise InvalidParameterException("Request has invalid parameters: TagKeys must be a list of at most 200 keys.")
    check_tags(dict.fromkeys(keys, ""))  # the rules of a key
    return {"arn": resource_arn(body["ResourceArn"]), "keys": list(keys)}


def untag_resource(context: Context, params: dict) -> dict:
    context.collections.untag_collection(tagged_collection(context, params["arn"]), params["keys"])
    return {}


def parse_list_tags_for_resource(body: dict, images: ImageMember = image_source) -> dict:
    check_members(body, {"ResourceArn"}, {"ResourceArn"}, "ListTagsForResourceRequest")
    return {"arn": resource_arn(body["ResourceArn"])}


def list_tags_for_resource(context: Context, params: dict) -> dict:
    tags = context.collections.collection_tags(tagged_collection(context, params["arn"]))
    return shapes.list_tags_response(tags)


#: every operation served, in the order of this module (derived from the handlers: a pair of functions)
OPERATIONS = tuple("".join(part.title() for part in name[len("parse_"):].split("_")) for name in list(globals())
                   if name.startswith("parse_") and callable(globals().get(name[len("parse_"):])))
