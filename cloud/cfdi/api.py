"""Mount point listed in cloud.app.ROUTERS; the router lives in cloud.cfdi.router."""

from .router import router

__all__ = ["router"]
