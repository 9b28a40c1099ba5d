"""Console pages, one module per page group."""
