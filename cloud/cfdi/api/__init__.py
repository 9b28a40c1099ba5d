"""HTTP API of CFDI, listed in cloud.app.ROUTERS as "cloud.cfdi.api:router": the register
(fixed paths such as /cfdi/blocked) before the per-document routes, whose /cfdi/{document_id}
would take them."""

from fastapi import APIRouter

from .documents import router as document_router
from .register import router as register_router

router = APIRouter()
router.include_router(register_router)
router.include_router(document_router)

__all__ = ["router"]
