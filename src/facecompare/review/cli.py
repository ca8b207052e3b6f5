"""``facecompare reviewer ...`` (console accounts) and ``facecompare review ...`` (the queue from a terminal: list,
export, purge, erase), and the ``--queue-review`` options that ``compare`` and ``batch`` share."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from ..errors import FaceCompareError

STORE_HELP = ("the database of review cases: the collections' store (default: FACECOMPARE_COLLECTIONS, else "
              "sqlite:///facecompare-collections.db)")


def add_queue_arguments(p: argparse.ArgumentParser, batch: bool = False) -> None:
    """``--queue-review`` and its companions, for compare and batch."""
    what = "rows" if batch else "the pair"
    p.add_argument("--queue-review", action="store_true",
                   help=f"keep {what} decided REVIEW, with both images, for a person to decide in the console "
                   "(/console of `facecompare serve`); the images are erased after FACECOMPARE_REVIEW_RETENTION_DAYS "
                   "(default 30). Without it nothing is stored.")
    p.add_argument("--queue-no-match", action="store_true", help="with --queue-review: queue NO_MATCH too")
    p.add_argument("--review-store", metavar="URL", help=STORE_HELP)
    if batch:
        p.add_argument("--review-batch", metavar="LABEL", help="the batch label the console filters by (default: "
                       "the name of the --out folder); each row's id is its reference, so a resumed run queues a row "
                       "once")
    else:
        p.add_argument("--review-batch", metavar="LABEL", help="a label the console's queue filters by")
        p.add_argument("--review-reference", metavar="REF", help="your reference for the case (shown in the console)")


def queue_modes(args: argparse.Namespace) -> tuple[str, ...]:
    from ..errors import InvalidParameterException

    if args.queue_no_match and not args.queue_review:
        raise InvalidParameterException("--queue-no-match goes with --queue-review.")
    if not args.queue_review:
        return ()
    return ("REVIEW", "NO_MATCH") if args.queue_no_match else ("REVIEW",)


def add_parsers(sub) -> None:
    reviewer = sub.add_parser(
        "reviewer", help="reviewer accounts of the console: add, passwd, disable, enable, list",
        description="Accounts for the review console (/console of `facecompare serve`). Passwords are stored as "
        "argon2id hashes; a password is read from the terminal (twice), or from standard input with "
        "--password-stdin (one line). Every change is in the audit log.")
    actions = reviewer.add_subparsers(dest="action", required=True, metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", metavar="URL", help=STORE_HELP)
    for name, help_text in (("add", "create an account"), ("passwd", "set a new password (signs the reviewer out)"),
                            ("disable", "stop an account from signing in (signs it out)"),
                            ("enable", "let a disabled account sign in again")):
        action = actions.add_parser(name, parents=[common], help=help_text, description=help_text + ".")
        action.add_argument("username", metavar="NAME", help="1-64 letters, digits or ._@-")
        if name in ("add", "passwd"):
            action.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    actions.add_parser("list", parents=[common], help="list the accounts", description="List the accounts.")

    review = sub.add_parser(
        "review", help="the review queue from a terminal: list, export decisions as CSV, purge expired images, "
        "erase one reference's images",
        description="Cases queued with --queue-review (compare, batch) or queue_review (REST /v1/verify) are "
        "decided in the console at /console. These commands list them, export the decisions, and erase the images "
        "of cases older than FACECOMPARE_REVIEW_RETENTION_DAYS (the console and the service also do that by "
        "themselves; run purge from cron where no service runs).")
    actions = review.add_subparsers(dest="action", required=True, metavar="ACTION")
    filters = argparse.ArgumentParser(add_help=False, parents=[common])
    filters.add_argument("--status", default="all", choices=["open", "escalated", "pending", "decided", "all"],
                         help="which cases (default all)")
    filters.add_argument("--reason", metavar="CODE", help="only cases with this reason code")
    filters.add_argument("--batch", metavar="LABEL", help="only cases of this batch")
    actions.add_parser("list", parents=[filters], help="print the cases as a table",
                       description="One line per case, oldest first.")
    export = actions.add_parser("export", parents=[filters], help="write the cases and decisions as CSV",
                                description="One row per case: ids, engine decision, similarity, reasons, status, "
                                "reviewer, time and comment.")
    export.add_argument("--out", metavar="FILE.csv", help="file to write (default: standard output)")
    actions.add_parser("purge", parents=[common], help="erase the images of cases past the retention period",
                       description="Erase the images of the cases queued more than FACECOMPARE_REVIEW_RETENTION_DAYS "
                       "(default 30) days ago; their decision records stay.")
    erase = actions.add_parser("erase", parents=[common], help="erase now the images of one reference's cases "
                               "(a data subject's erasure request)",
                               description="Erase now, before the retention period ends, the images of every case "
                               "queued under --reference (the caller's reference, or a batch row's id); their "
                               "decision records stay. Audited (IMAGES_ERASED by system:cli).")
    erase.add_argument("--reference", metavar="REF", required=True, help="the reference whose cases are erased")


def _password(args: argparse.Namespace) -> str:
    from ..errors import InvalidParameterException

    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise InvalidParameterException("No terminal to read the password from: pass --password-stdin and send it "
                                        "on standard input.")
    first = getpass.getpass("Password (12 characters or more): ")
    if first != getpass.getpass("Again: "):
        raise InvalidParameterException("The two passwords differ.")
    return first


def run_reviewer(args: argparse.Namespace) -> int:
    from .service import open_queue

    queue = open_queue(args.store)
    try:
        if args.action == "add":
            queue.add_reviewer(args.username, _password(args))
            print(f"Added reviewer {args.username}. They sign in at /console of `facecompare serve`.")
        elif args.action == "passwd":
            queue.set_password(args.username, _password(args))
            print(f"New password set for {args.username}; their sessions were ended.")
        elif args.action in ("disable", "enable"):
            queue.set_disabled(args.username, args.action == "disable")
            print(f"{args.username} {args.action}d.")
        else:
            for reviewer in queue.store.list_reviewers():
                print(f"{reviewer.username}\t{'disabled' if reviewer.disabled else 'active'}")
    finally:
        queue.store.close()
    return 0


def run_review(args: argparse.Namespace) -> int:
    from .service import iso, open_queue

    queue = open_queue(args.store)
    try:
        if args.action == "purge":
            erased = queue.purge()
            print(f"Erased the images of {len(erased)} case{'s' if len(erased) != 1 else ''} older than "
                  f"{queue.retention_days:g} days.")
            return 0
        if args.action == "erase":
            cases, erased = queue.erase_reference(args.reference)
            print(f"{len(cases)} case{'s' if len(cases) != 1 else ''} of that reference; erased the images of "
                  f"{len(erased)} now ({len(cases) - len(erased)} were erased already).")
            return 0
        where = queue.case_filter(args.status, args.reason, args.batch)
        if args.action == "export":
            if args.out:
                with open(args.out, "w", newline="", encoding="utf-8") as handle:
                    queue.export_csv(where, handle)
                print(f"Wrote {args.out}", file=sys.stderr)
            else:
                queue.export_csv(where, sys.stdout)
            return 0
        count = 0
        for case in queue.store.iter_cases(where):
            similarity = "-" if case.similarity is None else f"{case.similarity:.1f}"
            print(f"{case.case_id}  {iso(case.created_at)}  {case.status:<9} {case.engine_decision:<8} {similarity:>5}  "
                  f"{case.batch or '-'}  {case.reference or '-'}  {','.join(case.reasons) or '-'}")
            count += 1
        print(f"{count} case{'s' if count != 1 else ''}", file=sys.stderr)
    finally:
        queue.store.close()
    return 0


class BatchReviews:
    """``batch --queue-review``: each finished row whose decision is queued goes to the review queue with its two
    images, read again here (paths, or S3 objects). A row that cannot be queued is reported, not fatal."""

    def __init__(self, args: argparse.Namespace, modes: tuple[str, ...]) -> None:
        from .service import check_label, open_queue

        self.modes = modes
        self.label = check_label(args.review_batch or Path(args.out).resolve().name, "--review-batch")
        self.queue = open_queue(args.review_store)
        self.queued = 0
        self.failed: list[str] = []
        from ..sources import ImageReader

        self.images = ImageReader()

    def catch_up(self, results: Path) -> None:
        """Queue the rows of an earlier run's ``results.jsonl`` that should be queued and are not: that run was
        killed between writing a row and queueing it, a row could not be queued then, or it ran without
        --queue-review (or --queue-no-match). A resumed run skips its finished rows, so only this reaches them."""
        from ..errors import ResourceNotFoundException
        from ..journal import iter_records

        # a line cut by a kill is skipped: run_batch drops it and verifies that row again
        for result in iter_records(results, "id"):
            if result.get("decision") not in self.modes:
                continue
            try:
                self.queue.store.get_case(self.case_id(result))
            except ResourceNotFoundException:
                self(result)

    def case_id(self, result: dict) -> str:
        """A row's case: its batch label, its id and its two images. The label and id alone would be one case
        for two runs whose --out folders share a name (or that share a --review-batch) and whose manifests share
        row ids, so the second run's pairs were never queued."""
        from ..sources import is_s3_url
        from .service import batch_case_id

        images = [where if is_s3_url(where) else str(Path(where).resolve())
                  for where in (result["selfie"], result["document"])]
        return batch_case_id(self.label, "\x00".join([result["id"], *images]))

    def __call__(self, result: dict) -> None:
        if result.get("decision") not in self.modes:
            return
        if not all(key in result for key in ("id", "model", "threshold", "review_band", "selfie", "document")):
            self.failed.append(f"{result.get('id')}: written by an older facecompare (run that row again)")
            return
        from .service import queue_result

        try:
            _, created = queue_result(self.queue, self.modes, result, result["model"],
                                      lambda: (self.images.read_bytes(result["selfie"]),
                                               self.images.read_bytes(result["document"])),
                                      source="batch", batch=self.label, reference=result["id"],
                                      case_id=self.case_id(result))
            self.queued += int(created)
        except (FaceCompareError, OSError) as exc:
            self.failed.append(f"{result['id']}: {getattr(exc, 'code', type(exc).__name__)}")

    def close(self) -> None:
        self.queue.store.close()


def batch_reviews(args: argparse.Namespace) -> BatchReviews | None:
    modes = queue_modes(args)
    return BatchReviews(args, modes) if modes else None
