# Stand-in for influxdb:1.8 in tests/test_docker_smoke.py, which copies Debian's influxd into the build
# context. As in the upstream image: the configuration keeps everything in /var/lib/influxdb, INFLUXDB_*
# variables override it, and the entry point creates INFLUXDB_DB on the first start.
ARG BASE
FROM ${BASE}
COPY influxd /usr/bin/influxd
COPY influxdb.conf /etc/influxdb/influxdb.conf
COPY influxdb-entrypoint.sh /entrypoint.sh
VOLUME ["/var/lib/influxdb"]
EXPOSE 8086
ENTRYPOINT ["/entrypoint.sh"]
CMD ["influxd"]
