"""laptop_agents.agents"""
