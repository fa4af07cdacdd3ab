# One image for every scloud process (api, worker, hostd, or `scloud run` for a single node).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies in their own layer, read from pyproject.toml, so editing code reuses them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY . .
RUN pip install --no-deps . \
    && useradd --system --create-home --home-dir /var/lib/scloud --shell /usr/sbin/nologin scloud

USER scloud
ENV SCLOUD_STATE_DIR=/var/lib/scloud \
    SCLOUD_API_HOST=0.0.0.0
EXPOSE 8080
CMD ["scloud", "run"]
