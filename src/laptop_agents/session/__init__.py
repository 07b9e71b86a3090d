"""laptop_agents.session"""
