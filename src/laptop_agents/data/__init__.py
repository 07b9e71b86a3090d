"""laptop_agents.data"""
