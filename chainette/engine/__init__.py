"""Engines: the registry of configs, one client per wire format, managed servers, limits and retries."""
