"""laptop_agents.reporting"""
