"""The reader app's screens."""
