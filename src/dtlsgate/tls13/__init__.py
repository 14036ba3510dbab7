"""TLS 1.3 (RFC 8446): the record layer over a byte stream, the handshake state machines of
server and client, the sans-I/O connections and the stateless HelloRetryRequest
(OpenSSL's ``SSL_stateless``)."""
