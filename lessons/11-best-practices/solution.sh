# Lesson 11: every task, without waiting for input.
cd /root/web
docker build -t web:fat .
docker pull busybox
base=$(docker image inspect -f '{{index .RepoDigests 0}}' busybox)
echo "$base"
printf '%s\n' secret.env notes.md Dockerfile .dockerignore > .dockerignore
cat > Dockerfile <<END
FROM debian:bookworm AS build
RUN apt-get update && apt-get install -y figlet
WORKDIR /src
COPY . .
RUN figlet 'Built small' > banner.txt

FROM $base
COPY --from=build /src/ /www/
EXPOSE 8080
USER nobody
CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]
END
cat Dockerfile
docker build -t web:slim .
docker run -d --name web -p 8080:8080 web:slim
sleep 1
docker exec web id
docker run --rm web:slim ls -a /www
curl -s localhost:8080
cd /root
