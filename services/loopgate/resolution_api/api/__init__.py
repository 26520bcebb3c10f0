"""HTTP routers of the resolution API: one module per resource under /v1 (and /healthz, /readyz)."""
