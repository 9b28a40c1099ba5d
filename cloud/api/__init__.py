"""HTTP routers of the cloud core, one module per resource, mounted under /api/v2."""
