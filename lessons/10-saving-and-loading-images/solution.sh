# Lesson 10: every task, without waiting for input.
docker pull busybox
docker save -o /root/busybox.tar busybox
tar -tf /root/busybox.tar
tar -xOf /root/busybox.tar manifest.json > /root/manifest.json
cat /root/manifest.json
docker pull hello-world
docker save -o /root/tools.tar busybox hello-world
docker tag busybox backup:v1
docker save -o /root/backup.tar backup:v1
docker rmi backup:v1
docker load -i /root/backup.tar | tee /root/load.txt
