"""Benchmark harness: flowhistory against a re-creation of the peer (Open WebUI pattern)."""
