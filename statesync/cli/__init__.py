"""The statesync command line."""
