"""Emulated USBTMC / USB488 instruments in user space with umockdev: the device side, written from the specs.

  /usr/bin/python3 usbtmc_device.py --device VID:PID:SERIAL=HOST:PORT [--device ...] [--manufacturer TEXT]
      [--product TEXT] [--self-test-backend PORT ...] [--no-scatter-gather] [-v]

Needs Debian's /usr/bin/python3 (gi + UMockdev 0.17.16). Each --device is a USB device on bus 001 (devnum 002,
003, ...). ONE line of JSON is printed ({"umockdev_dir", "devices": [{"serial", "node", "sysfs", "resource"...}]});
clients run with LD_PRELOAD=libumockdev-preload.so.0 UMOCKDEV_DIR=<umockdev_dir>. Serves until stdin EOF or
SIGTERM/SIGINT, then removes the testbed and exits 0. Each device-dependent message (DEV_DEP_MSG_OUT transfers up
to EOM, one trailing "\\n" stripped) goes as a line to the device's TCP port; one with "?" waits 5 s for a reply
line, which becomes the output message. stdin lines, each answered "ok ..." or "error ...": "fault SERIAL NAME [after N]"
(one-shot, firing on the bulk-IN transfer after N normal ones, NAME: wrong-btag bad-inverse short oversized stall silent midread gone), "clear SERIAL", "stats SERIAL".

umockdev (0.17.16) facts this relies on:
- Cross-process ioctls need nothing special: attach_ioctl() listens on <dir>/ioctl/dev/bus/usb/BBB/DDD and the
  preload forwards ioctl()/read() on the node; handlers run in the testbed's worker thread (state under LOCK).
- The script re-executes itself under the preload, as umockdev's uevent sender looks the device up with libudev
  in this process: otherwise the "remove" uevent of `gone` fails ("uevent_sender_send: No such device").
- A client blocks in its ioctl until complete(), so URBs are not held in ioctls: SUBMITURB returns at once, URBs
  wait in a list, REAPURBNDELAY returns completed ones or EAGAIN. Bulk-IN buffers are mapped (resolve) at reap
  time, only for the bytes written (clients submit 1 MiB reads).
- The node is a plain file: poll() always reports POLLOUT, so libusb spins on REAPURBNDELAY (a repeated EAGAIN is
  answered IDLE_REAP_DELAY_MS late), and never POLLERR: on `gone` the URBs in flight are reaped with -ESHUTDOWN
  (libusb: NO_DEVICE), then every ioctl/read fails with ENODEV; a "remove" uevent updates libusb's device list.

Device: bulk-OUT 0x01 and bulk-IN 0x82 (512 bytes), interrupt-IN 0x83 (2), high speed, interface FE/03/01.
- Bulk-OUT headers are checked (bTag != 0, ~bTag, byte 3); a transfer may span URBs; a bad header or MsgID halts
  bulk-OUT (-EPIPE) until CLEAR_HALT. TRIGGER (128) is passed on as "*TRG".
- Bulk-IN transfer: header + min(rest of message, TransferSize) + 0-3 alignment bytes, never past the end of a
  message (then EOM); TermChar honoured. A transfer longer than its URB continues in the next URB if the URB is a
  multiple of 512 bytes, else the URB fails -EOVERFLOW (babble); one that is a multiple of 512 bytes and fills
  its URB exactly is ended by a zero-length packet. Without REQUEST or output, IN URBs wait until discarded.
- INITIATE_ABORT_BULK_IN: SUCCESS if the bTag is the last REQUEST's and anything is pending (drops all output
  and queries in flight, queues a short packet), 0x81 for another bTag, 0x80 if nothing is pending;
  CHECK_ABORT_BULK_IN_STATUS is always SUCCESS with bmAbortBulkIn 0 and drops that short packet if unread.
- READ_STATUS_BYTE replies [status, bTag, 0] and sends [0x80|bTag, STB] on interrupt-IN (STB 0x10 = MAV).
- usbdevfs capabilities include scatter-gather (one URB per transfer, as with xHCI); with --no-scatter-gather
  libusb splits transfers into 16 KiB URBs with BULK_CONTINUATION, handled as the kernel does.
"""
import argparse, errno, json, os, queue, shutil, signal, socket, struct, sys, threading, time

import gi
gi.require_version("UMockdev", "1.0")
from gi.repository import GLib, UMockdev  # noqa: E402

LOCK = threading.RLock()
VERBOSE = False
IDLE_REAP_DELAY_MS = 1
BACKEND_TIMEOUT = 5.0
MAX_PACKET = 512
EP_OUT, EP_IN, EP_INTR = 0x01, 0x82, 0x83


def log(*parts):
    print("usbtmc_device:", *parts, file=sys.stderr, flush=True)


def _ioc(direction, nr, size):  # linux/ioctl.h: direction 0 none, 1 write, 2 read, 3 both
    return (direction << 30) | (size << 16) | (ord("U") << 8) | nr


