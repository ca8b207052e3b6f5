"""``facecompare serve`` (the HTTP service) and ``facecompare api-key``."""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
import sys

from ..models.cpu import ENGINE_PROCESSES_VARIABLE
from .common import (
    EXIT_ERROR,
    add_calibration_argument,
    add_recognizer_argument,
    pass_to_workers,
    require_calibration,
    settings_of,
)


def add_serve_parser(sub) -> None:
    """``facecompare serve``."""
    serve = sub.add_parser(
        "serve", help="run the HTTP service (AWS Rekognition protocol for boto3, and a REST API)",
        description="Serve CompareFaces, DetectFaces and the collection operations over AWS JSON 1.1 at POST / "
        "(point boto3 at it with endpoint_url), the REST API at /v1/verify, /v1/detect and /v1/collections (docs at "
        "/docs), the review console at /console (accounts: `facecompare reviewer add`), /healthz, /readyz and "
        "/metrics. Collections and review cases live in FACECOMPARE_COLLECTIONS (default "
        "sqlite:///facecompare-collections.db). "
        "SigV4 keys: FACECOMPARE_AUTH_KEYS=AKID:SECRET[,...] or FACECOMPARE_AUTH_KEYS_FILE; REST API key hashes: "
        "FACECOMPARE_API_KEYS_FILE (see `facecompare api-key`); S3 images: FACECOMPARE_S3_ENDPOINT_URL and the "
        "AWS_* credential variables.")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes, each with its own models "
                       "(default 1; each uses about two cores at full load)")
    serve.add_argument("--no-auth", action="store_true", help="accept unsigned requests and no API key: local "
                       "development only (loopback addresses only, unless --allow-unauthenticated-network)")
    serve.add_argument("--allow-unauthenticated-network", action="store_true",
                       help="with authentication off (--no-auth or FACECOMPARE_AUTH=off), listen on a --host beyond "
                       "loopback anyway: anyone who can reach the port can use and change every collection")
    add_recognizer_argument(serve)
    add_calibration_argument(serve)
    serve.set_defaults(run=run_serve)


def add_api_key_parser(sub) -> None:
    """``facecompare api-key``."""
    api_key = sub.add_parser("api-key", help="create a REST API key and print the line for FACECOMPARE_API_KEYS_FILE",
                             description="Prints a new random API key (give it to the client) and its SHA-256 "
                             "hash (append that line to the file named by FACECOMPARE_API_KEYS_FILE). The server "
                             "stores only hashes.")
    api_key.add_argument("--name", default="client", help="a label stored beside the hash")
    api_key.set_defaults(run=run_api_key)


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = settings_of(args)
    require_calibration(settings)  # one clear error now, not a traceback from each worker's start-up
    pass_to_workers(args, settings)  # the workers read their settings from the environment
    if args.workers > 1:  # each worker takes its share of the cores (models/cpu.py)
        os.environ[ENGINE_PROCESSES_VARIABLE] = str(args.workers)
    from ..server.app import UVICORN_LOG_CONFIG, ServerConfig

    config = ServerConfig.from_env()
    if not config.auth and not loopback_host(args.host):
        if not args.allow_unauthenticated_network:
            print(f"error: authentication is off and --host {args.host[:80]} is reachable beyond this machine: anyone "
                  "on the network could read, change and delete every collection. Listen on 127.0.0.1, turn "
                  "authentication on, or say so twice with --allow-unauthenticated-network", file=sys.stderr)
            return EXIT_ERROR
        print("WARNING " + "!" * 60 + "\nWARNING: authentication is OFF and the service listens on "
              f"{args.host[:80]}: anyone who can reach port {args.port} can compare faces, read, change and delete "
              "every collection and queue reviews. Clients reaching it by a name other than localhost need that name in "
              "FACECOMPARE_ALLOWED_HOSTS (IP addresses always work).\nWARNING " + "!" * 60, file=sys.stderr)
    if config.auth and not config.access_keys and not config.api_key_hashes:
        print("error: authentication is on but no keys are configured: set FACECOMPARE_AUTH_KEYS=AKID:SECRET "
              "and/or FACECOMPARE_API_KEYS_FILE, or pass --no-auth for local development", file=sys.stderr)
        return EXIT_ERROR
    # Connection limits (README, "Operating the service"): uvicorn's h11 protocol with header and send timeouts
    # and the connection cap answered in the surface's error shape (server/protocol.py); the keep-alive timeout
    # and the cap are uvicorn's own settings, per worker. Header size is h11's limit (16 KiB).
    uvicorn.run("facecompare.server.app:app_from_env", factory=True, host=args.host, port=args.port,
                workers=args.workers, log_level="warning", log_config=UVICORN_LOG_CONFIG,
                http="facecompare.server.protocol:FaceCompareH11Protocol",
                timeout_graceful_shutdown=30, limit_concurrency=config.max_connections,
                timeout_keep_alive=config.keepalive_timeout)
    return 0


def loopback_host(host: str) -> bool:
    """Whether ``--host`` listens on this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def run_api_key(args: argparse.Namespace) -> int:
    from ..server.app import hash_api_key

    key = secrets.token_urlsafe(32)
    print(f"API key (give to the client; it is not stored): {key}")
    print(f"Line for FACECOMPARE_API_KEYS_FILE: {args.name}:{hash_api_key(key)}")
    return 0

