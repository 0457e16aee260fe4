# Lesson 01: every task, without waiting for input.
hostname > /root/hostname.txt
uname -r > /root/kernel.txt
useradd student
id student
docker run --name first busybox echo hello
docker ps -a
docker run --rm busybox ps > /root/container-ps.txt
cat /root/container-ps.txt
