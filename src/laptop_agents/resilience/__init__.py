"""laptop_agents.resilience"""
