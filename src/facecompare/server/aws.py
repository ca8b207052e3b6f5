"""AWS JSON 1.1 protocol for Rekognition's CompareFaces, DetectFaces and the collection operations: request
validation (what boto3 does not check: enums, ranges, sizes, patterns) and image resolution (bytes or S3Object)."""

from __future__ import annotations

import base64
import binascii
import re

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
from ..errors import FaceCompareError, InvalidParameterException, quote_input
from ..rekognition import check_attributes

TARGET_PREFIX = "RekognitionService."
COLLECTION_OPERATIONS = ("CreateCollection", "DeleteCollection", "ListCollections", "DescribeCollection",
                         "IndexFaces", "ListFaces", "DeleteFaces", "SearchFaces", "SearchFacesByImage")
USER_OPERATIONS = ("CreateUser", "DeleteUser", "ListUsers", "AssociateFaces", "DisassociateFaces", "SearchUsers",
                   "SearchUsersByImage")
TAG_OPERATIONS = ("TagResource", "UntagResource", "ListTagsForResource")
OPERATIONS = ("CompareFaces", "DetectFaces", *COLLECTION_OPERATIONS, *USER_OPERATIONS, *TAG_OPERATIONS)
KNOWN_UNSUPPORTED: tuple[str, ...] = ()
MAX_IMAGE_BYTES = 5 * 1024 * 1024
_BUCKET = re.compile(r"^[0-9A-Za-z.\-_]{3,255}$")


