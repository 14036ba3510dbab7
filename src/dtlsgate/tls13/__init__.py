"""The TLS 1.3 command line (moving to ``dtlsgate.io``); the engine lives in
``dtlsgate.handshake.tls13``."""
