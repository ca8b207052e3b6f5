"""The HTTP service: AWS Rekognition's JSON 1.1 protocol (for boto3) and a native REST API."""

from .app import create_app

__all__ = ["create_app"]
