"""HTTP backends behind the one engine seam (import them from :mod:`chainette.engine.http_client`)."""
