"""Generated from proto/statesync/v1/statesync.proto by proto/generate.py; do not edit."""
