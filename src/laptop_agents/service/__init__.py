"""laptop_agents.service"""
