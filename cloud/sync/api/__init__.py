"""HTTP API of sync, listed in cloud.app.ROUTERS as "cloud.sync.api:router": push/pull for
field nodes (CBOR) and the staff review of refused changes (JSON)."""

from fastapi import APIRouter

from .push_pull import router as push_pull_router
from .review import router as review_router

router = APIRouter()
router.include_router(push_pull_router)
router.include_router(review_router)

__all__ = ["router"]
