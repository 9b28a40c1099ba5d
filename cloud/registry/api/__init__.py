"""HTTP API of the registry, listed in cloud.app.ROUTERS as "cloud.registry.api:router":
municipalities, zones, customers, contracts, routes; meters; the network (districts, network
assets, service connections, planned outages: docs/network.md)."""

from fastapi import APIRouter

from .contracts import router as contracts_router
from .districts import router as districts_router
from .meters import router as meters_router
from .network_assets import router as network_assets_router
from .planned_outages import router as planned_outages_router
from .service_connections import router as service_connections_router

router = APIRouter()
router.include_router(contracts_router)
router.include_router(meters_router)
router.include_router(districts_router)
router.include_router(network_assets_router)
router.include_router(service_connections_router)
router.include_router(planned_outages_router)

__all__ = ["router"]
