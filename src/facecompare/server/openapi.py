"""The OpenAPI document of the native REST API and the /docs page."""

from __future__ import annotations

_IMAGE = {"type": "string", "format": "binary", "minLength": 1}  # an empty file is refused (400)
_IMAGE_B64 = {"type": "string", "format": "byte", "minLength": 1}  # and so is an empty base64 string
_THRESHOLD = {"type": "number", "minimum": 0, "maximum": 100, "default": 80}
_ANNOTATE = {"type": "boolean", "default": False}
_VERIFICATION = {
    "type": "object",
    "properties": {
        "decision": {"type": "string", "enum": ["MATCH", "NO_MATCH", "REVIEW"]},
        "similarity": {"type": "number", "nullable": True},
        "distance": {"type": "number", "nullable": True},
        "threshold": {"type": "number"},
        "review_band": {"type": "array", "items": {"type": "number"}},
        "reasons": {"type": "array", "items": {"type": "string"}},
        "notes": {"type": "array", "items": {"type": "string"}},
        "selfie_face": {"type": "object", "nullable": True},
        "document_face": {"type": "object", "nullable": True},
        "annotated_png": {"type": "string", "description": "base64 PNG, when annotate=true"},
        "request_id": {"type": "string"},
    },
}
_ERROR = {"type": "object", "required": ["error", "request_id"], "properties": {
    "error": {"type": "object", "required": ["type", "message"], "properties": {
        "type": {"type": "string", "description": "a Rekognition error type, e.g. InvalidParameterException"},
        "message": {"type": "string"}}},
    "request_id": {"type": "string"}}}


def _error_response(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


_ERROR_RESPONSES = {"400": {"$ref": "#/components/responses/BadRequest"},
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "429": {"$ref": "#/components/responses/Throttled"},
                    "500": {"$ref": "#/components/responses/InternalError"},
                    "503": {"$ref": "#/components/responses/OverCapacity"}}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}
OPENAPI = {
    "openapi": "3.0.3",
    "info": {"title": "facecompare", "version": "0.1.0",
             "description": "Offline selfie-versus-ID-document verification. The AWS Rekognition protocol "
                            "(CompareFaces, DetectFaces) is served at POST / for boto3; this is the native API."},
    "components": {
        "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
        "schemas": {"Error": _ERROR},
        "responses": {
            "BadRequest": _error_response("invalid input: a malformed body, a bad parameter, an image that is not "
                                          "JPEG/PNG, too large, too small or has no face; a body over the size "
                                          "limit (ImageTooLargeException) or that did not arrive in time "
                                          "(RequestTimeoutException)"),
            "Throttled": {**_error_response("ThrottlingException: too many requests are waiting for the engine; "
                                            "retry after Retry-After seconds"), "headers": _RETRY_AFTER},
            "OverCapacity": {**_error_response("ThrottlingException: the server has too many connections open; "
                                               "retry after Retry-After seconds"), "headers": _RETRY_AFTER},
            "Unauthorized": _error_response("missing or invalid API key (UnauthorizedException)"),
            "InternalError": _error_response("internal error, or the request took longer than the timeout "
                                             "(InternalServerError)"),
        },
    },
    "security": [{"apiKey": []}],
    "paths": {
        "/v1/verify": {"post": {
            "summary": "KYC decision for a selfie and an ID-document photo",
            "requestBody": {"required": True, "content": {
                "multipart/form-data": {"schema": {"type": "object", "required": ["selfie", "document"],
                                                   "properties": {"selfie": _IMAGE, "document": _IMAGE,
                                                                  "threshold": _THRESHOLD, "annotate": _ANNOTATE}}},
                "application/json": {"schema": {"type": "object", "required": ["selfie", "document"],
                                                "properties": {"selfie": _IMAGE_B64, "document": _IMAGE_B64,
                                                               "threshold": _THRESHOLD, "annotate": _ANNOTATE}}},
            }},
            "responses": {"200": {"description": "decision", "content": {"application/json": {"schema": _VERIFICATION}}},
                          **_ERROR_RESPONSES},
        }},
        "/v1/detect": {"post": {
            "summary": "Faces in an image (boxes, landmarks, pose, quality)",
            "requestBody": {"required": True, "content": {
                "multipart/form-data": {"schema": {"type": "object", "required": ["image"],
                                                   "properties": {"image": _IMAGE, "annotate": _ANNOTATE}}},
                "application/json": {"schema": {"type": "object", "required": ["image"],
                                                "properties": {"image": _IMAGE_B64, "annotate": _ANNOTATE}}},
            }},
            "responses": {"200": {"description": "faces"}, **_ERROR_RESPONSES},
        }},
        "/healthz": {"get": {"summary": "the process is alive", "security": [], "responses": {"200": {"description": "alive"}}}},
        "/readyz": {"get": {"summary": "models loaded and warmed", "security": [],
                            "responses": {"200": {"description": "ready"}, "503": {"description": "loading"}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "security": [], "responses": {"200": {"description": "metrics"}}}},
    },
}


def docs_html() -> str:
    """A self-contained page (no CDN: the service runs offline) listing the native API from the OpenAPI spec."""
    rows = []
    for path, methods in OPENAPI["paths"].items():
        for method, op in methods.items():
            rows.append(f"<tr><td><code>{method.upper()} {path}</code></td><td>{op['summary']}</td></tr>")
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>facecompare API</title>"
        "<style>body{font-family:sans-serif;max-width:900px;margin:2em auto}td{padding:4px 12px}"
        "pre{background:#f4f4f4;padding:1em;overflow:auto}</style></head><body>"
        f"<h1>facecompare API</h1><p>{OPENAPI['info']['description']}</p>"
        "<table>" + "".join(rows) + "</table>"
        "<h2>Example</h2><pre>curl -H 'X-API-Key: KEY' -F selfie=@selfie.jpg -F document=@id_card.jpg "
        "http://127.0.0.1:8080/v1/verify</pre>"
        "<p>Machine-readable specification: <a href='/openapi.json'>/openapi.json</a></p></body></html>"
    )
