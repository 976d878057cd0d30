"""The sans-IO core: values, commands, changes, digests and group-commit sequencing.

It owns the semantics of statesync and does no I/O: no sockets, files, threads,
asyncio or clocks (time comes in as an argument). import-linter enforces this.
"""
