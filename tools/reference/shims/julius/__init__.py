"""Stand-in: not used by the golden-data scripts."""
