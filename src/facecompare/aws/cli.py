"""``facecompare collection ...``: Rekognition's collection, user and tag operations on a local store, through the
same handlers as the HTTP service (:mod:`.operations`). Each action builds the operation's request body from its
arguments (:func:`request`) and prints the handler's response as JSON; :class:`LocalContext` gives the handlers
the store, the region and the images (a path, or an ``s3://bucket/key`` object)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from ..checks import check_threshold
from ..errors import InvalidParameterException
from ..rekognition import ACCOUNT, collection_arn


def add_collection_parser(sub, recognizer_argument: Callable[[argparse.ArgumentParser], None]) \
        -> argparse.ArgumentParser:
    """``facecompare collection create|delete|list|describe|index|list-faces|delete-faces|search|user|tag|untag|
    tags``; ``recognizer_argument`` adds the CLI's --recognizer. The parser is returned for its ``run``."""
    collection = sub.add_parser(
        "collection", help="face collections (1:N search): create, index faces, search, list, delete",
        description="Rekognition's collection operations on a local store: sqlite:///path.db (default "
        "sqlite:///facecompare-collections.db in the working directory) or postgresql://..., from --store or "
        "FACECOMPARE_COLLECTIONS. Each prints the operation's Rekognition response as JSON; errors print "
        "`error: <Type>: <message>` and exit 2. A collection keeps face embeddings (biometric templates) and "
        "never images: erase them with delete-faces or delete.")
    actions = collection.add_subparsers(dest="action", required=True, metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", metavar="URL", help="collection store URL (default: FACECOMPARE_COLLECTIONS, "
                        "else sqlite:///facecompare-collections.db)")
    recognizer_argument(common)

    def action(name: str, help: str, description: str) -> argparse.ArgumentParser:
        return actions.add_parser(name, parents=[common], help=help, description=description)

    create = action("create", "create a collection (CreateCollection)",
                    "Create an empty collection bound to the recognizer in use (its FaceModelVersion); prints "
                    "StatusCode, CollectionArn and FaceModelVersion.")
    create.add_argument("collection_id", metavar="COLLECTION_ID", help="1-255 characters of [a-zA-Z0-9_.-]")
    create.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="a tag (repeatable)")
    delete = action("delete", "delete a collection and every face in it (DeleteCollection)",
                    "Erase the collection and all its faces (rows deleted, not marked).")
    delete.add_argument("collection_id", metavar="COLLECTION_ID", help="the collection's id")
    listing = action("list", "list the collections (ListCollections)",
                     "Collection ids and their FaceModelVersions, in id order; a page at a time with --max-results, "
                     "the next one with --next-token (the NextToken printed).")
    listing.add_argument("--max-results", type=int, metavar="N", help="page size, 0-4096 (default 1000)")
    listing.add_argument("--next-token", metavar="TOKEN", help="NextToken of the previous page")
    describe = action("describe", "describe a collection (DescribeCollection)",
                      "FaceCount, FaceModelVersion, CollectionARN and CreationTimestamp of a collection.")
    describe.add_argument("collection_id", metavar="COLLECTION_ID", help="the collection's id")
    index = action("index", "index the faces of an image into a collection (IndexFaces)",
                   "Detect the faces of IMAGE (a path or s3://bucket/key), store the embedding of the largest "
                   "(up to --max-faces, at most 100) that pass --quality-filter, and print FaceRecords and "
                   "UnindexedFaces (with reasons). Idempotent: the same image with the same external id gives the "
                   "same face ids and stores nothing new.")
    index.add_argument("collection_id", metavar="COLLECTION_ID", help="the collection's id")
    index.add_argument("image", metavar="IMAGE", help="JPEG, PNG, HEIC, WebP, AVIF or PDF: a path or s3://bucket/key")
    index.add_argument("--external-image-id", metavar="ID", help="your id for the image, kept with each face "
                       "(1-255 characters of [a-zA-Z0-9_.-:])")
    index.add_argument("--max-faces", type=int, metavar="N", help="index at most N faces (the rest are "
                       "UnindexedFaces with EXCEEDS_MAX_FACES)")
    index.add_argument("--quality-filter", default="AUTO", choices=["NONE", "AUTO", "LOW", "MEDIUM", "HIGH"],
                       help="faces below this bar are not indexed (default AUTO, as Rekognition)")
    list_faces = action("list-faces", "list the faces of a collection (ListFaces)",
                        "The stored faces (FaceId, ImageId, ExternalImageId, BoundingBox, Confidence) in FaceId "
                        "order, a page at a time.")
    list_faces.add_argument("collection_id", metavar="COLLECTION_ID", help="the collection's id")
    list_faces.add_argument("--max-results", type=int, metavar="N", help="page size, 0-4096 (default 1000)")
    list_faces.add_argument("--next-token", metavar="TOKEN", help="NextToken of the previous page")
    list_faces.add_argument("--face-id", action="append", metavar="FACE_ID", help="only this face (repeatable)")
    delete_faces = action("delete-faces", "erase faces from a collection (DeleteFaces)",
                          "Erase the faces of the given ids; prints DeletedFaces and UnsuccessfulFaceDeletions: "
                          "FACE_NOT_FOUND for ids not in the collection, ASSOCIATED_TO_AN_EXISTING_USER for faces "
                          "a user holds (disassociate them first).")
    delete_faces.add_argument("collection_id", metavar="COLLECTION_ID", help="the collection's id")
    delete_faces.add_argument("face_ids", nargs="+", metavar="FACE_ID")
    search = action("search", "search a collection with an image's largest face or a stored face "
                    "(SearchFacesByImage / SearchFaces)",
                    "With IMAGE: search with its largest face (SearchFacesByImage; no face is an "
                    "InvalidParameterException). With --face-id: search with a face already in the collection "
                    "(SearchFaces; the face itself is not among the matches). Prints FaceMatches, highest "
                    "Similarity first.")
    search.add_argument("collection_id", metavar="COLLECTION_ID", help="the collection's id")
    search.add_argument("image", nargs="?", metavar="IMAGE", help="JPEG, PNG, HEIC, WebP, AVIF or PDF: a path or s3://bucket/key")
    search.add_argument("--face-id", metavar="FACE_ID", help="search with this stored face instead of an image")
    search.add_argument("--threshold", type=float, default=80.0, help="FaceMatchThreshold: the lowest Similarity "
                        "(0-100) returned (default 80)")
    search.add_argument("--max-faces", type=int, metavar="N", help="at most N matches (1-4096)")
    search.add_argument("--quality-filter", default="NONE", choices=["NONE", "AUTO", "LOW", "MEDIUM", "HIGH"],
                        help="with IMAGE: refuse a searched face below this bar (default NONE)")
    list_faces.add_argument("--user-id", metavar="USER_ID", help="only the faces of this user")
    add_user_parsers(actions, common)
    tag = action("tag", "set tags on a collection (TagResource)", "Set (or overwrite) tags; prints the tags.")
    tag.add_argument("collection_id", metavar="COLLECTION_ID", help="the collection's id")
    tag.add_argument("tags", nargs="+", metavar="KEY=VALUE", help="at most 200 tags per collection")
    untag = action("untag", "remove tags from a collection (UntagResource)", "Remove tags; prints the tags.")
    untag.add_argument("collection_id", metavar="COLLECTION_ID", help="the collection's id")
    untag.add_argument("keys", nargs="+", metavar="KEY")
    tags = action("tags", "a collection's tags (ListTagsForResource)", "Prints Tags.")
    tags.add_argument("collection_id", metavar="COLLECTION_ID", help="the collection's id")
    return collection


