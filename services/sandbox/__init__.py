"""A simulator of the outside providers Alimi sends through, for local runs and tests."""

from .app import CONFIG, INBOX, KAKAO_INBOX, KAKAO_TEMPLATES, REPORTER, SIMULATION, SLACK, init_app
from .behaviour import Behaviour, InvalidSetting, Simulation
from .config import ConfigError, SandboxConfig
from .inbox import Inbox, KakaoMessage, Message
from .suffixes import SuffixRanges

__all__ = [
    "CONFIG",
    "INBOX",
    "KAKAO_INBOX",
    "KAKAO_TEMPLATES",
    "REPORTER",
    "SIMULATION",
    "SLACK",
    "Behaviour",
    "ConfigError",
    "Inbox",
    "InvalidSetting",
    "KakaoMessage",
    "Message",
    "SandboxConfig",
    "Simulation",
    "SuffixRanges",
    "init_app",
]
