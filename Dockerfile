# Dockerfile - one image with every nsq-zmq binary (nsq-broker, nsq-worker,
# nsq-bench, nsq-lookupd once it exists), built in two stages: the build
# stage compiles with meson and installs into /staging, the runtime stage
# holds only the shared libraries the binaries load, curl for the health
# check, and a non-root user. The default command runs a broker with its
# data in the /data volume; run another binary by naming it:
#
#   docker run -p 4150:4150 -p 4151:4151 -p 4152:4152 IMAGE   (4150: NSQ TCP clients)
#   docker run IMAGE nsq-worker --broker-address=HOST:4152 --topic=T --channel=C --stdout
#
# No registry is reachable on our machines: deploy/image-test.sh builds a
# local debian:bookworm-slim with debootstrap and then this file with podman.

FROM debian:bookworm-slim AS build
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        gcc libc6-dev meson ninja-build pkg-config protobuf-c-compiler \
        libzmq3-dev libczmq-dev libprotobuf-c-dev libcurl4-openssl-dev libmicrohttpd-dev \
        libjansson-dev zlib1g-dev libsnappy-dev libgnutls28-dev libjemalloc-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . /src
RUN meson setup /build --prefix=/usr/local -Dintegration=false -Djemalloc=enabled \
    && meson compile -C /build \
    && DESTDIR=/staging meson install -C /build --no-rebuild --strip \
    && install -m 0755 /src/deploy/healthcheck.sh /staging/usr/local/bin/nsq-healthcheck

FROM debian:bookworm-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libzmq5 libczmq4 libprotobuf-c1 libcurl4 libmicrohttpd12 libjansson4 zlib1g \
        libsnappy1v5 libgnutls30 libjemalloc2 curl \
        ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /staging/usr/local/ /usr/local/
RUN ldconfig \
    && groupadd --system --gid 10001 nsq \
    && useradd --system --uid 10001 --gid nsq --home-dir /data --no-create-home nsq \
    && mkdir -p /data \
    && chown nsq:nsq /data
USER nsq
WORKDIR /data
VOLUME /data
# broker NSQ TCP, broker HTTP, broker ZeroMQ, lookupd ZeroMQ, lookupd HTTP, worker HTTP
EXPOSE 4150 4151 4152 4160 4161 4171
# Checks whichever binary runs as PID 1 on its own HTTP port (see the script).
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["nsq-healthcheck"]
CMD ["nsq-broker", "--data-path=/data"]
