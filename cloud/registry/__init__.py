"""Registry: municipalities, zones, customers, contracts, service points, meters, routes."""
