"""AWS Rekognition's operations, moto's way, for the HTTP service and ``facecompare collection`` (the handlers
need no server; importing this package imports nothing):

* :mod:`.operations`: one handler per operation, ``parse_<operation>`` (the request body, checked) beside
  ``<operation>`` (the call of the engine or the Collections service), both found by the operation's name;
* :mod:`.wire`: the request members they share (Image, NextToken, ResourceArn) and ``ProtocolError``;
* :mod:`.context`: what a handler needs (the Collections service, the image reader, the region and account);
* :mod:`.cli`: ``facecompare collection ...``, which builds the request body from its arguments and prints the
  handler's response.

The wire protocol around them (SigV4, X-Amz-Target, replays, the engine queue) is
:mod:`facecompare.server.aws_api`; the error responses of both HTTP surfaces are
:mod:`facecompare.server.protocol_errors`."""
