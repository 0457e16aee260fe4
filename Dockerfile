# Image for docker-compose.yml: builds layerlab from this checkout on Debian.
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cd web && npm ci --no-audit --no-fund
RUN cargo build --release --locked -p server

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      ca-certificates busybox-static debootstrap binutils e2fsprogs gnupg dpkg-dev gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/layerlab /usr/local/bin/layerlab
COPY lessons /usr/share/layerlab/lessons
ENV LAYERLAB_LESSONS=/usr/share/layerlab/lessons
EXPOSE 8080 5001
ENTRYPOINT ["layerlab"]
CMD ["serve"]
