"""The development environment: real Postgres and Kafka for `connectin services` and
`connectin up` (reused when they answer, else Docker compose, else local installs:
Debian's PostgreSQL, Kafka's jars, one node or a replicated cluster), and localstripe
on a state file of its own. Tests and benchmarks use it directly; no process of the
platform imports it."""
