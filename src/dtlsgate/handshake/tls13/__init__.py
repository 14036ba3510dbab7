"""TLS 1.3 (RFC 8446) handshake state machines of server and client, shared by TLS over a
stream and, next, DTLS 1.3: what they share (``common``), the server, the client, peer
authentication, post-handshake messages and session tickets."""
