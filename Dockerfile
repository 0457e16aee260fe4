# The image docker-compose.yml runs: the layerlab release binary, which
# carries the web assets and the bundled course inside, on Debian with the
# packages it builds the catalog images from and runs labs with.
#
# `make image` builds the binary on this machine and this image around it
# (no Rust toolchain image is needed, so it works offline too); BASE may
# name any Debian 12 image.
ARG BASE=debian:bookworm-slim
FROM ${BASE}
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       ca-certificates busybox-static debootstrap binutils e2fsprogs gnupg dpkg-dev gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
COPY layerlab /usr/local/bin/layerlab
ENV LAYERLAB_DATA_DIR=/var/lib/layerlab
EXPOSE 8080 5001
ENTRYPOINT ["layerlab"]
CMD ["serve"]
