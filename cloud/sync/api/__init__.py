"""Mount point listed in cloud/app.py ROUTERS ("cloud.sync.api:router")."""

from .router import router

__all__ = ["router"]
