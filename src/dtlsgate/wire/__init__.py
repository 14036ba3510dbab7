"""The wire layer: bounded codecs for records, handshake headers, hello messages and
extensions. No crypto and no state lives here."""
