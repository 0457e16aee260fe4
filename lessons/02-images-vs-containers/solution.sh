# Lesson 02: every task, without waiting for input.
docker pull nginx
docker run -d --name web nginx
docker exec web touch /tmp/i-was-here
docker exec web ls -l /tmp
docker run -d -p 5000:5000 --name registry registry:2
sleep 1
docker tag nginx localhost:5000/my-nginx:v1
docker push localhost:5000/my-nginx:v1
