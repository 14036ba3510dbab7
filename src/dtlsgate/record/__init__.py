"""Record protection per protocol version: DTLS 1.2, TLS 1.3 and DTLS 1.3 (epochs, sequence
numbers, anti-replay); no handshake logic, no I/O."""
