"""Benchmarks on real Postgres and Kafka: `make bench` or `python -m bench NAME`."""
