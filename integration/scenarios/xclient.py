"""A minimal real X11 client (stdlib only), run inside the container: reads the
MIT-MAGIC-COOKIE-1 of $DISPLAY from $XAUTHORITY, connects to /tmp/.X11-unix/XN, does the
connection setup and prints "x11 ok VENDOR WxH" (the first screen's size), or "x11 refused
REASON" and exits 1."""

import os
import socket
import struct
import sys


def cookie(path, number):
    data = open(path, "rb").read()
    i = 0
    while i < len(data):
        fields = []
        i += 2  # family
        for _ in range(4):
            (n,) = struct.unpack(">H", data[i : i + 2])
            fields.append(data[i + 2 : i + 2 + n])
            i += 2 + n
        _addr, num, name, value = fields
        if name == b"MIT-MAGIC-COOKIE-1" and num.decode() in (number, ""):
            return value
    raise SystemExit(f"no cookie for display {number} in {path}")


def pad(b):
    return b + b"\0" * (-len(b) % 4)


def main():
    number = os.environ["DISPLAY"].split(":", 1)[1].split(".")[0]
    name, value = b"MIT-MAGIC-COOKIE-1", cookie(os.environ["XAUTHORITY"], number)
    s = socket.socket(socket.AF_UNIX)
    s.connect(f"/tmp/.X11-unix/X{number}")
    s.sendall(struct.pack("<BxHHHHxx", 0x6C, 11, 0, len(name), len(value)) + pad(name) + pad(value))
    head = s.recv(8, socket.MSG_WAITALL)
    extra = struct.unpack("<H", head[6:8])[0] * 4
    body = b""
    while len(body) < extra:
        chunk = s.recv(extra - len(body))
        if not chunk:
            break
        body += chunk
    if head[0] != 1:
        print("x11 refused", body[: head[1]].decode(errors="replace").strip())
        sys.exit(1)
    vlen = struct.unpack("<H", body[16:18])[0]
    nformats = body[21]
    vendor = body[32 : 32 + vlen].decode(errors="replace")
    screen = 32 + len(pad(body[32 : 32 + vlen])) + 8 * nformats
    w, h = struct.unpack("<HH", body[screen + 20 : screen + 24])
    print(f"x11 ok {vendor.replace(' ', '_')} {w}x{h}")


main()
