"""A simulator of the outside providers Alimi sends through, for local runs and tests."""

from .app import CONFIG, INBOX, SIMULATION, init_app
from .behaviour import Behaviour, InvalidSetting, Simulation
from .config import ConfigError, SandboxConfig
from .inbox import Inbox, Message

__all__ = [
    "CONFIG",
    "INBOX",
    "SIMULATION",
    "Behaviour",
    "ConfigError",
    "Inbox",
    "InvalidSetting",
    "Message",
    "SandboxConfig",
    "Simulation",
    "init_app",
]
