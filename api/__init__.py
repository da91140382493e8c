"""flowhistory's HTTP adapter: thin FastAPI routes over the analytics library, and the CLI."""
