"""The DTLS 1.2 handshake engine (RFC 6347 §4.2, RFC 5246 §7): ``server.SERVER`` and
``client.CLIENT`` are `dtlsgate.handshake.engine.Machine`s of typed states; ``negotiate``
chooses parameters and derives keys; ``common`` holds what both sides share."""