# usbdevfs requests (linux/usbdevice_fs.h, x86_64 sizes)
CONTROL, RESETEP, SETINTERFACE, SETCONFIGURATION = _ioc(3, 0, 24), _ioc(2, 3, 4), _ioc(2, 4, 8), _ioc(2, 5, 4)
GETDRIVER, SUBMITURB, DISCARDURB, REAPURB = _ioc(1, 8, 260), _ioc(2, 10, 56), _ioc(0, 11, 0), _ioc(1, 12, 8)
REAPURBNDELAY, CLAIMINTERFACE, RELEASEINTERFACE = _ioc(1, 13, 8), _ioc(2, 15, 4), _ioc(2, 16, 4)
CONNECTINFO, USBIOCTL, RESET, CLEAR_HALT = _ioc(1, 17, 8), _ioc(3, 18, 16), _ioc(0, 20, 0), _ioc(2, 21, 4)
DISCONNECT, CONNECT, GET_CAPABILITIES = _ioc(0, 22, 0), _ioc(0, 23, 0), _ioc(2, 26, 4)
DISCONNECT_CLAIM, GET_SPEED = _ioc(2, 27, 264), _ioc(0, 31, 0)
ALWAYS_OK = (CLAIMINTERFACE, RELEASEINTERFACE, DISCONNECT_CLAIM, SETINTERFACE, SETCONFIGURATION, RESETEP)
# capabilities: ZERO_PACKET, BULK_CONTINUATION, NO_PACKET_SIZE_LIM, REAP_AFTER_DISCONNECT (+ BULK_SCATTER_GATHER)
CAPS, CAP_BULK_SCATTER_GATHER = 0x01 | 0x02 | 0x04 | 0x10, 0x08
URB_SHORT_NOT_OK, URB_BULK_CONTINUATION, URB_TYPE_CONTROL = 0x01, 0x04, 2
SUCCESS, INTERRUPT_IN_BUSY, FAILED, TRANSFER_NOT_IN_PROGRESS = 0x01, 0x20, 0x80, 0x81
FAULTS = ("wrong-btag", "bad-inverse", "short", "oversized", "stall", "silent", "midread", "gone")
STATS = ("messages", "queries", "replies", "requests", "aborts_bulk_in", "aborts_bulk_out", "clears",
         "stalls_cleared", "halts", "ren_control", "capabilities", "read_status_byte", "indicator_pulses",
         "triggers", "discarded_urbs", "resets", "backend_errors", "faults_fired")


class Urb:
    """A submitted URB (struct usbdevfs_urb: type @0, endpoint @1, status @4, flags @8, buffer @16,
    buffer_length @24, actual_length @28), kept until its owner reaps it."""

    def __init__(self, client, addr, data):
        raw = bytes(data.retrieve())
        self.client, self.addr, self.data = client, addr, data
        self.type, self.endpoint = raw[0], raw[1]
        self.flags, self.length = struct.unpack_from("<I12xi", raw, 8)
        self.result = None  # (status, payload, payload offset in buffer, actual_length) once completed
        self.held = False   # `silent`: the device never completes it
        self.buffer = None  # resolved buffer (control and bulk-OUT URBs)


def in_header(btag, size, attributes, inverse=None):  # DEV_DEP_MSG_IN header
    return struct.pack("<BBBBIB3x", 2, btag, (~btag & 0xFF) if inverse is None else inverse, 0, size, attributes)


class Backend(threading.Thread):
    """Sends the messages of one device, in order, to its SCPI TCP port; connects lazily, reconnects once."""

    def __init__(self, host, port, device):
        super().__init__(daemon=True)
        self.host, self.port, self.device = host, port, device
        self.jobs, self.sock, self.pending = queue.Queue(), None, b""

    def run(self):
        while True:
            generation, line, is_query = self.jobs.get()
            reply = None
            for attempt in (1, 2):
                try:
                    if self.sock is None:
                        self.sock = socket.create_connection((self.host, self.port), timeout=BACKEND_TIMEOUT)
                        self.pending = b""
                    self.sock.sendall(line + b"\n")
                    reply = self.read_line() if is_query else None
                    break
                except (OSError, EOFError) as error:
                    if self.sock is not None:
                        self.sock.close()
                    self.sock = None  # a late reply must not be taken for the next one
                    if attempt == 2 or isinstance(error, socket.timeout):
                        log("backend %s:%d: %r for %r" % (self.host, self.port, error, line))
                        break
            if is_query:
                self.device.backend_reply(generation, reply)

    def read_line(self):
        deadline = time.monotonic() + BACKEND_TIMEOUT
        while b"\n" not in self.pending:
            if time.monotonic() >= deadline:
                raise socket.timeout("no reply line within %g s" % BACKEND_TIMEOUT)
            self.sock.settimeout(deadline - time.monotonic())
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("backend closed the connection")
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return line + b"\n"


