"""laptop_agents.data.providers"""
