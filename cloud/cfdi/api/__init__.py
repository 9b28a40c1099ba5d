"""Mount point listed in cloud.app.ROUTERS: the register (fixed paths such as /cfdi/blocked)
before the per-document routes of cloud.cfdi.router, whose /cfdi/{document_id} would take them."""

from fastapi import APIRouter

from .register import router as register_router
from .router import router as document_router

router = APIRouter()
router.include_router(register_router)
router.include_router(document_router)

__all__ = ["router"]
