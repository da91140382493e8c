"""What operators see of the running server: Prometheus metrics, access and server logs.

`install(app, settings)` adds the request middleware and the `/metrics` route; `start` and `stop`
(called by the app's lifespan) attach the collectors to the open store and run the separate
metrics port when one is set. `configure_logging` is called once by `flowhistory serve`.
"""

from api.observability.logs import configure_logging
from api.observability.metrics import Metrics, install

__all__ = ["Metrics", "configure_logging", "install"]