class Device:
    def __init__(self, index, vid, pid, serial, host, port, manufacturer, product, scatter_gather):
        self.vid, self.pid, self.serial, self.devnum = vid, pid, serial, index + 2
        self.node = "/dev/bus/usb/001/%03d" % self.devnum
        self.devpath = "/devices/pci0000:00/0000:00:14.0/usb1/1-%d" % self.devnum
        self.strings = {1: manufacturer, 2: product, 3: serial}
        self.caps = CAPS | (CAP_BULK_SCATTER_GATHER if scatter_gather else 0)
        self.device_descriptor = struct.pack("<BBHBBBBHHHBBBB", 18, 1, 0x0200, 0, 0, 0, 64, vid, pid, 0x0100,
                                             1, 2, 3, 1)
        body = (struct.pack("<9B", 9, 4, 0, 0, 3, 0xFE, 0x03, 0x01, 0)  # interface: USBTMC, USB488 protocol
                + struct.pack("<BBBBHB", 7, 5, EP_OUT, 2, MAX_PACKET, 0)
                + struct.pack("<BBBBHB", 7, 5, EP_IN, 2, MAX_PACKET, 0)
                + struct.pack("<BBBBHB", 7, 5, EP_INTR, 3, 2, 8))
        self.config_descriptor = struct.pack("<BBHBBBBB", 9, 2, 9 + len(body), 1, 1, 0, 0xC0, 50) + body
        self.clients, self.done, self.idle, self.disabled = {}, {}, {}, {}  # per IoctlClient (open fd)
        self.fault, self.gone, self.generation = None, False, 0
        self.fault_skip = 0  # bulk-IN transfers answered normally before the armed fault fires
        self.stats = dict.fromkeys(STATS, 0)
        self.output = []  # output queue: one bytearray per message
        self.reset_transfer_state()
        self.backend = Backend(host, port, self)
        self.backend.start()

    def reset_transfer_state(self):
        self.halted, self.notifications = set(), []
        self.out_remaining = self.out_pad = self.out_btag = self.out_rxd = 0
        self.out_eom, self.message = False, bytearray()
        self.request, self.last_in_btag = None, 0  # request: (bTag, TransferSize, TermChar or None)
        self.in_stream, self.in_offset, self.in_txd, self.zlp_owed = b"", 0, 0, False
        self.queries_in_flight = 0

    def description(self):
        """The device for Testbed.add_from_string(): udev properties (E), sysfs attributes (A, newline-ended as
        in sysfs), the descriptors blob (H) and the node, whose content is the descriptors as with usbfs."""
        blob = (self.device_descriptor + self.config_descriptor).hex().upper()
        props = {"SUBSYSTEM": "usb", "DEVTYPE": "usb_device", "DEVNAME": self.node, "DRIVER": "usb",
                 "BUSNUM": "001", "DEVNUM": "%03d" % self.devnum, "MAJOR": 189, "MINOR": self.devnum - 1,
                 "PRODUCT": "%x/%x/100" % (self.vid, self.pid), "TYPE": "0/0/0", "ID_BUS": "usb",
                 "ID_VENDOR_ID": "%04x" % self.vid, "ID_MODEL_ID": "%04x" % self.pid,
                 "ID_SERIAL_SHORT": self.serial, "ID_USB_INTERFACES": ":fe0301:"}
        attrs = {"busnum": 1, "devnum": self.devnum, "speed": 480, "version": " 2.00", "bConfigurationValue": 1,
                 "bNumConfigurations": 1, "bNumInterfaces": " 1", "idVendor": "%04x" % self.vid,
                 "idProduct": "%04x" % self.pid, "bcdDevice": "0100", "bDeviceClass": "00",
                 "bDeviceSubClass": "00", "bDeviceProtocol": "00", "bMaxPacketSize0": 64, "bmAttributes": "c0",
                 "bMaxPower": "100mA", "maxchild": 0, "removable": "unknown", "authorized": 1,
                 "dev": "189:%d" % (self.devnum - 1), "manufacturer": self.strings[1],
                 "product": self.strings[2], "serial": self.strings[3]}
        lines = ["P: " + self.devpath, "N: %s=%s" % (self.node[5:], blob), "H: descriptors=" + blob]
        lines += ["E: %s=%s" % kv for kv in props.items()] + ["A: %s=%s\\n" % kv for kv in attrs.items()]
        lines += ["", "P: %s/1-%d:1.0" % (self.devpath, self.devnum), "E: SUBSYSTEM=usb",
                  "E: DEVTYPE=usb_interface", "E: INTERFACE=254/3/1"]
        lines += ["A: %s\\n" % a for a in ("bInterfaceNumber=00", "bAlternateSetting= 0", "bNumEndpoints=03",
                                            "bInterfaceClass=fe", "bInterfaceSubClass=03", "bInterfaceProtocol=01")]
        return "\n".join(lines) + "\n\n"

    # ---- usbdevfs ioctls (testbed worker thread) -------------------------------------------------------------
    def on_ioctl(self, _handler, client):
        self.guarded(client, self.ioctl, client, client.get_request(), client.get_arg())
        return True

    def guarded(self, client, function, *args):
        try:
            with LOCK:
                function(*args)
        except Exception as error:  # never leave a client hanging
            log("%s: handler failed: %r" % (self.serial, error))
            client.complete(-1, errno.EIO)

    def on_read(self, _handler, client):  # read() of the node: the descriptors in the node file, or ENODEV
        if self.gone:
            client.complete(-1, errno.ENODEV)
        return self.gone

    def on_client(self, _handler, client):
        client.connect("notify::connected", self.on_client_gone)

    def on_client_gone(self, client, _pspec):
        if not client.get_connected():
            with LOCK:
                for table in (self.clients, self.done, self.idle, self.disabled):
                    table.pop(client, None)

    def ioctl(self, client, request, arg):
        if VERBOSE and request != REAPURBNDELAY:
            log("%s: ioctl 0x%08x" % (self.serial, request))
        if request in (REAPURB, REAPURBNDELAY):
            return self.reap(client, request == REAPURB)
        if self.gone:
            return client.complete(-1, errno.ENODEV)
        if request == SUBMITURB:
            return self.submit(client, arg)
        if request == DISCARDURB:  # the argument is the URB's address
            addr, = struct.unpack("<Q", bytes(arg.retrieve()))
            for urb in self.clients.get(client, []):
                if urb.addr == addr and urb.result is None:
                    self.stats["discarded_urbs"] += 1
                    self.finish(urb, -errno.ENOENT)
                    return client.complete(0, 0)
            return client.complete(-1, errno.EINVAL)  # unknown or already completed
        if request == GET_CAPABILITIES:
            arg.resolve(0, 4).update(0, struct.pack("<I", self.caps))
        elif request == CLEAR_HALT:
            self.clear_halt(struct.unpack("<I", bytes(arg.resolve(0, 4).retrieve()))[0])
        elif request == CONNECTINFO:
            arg.resolve(0, 8).update(0, struct.pack("<IB3x", self.devnum, 0))
        elif request == GET_SPEED:
            return client.complete(3, 0)  # USB_SPEED_HIGH
        elif request == GETDRIVER:
            return client.complete(-1, errno.ENODATA)  # no kernel driver bound
        elif request == USBIOCTL:  # struct usbdevfs_ioctl {int ifno; int ioctl_code; void *data}
            code = struct.unpack_from("<i", bytes(arg.resolve(0, 16).retrieve()), 4)[0]
            if code != CONNECT:
                return client.complete(-1, errno.ENODATA if code == DISCONNECT else errno.ENOTTY)
        elif request == RESET:
            self.stats["resets"] += 1
            self.reset_transfer_state()  # the instrument's output queue survives a USB reset
        elif request == CONTROL:  # struct usbdevfs_ctrltransfer: setup fields @0, timeout @8, data pointer @16
            data = arg.resolve(0, 24)
            status, reply = self.control(bytes(data.retrieve())[:8])
            if status:
                return client.complete(-1, -status)
            if reply:
                data.resolve(16, len(reply)).update(0, reply)
            return client.complete(len(reply), 0)
        elif request not in ALWAYS_OK:
            log("%s: unknown ioctl 0x%08x, answering ENOTTY" % (self.serial, request))
            return client.complete(-1, errno.ENOTTY)
        client.complete(0, 0)

    def submit(self, client, arg):
        addr, = struct.unpack("<Q", bytes(arg.retrieve()))
        urb = Urb(client, addr, arg.resolve(0, 56))
        if urb.endpoint not in (0x00, 0x80, EP_OUT, EP_IN, EP_INTR) or urb.length < 0 or \
                (urb.type == URB_TYPE_CONTROL and urb.length < 8):
            return client.complete(-1, errno.EINVAL if urb.type == URB_TYPE_CONTROL else errno.ENOENT)
        if urb.endpoint == EP_IN:  # like the kernel: after a short SHORT_NOT_OK URB, refuse its continuation
            disabled = self.disabled.setdefault(client, set())
            if urb.flags & URB_BULK_CONTINUATION and EP_IN in disabled:
                return client.complete(-1, errno.EREMOTEIO)
            disabled.discard(EP_IN)
        self.clients.setdefault(client, []).append(urb)
        if urb.type == URB_TYPE_CONTROL:  # the buffer starts with the setup packet; the reply goes after it
            urb.buffer = urb.data.resolve(16, urb.length)
            status, reply = self.control(bytes(urb.buffer.retrieve())[:8])
            self.finish(urb, status, reply[:urb.length - 8], 8)
        elif urb.endpoint == EP_OUT:
            payload = b""
            if urb.length:
                urb.buffer = urb.data.resolve(16, urb.length)
                payload = bytes(urb.buffer.retrieve())
            status = self.bulk_out(payload)
            self.finish(urb, status, b"", 0, 0 if status else len(payload))
        self.service()
        client.complete(0, 0)

    def finish(self, urb, status, payload=b"", offset=0, actual=None):
        urb.result = (status, payload, offset, len(payload) if actual is None else actual)
        self.done.setdefault(urb.client, []).append(urb)

    def reap(self, client, blocking, delayed=False):
        self.service()
        done = self.done.get(client)
        if not done:
            if self.gone:
                return client.complete(-1, errno.ENODEV)
            if blocking or (self.idle.get(client) and not delayed):  # look again later (in the worker thread)
                source = GLib.timeout_source_new(IDLE_REAP_DELAY_MS)
                source.set_callback(lambda _: self.guarded(client, self.reap, client, blocking, True) or False)
                source.attach(GLib.MainContext.get_thread_default())
                return None
            self.idle[client] = True
            return client.complete(-1, errno.EAGAIN)
        self.idle[client] = False
        urb = done.pop(0)
        self.clients[client].remove(urb)
        status, payload, offset, actual = urb.result
        if payload:
            (urb.buffer or urb.data.resolve(16, offset + len(payload))).update(offset, payload)
        urb.data.update(4, struct.pack("<i", status))
        urb.data.update(28, struct.pack("<i", actual))
        client.get_arg().resolve(0, 8).set_ptr(0, urb.data)  # *arg = the URB's address in the client
        client.complete(0, 0)

    def pending(self, endpoint):
        return [urb for client, urbs in self.clients.items() if client.get_connected() for urb in urbs
                if urb.endpoint == endpoint and urb.result is None and not urb.held]

    def service(self):
        """Completes the pending IN URBs (oldest first) that the device can answer now."""
        if self.gone:
            for urbs in self.clients.values():
                for urb in [u for u in urbs if u.result is None]:
                    self.finish(urb, -errno.ESHUTDOWN)
            return
        for urb in self.pending(EP_INTR)[:len(self.notifications)]:
            note = self.notifications.pop(0)
            self.finish(urb, -errno.EOVERFLOW if urb.length < len(note) else 0, note[:urb.length])
        for urb in self.pending(EP_IN):
            if urb.result is None and not self.bulk_in(urb):
                break

    def clear_halt(self, endpoint):
        if endpoint in self.halted:
            self.halted.discard(endpoint)
            self.stats["stalls_cleared"] += 1

    # ---- bulk-OUT -------------------------------------------------------------------------------------------
    def bulk_out(self, data):
        """Parses one bulk-OUT URB; returns its status (0 or -EPIPE for a STALL)."""
        if EP_OUT in self.halted:
            return -errno.EPIPE
        pos = 0
        while pos < len(data):
            if self.out_remaining:  # DEV_DEP_MSG_OUT payload, possibly continued from an earlier URB
                chunk = data[pos:pos + self.out_remaining]
                self.message += chunk
                pos += len(chunk)
                self.out_rxd += len(chunk)
                self.out_remaining -= len(chunk)
                if not self.out_remaining:
                    pos += self.out_pad  # alignment bytes, if in this URB
                    self.end_out_transfer()
                continue
            header = data[pos:pos + 12]
            if len(header) < 12 or header[1] == 0 or header[2] != (~header[1] & 0xFF) or header[3] != 0:
                return self.halt_out("malformed header %s" % header.hex())
            msgid, btag, size, attributes, termchar = struct.unpack_from("<BB2xIBB", header)
            pos += 12
            if msgid == 1:  # DEV_DEP_MSG_OUT
                self.out_btag, self.out_eom, self.out_rxd = btag, bool(attributes & 1), 0
                self.out_remaining, self.out_pad = size, -size % 4
                if size == 0:
                    self.end_out_transfer()
            elif msgid == 2:  # REQUEST_DEV_DEP_MSG_IN
                self.request = (btag, size, termchar if attributes & 2 else None)
                self.last_in_btag, self.in_txd = btag, 0
                self.stats["requests"] += 1
            elif msgid == 128:  # USB488 TRIGGER
                self.stats["triggers"] += 1
                self.backend.jobs.put((self.generation, b"*TRG", False))
            else:
                return self.halt_out("unsupported MsgID %d" % msgid)
        return 0

    def halt_out(self, why):
        log("%s: halting bulk-OUT: %s" % (self.serial, why))
        self.halted.add(EP_OUT)
        self.stats["halts"] += 1
        self.out_remaining, self.message = 0, bytearray()
        return -errno.EPIPE

    def end_out_transfer(self):
        if not self.out_eom:
            return
        line, self.message = bytes(self.message), bytearray()
        line = line[:-1] if line.endswith(b"\n") else line
        is_query = b"?" in line
        self.stats["messages"] += 1
        self.stats["queries"] += is_query
        self.queries_in_flight += is_query
        if VERBOSE:
            log("%s: message %r" % (self.serial, line))
        self.backend.jobs.put((self.generation, line, is_query))

    def backend_reply(self, generation, reply):  # backend thread
        with LOCK:
            if generation != self.generation or self.gone:
                return  # aborted or cleared meanwhile
            self.queries_in_flight = max(0, self.queries_in_flight - 1)
            if reply is None:
                self.stats["backend_errors"] += 1
            else:
                self.output.append(bytearray(reply))
                self.stats["replies"] += 1

    # ---- bulk-IN --------------------------------------------------------------------------------------------
    def bulk_in(self, urb):
        """Gives `urb` its part of the current bulk-IN transfer, starting one if there is a REQUEST and output.
        Returns False if the device has nothing to send now (the URB stays pending)."""
        if EP_IN in self.halted:
            self.finish(urb, -errno.EPIPE)
            return True
        if not self.in_stream:
            if self.zlp_owed:
                self.zlp_owed = False
                self.finish(urb, 0)
                return True
            if self.request is None or not self.output:
                return False
            if not self.start_in_transfer(urb):
                return True
        rest = self.in_stream[self.in_offset:]
        chunk, status = rest[:urb.length], 0
        self.in_offset += len(chunk)
        if len(rest) > urb.length and urb.length % MAX_PACKET:
            status, self.in_stream = -errno.EOVERFLOW, b""  # the next packet does not fit: babble
        elif self.in_offset >= len(self.in_stream):
            self.zlp_owed = len(chunk) == urb.length and len(self.in_stream) % MAX_PACKET == 0
            self.in_stream = b""
        if len(chunk) < urb.length and urb.flags & URB_SHORT_NOT_OK:
            status = -errno.EREMOTEIO  # like the kernel: cancel the continuation URBs already submitted
            self.disabled.setdefault(urb.client, set()).add(EP_IN)
            for other in self.clients.get(urb.client, []):
                if other.endpoint == EP_IN and other.result is None and other.flags & URB_BULK_CONTINUATION:
                    self.finish(other, -errno.ECONNRESET)
        self.finish(urb, status, chunk)
        return True

    def start_in_transfer(self, urb):
        """Builds the next DEV_DEP_MSG_IN transfer into self.in_stream, applying an armed fault; returns False
        if the fault completed or held `urb` instead."""
        (btag, size, termchar), self.request = self.request, None  # one REQUEST, one transfer
        if self.fault and self.fault_skip > 0:
            self.fault_skip -= 1
            fault = None
        else:
            fault, self.fault = self.fault, None
        if fault:
            self.stats["faults_fired"] += 1
            log("%s: fault %s fires on bulk-IN (bTag %d)" % (self.serial, fault, btag))
        if fault == "silent":  # the REQUEST is lost, the answer stays queued until abort/clear
            urb.held = True
            return False
        if fault == "stall":
            self.halted.add(EP_IN)
            self.stats["halts"] += 1
            self.finish(urb, -errno.EPIPE)
            return False
        if fault == "short":
            self.finish(urb, 0, in_header(btag, min(size, len(self.output[0])), 1)[:5])
            return False
        head, inverse, attributes = self.output[0], None, 0
        if fault == "oversized":  # TransferSize and data beyond what was requested
            data, attributes = bytes(head[:size + 4]).ljust(size + 4, b"#"), 1
            del self.output[0]
        else:
            data = bytes(head[:size])
            if fault == "midread":
                data = data[:max(1, len(data) // 2)]
                self.fault = "silent"  # the rest of the message never comes
            if termchar is not None and termchar in data:
                data, attributes = data[:data.index(termchar) + 1], 2
            del head[:len(data)]
            if not head:
                del self.output[0]
                attributes |= 1  # EOM
        if fault == "wrong-btag":
            btag = btag % 255 + 1
        elif fault == "bad-inverse":
            inverse = (~btag & 0xFF) ^ 0x5A
        stream = in_header(btag, len(data), attributes, inverse) + data
        self.in_stream, self.in_offset = stream + b"\0" * (-len(stream) % 4), 0
        self.in_txd += len(data)
        return True

    # ---- control requests -----------------------------------------------------------------------------------
    def control(self, setup):
        """Answers a control request: (0, reply) or (-EPIPE, b"") for a STALL."""
        request_type, request, value, index, length = struct.unpack("<BBHHH", setup)
        reply = None
        if request_type & 0x60 == 0x00:
            reply = self.standard_request(request_type & 0x1F, request, value, index)
        elif request_type & 0x60 == 0x20:
            reply = self.class_request(request, value)
        if reply is None:
            if VERBOSE:
                log("%s: STALL on control request %s" % (self.serial, setup.hex()))
            return -errno.EPIPE, b""
        return 0, bytes(reply[:length]) if request_type & 0x80 else b""

    def standard_request(self, recipient, request, value, index):
        kind, number = value >> 8, value & 0xFF
        if request == 6:  # GET_DESCRIPTOR
            if kind == 3 and number in self.strings:
                text = self.strings[number].encode("utf-16-le")[:252]
                return bytes([2 + len(text), 3]) + text
            return {(1, 0): self.device_descriptor, (2, 0): self.config_descriptor,
                    (3, 0): bytes([4, 3, 0x09, 0x04]),  # LANGID 0x0409
                    (6, 0): struct.pack("<BBHBBBBBB", 10, 6, 0x0200, 0, 0, 0, 64, 1, 0)}.get((kind, number))
        if request == 0:  # GET_STATUS: the device is self-powered; an endpoint reports its halt
            return bytes([1 if recipient == 0 else int(recipient == 2 and index & 0xFF in self.halted), 0])
        if request == 1 and recipient == 2 and value == 0:  # CLEAR_FEATURE(ENDPOINT_HALT)
            self.clear_halt(index & 0xFF)
            return b""
        # GET_CONFIGURATION, GET_INTERFACE; SET_FEATURE, SET_CONFIGURATION, SET_INTERFACE accepted
        return {8: b"\x01", 10: b"\x00", 3: b"", 9: b"", 11: b""}.get(request)

    def class_request(self, request, value):
        s, btag = self.stats, value & 0xFF
        if request == 1:  # INITIATE_ABORT_BULK_OUT (wValue = bTag)
            if not self.out_remaining:
                return bytes([FAILED, btag])
            if btag != self.out_btag:
                return bytes([TRANSFER_NOT_IN_PROGRESS, self.out_btag])
            s["aborts_bulk_out"] += 1
            self.out_remaining, self.message = 0, bytearray()
            return bytes([SUCCESS, btag])
        if request == 2:  # CHECK_ABORT_BULK_OUT_STATUS: NBYTES_RXD
            return struct.pack("<B3xI", SUCCESS, self.out_rxd)
        if request == 3:  # INITIATE_ABORT_BULK_IN (wValue = bTag)
            if not (self.request or self.in_stream or self.output or self.queries_in_flight):
                return bytes([FAILED, btag])
            if btag != self.last_in_btag:
                return bytes([TRANSFER_NOT_IN_PROGRESS, self.last_in_btag])
            s["aborts_bulk_in"] += 1
            self.drop_output()
            self.zlp_owed = True  # the aborted transfer ends with a short packet
            return bytes([SUCCESS, btag])
        if request == 4:  # CHECK_ABORT_BULK_IN_STATUS: done, FIFO empty (an unread short packet dropped)
            self.zlp_owed = False
            return struct.pack("<BB2xI", SUCCESS, 0, self.in_txd)
        if request == 5:  # INITIATE_CLEAR: input and output dropped
            s["clears"] += 1
            self.out_remaining, self.message = 0, bytearray()
            self.drop_output()
            return bytes([SUCCESS])
        if request == 6:  # CHECK_CLEAR_STATUS
            return bytes([SUCCESS, 0])
        if request == 7:  # GET_CAPABILITIES: USBTMC 1.00, indicator pulse, TermChar; USB488 1.00 with 488.2,
            s["capabilities"] += 1  # REN_CONTROL/GO_TO_LOCAL/LOCAL_LOCKOUT; SCPI, SR1, RL1, DT1
            return struct.pack("<BxHBB6xHBB8x", SUCCESS, 0x0100, 0x04, 0x01, 0x0100, 0x06, 0x0F)
        if request == 128:  # READ_STATUS_BYTE (wValue = bTag 2..127); the STB goes on the interrupt-IN endpoint
            s["read_status_byte"] += 1
            if self.notifications:
                return bytes([INTERRUPT_IN_BUSY, btag & 0x7F, 0])
            self.notifications.append(bytes([0x80 | (btag & 0x7F), 0x10 if self.output else 0x00]))
            return bytes([SUCCESS, btag & 0x7F, 0])
        if request in (64, 160, 161, 162):  # INDICATOR_PULSE, REN_CONTROL, GO_TO_LOCAL, LOCAL_LOCKOUT
            if request in (64, 160):
                s["indicator_pulses" if request == 64 else "ren_control"] += 1
            return bytes([SUCCESS])
        return None

    def drop_output(self):
        self.request, self.in_stream, self.zlp_owed, self.output = None, b"", False, []
        self.queries_in_flight = 0
        self.generation += 1  # replies of queries still at the backend are dropped


def self_test_backend(port, serial):
    """A throwaway SCPI instrument on 127.0.0.1:PORT, plus TEST:ECHO? text, TEST:BLOCK? n, TEST:SLOW? seconds."""
    server, counter = socket.create_server(("127.0.0.1", port)), iter(range(10 ** 9))

    answers = {"*IDN?": lambda _: "ACME,DMM-1,%s,1.0" % serial,
               "MEAS:VOLT:DC?": lambda _: "%+.8E" % (54.0 + next(counter)),
               "SYST:ERR?": lambda _: '+0,"No error"', "TEST:ECHO?": lambda text: text,
               "TEST:BLOCK?": lambda n: "".join(chr(65 + i % 26) for i in range(int(n))),
               "TEST:SLOW?": lambda seconds: time.sleep(float(seconds)) or "SLOW"}

    def serve(conn):
        with conn, conn.makefile("rb") as lines:
            for raw in lines:  # anything else gets no reply
                word, _, argument = raw.strip().decode(errors="replace").partition(" ")
                if word.upper() in answers:
                    conn.sendall(answers[word.upper()](argument).encode() + b"\n")

    def accept():
        while True:
            threading.Thread(target=serve, args=(server.accept()[0],), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()


def parse_device(spec):
    ids, _, address = spec.partition("=")
    vid, pid, serial = ids.split(":", 2)
    host, _, port = address.rpartition(":")
    return int(vid, 16), int(pid, 16), serial, host or "127.0.0.1", int(port)


def main():
    global VERBOSE
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", action="append", default=[], type=parse_device,
                        help="VID:PID:SERIAL=HOST:PORT, ids in hex")
    parser.add_argument("--manufacturer", default="ACME Instruments")
    parser.add_argument("--product", default="DMM-1 USBTMC (emulated)")
    parser.add_argument("--self-test-backend", action="append", default=[], type=int, metavar="PORT")
    parser.add_argument("--no-scatter-gather", action="store_true")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    VERBOSE = args.verbose
    preload = os.environ.get("LD_PRELOAD", "")
    if args.device and "libumockdev-preload" not in preload:  # see the notes above
        os.environ["LD_PRELOAD"] = ":".join(filter(None, ["libumockdev-preload.so.0", preload]))
        os.environ.pop("UMOCKDEV_DIR", None)  # the preload stays inert until Testbed.new() sets it
        os.execv(sys.executable, [sys.executable] + sys.argv)

    for port in args.self_test_backend:
        self_test_backend(port, next((d[2] for d in args.device if d[4] == port), "SELFTEST"))
    testbed = UMockdev.Testbed.new() if args.device else None
    devices, handlers, report = {}, [], []
    for index, (vid, pid, serial, host, port) in enumerate(args.device):
        device = Device(index, vid, pid, serial, host, port, args.manufacturer, args.product,
                        not args.no_scatter_gather)
        testbed.add_from_string(device.description())
        handler = UMockdev.IoctlBase()
        handler.connect("handle-ioctl", device.on_ioctl)
        handler.connect("handle-read", device.on_read)
        handler.connect("client-connected", device.on_client)
        testbed.attach_ioctl(device.node, handler)
        handlers.append(handler)
        devices[serial] = device
        report.append({"serial": serial, "node": device.node, "sysfs": "/sys" + device.devpath, "vid": vid,
                       "pid": pid, "backend": "%s:%d" % (host, port),
                       "resource": "USB0::0x%04X::0x%04X::%s::INSTR" % (vid, pid, serial)})
    root = testbed.get_root_dir() if testbed else None
    print(json.dumps({"umockdev_dir": root, "devices": report, "self_test_backends": args.self_test_backend}),
          flush=True)

    def command(words):
        if len(words) < 2 or words[0] not in ("fault", "clear", "stats"):
            return "error usage: fault SERIAL NAME | clear SERIAL | stats SERIAL"
        device = devices.get(words[1])
        if device is None:
            return "error unknown serial %s" % words[1]
        with LOCK:
            if words[0] == "stats":
                return "ok " + json.dumps(dict(device.stats, output_queued=len(device.output),
                                               fault=device.fault, gone=device.gone))
            if words[0] == "clear":
                device.fault, device.fault_skip = None, 0
                return "ok cleared %s" % device.serial
            after = len(words) == 5 and words[3] == "after" and words[4].isdigit()
            if len(words) not in (3, 5) or (len(words) == 5 and not after) or words[2] not in FAULTS:
                return "error usage: fault SERIAL NAME [after N]; faults: " + " ".join(FAULTS)
            if words[2] != "gone":
                device.fault, device.fault_skip = words[2], int(words[4]) if after else 0
                return "ok armed %s %s" % (device.serial, words[2])
            if after:
                return "error gone is immediate (no 'after')"
            if device.gone:
                return "error %s is already gone" % device.serial
            device.gone = True
            device.service()  # URBs in flight complete with -ESHUTDOWN
        testbed.uevent("/sys" + device.devpath, "remove")
        testbed.remove_device("/sys" + device.devpath)
        return "ok gone %s" % device.serial

    loop, pending = GLib.MainLoop(), bytearray()

    def on_stdin(fd, _condition):
        chunk = os.read(fd, 65536)
        if not chunk:
            loop.quit()
            return False
        pending.extend(chunk)
        while b"\n" in pending:
            line, _, rest = bytes(pending).partition(b"\n")
            pending[:] = rest
            if line.strip():
                print(command(line.decode(errors="replace").split()), flush=True)
        return True

    GLib.io_add_watch(0, GLib.PRIORITY_DEFAULT, GLib.IO_IN | GLib.IO_HUP, on_stdin)
    for number in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, number, loop.quit)
    loop.run()
    if root:
        shutil.rmtree(root, ignore_errors=True)
    sys.stdout.flush()
    os._exit(0)  # backend threads may be blocked in socket calls


if __name__ == "__main__":
    main()
