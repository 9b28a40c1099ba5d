"""HTTP API of metering, listed in cloud.app.ROUTERS as "cloud.metering.api:router":
readings (submission, listing, edits, reviews) and analytics (consumption, NRW, anomalies)."""

from fastapi import APIRouter

from .analytics import router as analytics_router
from .readings import router as readings_router

router = APIRouter()
router.include_router(readings_router)
router.include_router(analytics_router)

__all__ = ["router"]
