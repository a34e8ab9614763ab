"""A pymodbus TCP (or RTU) server holding a known register image, for the harness's interop tests.

The raw words are computed here with Python's struct module, independently of the harness's PointCodec:
  holding 0      int16  -123.4 (x0.1)          -> struct '>h' of -1234
  holding 2-3    uint32 305419896, word order ABCD
  holding 4-5    uint32 305419896, word order CDAB
  holding 6-7    float32 123.456, ABCD
  holding 8-9    float32 -0.5, CDAB
  holding 10-19  zeros, for writes
Prints READY when listening. Usage: pymodbus_server.py tcp PORT | rtu DEVICE
"""
import asyncio
import struct
import sys

from pymodbus.server import StartAsyncSerialServer, StartAsyncTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice


def words(fmt, value, order):
    raw = struct.pack(fmt, value)
    high, low = struct.unpack(">HH", raw) if len(raw) == 4 else (struct.unpack(">H", raw)[0], None)
    if low is None:
        return [high]
    return [high, low] if order == "ABCD" else [low, high]


IMAGE = (
    words(">h", -1234, "AB")
    + [0]
    + words(">I", 305419896, "ABCD")
    + words(">I", 305419896, "CDAB")
    + words(">f", 123.456, "ABCD")
    + words(">f", -0.5, "CDAB")
    + [0] * 10
)


async def main():
    kind, where = sys.argv[1], sys.argv[2]
    # Device id 0 answers every unit on TCP; on a serial line 0 is the broadcast address, so use unit 1 there.
    device = SimDevice(0 if kind == "tcp" else 1, [SimData(address=0, values=IMAGE, datatype=DataType.REGISTERS)])
    print("READY", flush=True)
    if kind == "tcp":
        await StartAsyncTcpServer(device, address=("127.0.0.1", int(where)))
    else:
        # 8N1: pyserial cannot set parity on a pty (the tests' stand-in for an RS-485 line), which ignores it anyway.
        await StartAsyncSerialServer(device, framer="rtu", port=where, baudrate=19200, parity="N", stopbits=1,
                                     bytesize=8)


if __name__ == "__main__":
    asyncio.run(main())
