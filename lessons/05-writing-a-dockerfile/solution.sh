# Lesson 05: every task, without waiting for input.
cd /root/nmap-tool
cat > Dockerfile <<'END'
FROM debian
RUN apt-get update && apt-get install -y nmap
WORKDIR /scans
COPY targets.txt .
CMD ["nmap", "-iL", "targets.txt"]
END
docker build -t nmap-tool:v1 .
docker tag nmap-tool:v1 scanner:1.0
docker run --rm nmap-tool:v1 > /root/scan.txt
cat /root/scan.txt
cd /root
