"""Contracts: JSON Schema versions per namespace, compatibility checks, translations.

Pure code, like the core: `compat` compares two schemas structurally,
`translate` applies declarative translations between adjacent versions and
`registry` holds each namespace's owner, mode and versions and validates values.
"""
