"""Serving: a Triton model repository over KServe V2 HTTP, the page, and metrics.

``protocol`` (V2 parsing and encoding), ``models`` (repository -> backends and
batchers), ``stats``/``metrics`` (Triton statistics and Prometheus), ``app`` (routes and
limits), ``server`` (uvicorn, signals, drain).
"""