def add_user_parsers(actions, store: argparse.ArgumentParser) -> None:
    """``facecompare collection user create|delete|list|associate|disassociate|search``: Rekognition's Users."""
    user = actions.add_parser("user", help="users: one customer, up to 100 faces (CreateUser ... SearchUsersByImage)",
                              description="A user aggregates up to 100 faces of a collection (an ID portrait, "
                              "earlier selfies); search returns users. Each action prints its Rekognition response "
                              "as JSON.")
    verbs = user.add_subparsers(dest="user_action", required=True, metavar="USER_ACTION")
    common = argparse.ArgumentParser(add_help=False, parents=[store])
    common.add_argument("collection_id", metavar="COLLECTION_ID", help="the collection's id")
    named = argparse.ArgumentParser(add_help=False, parents=[common])
    named.add_argument("user_id", metavar="USER_ID", help="1-128 characters of [a-zA-Z0-9_.-:]")
    token = argparse.ArgumentParser(add_help=False)
    token.add_argument("--client-request-token", metavar="TOKEN",
                       help="makes a retry safe: the same token and parameters again is a replay")
    verbs.add_parser("create", parents=[named, token], help="create a user without faces (CreateUser)",
                     description="Create a user (status CREATED until a face is associated).")
    verbs.add_parser("delete", parents=[named, token], help="delete a user (DeleteUser)",
                     description="Delete a user; its faces stay in the collection, associated to nobody.")
    listing = verbs.add_parser("list", parents=[common], help="list the users (ListUsers)",
                               description="UserId and UserStatus in id order, a page at a time.")
    listing.add_argument("--max-results", type=int, metavar="N", help="page size, 1-500 (default 500)")
    listing.add_argument("--next-token", metavar="TOKEN", help="NextToken of the previous page")
    associate = verbs.add_parser("associate", parents=[named, token], help="associate faces to a user "
                                 "(AssociateFaces)", description="Associate faces (at most 100 per user); a face "
                                 "that does not look like the user's faces is refused with LOW_MATCH_CONFIDENCE.")
    associate.add_argument("face_ids", nargs="+", metavar="FACE_ID")
    associate.add_argument("--threshold", type=float, default=75.0, help="UserMatchThreshold: the Similarity to the "
                           "user's faces a face needs (default 75; checked when the user has faces)")
    disassociate = verbs.add_parser("disassociate", parents=[named, token], help="disassociate faces from a user "
                                    "(DisassociateFaces)", description="The faces stay in the collection.")
    disassociate.add_argument("face_ids", nargs="+", metavar="FACE_ID")
    search = verbs.add_parser("search", parents=[common], help="search the users with an image, a face or a user "
                              "(SearchUsersByImage / SearchUsers)",
                              description="With IMAGE: its largest face (SearchUsersByImage). With --face-id or "
                              "--user-id: a face or a user of the collection (SearchUsers). Prints UserMatches, "
                              "highest Similarity first.")
    search.add_argument("image", nargs="?", metavar="IMAGE", help="JPEG or PNG: a path or s3://bucket/key")
    search.add_argument("--face-id", metavar="FACE_ID", help="search with this stored face")
    search.add_argument("--user-id", metavar="USER_ID", help="search with this user's faces")
    search.add_argument("--threshold", type=float, default=80.0, help="UserMatchThreshold (default 80)")
    search.add_argument("--max-users", type=int, metavar="N", help="at most N users (1-500, default 500)")
    search.add_argument("--quality-filter", default="NONE", choices=["NONE", "AUTO", "LOW", "MEDIUM", "HIGH"],
                        help="with IMAGE: do not search a face below this bar (default NONE)")



