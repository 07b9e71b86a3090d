"""laptop_agents.paper"""
