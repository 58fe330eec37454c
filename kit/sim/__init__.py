"""The offline lab: a local OpenAI-compatible HTTP server (`server`) backed by a pluggable `Engine`."""
