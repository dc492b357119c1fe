"""`python -m daguerre.workers.engine_main FD`: a worker's engine process.

A module of its own, so that what the engine sends back is pickled under the names the
worker knows (as ``daguerre.workers.engine_client.EngineInfo``, not ``__main__...``).
"""

import sys

from daguerre.workers.engine_client import engine_process

if __name__ == "__main__":
    engine_process(int(sys.argv[1]))
