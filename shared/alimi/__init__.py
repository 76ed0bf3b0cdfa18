"""Alimi's common package: settings, logging, bus messages and topology, the
MongoDB access layer and the operations side-server shared by every service."""

__version__ = "0.1.0"
