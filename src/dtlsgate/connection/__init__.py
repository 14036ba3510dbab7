"""The sans-I/O connections: datagram (flights, timers, reassembly, MTU packing) and stream
(TLS over a byte stream), each driving a handshake engine and a record layer."""
