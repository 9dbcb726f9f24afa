"""Benchmarks of generated sessionforge projects against bare FastAPI (`python -m bench`)."""
