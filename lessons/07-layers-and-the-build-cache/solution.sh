# Lesson 07: every task, without waiting for input.
cd /root/banner
docker build -t banner:v1 .
docker run --rm banner:v1
docker image inspect -f '{{len .RootFS.Layers}}' debian > /root/shared.txt
cat /root/shared.txt
cat > Dockerfile <<'END'
FROM debian
RUN apt-get update && apt-get install -y figlet
WORKDIR /app
COPY . .
CMD ["sh", "banner.sh"]
END
docker build -t banner:v2 .
echo 'Version 3' > message.txt
docker build -t banner:v3 . | tee /root/rebuild.txt
docker run --rm banner:v3
cd /root
