"""dtlsgate: DTLS 1.2, DTLS 1.3 and TLS 1.3 in Python, built around a stateless listen."""
