"""SnelStart backends: one interface (``base.SnelStartBackend``), several implementations."""
