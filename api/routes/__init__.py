"""One router per domain; `ROUTERS` is the order they are mounted in."""
