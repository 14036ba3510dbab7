"""The only code that touches sockets, event loops, threads and clocks: the listener,
blocking sockets, asyncio servers and clients, the key log and the command line."""
