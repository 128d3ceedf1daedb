"""The production topology rehearsed on loopback (`python -m deploy.loopback`).

`topology` starts the Dagster parts as separate processes (code server, webserver,
daemon; runs launched by the code server); `postgres` and `seaweed` start the servers it
stands on (the instance's PostgreSQL, an S3-compatible lake); `graphql` drives it as the UI
does. tests/deploy/test_topology.py runs a backfill and a stream through it.
"""
