# Lesson 06: every task, without waiting for input.
cd /root/greet
cat > Dockerfile.exec <<'END'
FROM busybox
ENTRYPOINT ["echo", "Hello,"]
CMD ["world"]
END
docker build -f Dockerfile.exec -t greet:exec .
docker run --name greet-docker greet:exec Docker
docker run --name greet-date --entrypoint date greet:exec
cat > Dockerfile.shell <<'END'
FROM busybox
ENV NAME=world
ENTRYPOINT echo "Hello, $NAME"
END
docker build -f Dockerfile.shell -t greet:shell .
docker run --name greet-env -e NAME=Docker greet:shell
cd /root
