"""Deployment: the production instance config, the image, Kubernetes, and the loopback rehearsal.

Only `deploy.loopback` is Python: the production topology's processes started on one
machine (`python -m deploy.loopback`) and the servers it needs (PostgreSQL, SeaweedFS).
"""
