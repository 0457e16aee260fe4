"""Jupyter's terminal server (terminado behind tornado), serving one bash
per websocket on 127.0.0.1 at the port given as the first argument, for
the terminal benchmark to compare against. Prints "listening" when ready."""

import sys

import terminado
import tornado.ioloop
import tornado.web


def main():
    port = int(sys.argv[1])
    manager = terminado.UniqueTermManager(shell_command=["bash", "--norc", "--noprofile"])
    app = tornado.web.Application(
        [(r"/websocket", terminado.TermSocket, {"term_manager": manager})]
    )
    app.listen(port, "127.0.0.1")
    print("listening", flush=True)
    tornado.ioloop.IOLoop.current().start()


if __name__ == "__main__":
    main()
