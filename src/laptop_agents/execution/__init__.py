"""laptop_agents.execution"""