def local_image(image: object, name: str) -> tuple[str, object]:
    """The CLI's Image member, ``{"Location": path or s3://bucket/key}`` (never read from the wire)."""
    return "location", image["Location"]


class LocalContext:
    """The handlers' context (:class:`.context.Context`) in the CLI: the Collections service opened on first use
    (after the arguments are checked), images read by :class:`facecompare.sources.ImageReader` (the one
    reader of a path or an ``s3://`` URL; S3 objects within the S3 limit) and decoded by the engine (every format
    it reads), and the region of ``FACECOMPARE_REGION``."""

    image_source = staticmethod(local_image)

    def __init__(self, open_collections: Callable[[], object], region: str) -> None:
        self.open_collections, self.region, self.account = open_collections, region, ACCOUNT
        self.opened = None

    @property
    def collections(self):
        if self.opened is None:
            self.opened = self.open_collections()
        return self.opened

    @property
    def verifier(self):
        return self.collections.verifier

    def load_image(self, source: tuple[str, object]):
        from ..sources import ImageReader

        return ImageReader().load(self.collections.verifier, source[1])

    index_image = load_image

    def close(self) -> None:
        if self.opened is not None:
            self.opened.store.close()


def run_collection(args: argparse.Namespace, open_collections: Callable[[], object], region: str) -> int:
    """One collection operation through its handler; prints its Rekognition response as JSON."""
    from .operations import call

    action = args.action
    if action == "search":  # argument errors before any store is opened
        if (args.image is None) == (args.face_id is None):
            raise InvalidParameterException("Give IMAGE or --face-id (one of them) to search with.")
        check_threshold(args.threshold, "--threshold")
    if action == "user" and args.user_action == "search":
        if sum(x is not None for x in (args.image, args.face_id, args.user_id)) != 1:
            raise InvalidParameterException("Give IMAGE, --face-id or --user-id (one of them) to search with.")
        check_threshold(args.threshold, "--threshold")
    tags = None
    if action in ("create", "tag"):
        tags = {}
        for tag in (args.tag if action == "create" else args.tags):
            key, sep, value = tag.partition("=")
            if not sep:
                raise InvalidParameterException(f"--tag {tag!r}: write KEY=VALUE.")
            tags[key] = value

    context = LocalContext(open_collections, region)
    try:
        arn = collection_arn(args.collection_id, region) if action in ("tag", "untag", "tags") else None
        operation, body = user_request(args) if action == "user" else collection_request(args, tags, arn)
        out = call(context, operation, body)
        if action in ("tag", "untag"):  # TagResource and UntagResource answer {}; the command prints the tags
            out = call(context, "ListTagsForResource", {"ResourceArn": arn})
    finally:
        context.close()
    print(json.dumps(out, indent=2))
    return 0


