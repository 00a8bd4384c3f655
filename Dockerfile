# Images for compose.yaml. Two targets:
#   app          the `connectin` CLI (api, relay, consumers, migrate), the default
#   localstripe  the Stripe test server the API and tests talk to instead of Stripe

FROM python:3.11-slim AS localstripe
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
RUN pip install "localstripe>=1.15,<2"
# localstripe keeps its state in a pickle under /tmp, which nobody may write.
USER nobody
EXPOSE 8420
CMD ["localstripe", "--port", "8420"]


FROM python:3.11-slim AS app
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
# Only what the package needs: a checkout's .venv and .cache (Kafka jars) stay out
# of the image even without a .dockerignore.
COPY pyproject.toml alembic.ini ./
COPY api ./api
COPY core ./core
COPY relay ./relay
COPY consumers ./consumers
COPY cli ./cli
COPY devenv ./devenv
COPY migrations ./migrations
RUN pip install . \
 && useradd --system --uid 10001 --no-create-home connectin
USER connectin
EXPOSE 8000
CMD ["connectin", "--help"]
