"""pack(): resolve, fetch and write an archive."""
