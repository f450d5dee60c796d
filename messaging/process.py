"""This server process's identity as a generation worker.

Each in-progress message records the worker that generates it (``Message.worker_id``), so a
sweeper can tell a live process's messages from a dead one's (``messaging.sweeper``).
"""

import os
import socket
import uuid

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
