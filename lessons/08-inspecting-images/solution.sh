# Lesson 08: every task, without waiting for input.
docker pull nginx
docker image inspect -f '{{json .Config.Cmd}}' nginx > /root/nginx-cmd.txt
docker image inspect -f '{{json .Config.ExposedPorts}}' nginx > /root/nginx-ports.txt
docker image inspect -f '{{len .RootFS.Layers}}' nginx > /root/nginx-layers.txt
cat /root/nginx-cmd.txt /root/nginx-ports.txt /root/nginx-layers.txt
cd /root/site
cat > Dockerfile <<'END'
FROM busybox
LABEL org.opencontainers.image.title="layerlab site" org.opencontainers.image.version="1.0"
ENV SITE_MODE=production
WORKDIR /www
COPY index.html .
EXPOSE 8080
CMD ["httpd", "-f", "-p", "8080"]
END
docker build -t site:v1 .
docker image inspect -f '{{index .Config.Labels "org.opencontainers.image.version"}}' site:v1 > /root/version.txt
cat /root/version.txt
cd /root