def members(**values) -> dict:
    """A request body of the members given (an argument not given is a member left out)."""
    return {name: value for name, value in values.items() if value is not None}


def collection_request(args: argparse.Namespace, tags: dict | None, arn: str | None) -> tuple[str, dict]:
    """The operation and the request body of a ``collection`` action (``user`` aside)."""
    action, cid = args.action, getattr(args, "collection_id", None)
    image = {"Location": args.image} if getattr(args, "image", None) is not None else None
    if action == "create":
        return "CreateCollection", {"CollectionId": cid, "Tags": tags}
    if action == "delete":
        return "DeleteCollection", {"CollectionId": cid}
    if action == "describe":
        return "DescribeCollection", {"CollectionId": cid}
    if action == "list":
        return "ListCollections", members(NextToken=args.next_token, MaxResults=args.max_results)
    if action == "index":
        return "IndexFaces", members(CollectionId=cid, Image=image, ExternalImageId=args.external_image_id,
                                     MaxFaces=args.max_faces, QualityFilter=args.quality_filter)
    if action == "list-faces":
        return "ListFaces", members(CollectionId=cid, NextToken=args.next_token, MaxResults=args.max_results,
                                    FaceIds=args.face_id, UserId=args.user_id)
    if action == "delete-faces":
        return "DeleteFaces", {"CollectionId": cid, "FaceIds": args.face_ids}
    if action == "tag":
        return "TagResource", {"ResourceArn": arn, "Tags": tags}
    if action == "untag":
        return "UntagResource", {"ResourceArn": arn, "TagKeys": args.keys}
    if action == "tags":
        return "ListTagsForResource", {"ResourceArn": arn}
    if image is None:  # search
        return "SearchFaces", members(CollectionId=cid, FaceId=args.face_id, MaxFaces=args.max_faces,
                                      FaceMatchThreshold=args.threshold)
    return "SearchFacesByImage", members(CollectionId=cid, Image=image, MaxFaces=args.max_faces,
                                         FaceMatchThreshold=args.threshold, QualityFilter=args.quality_filter)


def user_request(args: argparse.Namespace) -> tuple[str, dict]:
    """The operation and the request body of a ``collection user`` action."""
    verb, cid = args.user_action, args.collection_id
    token = getattr(args, "client_request_token", None)
    if verb == "create":
        return "CreateUser", members(CollectionId=cid, UserId=args.user_id, ClientRequestToken=token)
    if verb == "delete":
        return "DeleteUser", members(CollectionId=cid, UserId=args.user_id, ClientRequestToken=token)
    if verb == "list":
        return "ListUsers", members(CollectionId=cid, NextToken=args.next_token, MaxResults=args.max_results)
    if verb == "associate":
        return "AssociateFaces", members(CollectionId=cid, UserId=args.user_id, FaceIds=args.face_ids,
                                         UserMatchThreshold=args.threshold, ClientRequestToken=token)
    if verb == "disassociate":
        return "DisassociateFaces", members(CollectionId=cid, UserId=args.user_id, FaceIds=args.face_ids,
                                            ClientRequestToken=token)
    if args.image is not None:  # search
        return "SearchUsersByImage", members(CollectionId=cid, Image={"Location": args.image},
                                             UserMatchThreshold=args.threshold, MaxUsers=args.max_users,
                                             QualityFilter=args.quality_filter)
    return "SearchUsers", members(CollectionId=cid, UserId=args.user_id, FaceId=args.face_id,
                                  UserMatchThreshold=args.threshold, MaxUsers=args.max_users)
