"""laptop_agents.security"""
