"""``dtlsgate.coap``: CoAP over DTLS for aiocoap (``pip install 'dtlsgate[coap]'``).

The transports live in `dtlsgate.io.coap` (an I/O adapter); this is the name to import::

    ctx = await dtlsgate.coap.create_server_context(site, bind=("::", 5684), credentials=...)
"""

from dtlsgate.io.coap import (
    HANDSHAKE_TIMEOUT,
    SUPPORTED_AIOCOAP,
    CoapsClientTransport,
    CoapsServerTransport,
    DtlsConnectError,
    DtlsConnectionClosed,
    DtlsRemote,
    aiocoap_version,
    check_aiocoap,
    create_client_context,
    create_server_context,
    dtls_server,
    server_address,
)

__all__ = [
    "HANDSHAKE_TIMEOUT",
    "SUPPORTED_AIOCOAP",
    "CoapsClientTransport",
    "CoapsServerTransport",
    "DtlsConnectError",
    "DtlsConnectionClosed",
    "DtlsRemote",
    "aiocoap_version",
    "check_aiocoap",
    "create_client_context",
    "create_server_context",
    "dtls_server",
    "server_address",
]
