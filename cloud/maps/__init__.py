"""The network map: layers read from the registry, drawn as SVG without a tile server."""
