"""laptop-agents: an autonomous BTC-perpetual trading service (paper by default)."""

__version__ = "0.1.0"
