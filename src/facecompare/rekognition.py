"""Dataclasses -> Rekognition response dictionaries (the only place that knows the AWS shapes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import InvalidParameterException, quote_input
from .faces import AnalyzedImage, Comparison, Face

if TYPE_CHECKING:
    from .collections.service import FaceMatch, IndexResult, SearchResult
    from .collections.store import CollectionInfo, Refusal, StoredFace, StoredUser, UserChange
    from .collections.users import AssociationResult, UserMatch, UserSearchByImageResult

ATTRIBUTES = ("DEFAULT", "ALL", "AGE_RANGE", "BEARD", "EMOTIONS", "EYE_DIRECTION", "EYEGLASSES", "EYES_OPEN",
              "GENDER", "MOUTH_OPEN", "MUSTACHE", "FACE_OCCLUDED", "SMILE", "SUNGLASSES")


def _r(value: float, digits: int = 6) -> float:
    return round(float(value), digits)


def bounding_box(face: Face) -> dict:
    b = face.bounding_box
    return {"Width": _r(b.width), "Height": _r(b.height), "Left": _r(b.left), "Top": _r(b.top)}


def compared_face(face: Face) -> dict:
    """A ``ComparedFace`` / default ``FaceDetail``: box, confidence, 5 landmarks, pose, quality."""
    return {
        "BoundingBox": bounding_box(face),
        "Confidence": _r(face.confidence, 4),
        "Landmarks": [{"Type": lm.type, "X": _r(lm.x), "Y": _r(lm.y)} for lm in face.landmarks],
        "Pose": {"Roll": _r(face.pose.roll, 2), "Yaw": _r(face.pose.yaw, 2), "Pitch": _r(face.pose.pitch, 2)},
        "Quality": {"Brightness": _r(face.quality.brightness, 2), "Sharpness": _r(face.quality.sharpness, 2)},
    }


def compare_faces_response(comparison: Comparison) -> dict:
    return {
        "SourceImageFace": {
            "BoundingBox": bounding_box(comparison.source_face),
            "Confidence": _r(comparison.source_face.confidence, 4),
        },
        "FaceMatches": [{"Similarity": _r(m.similarity, 4), "Face": compared_face(m.face)} for m in comparison.matches],
        "UnmatchedFaces": [compared_face(m.face) for m in comparison.unmatched],
    }


def detect_faces_response(image: AnalyzedImage, attributes: tuple[str, ...] = ("DEFAULT",)) -> dict:
    """DetectFaces. Every attribute set returns the default fields: this engine estimates no age, gender,
    emotion, eyewear, facial hair, eye or mouth state, occlusion or gaze, and the 30-point landmark set needs a
    landmark model whose licence allows commercial use, so those fields are omitted rather than invented."""
    return {"FaceDetails": [compared_face(face) for face in image.faces]}


# -- collections ---------------------------------------------------------------------------------------------------
# Choices (README, "Collections (1:N)"): FaceModelVersion is the recognizer's name (e.g. "sface-2021dec-int8bq");
# Face.IndexFacesModelVersion is omitted (its pattern [0-9.]+ has no room for a name, and the model holds it
# optional); OrientationCorrection is omitted (null for face models after 3.0); the account in an ARN is
# 000000000000.

ACCOUNT = "000000000000"


def collection_arn(collection_id: str, region: str) -> str:
    return f"arn:aws:rekognition:{region}:{ACCOUNT}:collection/{collection_id}"


def stored_face(face: StoredFace) -> dict:
    """A ``Face``: what the collection keeps of a face."""
    width, height, left, top = face.bounding_box
    out = {"FaceId": face.face_id,
           "BoundingBox": {"Width": _r(width), "Height": _r(height), "Left": _r(left), "Top": _r(top)},
           "ImageId": face.image_id}
    if face.external_image_id is not None:
        out["ExternalImageId"] = face.external_image_id
    out["Confidence"] = _r(min(max(face.confidence, 0.0), 100.0), 4)
    if face.user_id is not None:
        out["UserId"] = face.user_id
    return out


def create_collection_response(info: CollectionInfo, region: str) -> dict:
    return {"StatusCode": 200, "CollectionArn": collection_arn(info.collection_id, region),
            "FaceModelVersion": info.model}


def delete_collection_response() -> dict:
    return {"StatusCode": 200}


def describe_collection_response(info: CollectionInfo, region: str) -> dict:
    return {"FaceCount": info.face_count, "FaceModelVersion": info.model,
            "CollectionARN": collection_arn(info.collection_id, region),
            "CreationTimestamp": round(info.created_at, 3), "UserCount": info.user_count}


def list_collections_response(infos: list[CollectionInfo], next_token: str | None) -> dict:
    out = {"CollectionIds": [i.collection_id for i in infos], "FaceModelVersions": [i.model for i in infos]}
    if next_token:
        out["NextToken"] = next_token
    return out


def index_faces_response(result: IndexResult, model: str) -> dict:
    """IndexFaces. ``FaceDetail`` has the default fields whatever DetectionAttributes asks (see
    :func:`detect_faces_response`)."""
    return {"FaceRecords": [{"Face": stored_face(r.stored), "FaceDetail": compared_face(r.face)}
                            for r in result.records],
            "FaceModelVersion": model,
            "UnindexedFaces": [{"Reasons": list(u.reasons), "FaceDetail": compared_face(u.face)}
                               for u in result.unindexed]}


def list_faces_response(faces: list[StoredFace], next_token: str | None, model: str) -> dict:
    out = {"Faces": [stored_face(f) for f in faces], "FaceModelVersion": model}
    if next_token:
        out["NextToken"] = next_token
    return out


def delete_faces_response(deleted: list[str], refused: list[Refusal | str]) -> dict:
    """DeleteFaces. ``DeletedFaces`` has a model minimum of 1, so it is omitted when nothing was deleted; unknown
    ids are reported as FACE_NOT_FOUND (the enum's reason for them; a plain id in ``refused`` is one), a face a
    user holds as ASSOCIATED_TO_AN_EXISTING_USER with the user's id."""
    out: dict = {}
    if deleted:
        out["DeletedFaces"] = list(deleted)
    out["UnsuccessfulFaceDeletions"] = [{"FaceId": r, "Reasons": ["FACE_NOT_FOUND"]} if isinstance(r, str)
                                        else _refusal(r) for r in refused]
    return out


def _refusal(refusal: Refusal) -> dict:
    out = {"FaceId": refusal.face_id}
    if refusal.user_id is not None:
        out["UserId"] = refusal.user_id
    out["Reasons"] = [refusal.reason]
    return out


def face_matches(matches: list[FaceMatch]) -> list[dict]:
    return [{"Similarity": _r(min(max(m.similarity, 0.0), 100.0), 4), "Face": stored_face(m.face)}
            for m in matches]


def search_faces_response(face_id: str, matches: list[FaceMatch], model: str) -> dict:
    return {"SearchedFaceId": face_id, "FaceMatches": face_matches(matches), "FaceModelVersion": model}


def search_faces_by_image_response(result: SearchResult, model: str) -> dict:
    return {"SearchedFaceBoundingBox": bounding_box(result.searched_face),
            "SearchedFaceConfidence": _r(result.searched_face.confidence, 4),
            "FaceMatches": face_matches(result.matches), "FaceModelVersion": model}


# -- users and tags ----------------------------------------------------------------------------------------------


def list_users_response(users: list[StoredUser], next_token: str | None) -> dict:
    out: dict = {"Users": [{"UserId": u.user_id, "UserStatus": u.status} for u in users]}
    if next_token:
        out["NextToken"] = next_token
    return out


def associate_faces_response(result: AssociationResult) -> dict:
    """AssociateFaces: LOW_MATCH_CONFIDENCE refusals carry the face's Confidence (its Similarity to the user)."""
    refused = [_refusal(r) for r in result.refused]
    refused += [{"FaceId": face_id, "UserId": result.user.user_id, "Confidence": _r(min(max(c, 0.0), 100.0), 4),
                 "Reasons": ["LOW_MATCH_CONFIDENCE"]} for face_id, c in result.low_confidence]
    return {"AssociatedFaces": [{"FaceId": f} for f in result.associated], "UnsuccessfulFaceAssociations": refused,
            "UserStatus": result.user.status}


def disassociate_faces_response(change: UserChange) -> dict:
    return {"DisassociatedFaces": [{"FaceId": f} for f in change.changed],
            "UnsuccessfulFaceDisassociations": [_refusal(r) for r in change.refused],
            "UserStatus": change.user.status}


def user_matches(matches: list[UserMatch]) -> list[dict]:
    return [{"Similarity": _r(min(max(m.similarity, 0.0), 100.0), 4),
             "User": {"UserId": m.user.user_id, "UserStatus": m.user.status}} for m in matches]


def search_users_response(matches: list[UserMatch], model: str, *, face_id: str | None = None,
                          user_id: str | None = None) -> dict:
    out: dict = {"UserMatches": user_matches(matches), "FaceModelVersion": model}
    if face_id is not None:
        out["SearchedFace"] = {"FaceId": face_id}
    if user_id is not None:
        out["SearchedUser"] = {"UserId": user_id}
    return out


def search_users_by_image_response(result: UserSearchByImageResult, model: str) -> dict:
    out: dict = {"UserMatches": user_matches(result.matches), "FaceModelVersion": model}
    if result.searched_face is not None:
        out["SearchedFace"] = {"FaceDetail": compared_face(result.searched_face)}
    out["UnsearchedFaces"] = [{"FaceDetails": compared_face(face), "Reasons": list(reasons)}
                              for face, reasons in result.unsearched]
    return out


def list_tags_response(tags: dict[str, str]) -> dict:
    return {"Tags": dict(sorted(tags.items()))}


def check_attributes(attributes: object) -> tuple[str, ...]:
    if isinstance(attributes, str) or not isinstance(attributes, (list, tuple)):
        raise InvalidParameterException(
            f"Request has invalid parameters: Attributes must be a list such as ['DEFAULT'] or ['ALL'] "
            f"(got {quote_input(attributes)})."
        )
    for a in attributes:
        if a not in ATTRIBUTES:
            raise InvalidParameterException(
                f"Request has invalid parameters: unknown attribute {quote_input(a)} in Attributes; use one of "
                f"{', '.join(ATTRIBUTES)}."
            )
    return tuple(attributes) or ("DEFAULT",)
