# Lesson 09: every task, without waiting for input.
docker run -d --name registry -p 5000:5000 registry:2
sleep 1
curl -s localhost:5000/v2/
docker pull busybox
docker tag busybox localhost:5000/my-busybox:v1
docker push localhost:5000/my-busybox:v1
docker run --name note busybox sh -c 'echo pushed with care > /note.txt'
docker commit note localhost:5000/my-busybox:v2
docker push localhost:5000/my-busybox:v2
curl -s localhost:5000/v2/_catalog > /root/catalog.json
curl -s localhost:5000/v2/my-busybox/tags/list > /root/tags.json
cat /root/catalog.json /root/tags.json
docker rmi localhost:5000/my-busybox:v2
docker pull localhost:5000/my-busybox:v2
docker run --name from-registry localhost:5000/my-busybox:v2 cat /note.txt
