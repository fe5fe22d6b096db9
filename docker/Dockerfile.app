# The IVR/ACD ARI application. Build from the repository root:
#   docker build -f docker/Dockerfile.app -t ivr-app .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY ivr ./ivr
RUN pip install . && rm -rf /src/build

# Sample config, flows and CRM data; compose.yaml mounts the user's own over them.
COPY config/ivr.yaml /etc/ivr/ivr.yaml
COPY config/crm /etc/ivr/config/crm
COPY flows /etc/ivr/flows

RUN useradd --system --uid 10001 --home-dir /var/lib/ivr --create-home ivr
USER ivr
WORKDIR /var/lib/ivr

EXPOSE 8080
# Secrets (IVR_ARI_PASSWORD, IVR_ADMIN_TOKEN, IVR_AGENT_<ID>_PASSWORD) come from the environment only.
ENTRYPOINT ["ivr"]
CMD ["run", "--config", "/etc/ivr/ivr.yaml"]
