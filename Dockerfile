# omnigate: the daemon with its default config. Mount var/ (store, traffic log)
# and spool/ to keep them, and etc/omnigate.toml to configure it: in a container,
# set [http] listen = "0.0.0.0:8080" and `allow` to the networks of your clients.
FROM python:3.11-slim

RUN useradd --system --create-home --home-dir /srv/omnigate omnigate
WORKDIR /srv/omnigate
COPY pyproject.toml README.md ./
COPY omnigate ./omnigate
RUN pip install --no-cache-dir . && mkdir -p var spool etc && chown -R omnigate var spool
COPY etc/omnigate.toml etc/omnigate.toml

USER omnigate
VOLUME ["/srv/omnigate/var", "/srv/omnigate/spool"]
# HTTP API; 2775 is the built-in SMSC simulator of the default config.
EXPOSE 8080 2775
ENTRYPOINT ["omnigate"]
CMD ["run", "-c", "etc/omnigate.toml"]
