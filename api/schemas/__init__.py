"""Request and response shapes; built from analytics' dataclasses, never used as stored rows."""
