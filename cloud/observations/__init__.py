"""Reader observation codes per municipality: catalogue, defaults, work-order effects."""
