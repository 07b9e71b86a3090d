"""laptop_agents.alerts"""