class ProtocolError(FaceCompareError):
    """A wire-level error with an AWS type that is not one of the engine's (e.g. SerializationException)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = status


def operation_from_target(target: str | None) -> str:
    if not target or not target.startswith(TARGET_PREFIX):
        raise ProtocolError("UnknownOperationException",
                            f"Missing or unknown X-Amz-Target {quote_input(target)}; expected "
                            "RekognitionService.<Operation>.")
    op = target[len(TARGET_PREFIX):]
    if op in OPERATIONS:
        return op
    if op in KNOWN_UNSUPPORTED:
        raise ProtocolError("UnknownOperationException",
                            f"{op} is not implemented by facecompare; it serves {', '.join(OPERATIONS)}.")
    raise ProtocolError("UnknownOperationException", f"Unknown operation {quote_input(op)}.")


def check_members(body: dict, allowed: set[str], required: set[str], where: str) -> None:
    if not isinstance(body, dict):
        raise ProtocolError("SerializationException", f"{where} must be a JSON object.")
    unknown = set(body) - allowed
    if unknown:
        raise InvalidParameterException(f"Request has invalid parameters: unknown member(s) "
                                        f"{quote_input(sorted(unknown))} in {where}.")
    missing = required - set(body)
    if missing:
        raise InvalidParameterException(f"Request has invalid parameters: {where} lacks {sorted(missing)}.")


def image_source(image: object, name: str) -> tuple[str, object]:
    """('bytes', data) or ('s3', (bucket, key, version)) from a request ``Image`` member."""
    check_members(image, {"Bytes", "S3Object"}, set(), name)
    if ("Bytes" in image) == ("S3Object" in image):
        raise InvalidParameterException(f"Request has invalid parameters: {name} needs exactly one of Bytes or S3Object.")
    if "Bytes" in image:
        raw = image["Bytes"]
        if not isinstance(raw, str):
            raise InvalidParameterException(f"Request has invalid parameters: {name}.Bytes must be a base64 string.")
        if len(raw) > (MAX_IMAGE_BYTES + 2) // 3 * 4 + 4:
            from ..errors import ImageTooLargeException

            raise ImageTooLargeException(
                f"Image size is too large: {name}.Bytes is over {MAX_IMAGE_BYTES:,} bytes; use S3Object for images "
                "up to 15 MB or re-encode it smaller."
            )
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidParameterException(
                f"Request has invalid parameters: {name}.Bytes is not valid base64."
            ) from None
        if not data:
            raise InvalidParameterException(f"Request has invalid parameters: {name}.Bytes is empty.")
        return "bytes", data
    s3 = image["S3Object"]
    check_members(s3, {"Bucket", "Name", "Version"}, {"Bucket", "Name"}, f"{name}.S3Object")
    bucket, key, version = s3.get("Bucket"), s3.get("Name"), s3.get("Version")
    if not isinstance(bucket, str) or not _BUCKET.match(bucket):
        raise InvalidParameterException(
            f"Request has invalid parameters: {name}.S3Object.Bucket {quote_input(bucket)} is not valid."
        )
    if not isinstance(key, str) or not 1 <= len(key) <= 1024:
        raise InvalidParameterException(f"Request has invalid parameters: {name}.S3Object.Name must be 1-1024 characters.")
    if version is not None and (not isinstance(version, str) or not 1 <= len(version) <= 1024):
        raise InvalidParameterException(f"Request has invalid parameters: {name}.S3Object.Version is not valid.")
    return "s3", (bucket, key, version)


def parse_compare(body: dict) -> dict:
    check_members(body, {"SourceImage", "TargetImage", "SimilarityThreshold", "QualityFilter"},
                  {"SourceImage", "TargetImage"}, "CompareFacesRequest")
    return {"source": image_source(body["SourceImage"], "SourceImage"),
            "target": image_source(body["TargetImage"], "TargetImage"),
            "threshold": check_threshold(body.get("SimilarityThreshold", 80.0), "SimilarityThreshold"),
            "quality_filter": check_quality_filter(body.get("QualityFilter", "NONE"))}


def parse_detect(body: dict) -> dict:
    check_members(body, {"Image", "Attributes"}, {"Image"}, "DetectFacesRequest")
    return {"image": image_source(body["Image"], "Image"),
            "attributes": check_attributes(body.get("Attributes", ["DEFAULT"]))}


# -- collections ----------------------------------------------------------------------------------------------------

def _optional(body: dict, name: str, check, *args):
    return check(body[name], name, *args) if name in body else None


def _token(body: dict) -> str | None:
    token = body.get("NextToken")
    if token is not None and not isinstance(token, str):
        raise InvalidParameterException(f"Request has invalid parameters: NextToken must be a string (got "
                                        f"{quote_input(token)}).")
    return token


def parse_create_collection(body: dict) -> dict:
    check_members(body, {"CollectionId", "Tags"}, {"CollectionId"}, "CreateCollectionRequest")
    return {"collection_id": check_collection_id(body["CollectionId"]), "tags": check_tags(body.get("Tags"))}


def parse_delete_collection(body: dict) -> dict:
    check_members(body, {"CollectionId"}, {"CollectionId"}, "DeleteCollectionRequest")
    return {"collection_id": check_collection_id(body["CollectionId"])}


def parse_describe_collection(body: dict) -> dict:
    check_members(body, {"CollectionId"}, {"CollectionId"}, "DescribeCollectionRequest")
    return {"collection_id": check_collection_id(body["CollectionId"])}


def parse_list_collections(body: dict) -> dict:
    check_members(body, {"NextToken", "MaxResults"}, set(), "ListCollectionsRequest")
    return {"next_token": _token(body), "max_results": _optional(body, "MaxResults", check_int, 0, MAX_PAGE_SIZE)}


def parse_index_faces(body: dict) -> dict:
    check_members(body, {"CollectionId", "Image", "ExternalImageId", "DetectionAttributes", "MaxFaces",
                         "QualityFilter"}, {"CollectionId", "Image"}, "IndexFacesRequest")
    return {"collection_id": check_collection_id(body["CollectionId"]),
            "image": image_source(body["Image"], "Image"),
            "external_image_id": check_external_image_id(body.get("ExternalImageId")),
            "attributes": check_attributes(body.get("DetectionAttributes", ["DEFAULT"])),
            "max_faces": _optional(body, "MaxFaces", check_int, 1, None),
            "quality_filter": check_quality_filter(body.get("QualityFilter", "AUTO"))}


def parse_list_faces(body: dict) -> dict:
    check_members(body, {"CollectionId", "NextToken", "MaxResults", "UserId", "FaceIds"}, {"CollectionId"},
                  "ListFacesRequest")
    user_id = check_user_id(body["UserId"]) if "UserId" in body else None
    return {"collection_id": check_collection_id(body["CollectionId"]), "next_token": _token(body),
            "max_results": _optional(body, "MaxResults", check_int, 0, MAX_PAGE_SIZE), "user_id": user_id,
            "face_ids": check_face_ids(body["FaceIds"]) if "FaceIds" in body else None}


def parse_delete_faces(body: dict) -> dict:
    check_members(body, {"CollectionId", "FaceIds"}, {"CollectionId", "FaceIds"}, "DeleteFacesRequest")
    return {"collection_id": check_collection_id(body["CollectionId"]), "face_ids": check_face_ids(body["FaceIds"])}


def parse_search_faces(body: dict) -> dict:
    check_members(body, {"CollectionId", "FaceId", "MaxFaces", "FaceMatchThreshold"}, {"CollectionId", "FaceId"},
                  "SearchFacesRequest")
    return {"collection_id": check_collection_id(body["CollectionId"]), "face_id": check_face_id(body["FaceId"]),
            "max_faces": _optional(body, "MaxFaces", check_int, 1, MAX_MATCHES),
            "threshold": check_threshold(body.get("FaceMatchThreshold", 80.0), "FaceMatchThreshold")}


def parse_search_faces_by_image(body: dict) -> dict:
    check_members(body, {"CollectionId", "Image", "MaxFaces", "FaceMatchThreshold", "QualityFilter"},
                  {"CollectionId", "Image"}, "SearchFacesByImageRequest")
    return {"collection_id": check_collection_id(body["CollectionId"]),
            "image": image_source(body["Image"], "Image"),
            "max_faces": _optional(body, "MaxFaces", check_int, 1, MAX_MATCHES),
            "threshold": check_threshold(body.get("FaceMatchThreshold", 80.0), "FaceMatchThreshold"),
            "quality_filter": check_quality_filter(body.get("QualityFilter", "NONE"))}


# -- users ----------------------------------------------------------------------------------------------------------

def _user_request(body: dict, where: str, members: set[str], required: set[str]) -> dict:
    check_members(body, {"CollectionId", "UserId", "ClientRequestToken", *members},
                  {"CollectionId", "UserId", *required}, where)
    return {"collection_id": check_collection_id(body["CollectionId"]), "user_id": check_user_id(body["UserId"]),
            "token": check_client_request_token(body.get("ClientRequestToken"))}


def parse_create_user(body: dict) -> dict:
    return _user_request(body, "CreateUserRequest", set(), set())


def parse_delete_user(body: dict) -> dict:
    return _user_request(body, "DeleteUserRequest", set(), set())


def parse_list_users(body: dict) -> dict:
    check_members(body, {"CollectionId", "NextToken", "MaxResults"}, {"CollectionId"}, "ListUsersRequest")
    return {"collection_id": check_collection_id(body["CollectionId"]), "next_token": _token(body),
            "max_results": _optional(body, "MaxResults", check_int, 1, MAX_USER_RESULTS)}


def parse_associate_faces(body: dict) -> dict:
    params = _user_request(body, "AssociateFacesRequest", {"FaceIds", "UserMatchThreshold"}, {"FaceIds"})
    params["face_ids"] = check_user_face_ids(body["FaceIds"])
    params["threshold"] = check_threshold(body.get("UserMatchThreshold", 75.0), "UserMatchThreshold")
    return params


def parse_disassociate_faces(body: dict) -> dict:
    params = _user_request(body, "DisassociateFacesRequest", {"FaceIds"}, {"FaceIds"})
    params["face_ids"] = check_user_face_ids(body["FaceIds"])
    return params


def parse_search_users(body: dict) -> dict:
    check_members(body, {"CollectionId", "UserId", "FaceId", "UserMatchThreshold", "MaxUsers"}, {"CollectionId"},
                  "SearchUsersRequest")
    if ("UserId" in body) == ("FaceId" in body):
        raise InvalidParameterException("Request has invalid parameters: SearchUsers needs exactly one of UserId or "
                                        "FaceId.")
    return {"collection_id": check_collection_id(body["CollectionId"]),
            "user_id": check_user_id(body["UserId"]) if "UserId" in body else None,
            "face_id": check_face_id(body["FaceId"]) if "FaceId" in body else None,
            "threshold": check_threshold(body.get("UserMatchThreshold", 80.0), "UserMatchThreshold"),
            "max_users": _optional(body, "MaxUsers", check_int, 1, MAX_USER_RESULTS)}


def parse_search_users_by_image(body: dict) -> dict:
    check_members(body, {"CollectionId", "Image", "UserMatchThreshold", "MaxUsers", "QualityFilter"},
                  {"CollectionId", "Image"}, "SearchUsersByImageRequest")
    return {"collection_id": check_collection_id(body["CollectionId"]),
            "image": image_source(body["Image"], "Image"),
            "threshold": check_threshold(body.get("UserMatchThreshold", 80.0), "UserMatchThreshold"),
            "max_users": _optional(body, "MaxUsers", check_int, 1, MAX_USER_RESULTS),
            "quality_filter": check_quality_filter(body.get("QualityFilter", "NONE"))}


# -- tags -----------------------------------------------------------------------------------------------------------

_ARN = re.compile(r"arn:aws:rekognition:([a-z0-9\-]{1,64}):([0-9]{12}):([a-z]+)/(.+)")


def resource_arn(value: object) -> tuple[str, str, str, str]:
    """(region, account, resource type, resource id) of a Rekognition ARN; InvalidParameterException otherwise."""
    if not isinstance(value, str) or not 20 <= len(value) <= 2048:
        raise InvalidParameterException(f"Request has invalid parameters: ResourceArn must be an ARN of 20-2048 "
                                        f"characters (got {quote_input(value)}).")
    match = _ARN.fullmatch(value)
    if match is None:
        raise InvalidParameterException(
            "Request has invalid parameters: ResourceArn must be arn:aws:rekognition:<region>:<account>:collection/"
            f"<id> (got {quote_input(value)})."
        )
    return match.group(1), match.group(2), match.group(3), match.group(4)


def parse_tag_resource(body: dict) -> dict:
    check_members(body, {"ResourceArn", "Tags"}, {"ResourceArn", "Tags"}, "TagResourceRequest")
    return {"arn": resource_arn(body["ResourceArn"]), "tags": check_tags(body["Tags"])}


def parse_untag_resource(body: dict) -> dict:
    check_members(body, {"ResourceArn", "TagKeys"}, {"ResourceArn", "TagKeys"}, "UntagResourceRequest")
    keys = body["TagKeys"]
    if not isinstance(keys, list) or len(keys) > 200 or not all(isinstance(k, str) for k in keys):
        raise InvalidParameterException("Request has invalid parameters: TagKeys must be a list of at most 200 keys.")
    check_tags(dict.fromkeys(keys, ""))  # the rules of a key
    return {"arn": resource_arn(body["ResourceArn"]), "keys": list(keys)}


def parse_list_tags_for_resource(body: dict) -> dict:
    check_members(body, {"ResourceArn"}, {"ResourceArn"}, "ListTagsForResourceRequest")
    return {"arn": resource_arn(body["ResourceArn"])}
