"""The custom code runner: untrusted Python with memory and time limits, as its own service.

See docs/sandbox.md. Callers use sandbox.client.SandboxClient; `engine sandbox` runs
sandbox.server.serve().
"""
