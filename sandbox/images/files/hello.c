/*
 * The hello-world image's only program. It is linked statically so the
 * image needs no other file: no libc, no shell, no /etc.
 */
#include <unistd.h>

static const char greeting[] =
    "\n"
    "Hello from layerlab!\n"
    "\n"
    "Your container works. Here is what just happened:\n"
    "\n"
    " 1. The docker command asked layerlab's engine to run \"hello-world\".\n"
    " 2. The engine did not have that image, so it pulled it from the hub.\n"
    " 3. The engine created a new container from the image and started it.\n"
    " 4. The container ran this one small program, which wrote these lines\n"
    "    to your terminal and exited. The container has stopped now.\n"
    "\n"
    "Try something with a shell next:\n"
    "\n"
    "    docker run -it debian bash\n"
    "\n";

int main(void)
{
    const char *p = greeting;
    size_t left = sizeof greeting - 1;

    while (left > 0) {
        ssize_t n = write(STDOUT_FILENO, p, left);
        if (n <= 0)
            return 1;
        p += n;
        left -= (size_t)n;
    }
    return 0;
}
