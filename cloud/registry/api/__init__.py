"""HTTP API of the registry, listed in cloud.app.ROUTERS as "cloud.registry.api:router":
municipalities, zones, customers, contracts, routes; meters."""

from fastapi import APIRouter

from .contracts import router as contracts_router
from .meters import router as meters_router

router = APIRouter()
router.include_router(contracts_router)
router.include_router(meters_router)

__all__ = ["router"]
