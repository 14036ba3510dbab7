"""DTLS 1.2 handshake state machines (moving to ``dtlsgate.handshake.dtls12``) and the
DTLS command line (moving to ``dtlsgate.io``)."""
