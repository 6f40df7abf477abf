"""Execute code in a Jupyter kernel over its websocket and print its output.

Usage: python kernel_client.py WS_URL TOKEN CODE. Used by the integration tests to act
inside a user's session exactly as a notebook does.
"""

import asyncio
import json
import sys
import uuid

from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect


async def execute(url: str, token: str, code: str) -> str:
    ws = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {token}"}))
    msg_id = uuid.uuid4().hex
    request = {
        "header": {
            "msg_id": msg_id,
            "username": "test",
            "session": uuid.uuid4().hex,
            "msg_type": "execute_request",
            "version": "5.3",
            "date": "",
        },
        "parent_header": {},
        "metadata": {},
        "channel": "shell",
        "content": {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
    }
    await ws.write_message(json.dumps(request))
    output = []
    while True:
        message = json.loads(await asyncio.wait_for(ws.read_message(), 60))
        if message.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind = message["msg_type"]
        if kind == "stream":
            output.append(message["content"]["text"])
        elif kind == "error":
            output.append("\n".join(message["content"]["traceback"]))
        elif kind == "status" and message["content"]["execution_state"] == "idle":
            return "".join(output)


if __name__ == "__main__":
    print(asyncio.run(execute(*sys.argv[1:4])))
