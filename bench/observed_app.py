"""The uvicorn target `flowhistory serve` amounts to: the app plus its logging setup (access
lines and metrics follow the FLOWHISTORY_ settings). bench/observability_ab.py serves it twice."""

from analytics.core.config import Settings
from api.app import create_app
from api.observability import configure_logging

settings = Settings()
configure_logging(settings)
app = create_app(settings)
