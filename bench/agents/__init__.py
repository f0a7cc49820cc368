"""`keel bench`: concurrent simulated AI agents against a stack it starts itself.

agent.py (one agent's loop and the checks of its events), load.py (the load
processes), system.py (services and the API and worker processes),
counters.py (cache, Redis, Postgres and CPU readings), runner.py (a phase),
scaling.py, report.py and plot.py; command.py ties them together.
"""
