# Stand-in for prom/prometheus in tests/test_docker_smoke.py, which copies Debian's binary into the build
# context. Laid out as the upstream image: /bin/prometheus as the entry point and the same default flags,
# run as nobody, data in /prometheus.
ARG BASE
FROM ${BASE}
COPY prometheus /bin/prometheus
RUN mkdir -p /etc/prometheus /prometheus && chown nobody:nogroup /prometheus
USER nobody
WORKDIR /prometheus
VOLUME ["/prometheus"]
EXPOSE 9090
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
