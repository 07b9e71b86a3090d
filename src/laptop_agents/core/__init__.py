"""laptop_agents.core"""
