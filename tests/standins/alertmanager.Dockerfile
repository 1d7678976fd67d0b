# Stand-in for prom/alertmanager in tests/test_docker_smoke.py, which copies Debian's binary
# (prometheus-alertmanager) into the build context. Laid out as the upstream image: /bin/alertmanager as the
# entry point and the same default flags, run as nobody, data in /alertmanager.
ARG BASE
FROM ${BASE}
COPY alertmanager /bin/alertmanager
COPY templates /usr/share/prometheus/alertmanager
RUN mkdir -p /etc/alertmanager /alertmanager && chown nobody:nogroup /alertmanager
USER nobody
WORKDIR /alertmanager
VOLUME ["/alertmanager"]
EXPOSE 9093
ENTRYPOINT ["/bin/alertmanager"]
CMD ["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager"]
