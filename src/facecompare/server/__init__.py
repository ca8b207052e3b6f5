"""The HTTP service: AWS Rekognition's JSON 1.1 protocol (for boto3) and a native REST API."""

__all__ = ["create_app"]


def __getattr__(name: str):
    """``create_app`` on first use: importing ``facecompare.server.sigv4`` or ``.config`` (the collection CLI
    does) must not need the server extra's packages."""
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
