"""Tests of the mock Bitunix exchange (laptop_agents.mock_exchange)."""
