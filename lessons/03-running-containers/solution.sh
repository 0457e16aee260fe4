# Lesson 03: every task, without waiting for input.
docker run --name greeter -e GREETING=hello busybox sh -c 'echo $GREETING'
docker logs greeter
docker run -d --name clock busybox sh -c 'echo clock started; while true; do date; sleep 2; done'
sleep 1
docker stop clock
docker start clock
docker logs clock
docker run -d --name web -p 8080:80 nginx
sleep 1
curl -s localhost:8080 | head -n 3
docker exec web sh -c 'echo "Hello from web" > /usr/share/nginx/html/index.html'
curl -s localhost:8080
