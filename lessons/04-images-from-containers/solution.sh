# Lesson 04: every task, without waiting for input.
docker run --name figlet-box debian sh -c 'apt-get update && apt-get install -y figlet'
docker diff figlet-box > /root/changes.txt
grep figlet /root/changes.txt | head -n 3
docker commit figlet-box figlet:v1
docker run --rm figlet:v1 figlet layers
docker commit --change 'CMD ["figlet", "hello"]' figlet-box figlet:v2
docker run --name banner figlet:v2
