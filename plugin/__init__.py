"""The Litestar side of Patron: app factory, plugin, API, auth, configuration, CLI."""

from plugin.plugin import PatronConfig, PatronPlugin

__all__ = ["PatronConfig", "PatronPlugin"]
