"""The handshake engines: one shape for every version, a table of typed states per protocol,
``(state, message) -> (next_state, actions)``; no records, no I/O."""
