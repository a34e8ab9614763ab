"""Runs a command on a pseudo-terminal, answering what it asks: argv[1] is a JSON list of [text, occurrence, answer]
(wait until `text` has appeared `occurrence` times, then type `answer` and Enter); the rest is the command. Prints
everything the command wrote and exits with its status."""
import json, os, pty, select, subprocess, sys, time

script = json.loads(sys.argv[1])
master, slave = pty.openpty()
process = subprocess.Popen(sys.argv[2:], stdin=slave, stdout=slave, stderr=slave, close_fds=True)
os.close(slave)
output = b""

def pump(timeout):
    global output
    ready, _, _ = select.select([master], [], [], timeout)
    if ready:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            return False
        if not chunk:
            return False
        output += chunk
    return True

for text, occurrence, answer in script:
    deadline = time.time() + 90
    while output.count(text.encode()) < occurrence:
        if time.time() > deadline or (process.poll() is not None and not pump(0.1)):
            sys.stdout.write(output.decode(errors="replace"))
            sys.stdout.write("\n[drive.py] gave up waiting for %r (x%d)\n" % (text, occurrence))
            process.kill()
            sys.exit(90)
        pump(0.1)
    time.sleep(0.2)
    os.write(master, (answer + "\r").encode())
deadline = time.time() + 120
while process.poll() is None and time.time() < deadline:
    pump(0.1)
while pump(0.1):
    pass
sys.stdout.write(output.decode(errors="replace"))
sys.exit(process.wait() if process.poll() is not None else 91)
